package waypoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
	pushclient "github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/telemetry"
)

// Listen maps a plain TCP listener to an original destination.
type Listen struct {
	Addr        string // where to listen, e.g. 127.0.0.1:18080
	OriginalDst string // the destination its traffic is for, ip:port or hostname:port
}

// Options configure Run.
type Options struct {
	// ConfigPath is the configuration file; it is reloaded when it changes
	// and when Reload receives. ConfigPath or XDSAddress is required.
	ConfigPath string
	Reload     <-chan os.Signal
	// XDSAddress is the control plane's xDS address (host:port); the
	// waypoint subscribes there to the configuration of the Gateway XDSNode
	// names.
	XDSAddress string
	XDSNode    pushclient.NodeInfo
	Listen     []Listen
	// AdminAddr serves /config_dump; it must be a loopback address. Empty:
	// no admin server.
	AdminAddr string
	// ReadyAddr serves /healthz/ready. Empty: no readiness server.
	ReadyAddr string
	// MetricsAddr serves Prometheus metrics at /stats/prometheus. Empty:
	// metrics are not collected.
	MetricsAddr string
	// AccessLog receives the access log (JSON lines) when the
	// configuration asks for it; nil means standard output.
	AccessLog io.Writer
	// RootCert, if set, is a PEM file of the mesh's roots (in a pod,
	// root-cert.pem of ConfigMap istio-ca-root-cert): the control plane is
	// then reached over TLS — its serving certificate verified against
	// these roots and the host dialed — with the token of TokenFile on
	// every call, for xDS and certificates alike (meshd's secure port,
	// 15012). Without it xDS is plaintext (meshd's 15010).
	RootCert string
	// TokenFile holds the bearer token sent to the control plane over TLS:
	// in a pod, the projected ServiceAccount token for audience istio-ca.
	// It is read on every call, so the kubelet's rotations are picked up.
	TokenFile string
	// HBONEAddr, if set, serves HBONE (e.g. 0.0.0.0:15008) as Identity.
	// Its certificate comes from the CA's CSR service at CAAddress (with
	// RootCert and TokenFile; default, with RootCert: XDSAddress), renewed
	// at half-life, or is signed by a CA in CADir on this host (created
	// there if absent). Upstream endpoints with an identity are then
	// reached over HBONE too.
	HBONEAddr string
	CAAddress string
	CADir     string
	Identity  string
	// DrainDuration bounds the drain when ctx ends: listeners and HBONE
	// stop taking connections, idle ones are closed, requests in flight
	// get that long to finish (Proxy.Drain), then the rest is closed.
	// Zero: closed at once. Istio drains a terminating waypoint for
	// terminationDrainDuration, 5 s.
	DrainDuration time.Duration
	Logf          func(format string, args ...any)
}

