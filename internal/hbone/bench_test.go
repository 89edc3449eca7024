package hbone_test

import (
	"context"
	"io"
	"testing"

	"github.com/meshway/meshway/internal/hbone"
)

// BenchmarkDialWarm times a CONNECT on a warm pooled connection, client
// and server in this process (`make bench-hbone` measures across
// processes).
func BenchmarkDialWarm(b *testing.B) {
	m := newMesh(b, 0)
	_, addr := startServer(b, m, nil, echo)
	pool := newPool(b, m)
	src := m.source(b, clientID)
	ctx := context.Background()
	var open []*hbone.Conn
	for b.Loop() {
		c, err := pool.Dial(ctx, dialReq(src, addr))
		if err != nil {
			b.Fatal(err)
		}
		open = append(open, c)
		if len(open) == 50 { // close in batches, as make bench-hbone does
			b.StopTimer()
			for _, c := range open {
				c.Close()
			}
			open = open[:0]
			b.StartTimer()
		}
	}
	for _, c := range open {
		c.Close()
	}
}

// BenchmarkThroughput sends b.N × 32 KiB through one stream to a
// discarding handler.
func BenchmarkThroughput(b *testing.B) {
	m := newMesh(b, 0)
	done := make(chan int64, 1)
	_, addr := startServer(b, m, nil, hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
		n, _ := hbone.Copy(io.Discard, s)
		done <- n
		s.CloseWrite()
	}))
	pool := newPool(b, m)
	c, err := pool.Dial(context.Background(), dialReq(m.source(b, clientID), addr))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.CloseWrite()
	<-done
}
