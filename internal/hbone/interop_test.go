package hbone_test

// Interop: hbone.Server against net/http's HTTP/2 client, and hbone.Pool
// against net/http's HTTP/2 server. net/http is an independent HTTP/2
// implementation, so these hold whatever the package's internals become.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
)

// bulk is more than any stream's flow-control window in play (hbone's 4 MiB
// in both directions, net/http's 1 MiB server and 4 MiB client defaults), so
// it only gets through if WINDOW_UPDATEs flow both ways. (1 MiB would fit in
// hbone's windows without a single update.)
var bulk = bytes.Repeat([]byte("0123456789abcdef"), 5<<16)

// duplexEcho opens a CONNECT to addr with client, the request body an
// io.Pipe, and sends chunks one at a time, reading each one's echo before
// sending the next: the response must stream while the request is open. It
// then closes the pipe (END_STREAM) and expects EOF.
func duplexEcho(ctx context.Context, client *http.Client, addr string, chunks [][]byte) error {
	// Canceling resets the stream, which fails pending reads and closes the
	// pipe, failing pending writes: nothing below blocks past the timeout.
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	defer pr.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, "https://"+addr, pr)
	if err != nil {
		return err
	}
	req.Host = testAuthority // the :authority; the URL's host is where to dial
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		return fmt.Errorf("got %s over HTTP/%d; want 200 over HTTP/2", resp.Status, resp.ProtoMajor)
	}
	for _, chunk := range chunks {
		werr := make(chan error, 1)
		go func() {
			_, err := pw.Write(chunk)
			werr <- err
		}()
		got := make([]byte, len(chunk))
		if _, err := io.ReadFull(resp.Body, got); err != nil {
			return fmt.Errorf("reading the echo of %d bytes: %w", len(chunk), err)
		}
		if err := <-werr; err != nil {
			return fmt.Errorf("writing %d bytes: %w", len(chunk), err)
		}
		if !bytes.Equal(got, chunk) {
			return fmt.Errorf("echo of %d bytes differs", len(chunk))
		}
	}
	pw.Close()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("after END_STREAM: %w; want EOF", err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("after END_STREAM: read %q; want EOF", rest)
	}
	return nil
}

func TestInteropNetHTTPClient(t *testing.T) {
	m := newMesh(t, 0)
	srv, addr := startServer(t, m, nil, echo)
	client := rawClient(t, m)
	if err := duplexEcho(ctxT(t), client, addr, [][]byte{[]byte("hello"), bulk, []byte("bye")}); err != nil {
		t.Fatal(err)
	}

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			chunks := [][]byte{fmt.Appendf(nil, "stream %d", i), bytes.Repeat([]byte{'a' + byte(i)}, 100<<10)}
			if err := duplexEcho(ctxT(t), client, addr, chunks); err != nil {
				errs <- fmt.Errorf("concurrent stream %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var total uint64
	for _, c := range srv.Snapshot() {
		total += c.TotalStreams
	}
	if total != n+1 {
		t.Errorf("server counted %d streams; want %d", total, n+1)
	}
}

// startNetHTTP serves h with a stock net/http HTTP/2 server (no HTTP/1) as
// serverID, over mutual TLS like an HBONE server, on 127.0.0.1:0.
func startNetHTTP(t *testing.T, m *mesh, h http.HandlerFunc) string {
	t.Helper()
	conf := identity.ServerTLSConfig(m.source(t, serverID), m.mgr.Bundle(), nil)
	conf.NextProtos = []string{"h2"}
	var protos http.Protocols
	protos.SetHTTP2(true)
	srv := &http.Server{Handler: h, TLSConfig: conf, Protocols: &protos, ReadHeaderTimeout: stepTimeout}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	return ln.Addr().String()
}

// flushingEcho answers a CONNECT with 200 and copies the request body back,
// flushing after every read, as a TCP proxy written with net/http would.
func flushingEcho(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "only CONNECT", http.StatusMethodNotAllowed)
		return
	}
	rc := http.NewResponseController(w)
	// HTTP/2 is full duplex anyway; this matters for HTTP/1, and the error
	// (ErrNotSupported where it does not apply) is of no consequence.
	_ = rc.EnableFullDuplex()
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil || rc.Flush() != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF: returning ends the response (END_STREAM)
		}
	}
}