// Run runs a waypoint until ctx ends. With a configuration file it loads
// it (failing if the first one is invalid), opens the listeners and reloads
// the file when it changes. With an xDS address it starts its health,
// metrics and admin servers, waits for the control plane's first
// configuration, then opens the listeners; it is ready from then on. Either
// way an invalid new configuration is refused and the previous one keeps
// serving.
func Run(ctx context.Context, o Options) error {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	switch {
	case o.ConfigPath == "" && o.XDSAddress == "":
		return errors.New("a configuration source is required: -config FILE, or -xds-address HOST:PORT (the control plane)")
	case o.ConfigPath != "" && o.XDSAddress != "":
		return errors.New("-config and -xds-address both given: choose one configuration source")
	}
	p := &Proxy{Logf: logf}
	if o.MetricsAddr != "" {
		p.Metrics = telemetry.NewMetrics(telemetry.ReporterWaypoint)
		// The process's own, beside Istio's: CPU, memory, goroutines and
		// threads (go_sched_gomaxprocs_threads, which follow the load; see
		// internal/maxprocs), as Envoy's server stats are beside its
		// traffic's.
		p.Metrics.Registry().MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	logOut := o.AccessLog
	if logOut == nil {
		logOut = os.Stdout
	}
	p.AccessLog = telemetry.NewAccessLogger(logOut, telemetry.AccessLogOptions{})
	defer func() { _ = p.AccessLog.Close() }()
	var watcher *fsnotify.Watcher
	if o.ConfigPath != "" {
		// Watched before the first load, so that an edit made once it is
		// loaded — while the listeners open — is not missed.
		var err error
		if watcher, err = watchDir(o.ConfigPath); err != nil {
			return err
		}
		defer func() { _ = watcher.Close() }()
		w, err := LoadFile(o.ConfigPath)
		if err != nil {
			return err
		}
		if err := p.Load(w); err != nil {
			return fmt.Errorf("%s: %w", o.ConfigPath, err)
		}
	}
	defer func() { _ = p.Close() }()

	var servers []*http.Server
	defer func() {
		for _, s := range servers {
			_ = s.Close()
		}
	}()
	if o.AdminAddr != "" {
		host, _, err := net.SplitHostPort(o.AdminAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("-admin %s: the admin server listens on loopback only (e.g. 127.0.0.1:15000)", o.AdminAddr)
		}
		s, err := serve(o.AdminAddr, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			rw.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(rw)
			enc.SetIndent("", "  ")
			_ = enc.Encode(p.Config())
		}), "/config_dump")
		if err != nil {
			return fmt.Errorf("-admin: %w", err)
		}
		servers = append(servers, s)
	}
	if o.MetricsAddr != "" {
		s, err := serve(o.MetricsAddr, p.Metrics.Handler(), "/stats/prometheus")
		if err != nil {
			return fmt.Errorf("-metrics: %w", err)
		}
		servers = append(servers, s)
	}
	var listening atomic.Bool
	if o.ReadyAddr != "" {
		s, err := serve(o.ReadyAddr, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			if !listening.Load() {
				http.Error(rw, "waiting for the first configuration from the control plane", http.StatusServiceUnavailable)
				return
			}
			_, _ = rw.Write([]byte("ready\n"))
		}), "/healthz/ready")
		if err != nil {
			return fmt.Errorf("-ready: %w", err)
		}
		servers = append(servers, s)
	}

	var xdsDone chan struct{}
	if o.XDSAddress != "" {
		loaded, wait, err := startXDS(ctx, p, o, logf)
		if err != nil {
			return err
		}
		xdsDone = wait
		defer func() { <-xdsDone }()
		logf("waiting for the configuration of waypoint %s/%s from %s", o.XDSNode.Namespace, o.XDSNode.Name, o.XDSAddress)
		select {
		case <-ctx.Done():
			return nil
		case <-loaded:
		}
	}

	var tunnels *hboneServing
	if o.HBONEAddr != "" {
		var err error
		if tunnels, err = startHBONE(ctx, p, o); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while waiting for the CA
			}
			return err
		}
		defer tunnels.stop()
		logf("serving HBONE on %s as %s", tunnels.addr, o.Identity)
	}
	var listeners []net.Listener
	defer func() {
		for _, ln := range listeners {
			_ = ln.Close()
		}
	}()
	for _, l := range o.Listen {
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			return fmt.Errorf("-listen %s=%s: %w", l.Addr, l.OriginalDst, err)
		}
		listeners = append(listeners, ln)
		go func() { _ = p.ServeListener(ln, l.OriginalDst) }()
		logf("listening on %s for %s", ln.Addr(), l.OriginalDst)
	}
	warnUnserved(p, o.Listen, logf)
	listening.Store(true)
	if o.ConfigPath == "" {
		<-ctx.Done()
	} else if err := watchFile(ctx, p, o, watcher, logf); err != nil {
		return err
	}
	if o.DrainDuration > 0 {
		for _, ln := range listeners {
			_ = ln.Close()
		}
		drain(p, tunnels, o.DrainDuration, logf)
	}
	return nil
}

// drain lets the requests in flight finish, for up to d: the HBONE
// server sends GOAWAY and waits for its streams while the proxy closes
// its idle connections and waits for the others.
func drain(p *Proxy, tunnels *hboneServing, d time.Duration, logf func(string, ...any)) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	logf("draining: requests in flight have %v to finish", d)
	var wg sync.WaitGroup
	if tunnels != nil {
		wg.Go(func() { _ = tunnels.srv.Shutdown(ctx) })
	}
	if err := p.Drain(ctx); err != nil {
		logf("draining: %v; closing the rest", err)
	}
	wg.Wait()
}

// watchDir watches the directory of the configuration file path, not the
// file: editors and config maps replace the file by renaming another over
// it.
func watchDir(path string) (*fsnotify.Watcher, error) {
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", path, err)
	}
	if err := watcher.Add(filepath.Dir(path)); err != nil {
		_ = watcher.Close()
		return nil, fmt.Errorf("watching %s: %w", path, err)
	}
	return watcher, nil
}

