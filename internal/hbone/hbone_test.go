package hbone_test

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshway/meshway/internal/hbone"
)

func TestEchoWithIdentitiesAndHeaders(t *testing.T) {
	m := newMesh(t, 0)
	type seen struct {
		Peer, Authority, Forwarded, Baggage, Traceparent string
	}
	got := make(chan seen, 1)
	h := hbone.HandlerFunc(func(ctx context.Context, s *hbone.Stream) {
		got <- seen{s.PeerID.String(), s.Authority.String(), s.Header.Get("Forwarded"), s.Header.Get("Baggage"), s.Header.Get("Traceparent")}
		echo(ctx, s)
	})
	_, addr := startServer(t, m, nil, h)
	pool := newPool(t, m)
	req := dialReq(m.source(t, clientID), addr)
	req.Forwarded = hbone.Forwarded{For: netip.MustParseAddrPort("10.0.0.9:43210"), Host: "reviews.default.svc.cluster.local"}
	req.Baggage = hbone.Baggage{{Key: "k8s.namespace.name", Value: "default"}, {Key: "service.name", Value: "productpage"}}
	req.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	c, err := pool.Dial(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	guard(c)
	defer c.Close()
	if c.PeerID() != serverID {
		t.Errorf("client sees peer %s, want %s", c.PeerID(), serverID)
	}
	msg := bytes.Repeat([]byte("hbone "), 50000)
	go func() {
		c.Write(msg)
		c.CloseWrite()
	}()
	back, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, msg) {
		t.Errorf("echo returned %d bytes, want %d", len(back), len(msg))
	}
	want := seen{
		Peer:        clientID.String(),
		Authority:   "10.1.2.3:8080",
		Forwarded:   `for="10.0.0.9:43210";host=reviews.default.svc.cluster.local`,
		Baggage:     "k8s.namespace.name=default,service.name=productpage",
		Traceparent: req.Traceparent,
	}
	if diff := cmp.Diff(want, <-got); diff != "" {
		t.Errorf("server saw (-want +got):\n%s", diff)
	}
}

func TestLargeFramesEcho(t *testing.T) {
	m := newMesh(t, 0)
	_, addr := startServer(t, m, nil, echo, func(s *hbone.Server) { s.MaxFrameSize = 64 << 10 })
	c, err := newPool(t, m).Dial(ctxT(t), dialReq(m.source(t, clientID), addr))
	if err != nil {
		t.Fatal(err)
	}
	guard(c)
	defer c.Close()
	msg := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	go func() {
		c.Write(msg)
		c.CloseWrite()
	}()
	back, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(back, msg) {
		t.Fatalf("echo of 1 MiB with 64 KiB frames: %d bytes back, %v", len(back), err)
	}
}
