package hbone_test

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/hbone"
)

// sink reads a stream to its end with hbone.Copy, as `make bench-hbone`'s
// server does (echo's io.Copy allocates 32 KiB per stream).
var sink = hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
	if _, err := hbone.Copy(io.Discard, s); err != nil {
		s.Close()
		return
	}
	s.CloseWrite()
})

// BenchmarkDialWarm times a CONNECT on a warm pooled connection, client
// and server in this process (`make bench-hbone` measures across
// processes), and reports the p50 and p99 of the set-ups.
func BenchmarkDialWarm(b *testing.B) {
	m := newMesh(b, 0)
	_, addr := startServer(b, m, nil, sink)
	pool := newPool(b, m)
	src := m.source(b, clientID)
	ctx := context.Background()
	var (
		open []*hbone.Conn
		lat  []time.Duration
	)
	for b.Loop() {
		t0 := time.Now()
		c, err := pool.Dial(ctx, dialReq(src, addr))
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
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
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkThroughput sends b.N writes of hbone.Copy's size (two DATA
// frames, each filling one TLS record) through one stream to a discarding
// handler.
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
	buf := make([]byte, 2*(16<<10-9))
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.CloseWrite()
	<-done
}

// BenchmarkThroughputStreams is BenchmarkThroughput with 32 streams on one
// pooled connection writing at once: their writers share the connection's
// socket writes.
func BenchmarkThroughputStreams(b *testing.B) {
	buf := make([]byte, 2*(16<<10-9))
	b.SetBytes(int64(len(buf)))
	runStreams(b, hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
		_, _ = hbone.Copy(io.Discard, s)
		s.CloseWrite()
	}), func() func(*hbone.Conn) error {
		return func(c *hbone.Conn) error {
			_, err := c.Write(buf)
			return err
		}
	})
}

// BenchmarkRoundTripStreams has 32 streams on one pooled connection each
// send a 100-byte request and read a 1 KiB answer, over and over, as
// HTTP/1.1 keep-alive connections tunneled to a waypoint do: many small
// writes from many streams at once.
func BenchmarkRoundTripStreams(b *testing.B) {
	answer := make([]byte, 1024)
	req := make([]byte, 100)
	runStreams(b, hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
		got := make([]byte, len(req))
		for {
			if _, err := io.ReadFull(s, got); err != nil {
				return
			}
			if _, err := s.Write(answer); err != nil {
				return
			}
		}
	}), func() func(*hbone.Conn) error {
		resp := make([]byte, len(answer))
		return func(c *hbone.Conn) error {
			if _, err := c.Write(req); err != nil {
				return err
			}
			_, err := io.ReadFull(c, resp)
			return err
		}
	})
}

// runStreams serves h and, on 32 streams (with GOMAXPROCS 2) of one pooled
// connection at once, each on its own goroutine, runs the op that newOp
// makes for it (its buffers its own) over and over, half-closing the
// stream at the end.
func runStreams(b *testing.B, h hbone.Handler, newOp func() func(*hbone.Conn) error) {
	m := newMesh(b, 0)
	_, addr := startServer(b, m, nil, h)
	pool := newPool(b, m)
	src := m.source(b, clientID)
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		c, err := pool.Dial(context.Background(), dialReq(src, addr))
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		op := newOp()
		for pb.Next() {
			if err := op(c); err != nil {
				b.Error(err)
				return
			}
		}
		c.CloseWrite()
	})
}