// watchFile reloads the configuration file when watcher (watchDir) sees
// it change or Reload receives, until ctx ends.
func watchFile(ctx context.Context, p *Proxy, o Options, watcher *fsnotify.Watcher, logf func(string, ...any)) error {
	reload := func(why string) {
		w, err := LoadFile(o.ConfigPath)
		if err == nil {
			err = p.Load(w)
		}
		if err != nil {
			logf("reload (%s): %v", why, err)
			return
		}
		logf("reload (%s): configuration loaded", why)
		warnUnserved(p, o.Listen, logf)
	}
	var (
		debounce *time.Timer
		mu       sync.Mutex
	)
	name := filepath.Clean(o.ConfigPath)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.Reload:
			reload("signal")
		case ev := <-watcher.Events:
			if filepath.Clean(ev.Name) != name {
				continue
			}
			// A write often comes as several events: load once they stop.
			mu.Lock()
			if debounce != nil {
				debounce.Stop()
			}
			debounce = time.AfterFunc(50*time.Millisecond, func() { reload("file changed") })
			mu.Unlock()
		case err := <-watcher.Errors:
			logf("watching %s: %v", o.ConfigPath, err)
		}
	}
}

// warnUnserved logs each -listen whose original destination the
// configuration in use does not serve: its connections are closed (each
// logged) until a configuration does.
func warnUnserved(p *Proxy, listens []Listen, logf func(string, ...any)) {
	cfg := p.cur.Load()
	for _, l := range listens {
		if cfg == nil || cfg.lookup(l.OriginalDst) == nil {
			logf("-listen %s=%s: the configuration has no service address or workload %s; its connections are closed until it has one", l.Addr, l.OriginalDst, l.OriginalDst)
		}
	}
}

// serve starts an HTTP server for one path.
func serve(addr string, h http.Handler, path string) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(path, h)
	s := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.Serve(ln) }()
	return s, nil
}

// hboneServing is the waypoint's HBONE server, started by startHBONE.
type hboneServing struct {
	addr string
	srv  *hbone.Server
	stop func() // closes the server, the pool and the certificate manager
}

// startHBONE sets up the waypoint's identity and serves HBONE.
func startHBONE(ctx context.Context, p *Proxy, o Options) (*hboneServing, error) {
	caAddr := o.CAAddress
	if caAddr == "" && o.CADir == "" && o.RootCert != "" {
		caAddr = o.XDSAddress // one secure port serves both, as istiod's 15012
	}
	switch {
	case o.Identity == "":
		return nil, errors.New("-hbone needs -identity (spiffe://<trust-domain>/ns/<ns>/sa/<sa>; in a pod it comes from $POD_NAMESPACE and $SERVICE_ACCOUNT)")
	case o.CADir != "" && o.CAAddress != "":
		return nil, errors.New("-ca-dir and -ca-address both given: take certificates from a CA on this host or from the control plane, not both")
	case o.CADir == "" && caAddr == "":
		return nil, errors.New("-hbone needs a CA: -ca-address HOST:PORT (the control plane's secure port, with -root-cert and -token-file) or -ca-dir DIR (a CA on this host)")
	}
	id, err := identity.ParseID(o.Identity)
	if err != nil {
		return nil, fmt.Errorf("-identity: %w", err)
	}
	var (
		src      identity.CertSource
		mgr      *identity.Manager
		closeCAs = func() {}
	)
	if caAddr != "" {
		if src, mgr, closeCAs, err = remoteCertificates(ctx, o, caAddr, id); err != nil {
			return nil, err
		}
	} else {
		ca, err := identity.NewCA(o.CADir, identity.CAOptions{TrustDomain: id.TrustDomain().Name()})
		if err != nil {
			return nil, fmt.Errorf("-ca-dir %s: %w", o.CADir, err)
		}
		mgr = identity.NewManager(identity.ManagerOptions{
			Issuer: identity.CAIssuer{CA: ca},
			Bundle: identity.NewBundle(ca.TrustDomain(), ca.Bundle().Roots()...),
			Logf:   o.Logf,
		})
		closeCAs = mgr.Close
		if src, err = mgr.Source(ctx, id); err != nil {
			mgr.Close()
			return nil, fmt.Errorf("certificate for %s: %w", id, err)
		}
	}
	p.Pool = &hbone.Pool{Bundle: mgr.Bundle()}
	p.Source = src
	srv := &hbone.Server{TLSConfig: identity.ServerTLSConfig(src, mgr.Bundle(), nil), Handler: p, Logf: o.Logf}
	ln, err := net.Listen("tcp", o.HBONEAddr)
	if err != nil {
		closeCAs()
		return nil, fmt.Errorf("-hbone %s: %w", o.HBONEAddr, err)
	}
	go func() { _ = srv.Serve(ln) }()
	return &hboneServing{addr: ln.Addr().String(), srv: srv, stop: func() {
		_ = srv.Close()
		_ = p.Pool.Close()
		closeCAs()
	}}, nil
}
