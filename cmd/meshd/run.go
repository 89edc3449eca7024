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
	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/kube"
	"github.com/meshway/meshway/internal/push"
	"github.com/meshway/meshway/internal/push/wire"
	"github.com/meshway/meshway/internal/store"
)

type options struct {
	storeDir, kubeconfig, kubeContext string
	xdsAddr, secureAddr, monitorAddr  string
	leaderElect                       bool
	systemNamespace                   string
	caDir, trustDomain, nodeTokens    string
	caCheckInterval                   time.Duration
	waypointImage, podXDSAddress      string
	debounceAfter, debounceMax        time.Duration
	logf                              func(string, ...any)
}

// backendInfo is the config store the flags select and what comes with it.
type backendInfo struct {
	st store.Store
	// elect runs leader election on the store.
	elect func(ctx context.Context, lead func(bool)) error
	// dir is the embedded store's directory ("" on a cluster).
	dir string
	// On a cluster: the CA's Secrets and the secure port's authenticator.
	caSecrets   *kube.CASecrets
	tokenReview *kube.TokenReviewAuthenticator
}

// Namespaces the embedded store starts with, as meshctl's.
var initialNamespaces = []string{"default", "istio-system"}

// backend opens the store the flags and environment select, with meshctl's
// precedence (--store, --kubeconfig/--context, $MESHWAY_STORE, $KUBECONFIG,
// in a pod, ~/.meshway/store).
func backend(o options) (*backendInfo, error) {
	clusterFlags := o.kubeconfig != "" || o.kubeContext != ""
	dir := o.storeDir
	var target *kube.Target
	switch {
	case dir != "" && clusterFlags:
		return nil, errors.New("--store selects the embedded store and --kubeconfig/--context a cluster; give one of them")
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
			return nil, fmt.Errorf("no --store given, $MESHWAY_STORE unset, and no home directory: %w", err)
		}
		dir = filepath.Join(home, ".meshway", "store")
	}
	if target != nil {
		cfg, describe, err := kube.Connect(*target)
		if err != nil {
			return nil, err
		}
		s, err := kube.New(cfg, describe)
		if err != nil {
			return nil, err
		}
		secrets, err := kube.NewCASecrets(cfg, o.systemNamespace)
		if err != nil {
			return nil, err
		}
		review, err := kube.NewTokenReviewAuthenticator(cfg, kube.CAAudience)
		if err != nil {
			return nil, err
		}
		host, _ := os.Hostname()
		id := envOr("POD_NAME", fmt.Sprintf("%s-%d", host, os.Getpid()))
		return &backendInfo{st: s, caSecrets: secrets, tokenReview: review, elect: func(ctx context.Context, lead func(bool)) error {
			return kube.Lead(ctx, cfg, kube.Election{Namespace: o.systemNamespace, Name: "meshd-leader", Identity: id}, lead)
		}}, nil
	}
	s, err := store.OpenDir(dir, store.Options{
		InitialNamespaces: initialNamespaces,
		Warn:              func(err error) { o.logf("store: %v", err) },
	})
	if err != nil {
		return nil, fmt.Errorf("opening the config store: %w", err)
	}
	return &backendInfo{st: s, dir: dir, elect: func(ctx context.Context, lead func(bool)) error {
		return controlplane.LeadByFile(ctx, filepath.Join(dir, ".meshd.lock"), time.Second, lead)
	}}, nil
}

func run(ctx context.Context, o options) error {
	if o.xdsAddr == "" && o.secureAddr == "" {
		return errors.New("-xds-address and -secure-address are both empty: serve at least one")
	}
	be, err := backend(o)
	if err != nil {
		return err
	}
	st := be.st
	mc, err := openCA(ctx, o, be)
	if err != nil {
		return err
	}
	defer mc.cleanup()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := push.NewServer(push.ServerOptions{Types: []string{wire.WaypointType}, WildcardTypes: wire.ZtunnelTypes, Logf: o.logf, Metrics: push.NewMetrics(reg)})
	defer srv.Stop()
	ctl := controlplane.New(controlplane.Options{
		Store: st, Push: srv, Writers: writers(st, o, mc.ca), Logf: o.logf, Ztunnels: true,
		DebounceAfter: o.debounceAfter, DebounceMax: o.debounceMax,
	})

	errc := make(chan error, 4)
	o.logf("config store: %s; mesh CA: %s (trust domain %s)", st.Describe(), mc.describe, o.trustDomain)
	if o.xdsAddr != "" {
		ln, err := net.Listen("tcp", o.xdsAddr)
		if err != nil {
			return fmt.Errorf("-xds-address: %w", err)
		}
		go func() { errc <- srv.Serve(ln) }()
		o.logf("serving xDS (plaintext) on %s", ln.Addr())
	}
	if o.secureAddr != "" {
		ss, addr, err := serveSecure(o, be, mc.ca, srv, errc)
		if err != nil {
			return err
		}
		defer ss.Stop()
		o.logf("serving xDS and the CA over TLS on %s", addr)
	}
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
		if err := be.elect(ctx, lead); err != nil {
			errc <- err
		}
	}()
	go func() { errc <- ctl.Run(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); watchCA(ctx, mc, o.caCheckInterval, ctl, o.logf) }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// writers are the store writes the leader makes: the waypoints' workload
// objects and Gateway status, the status of what users wrote, and the
// mesh's roots in every namespace.
func writers(st store.Store, o options, ca *identity.CA) []controlplane.Writer {
	d := controlplane.NewDeployer(st, deploy.Options{
		Image: o.waypointImage, XDSAddress: o.podXDSAddress, SystemNamespace: o.systemNamespace,
		TrustDomain: o.trustDomain,
	}, o.logf)
	return []controlplane.Writer{d, controlplane.NewStatusWriter(st, o.logf), controlplane.NewRootCertWriter(st, ca.Bundle().PEM, o.logf)}
}

// serveSecure serves xDS (the same push server as the plaintext port) and
// the CSR service over TLS on -secure-address.
func serveSecure(o options, be *backendInfo, ca *identity.CA, srv *push.Server, errc chan<- error) (*controlplane.SecureServer, string, error) {
	authn, authz, err := secureAuth(o, be, be.st)
	if err != nil {
		return nil, "", err
	}
	dns, ips := servingNames(o.systemNamespace, o.secureAddr)
	id, err := identity.WorkloadID(o.trustDomain, o.systemNamespace, envOr("SERVICE_ACCOUNT", "meshd"))
	if err != nil {
		return nil, "", fmt.Errorf("meshd's own identity: %w", err)
	}
	serving, err := identity.NewServingCert(ca, id, dns, ips, 0)
	if err != nil {
		return nil, "", err
	}
	ss, err := controlplane.NewSecureServer(controlplane.SecureOptions{
		Push: srv, CA: ca, Serving: serving, Authn: authn, CertAuthz: authz,
		SystemNamespace: o.systemNamespace, Logf: o.logf,
	})
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", o.secureAddr)
	if err != nil {
		return nil, "", fmt.Errorf("-secure-address: %w", err)
	}
	go func() { errc <- ss.Serve(ln) }()
	return ss, ln.Addr().String(), nil
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
