// Command meshd is meshway's control plane: it watches the config store (a
// directory, or a Kubernetes cluster), pushes every waypoint its
// configuration over xDS, deploys the waypoints' workloads and writes status.
// See `meshd -help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.storeDir, "store", "", "the embedded store's directory (default $MESHWAY_STORE, else ~/.meshway/store, unless a cluster is selected)")
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "use the cluster of this kubeconfig")
	flag.StringVar(&o.kubeContext, "context", "", "kubeconfig context")
	flag.StringVar(&o.xdsAddr, "xds-address", "127.0.0.1:15010", "serve xDS (plaintext gRPC, no authentication) here; in a pod: :15010 or empty (off)")
	flag.StringVar(&o.secureAddr, "secure-address", "127.0.0.1:15012", "serve xDS and the CA's CSR service over TLS here, for callers with a token (in a pod: :15012; empty: off)")
	flag.StringVar(&o.caDir, "ca-dir", "", "the mesh CA's directory, Istio's cacerts layout (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem), generated if empty (default: on a cluster the Secret cacerts, else istio-ca-secret, in -system-namespace; on the embedded store <store>/"+embeddedCADir+")")
	flag.DurationVar(&o.caCheckInterval, "ca-check-interval", 30*time.Second, "how often to look for a replaced or rotated CA (the Secret, or the files of -ca-dir) and reload it; istio-ca-root-cert follows")
	flag.StringVar(&o.trustDomain, "trust-domain", "cluster.local", "the mesh's trust domain: identities are spiffe://<trust-domain>/ns/<ns>/sa/<sa>")
	flag.StringVar(&o.nodeTokens, "node-tokens", "", "embedded store: file of \"<node-name> <token>\" lines authenticating callers of the secure port (a node obtains its pods' identities)")
	flag.StringVar(&o.monitorAddr, "monitoring-address", "127.0.0.1:15014", "serve /metrics, /ready and /debug/syncz here (empty: off)")
	flag.BoolVar(&o.leaderElect, "leader-elect", true, "take part in leader election: only the leader writes waypoint deployments and status")
	flag.StringVar(&o.systemNamespace, "system-namespace", envOr("POD_NAMESPACE", "istio-system"), "the control plane's namespace (leader election lease, class-wide waypoint defaults)")
	flag.StringVar(&o.waypointImage, "waypoint-image", "", "waypoint container image written into waypoint Deployments (default meshway/waypoint:latest)")
	flag.StringVar(&o.podXDSAddress, "waypoint-xds-address", "", "meshd's secure address waypoint pods dial for configuration and certificates (default meshd.<system-namespace>.svc:15012)")
	flag.DurationVar(&o.debounceAfter, "debounce-after", 0, "how long the store must be quiet before changes are pushed; a change after such a quiet spell is pushed at once (default 10ms)")
	flag.DurationVar(&o.debounceMax, "debounce-max", 0, "the longest a change waits under a steady stream of changes (default 100ms)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file when meshd stops; SIGUSR1 ends it there and goes on in FILE-1.EXT, FILE-2.EXT… (for benchmarks: make bench-controlplane)")
	heapProfile := flag.String("heapprofile", "", "write a heap profile to this file each time the live heap reaches a new peak (by a tenth), so it holds the run's peak (for benchmarks: make bench-controlplane)")
	flag.Parse()
	if o.caCheckInterval <= 0 {
		fmt.Fprintf(os.Stderr, "meshd: -ca-check-interval %s: want a positive duration\n", o.caCheckInterval)
		os.Exit(2)
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "meshd: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	logger := log.New(os.Stderr, "meshd: ", log.LstdFlags|log.Lmicroseconds)
	o.logf = logger.Printf
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile, logger.Printf)
		if err != nil {
			logger.Print(err)
			os.Exit(1)
		}
		defer stopProfile()
	}

	logger.Print(setGCPercent())
	if msg, err := setMemoryLimit("/sys/fs/cgroup"); err != nil {
		logger.Print(err) // the runtime's default still works
	} else if msg != "" {
		logger.Print(msg)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *heapProfile != "" {
		go writeHeapProfiles(ctx, *heapProfile, logger.Printf)
	}
	if err := run(ctx, o); err != nil && !errors.Is(err, context.Canceled) {
		logger.Print(err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
