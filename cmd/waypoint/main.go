// Command waypoint is meshway's waypoint proxy: the shared L7 proxy of the
// services and workloads bound to it. See `waypoint -help`.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	pushclient "github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/waypoint"
)

// defaultWaypoint is the Gateway named by the pod's environment, as the
// waypoint Deployment sets it.
func defaultWaypoint() string {
	ns, name := os.Getenv("POD_NAMESPACE"), os.Getenv("GATEWAY_NAME")
	if ns == "" || name == "" {
		return ""
	}
	return ns + "/" + name
}

// instance tells this replica apart in proxy-status: the pod's name, or
// host and process id outside a pod.
func instance() string {
	if p := os.Getenv("POD_NAME"); p != "" {
		return p
	}
	h, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}

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
	flag.StringVar(&opts.XDSAddress, "xds-address", "", "take the configuration from the control plane's xDS server at HOST:PORT (meshd: 127.0.0.1:15010) instead of -config")
	gateway := flag.String("waypoint", defaultWaypoint(), "with -xds-address: this waypoint's Gateway, NAMESPACE/NAME (default from $POD_NAMESPACE and $GATEWAY_NAME)")
	flag.Var(&listens, "listen", "plain TCP listener whose traffic goes to an original destination: ADDR=IP:PORT or ADDR=HOSTNAME:PORT (repeatable)")
	flag.StringVar(&opts.AdminAddr, "admin", "127.0.0.1:15000", "admin address (loopback only): /config_dump")
	flag.StringVar(&opts.ReadyAddr, "ready", "127.0.0.1:15021", "readiness address: /healthz/ready (in a pod: :15021)")
	flag.StringVar(&opts.MetricsAddr, "metrics", "127.0.0.1:15020", "Prometheus metrics address: /stats/prometheus (empty: off; in a pod: :15020)")
	flag.StringVar(&opts.HBONEAddr, "hbone", "", "serve HBONE (mTLS HTTP/2 CONNECT) on this address, e.g. 127.0.0.1:15008")
	flag.StringVar(&opts.CADir, "ca-dir", "", "with -hbone: the mesh CA's directory (created if absent)")
	flag.StringVar(&opts.Identity, "identity", "", "with -hbone: the waypoint's SPIFFE ID, spiffe://<trust-domain>/ns/<ns>/sa/<sa>")
	flag.Parse()
	opts.Listen = listens
	if opts.XDSAddress != "" {
		ns, name, ok := strings.Cut(*gateway, "/")
		if !ok || ns == "" || name == "" {
			fmt.Fprintf(os.Stderr, "waypoint: -waypoint %q: want NAMESPACE/NAME, the waypoint's Gateway\n", *gateway)
			os.Exit(2)
		}
		host, _ := os.Hostname()
		opts.XDSNode = pushclient.NodeInfo{Namespace: ns, Name: name, Instance: instance(), Node: cmp.Or(os.Getenv("NODE_NAME"), host)}
	}
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
