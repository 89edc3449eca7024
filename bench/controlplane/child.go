package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshway/meshway/internal/controlplane"
	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/push"
	"github.com/meshway/meshway/internal/push/wire"
	"github.com/meshway/meshway/internal/store"
)

// runChild is the memory mode's control plane process: the mesh in a
// memory store (the store lives in this process, so the changes are made
// here too, on command), and what cmd/meshd's run wires on it — a push
// server with meshd's metrics and a controller — serving xDS on addr.
// Commands on stdin, one a line, each answered "ok ..." or "error ..." on
// stdout:
//
//	start            serve xDS and run the controller (the clock starts)
//	change C         make change C (see parseChange)
//	prof FILE        start a CPU profile into FILE
//	stopprof         write it
func runChild(size meshSize, addr string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := log.New(os.Stderr, "meshd: ", log.LstdFlags|log.Lmicroseconds)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50) // as meshd does (cmd/meshd/memlimit.go's gcPercent)
	}
	st := store.NewMemory(store.Options{})
	began := time.Now()
	var err error
	generate(size, func(obj manifest.Object) {
		if err == nil {
			_, err = st.Create(ctx, obj)
		}
	})
	if err != nil {
		return fmt.Errorf("populating the memory store: %w", err)
	}
	if err := checkStore(ctx, st, size); err != nil {
		return err
	}
	fmt.Printf("ok %d\n", time.Since(began).Milliseconds())

	in := bufio.NewScanner(os.Stdin)
	var prof *os.File
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		var err error
		switch cmd {
		case "start":
			err = startControlPlane(ctx, st, addr, logger)
		case "change":
			var c change
			if c, err = parseChange(arg); err == nil {
				err = applyChange(ctx, st, size, c)
			}
		case "prof":
			if prof, err = os.Create(arg); err == nil {
				err = pprof.StartCPUProfile(prof)
			}
		case "stopprof":
			pprof.StopCPUProfile()
			if prof != nil {
				err = prof.Close()
			}
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			fmt.Printf("error %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
			continue
		}
		fmt.Println("ok")
	}
	return in.Err() // stdin closed: the bench is done
}

// startControlPlane is cmd/meshd's run without the parts that need a
// directory or a cluster (leader election, monitoring server): the same
// push server options and controller.
func startControlPlane(ctx context.Context, st store.Store, addr string, logger *log.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := push.NewServer(push.ServerOptions{Types: []string{wire.WaypointType}, WildcardTypes: wire.ZtunnelTypes, Logf: logger.Printf, Metrics: push.NewMetrics(reg)})
	ctl := controlplane.New(controlplane.Options{Store: st, Push: srv, Logf: logger.Printf, Ztunnels: true})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() {
		if err := srv.Serve(ln); err != nil {
			logger.Print(err)
		}
	}()
	go func() {
		if err := ctl.Run(ctx); err != nil {
			logger.Print(err)
		}
	}()
	return nil
}
