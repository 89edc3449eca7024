package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/model"
)

// running is a started target: how to reach it and which process is the
// proxy (none for direct).
type running struct {
	dial  dialFunc
	proc  *proc // the proxy; nil for direct
	child bool  // proc is the bench binary in -child waypoint mode (it can profile)
	note  string
}

// target is one column of the table.
type target struct {
	key, name string
	start     func(ctx context.Context, b *bench) (*running, error)
}

var targets = []target{
	{"direct", "direct", startDirect},
	{"nginx", "nginx", startNginx},
	{"haproxy", "HAProxy", startHAProxy},
	{"floor", "Go floor", startFloorTarget},
	{"waypoint", "waypoint", startWaypointTarget},
	{"waypoint-1cpu", "waypoint, -concurrency 1", startWaypointOneCPU},
	{"direct-hbone", "direct, HBONE", startDirectHBONE},
	{"waypoint-hbone", "waypoint, HBONE both sides", startWaypointHBONE},
	{"floor-hbone", "Go floor, HBONE both sides", startFloorHBONE},
}

// overHBONE says whether the target is a proxy the generator tunnels to
// and that tunnels on to the backend's node: its baseline is direct over
// HBONE (direct-hbone), as direct is the plain proxies'.
func overHBONE(key string) bool { return key == "waypoint-hbone" || key == "floor-hbone" }

func tcpDial(addr string) dialFunc {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

func startDirect(_ context.Context, b *bench) (*running, error) {
	return &running{dial: tcpDial(b.backend)}, nil
}

// startDirectHBONE reaches the backend as an ambient mesh without a
// waypoint does, ztunnel to ztunnel: the generator's tunnel goes straight
// to the backend's node. It is the HBONE waypoint's baseline, as direct is
// the plain proxies': what the waypoint adds to a mesh that already
// tunnels.
func startDirectHBONE(_ context.Context, b *bench) (*running, error) {
	req := hbone.Request{Source: b.clientSrc, Addr: b.node, Authority: b.backendOnNode(), Expected: []spiffeid.ID{backendID}}
	return &running{dial: func(ctx context.Context) (net.Conn, error) { return b.clientPool.Dial(ctx, req) }}, nil
}

// backendOnNode is the backend's address as the mesh knows it: its pod IP
// (the node's, 127.0.0.2) and its port.
func (b *bench) backendOnNode() string {
	return "127.0.0.2:" + b.backend[strings.LastIndexByte(b.backend, ':')+1:]
}

// freeAddr returns a loopback address with a port free right now, for
// the peers that take their port from a configuration file.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// waitReady polls addr with requests until one succeeds.
func waitReady(ctx context.Context, p *proc, dial dialFunc) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := newHTTPConn(ctx, dial)
		if err == nil {
			err = c.roundTrip()
			c.shut()
			if err == nil {
				return nil
			}
		}
		select {
		case <-p.exited:
			return p.failed(fmt.Errorf("not serving: %w", err))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return p.failed(fmt.Errorf("not serving after 15 s: %w", err))
		}
	}
}

func binPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found: run bash hack/bench-waypoint-deps.sh (or make bench-waypoint)", name)
	}
	return p, nil
}

// nginxConf: a worker per CPU the proxy may use, keep-alive to the
// backend, no access log.
const nginxConf = `# written by bench/waypoint
daemon off;
master_process on;
worker_processes %[5]d;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
%[2]s
events {
    worker_connections 4096;
}
http {
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream backend {
        server %[3]s;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen %[4]s;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`

func startNginx(ctx context.Context, b *bench) (*running, error) {
	bin, err := binPath("nginx")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.tmp, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	// As root, nginx would run its workers as nobody: keep them as the
	// current user.
	userLine := ""
	if os.Geteuid() == 0 {
		if u, err := user.Current(); err == nil {
			userLine = "user " + u.Username + ";"
		}
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, userLine, b.backend, addr, b.cpus()), 0o644); err != nil {
		return nil, err
	}
	p, err := b.procs.start("nginx", filepath.Join(dir, "stderr.log"), b.plan.proxyArgs([]string{bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "nginx-error.log")}))
	if err != nil {
		return nil, err
	}
	r := &running{dial: tcpDial(addr), proc: p}
	return r, waitReady(ctx, p, r.dial)
}

// haproxyConf: a thread per CPU the proxy may use (as the others get),
// connections to the backend reused across clients, no log.
const haproxyConf = `# written by bench/waypoint
global
    nbthread %[1]d
    maxconn 4000
    pidfile %[2]s/haproxy.pid
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend fe
    bind %[3]s
    default_backend be
backend be
    server backend %[4]s
`