func TestInteropNetHTTPServer(t *testing.T) {
	m := newMesh(t, 0)
	addr := startNetHTTP(t, m, func(w http.ResponseWriter, r *http.Request) {
		switch r.Host {
		case "10.1.2.3:403":
			http.Error(w, "denied by policy", http.StatusForbidden)
		case "10.1.2.3:503":
			http.Error(w, "upstream refused", http.StatusServiceUnavailable)
		default:
			flushingEcho(w, r)
		}
	})
	pool := newPool(t, m)
	src := m.source(t, clientID)
	c, err := pool.Dial(ctxT(t), dialReq(src, addr))
	if err != nil {
		t.Fatal(err)
	}
	guard(c)
	defer c.Close()
	if c.PeerID() != serverID {
		t.Errorf("peer %s; want %s", c.PeerID(), serverID)
	}
	if err := echoOnce(c, "ping"); err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(bulk)
		werr <- err
	}()
	got := make([]byte, len(bulk))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, bulk) {
		t.Fatalf("echo of %d bytes: %v (equal: %v)", len(bulk), err, bytes.Equal(got, bulk))
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Errorf("after CloseWrite: %q, %v; want EOF", rest, err)
	}

	for _, tc := range []struct {
		authority string
		want      error
		status    int
	}{
		{"10.1.2.3:403", hbone.ErrIdentityRejected, http.StatusForbidden},
		{"10.1.2.3:503", hbone.ErrRefused, http.StatusServiceUnavailable},
	} {
		req := dialReq(src, addr)
		req.Authority = tc.authority
		_, err := pool.Dial(ctxT(t), req)
		var de *hbone.DialError
		if !errors.Is(err, tc.want) || !errors.As(err, &de) || de.Status != tc.status {
			t.Errorf("%s: got %v; want %v with status %d", tc.authority, err, tc.want, tc.status)
		}
	}
}

func TestInteropHeadersReachNetHTTP(t *testing.T) {
	type seen struct {
		Method, Host, RequestURI, Path  string
		ProtoMajor                      int
		Forwarded, Baggage, Traceparent string
		Probe                           []string
	}
	got := make(chan seen, 1)
	m := newMesh(t, 0)
	addr := startNetHTTP(t, m, func(w http.ResponseWriter, r *http.Request) {
		// net/http refuses HTTP/2 requests with uppercase field names or,
		// on a CONNECT, a :path or :scheme (RFC 9113 §8.2, §8.5); getting
		// here proves the request had neither.
		select {
		case got <- seen{
			Method: r.Method, Host: r.Host, RequestURI: r.RequestURI, Path: r.URL.Path, ProtoMajor: r.ProtoMajor,
			Forwarded: r.Header.Get("Forwarded"), Baggage: r.Header.Get("Baggage"), Traceparent: r.Header.Get("Traceparent"),
			Probe: r.Header.Values("X-Meshway-Probe"),
		}:
		default:
		}
		flushingEcho(w, r)
	})
	req := dialReq(m.source(t, clientID), addr)
	req.Forwarded = hbone.Forwarded{For: netip.MustParseAddrPort("10.0.0.9:43210"), Host: "reviews.default.svc.cluster.local"}
	req.Baggage = hbone.Baggage{{Key: "k8s.namespace.name", Value: "default"}, {Key: "service.name", Value: "product page"}}
	req.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	req.Header = http.Header{"X-Meshway-Probe": {"one", "two"}}
	c, err := newPool(t, m).Dial(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	guard(c)
	defer c.Close()
	if err := echoOnce(c, "headers"); err != nil {
		t.Fatal(err)
	}
	want := seen{
		Method: http.MethodConnect, Host: testAuthority, RequestURI: testAuthority, ProtoMajor: 2,
		Forwarded:   `for="10.0.0.9:43210";host=reviews.default.svc.cluster.local`,
		Baggage:     "k8s.namespace.name=default,service.name=product%20page",
		Traceparent: req.Traceparent,
		Probe:       []string{"one", "two"},
	}
	select {
	case s := <-got:
		if diff := cmp.Diff(want, s); diff != "" {
			t.Errorf("net/http server saw (-want +got):\n%s", diff)
		}
	case <-time.After(stepTimeout):
		t.Fatal("handler never ran")
	}
}
