package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshway/meshway/internal/controlplane"
	"github.com/meshway/meshway/internal/deploy"
	"github.com/meshway/meshway/internal/kube"
	"github.com/meshway/meshway/internal/push"
	"github.com/meshway/meshway/internal/push/wire"
	"github.com/meshway/meshway/internal/store"
)

type options struct {
	storeDir, kubeconfig, kubeContext string
	xdsAddr, monitorAddr              string
	leaderElect                       bool
	systemNamespace                   string
	waypointImage, podXDSAddress      string
	debounceAfter, debounceMax        time.Duration
	logf                              func(string, ...any)
}

// Namespaces the embedded store starts with, as meshctl's.
var initialNamespaces = []string{"default", "istio-system"}

// backend opens the store the flags and environment select, with meshctl's
// precedence (--store, --kubeconfig/--context, $MESHWAY_STORE, $KUBECONFIG,
// in a pod, ~/.meshway/store). elect runs leader election on it.
func backend(o options) (st store.Store, elect func(ctx context.Context, lead func(bool)) error, err error) {
	clusterFlags := o.kubeconfig != "" || o.kubeContext != ""
	dir := o.storeDir
	var target *kube.Target
	switch {
	case dir != "" && clusterFlags:
		return nil, nil, errors.New("--store selects the embedded store and --kubeconfig/--context a cluster; give one of them")
	case dir != "":
	case clusterFlags:
		target = &kube.Target{Kubeconfig: o.kubeconfig, Context: o.kubeContext}
	case os.Getenv("MESHWAY_STORE") != "":
		dir = os.Getenv("MESHWAY_STORE")
	case os.Getenv("KUBECONFIG") != "":
		target = &kube.Target{}
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		target = &kube.Target{InCluster: true}
	default:
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, nil, fmt.Errorf("no --store given, $MESHWAY_STORE unset, and no home directory: %w", err)
		}
		dir = filepath.Join(home, ".meshway", "store")
	}
	if target != nil {
		cfg, describe, err := kube.Connect(*target)
		if err != nil {
			return nil, nil, err
		}
		s, err := kube.New(cfg, describe)
		if err != nil {
			return nil, nil, err
		}
		host, _ := os.Hostname()
		id := envOr("POD_NAME", fmt.Sprintf("%s-%d", host, os.Getpid()))
		return s, func(ctx context.Context, lead func(bool)) error {
			return kube.Lead(ctx, cfg, kube.Election{Namespace: o.systemNamespace, Name: "meshd-leader", Identity: id}, lead)
		}, nil
	}
	s, err := store.OpenDir(dir, store.Options{
		InitialNamespaces: initialNamespaces,
		Warn:              func(err error) { o.logf("store: %v", err) },
	})
	if err != nil {
		return nil, nil, fmt.Errorf("opening the config store: %w", err)
	}
	return s, func(ctx context.Context, lead func(bool)) error {
		return controlplane.LeadByFile(ctx, filepath.Join(dir, ".meshd.lock"), time.Second, lead)
	}, nil
}

func run(ctx context.Context, o options) error {
	st, elect, err := backend(o)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := push.NewServer(push.ServerOptions{Types: []string{wire.WaypointType}, WildcardTypes: wire.ZtunnelTypes, Logf: o.logf, Metrics: push.NewMetrics(reg)})
	defer srv.Stop()
	ctl := controlplane.New(controlplane.Options{
		Store: st, Push: srv, Writers: writers(st, o), Logf: o.logf, Ztunnels: true,
		DebounceAfter: o.debounceAfter, DebounceMax: o.debounceMax,
	})

	ln, err := net.Listen("tcp", o.xdsAddr)
	if err != nil {
		return fmt.Errorf("--xds-address: %w", err)
	}
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(ln) }()
	o.logf("serving xDS on %s; config store: %s", ln.Addr(), st.Describe())
	if o.monitorAddr != "" {
		hs, err := monitor(o.monitorAddr, reg, srv, ctl)
		if err != nil {
			return fmt.Errorf("--monitoring-address: %w", err)
		}
		defer func() { _ = hs.Close() }()
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		lead := func(v bool) {
			if v {
				o.logf("leading: writing waypoint deployments and status")
			} else if ctx.Err() == nil {
				o.logf("no longer leading: writes stop")
			}
			ctl.SetLeader(v)
		}
		if !o.leaderElect {
			lead(true)
			return
		}
		if err := elect(ctx, lead); err != nil {
			errc <- err
		}
	}()
	go func() { errc <- ctl.Run(ctx) }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// writers are the store writes the leader makes: the waypoints' workload
// objects and Gateway status, then the status of what users wrote.
func writers(st store.Store, o options) []controlplane.Writer {
	d := controlplane.NewDeployer(st, deploy.Options{
		Image: o.waypointImage, XDSAddress: o.podXDSAddress, SystemNamespace: o.systemNamespace,
	}, o.logf)
	return []controlplane.Writer{d, controlplane.NewStatusWriter(st, o.logf)}
}

// monitor serves /metrics, /ready (the first push is done) and /debug/syncz
// (each connected proxy's sync state, which meshctl proxy-status prints).
func monitor(addr string, reg *prometheus.Registry, srv *push.Server, ctl *controlplane.Controller) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-ctl.Synced():
			_, _ = w.Write([]byte("ready\n"))
		default:
			http.Error(w, "the config store has not been read yet", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/debug/syncz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(srv.Status())
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return hs, nil
}
