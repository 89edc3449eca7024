// Command waypoint is meshway's waypoint proxy: the shared L7 proxy of the
// services and workloads bound to it. See `waypoint -help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/meshway/meshway/internal/waypoint"
)

// listenFlags collects repeated -listen ADDR=ORIGDST flags.
type listenFlags []waypoint.Listen

func (l *listenFlags) String() string { return fmt.Sprint(*l) }

func (l *listenFlags) Set(v string) error {
	addr, dst, ok := strings.Cut(v, "=")
	if !ok || addr == "" || dst == "" {
		return errors.New("want ADDR=ORIGINAL_DESTINATION, e.g. 127.0.0.1:18080=10.96.0.10:9080")
	}
	*l = append(*l, waypoint.Listen{Addr: addr, OriginalDst: dst})
	return nil
}

func main() {
	var opts waypoint.Options
	var listens listenFlags
	flag.StringVar(&opts.ConfigPath, "config", "", "waypoint configuration file (YAML); reloaded when it changes or on SIGHUP")
	flag.Var(&listens, "listen", "plain TCP listener whose traffic goes to an original destination: ADDR=IP:PORT or ADDR=HOSTNAME:PORT (repeatable)")
	flag.StringVar(&opts.AdminAddr, "admin", "127.0.0.1:15000", "admin address (loopback only): /config_dump")
	flag.StringVar(&opts.ReadyAddr, "ready", "127.0.0.1:15021", "readiness address: /healthz/ready (in a pod: :15021)")
	flag.StringVar(&opts.MetricsAddr, "metrics", "127.0.0.1:15020", "Prometheus metrics address: /stats/prometheus (empty: off; in a pod: :15020)")
	flag.StringVar(&opts.HBONEAddr, "hbone", "", "serve HBONE (mTLS HTTP/2 CONNECT) on this address, e.g. 127.0.0.1:15008")
	flag.StringVar(&opts.CADir, "ca-dir", "", "with -hbone: the mesh CA's directory (created if absent)")
	flag.StringVar(&opts.Identity, "identity", "", "with -hbone: the waypoint's SPIFFE ID, spiffe://<trust-domain>/ns/<ns>/sa/<sa>")
	flag.Parse()
	opts.Listen = listens
	logger := log.New(os.Stderr, "waypoint: ", log.LstdFlags)
	opts.Logf = logger.Printf

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	opts.Reload = hup
	if err := waypoint.Run(ctx, opts); err != nil {
		logger.Print(err)
		os.Exit(1)
	}
}