func startHAProxy(ctx context.Context, b *bench) (*running, error) {
	bin, err := binPath("haproxy")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.tmp, "haproxy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(conf, fmt.Appendf(nil, haproxyConf, b.cpus(), dir, addr, b.backend), 0o644); err != nil {
		return nil, err
	}
	// -db: stay in the foreground, one process.
	p, err := b.procs.start("haproxy", filepath.Join(dir, "stderr.log"), b.plan.proxyArgs([]string{bin, "-db", "-f", conf}))
	if err != nil {
		return nil, err
	}
	r := &running{dial: tcpDial(addr), proc: p}
	return r, waitReady(ctx, p, r.dial)
}

// The service the waypoint captures, as in examples/waypoint/reviews.yaml:
// only ever an original destination in configuration and headers, never
// dialled.
const serviceVIP = "10.96.0.20:9080"

// nodeAddr is where the waypoint reaches an endpoint with an identity at
// 127.0.0.2: its node's HBONE port.
const nodeAddr = "127.0.0.2:15008"

// writeWaypointConfig writes the waypoint's configuration: the reviews
// service with one HTTPRoute sending every request to the one endpoint ep.
func writeWaypointConfig(path string, ep model.Endpoint) error {
	w := model.Waypoint{
		Name: "waypoint", Namespace: "default",
		Services: []model.Service{{
			Name: "reviews", Namespace: "default", Hostname: "reviews.default.svc.cluster.local",
			Addresses: []string{strings.Split(serviceVIP, ":")[0]},
			Ports: []model.ServicePort{{
				Name: "http", Port: 9080, Protocol: model.ProtocolHTTP, Cluster: "reviews",
				Routes: []model.HTTPRoute{{
					Kind: model.KindHTTPRoute, Name: "reviews", Namespace: "default",
					Rules: []model.RouteRule{{Backends: []model.Backend{{Cluster: "reviews-v1"}}}},
				}},
			}},
		}},
		Clusters: []model.Cluster{
			{Name: "reviews", Endpoints: []model.Endpoint{ep}},
			{Name: "reviews-v1", Endpoints: []model.Endpoint{ep}},
		},
	}
	if err := w.Validate(); err != nil {
		return err
	}
	y, err := sigsyaml.Marshal(w)
	if err != nil {
		return err
	}
	return os.WriteFile(path, y, 0o644)
}

// buildWaypoint builds cmd/waypoint into the temporary directory.
func buildWaypoint(b *bench) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building cmd/waypoint: %w (or pass -waypoint-bin)", err)
	}
	out := filepath.Join(b.tmp, "waypoint")
	cmd := exec.Command(gobin, "build", "-o", out, "github.com/meshway/meshway/cmd/waypoint")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building cmd/waypoint (run from the repository, or pass -waypoint-bin): %w", err)
	}
	return out, nil
}

// startWaypointTarget runs the waypoint binary with a plain -listen
// listener, or, with -cpuprofile or -trace, the same proxy in a child of
// the bench (it can profile and trace; the binary has no flag for it).
func startWaypointTarget(ctx context.Context, b *bench) (*running, error) {
	ep := model.Endpoint{Address: b.backend}
	if b.cfg.inChild() {
		conf := filepath.Join(b.tmp, "waypoint.yaml")
		if err := writeWaypointConfig(conf, ep); err != nil {
			return nil, err
		}
		r, _, err := b.startWaypointChild(ctx, "waypoint", conf, false)
		if r != nil {
			r.note = "run in a child of the bench (waypoint.Proxy.ServeListener with Istio's metrics, as cmd/waypoint -listen) for -cpuprofile or -trace"
		}
		return r, err
	}
	r, _, err := startWaypointBinary(ctx, b, "waypoint", ep, false)
	return r, err
}

