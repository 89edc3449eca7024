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
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/meshway/meshway/internal/hugetext"
	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/maxprocs"
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

// Where a waypoint pod finds its token and the mesh's roots (Istio's
// paths; internal/deploy mounts them).
const (
	defaultTokenFile = "/var/run/secrets/tokens/istio-token"
	defaultRootCert  = "/var/run/secrets/istio/root-cert.pem"
)

// rootCertGiven says whether the control plane is reached over TLS: the
// -root-cert flag was set, or its default file exists (in a pod, mounted
// from ConfigMap istio-ca-root-cert). Without one the waypoint speaks
// plaintext xDS, as to meshd's 15010 on loopback.
func rootCertGiven(path string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "root-cert" })
	if set {
		return path != ""
	}
	_, err := os.Stat(path)
	return err == nil
}

// podIdentity is the SPIFFE ID of the pod's ServiceAccount: from the
// downward API ($POD_NAMESPACE, $SERVICE_ACCOUNT, as internal/deploy sets
// them), else from the claims of the ServiceAccount token. The control
// plane issues a certificate only for the identity the token proves.
func podIdentity(trustDomain, tokenFile string) (string, error) {
	ns, sa := os.Getenv("POD_NAMESPACE"), os.Getenv("SERVICE_ACCOUNT")
	if ns == "" || sa == "" {
		tok, err := os.ReadFile(tokenFile)
		if err != nil {
			return "", fmt.Errorf("$POD_NAMESPACE or $SERVICE_ACCOUNT unset and no token to read them from: %w", err)
		}
		if ns, sa, err = identity.TokenServiceAccount(string(tok)); err != nil {
			return "", fmt.Errorf("$POD_NAMESPACE or $SERVICE_ACCOUNT unset, and the token %s: %w", tokenFile, err)
		}
	}
	id, err := identity.WorkloadID(trustDomain, ns, sa)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

func envDefault(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
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
	flag.StringVar(&opts.XDSAddress, "xds-address", "", "take the configuration from the control plane's xDS server at HOST:PORT instead of -config: meshd's secure port (in a pod meshd.istio-system.svc:15012; TLS with -root-cert and -token-file) or its plaintext one (127.0.0.1:15010, without a root certificate)")
	gateway := flag.String("waypoint", defaultWaypoint(), "with -xds-address: this waypoint's Gateway, NAMESPACE/NAME (default from $POD_NAMESPACE and $GATEWAY_NAME)")
	flag.Var(&listens, "listen", "plain TCP listener whose traffic goes to an original destination: ADDR=IP:PORT or ADDR=HOSTNAME:PORT (repeatable)")
	flag.StringVar(&opts.AdminAddr, "admin", "127.0.0.1:15000", "admin address (loopback only): /config_dump")
	flag.StringVar(&opts.ReadyAddr, "ready", "127.0.0.1:15021", "readiness address: /healthz/ready (in a pod: :15021)")
	flag.StringVar(&opts.MetricsAddr, "metrics", "127.0.0.1:15020", "Prometheus metrics address: /stats/prometheus (empty: off; in a pod: :15020)")
	flag.DurationVar(&opts.DrainDuration, "drain-duration", 5*time.Second, "on SIGTERM or SIGINT: stop taking connections, close idle ones and give the requests in flight this long to finish (Istio's terminationDrainDuration); 0 closes at once")
	flag.StringVar(&opts.HBONEAddr, "hbone", "", "serve HBONE (mTLS HTTP/2 CONNECT) on this address, e.g. 127.0.0.1:15008")
	flag.StringVar(&opts.CAAddress, "ca-address", "", "with -hbone: obtain and renew the certificate from the control plane's CSR service at HOST:PORT over TLS, with -root-cert and -token-file (default with a root certificate: -xds-address)")
	flag.StringVar(&opts.CADir, "ca-dir", "", "with -hbone: sign the certificate with the mesh CA in this directory on this host instead (created if absent)")
	rootCert := flag.String("root-cert", defaultRootCert, "PEM roots the control plane's serving certificate is verified against; given, or present at the default path (a pod's istio-ca-root-cert ConfigMap), it makes xDS and -ca-address TLS")
	flag.StringVar(&opts.TokenFile, "token-file", defaultTokenFile, "the token authenticating the waypoint to the control plane over TLS (a pod's projected ServiceAccount token for audience istio-ca)")
	trustDomain := flag.String("trust-domain", envDefault("TRUST_DOMAIN", "cluster.local"), "the mesh's trust domain, for the default -identity")
	flag.StringVar(&opts.Identity, "identity", "", "with -hbone: the waypoint's SPIFFE ID, spiffe://<trust-domain>/ns/<ns>/sa/<sa> (default from $POD_NAMESPACE and $SERVICE_ACCOUNT, else the claims of -token-file)")
	concurrency := flag.Int("concurrency", 0, "threads running the proxy (GOMAXPROCS), as Envoy's --concurrency; 0: as many as the load needs, one for each half CPU the proxy uses, up to the CPUs the container may use (a lightly loaded proxy then wastes no CPU waking idle threads; docs/benchmarks.md), unless $GOMAXPROCS is set")
	hugePages := flag.Bool("huge-pages", true, "move the proxy's machine code onto transparent huge pages at start: about 8% less CPU under light load, for about 3 MB more memory (docs/benchmarks.md); false leaves it mapped from the executable, where perf can name its functions")
	flag.Parse()
	if *concurrency < 0 {
		fmt.Fprintf(os.Stderr, "waypoint: -concurrency %d: want 0 (as the load needs) or more\n", *concurrency)
		os.Exit(2)
	}
	opts.Listen = listens
	if rootCertGiven(*rootCert) {
		opts.RootCert = *rootCert
	}
	if opts.HBONEAddr != "" && opts.Identity == "" && opts.CADir == "" {
		id, err := podIdentity(*trustDomain, opts.TokenFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "waypoint: -hbone: no -identity given and %v\n", err)
			os.Exit(2)
		}
		opts.Identity = id
	}
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
	if *hugePages {
		switch n, err := hugetext.Remap(); {
		case err != nil && n == 0:
			logger.Printf("code: on small pages: %v", err)
		case err != nil:
			logger.Printf("code: %.1f MB on huge pages, the rest on small pages: %v", float64(n)/1e6, err)
		default:
			logger.Printf("code: %.1f MB on huge pages (-huge-pages=false keeps it where perf can name it)", float64(n)/1e6)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cpus := runtime.GOMAXPROCS(0)
	if maxprocs.Start(ctx, *concurrency) {
		logger.Printf("threads: as the load needs, 1 to %d, the CPUs the container may use, followed as its limit changes (-concurrency N fixes them)", cpus)
	} else {
		logger.Printf("threads: %d (-concurrency or $GOMAXPROCS)", runtime.GOMAXPROCS(0))
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	opts.Reload = hup
	if err := waypoint.Run(ctx, opts); err != nil {
		logger.Print(err)
		os.Exit(1)
	}
}