// startWaypointBinary runs the waypoint binary, named key, with a plain
// -listen listener to the endpoint ep and the extra arguments. With
// serveHBONE it also serves HBONE, with a certificate for waypointID from the
// bench's CA, and returns that address.
func startWaypointBinary(ctx context.Context, b *bench, key string, ep model.Endpoint, serveHBONE bool, extra ...string) (*running, string, error) {
	conf := filepath.Join(b.tmp, key+".yaml")
	if err := writeWaypointConfig(conf, ep); err != nil {
		return nil, "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	// Istio's metrics are on (-metrics keeps its default), as in a pod.
	args := []string{b.waypointBin, "-config", conf, "-listen", addr + "=" + serviceVIP, "-admin=", "-ready="}
	hbAddr := ""
	if serveHBONE {
		if hbAddr, err = freeAddr(); err != nil {
			return nil, "", err
		}
		args = append(args, "-hbone", hbAddr, "-ca-dir", b.caDir, "-identity", waypointID.String())
	}
	if !b.cfg.hugePages {
		args = append(args, "-huge-pages=false")
	}
	if b.cfg.concurrency > 0 {
		args = append(args, "-concurrency", strconv.Itoa(b.cfg.concurrency))
	}
	args = append(args, extra...)
	p, err := b.procs.start(key, filepath.Join(b.tmp, key+".log"), b.plan.proxyArgs(args))
	if err != nil {
		return nil, "", err
	}
	r := &running{dial: tcpDial(addr), proc: p}
	return r, hbAddr, waitReady(ctx, p, r.dial)
}

// startWaypointOneCPU runs the waypoint binary as startWaypointTarget
// does, on one thread (-concurrency 1: GOMAXPROCS 1). On CPUs it shares
// with the load generator and the backend, Go's idle threads looking for
// work on each request's wake-up cost CPU and lengthen the latency tail
// that nginx's single-threaded workers do not pay.
func startWaypointOneCPU(ctx context.Context, b *bench) (*running, error) {
	r, _, err := startWaypointBinary(ctx, b, "waypoint-1cpu", model.Endpoint{Address: b.backend}, false, "-concurrency", "1")
	return r, err
}

// startWaypointHBONE runs the waypoint binary serving HBONE and reaching
// the backend through HBONE via the backend's node; the generator tunnels
// to it with an hbone.Pool. It runs in a child of the bench instead for
// -cpuprofile or -trace, and when the node could not listen on nodeAddr
// (the child's pool dials where it did; the binary's dials the
// endpoint's node port).
func startWaypointHBONE(ctx context.Context, b *bench) (*running, error) {
	ep := model.Endpoint{Address: b.backendOnNode(), Identity: backendID.String()}
	var (
		r      *running
		hbAddr string
		err    error
	)
	if b.cfg.inChild() || b.node != nodeAddr {
		conf := filepath.Join(b.tmp, "waypoint-hbone.yaml")
		if err := writeWaypointConfig(conf, ep); err != nil {
			return nil, err
		}
		r, hbAddr, err = b.startWaypointChild(ctx, "waypoint-hbone", conf, true)
		if r != nil {
			r.note = "run in a child of the bench (waypoint.Proxy with Istio's metrics and an hbone.Server, as cmd/waypoint -hbone), for -cpuprofile or -trace or because the node is not on " + nodeAddr
		}
	} else {
		r, hbAddr, err = startWaypointBinary(ctx, b, "waypoint-hbone", ep, true)
	}
	if err != nil {
		return r, err
	}
	req := hbone.Request{Source: b.clientSrc, Addr: hbAddr, Authority: serviceVIP, Expected: []spiffeid.ID{waypointID}}
	r.dial = func(ctx context.Context) (net.Conn, error) { return b.clientPool.Dial(ctx, req) }
	return r, waitReady(ctx, r.proc, r.dial)
}

// startWaypointChild starts the bench binary as a waypoint; it returns the
// target dialling the plain listener, and the HBONE address when hb.
func (b *bench) startWaypointChild(ctx context.Context, name, conf string, hb bool) (*running, string, error) {
	args := []string{"waypoint", "-config", conf, "-concurrency", strconv.Itoa(b.cfg.concurrency)}
	if hb {
		args = append(args, "-ca", b.caDir, "-node", b.node)
	}
	p, addrs, err := b.startChild(name, true, 2, args...)
	if err != nil {
		return nil, "", err
	}
	r := &running{dial: tcpDial(addrs[0]), proc: p, child: true}
	if !hb {
		return r, "", waitReady(ctx, p, r.dial)
	}
	if addrs[1] == "-" {
		return nil, "", errors.New("waypoint child serves no HBONE")
	}
	return r, addrs[1], nil
}

// startBackend starts the backend child, with the node's HBONE server.
func (b *bench) startBackend() error {
	p, addrs, err := b.startChild("backend", false, 2, "backend", "-ca", b.caDir)
	if err != nil {
		return err
	}
	b.backendPid = p.cmd.Process.Pid
	b.backend, b.node = addrs[0], addrs[1]
	return nil
}

// versions returns the peers' versions, for the header.
func versions() string {
	var out []string
	if bin, err := binPath("nginx"); err == nil {
		v, _ := exec.Command(bin, "-v").CombinedOutput()
		out = append(out, strings.TrimSpace(strings.TrimPrefix(string(v), "nginx version: ")))
	}
	if bin, err := binPath("haproxy"); err == nil {
		v, _ := exec.Command(bin, "-v").Output()
		first, _, _ := strings.Cut(string(v), "\n")
		f := strings.Fields(first)
		if len(f) >= 3 {
			out = append(out, "HAProxy "+f[2])
		}
	}
	return strings.Join(out, ", ")
}
