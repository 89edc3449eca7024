package hbone_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/chaos"
	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
)

// What the chaos test's server does with a stream, by the authority's
// port (chaosPort + mode).
const (
	chaosEcho        = iota // copy back, half-close when the client does
	chaosEchoReset          // copy back a little, then abort the stream
	chaosReject             // answer 503
	chaosCloseAtOnce        // accept and close without reading
	chaosFlood              // write 256 KiB without reading, then half-close
	chaosCount              // read to EOF, answer the byte count
	chaosModes
)

const chaosPort = 9000

// chaosIdle is the chaos server's idle timeout: short, for the lulls to
// reach it, but well above the time from a connection's handshake to its
// first stream on a loaded machine under -race (a stream that comes after
// it is refused on a connection dialed for it, rightly failing the Dial).
const chaosIdle = 200 * time.Millisecond

var chaosHandler = hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
	_ = s.SetDeadline(time.Now().Add(15 * time.Second))
	switch int(s.Authority.Port) - chaosPort {
	case chaosEcho:
		echo(context.Background(), s)
	case chaosEchoReset:
		_, _ = io.CopyN(s, s, 1000)
		s.Close()
	case chaosReject:
		_ = s.Reject(http.StatusServiceUnavailable, "chaos")
	case chaosCloseAtOnce:
		_ = s.Accept()
		s.Close()
	case chaosFlood:
		_, _ = s.Write(make([]byte, 256<<10))
		_ = s.CloseWrite()
	case chaosCount:
		n, err := io.Copy(io.Discard, s)
		if err != nil {
			s.Close()
			return
		}
		_, _ = s.Write(binary.BigEndian.AppendUint64(nil, uint64(n)))
		_ = s.CloseWrite()
	}
})

// TestChaosStreams runs many streams at once over a few connections, each
// ending in one of the ways a stream can end on either side — clean
// half-closes both ways, resets by either side, refusals, a server writing
// without reading, a client aborting mid-write or never reading — while
// TCP connections are cut under them and the server closes the ones that
// go idle, all mixed at random. Every stream must end within its deadline
// (no lost wake-up or stuck writer), an echo or count that completes must
// be exact, a stream may fail only by its mode or a cut connection, and
// nothing is left running after the pool and the server close. With -race it also checks the locking of the write
// path (group commit), the reader and the stream ends against each other.
func TestChaosStreams(t *testing.T) {
	m := newMesh(t, time.Hour)
	_, addr := startServer(t, m, nil, chaosHandler, func(s *hbone.Server) {
		s.MaxConcurrentStreams = 8 // several connections per pool key
		// Connections left idle by a lull close (GOAWAY) about when the
		// pool hands them out again.
		s.IdleTimeout = chaosIdle
	})
	d := &chaos.Dialer{}
	pool := &hbone.Pool{Bundle: m.mgr.Bundle(), DialContext: d.DialContext}
	src := m.source(t, clientID)
	before := chaos.Goroutines()

	ctx, cancel := chaos.Run()
	defer cancel()

	var (
		wg      sync.WaitGroup
		streams atomic.Int64
		modes   [chaosModes]atomic.Int64
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.CutUntil(ctx, rand.New(rand.NewPCG(1, 2)), func(local string) bool {
			return !slices.ContainsFunc(pool.Snapshot(), func(ci hbone.ConnInfo) bool { return ci.Local == local })
		}, streams.Load)
	}()
	var lull atomic.Int64 // until when the workers start no stream (UnixNano)
	wg.Add(1)
	go func() { // lulls about as long as the server's idle timeout
		defer wg.Done()
		r := rand.New(rand.NewPCG(3, 4))
		for ctx.Err() == nil {
			time.Sleep(time.Duration(300+r.IntN(300)) * time.Millisecond)
			lull.Store(time.Now().Add(chaosIdle*8/10 + time.Duration(r.Int64N(int64(chaosIdle*4/10)))).UnixNano())
		}
	}()
	for w := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for ctx.Err() == nil {
				if until := time.Unix(0, lull.Load()); time.Now().Before(until) {
					time.Sleep(time.Until(until))
				}
				mode := r.IntN(chaosModes)
				mark := d.Cuts()
				hung, err := chaosStream(pool, src, addr, mode, r)
				streams.Add(1)
				modes[mode].Add(1)
				switch {
				case hung:
					t.Errorf("stream in mode %d outlived its deadline: %v", mode, err)
				case err != nil && !d.CutSince(mark):
					t.Errorf("stream in mode %d, no connection cut meanwhile: %v", mode, err)
				}
			}
		}()
	}
	wg.Wait()
	if err := pool.Close(); err != nil {
		t.Errorf("pool.Close: %v", err)
	}
	byMode := make([]int64, chaosModes)
	for mode := range modes {
		byMode[mode] = modes[mode].Load()
		if byMode[mode] == 0 {
			t.Errorf("mode %d never ran", mode)
		}
	}
	t.Logf("%d streams (by mode %v), %d connections cut", streams.Load(), byMode, d.Cuts()/2)
	if d.Cuts() == 0 {
		t.Error("no connection was cut")
	}
	// The server is closed by startServer's cleanup; the client's side of
	// every stream and connection must be gone already.
	chaos.Settled(t, before, 4)
}

// chaosStream opens one stream in mode and plays the client's part, at
// random among the ways it may. It returns what went wrong that the mode
// does not explain; hung when the stream outlived its deadline, which no
// cut connection excuses.
func chaosStream(pool *hbone.Pool, src identity.CertSource, addr string, mode int, r *rand.Rand) (hung bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := dialReq(src, addr)
	req.Authority = fmt.Sprintf("10.1.2.3:%d", chaosPort+mode)
	c, err := pool.Dial(ctx, req)
	if mode == chaosReject {
		if err == nil {
			c.Close()
			return false, errors.New("a refused stream was opened")
		}
		return false, nil
	}
	if err != nil {
		return errors.Is(err, context.DeadlineExceeded), fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer func() { hung = errors.Is(err, os.ErrDeadlineExceeded) }()

	sent := make([]byte, r.IntN(300<<10))
	for i := range sent {
		sent[i] = byte(i * 7)
	}
	// writeAll writes sent in random chunks, then half-closes.
	writeAll := func(seed uint64) error {
		wr := rand.New(rand.NewPCG(seed, 1))
		for rest := sent; len(rest) > 0; {
			n := min(len(rest), 1+wr.IntN(40<<10))
			if _, err := c.Write(rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return c.CloseWrite()
	}
	switch mode {
	case chaosEcho:
		switch r.IntN(4) {
		case 0, 1: // both ways at once, all of it
			werr := make(chan error, 1)
			go func(seed uint64) { werr <- writeAll(seed) }(r.Uint64())
			got, err := io.ReadAll(c)
			if err != nil {
				return false, fmt.Errorf("echo: read after %d bytes: %w", len(got), err)
			}
			if err := <-werr; err != nil {
				return false, fmt.Errorf("echo: write: %w", err)
			}
			if !bytes.Equal(got, sent) {
				return false, fmt.Errorf("echo: %d bytes back for %d sent, or not the same", len(got), len(sent))
			}
		case 2: // abort mid-write, reading nothing
			_, _ = c.Write(sent[:len(sent)/2])
		case 3: // write without reading until the windows fill, then abort
			go func() { _, _ = c.Write(sent) }()
			time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
		}
	case chaosEchoReset:
		go func() { // half-closed so that the server stops even below 1000 bytes
			if _, err := c.Write(sent); err == nil {
				_ = c.CloseWrite()
			}
		}()
		got, err := io.ReadAll(c)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return true, err
		}
		if len(got) > 1000 || !bytes.Equal(got, sent[:len(got)]) {
			return false, fmt.Errorf("echo then reset: got %d bytes, not a prefix of at most 1000 of what was sent", len(got))
		}
	case chaosCloseAtOnce:
		if _, err := io.ReadAll(c); errors.Is(err, os.ErrDeadlineExceeded) {
			return true, err
		}
		if _, err := c.Write(sent); errors.Is(err, os.ErrDeadlineExceeded) {
			return true, err
		}
	case chaosFlood:
		switch r.IntN(3) {
		case 0:
			got, err := io.ReadAll(c)
			if err != nil {
				return false, fmt.Errorf("flood: read after %d bytes: %w", len(got), err)
			}
			if len(got) != 256<<10 || bytes.ContainsFunc(got, func(r rune) bool { return r != 0 }) {
				return false, fmt.Errorf("flood: got %d bytes, want 256 KiB of zeros", len(got))
			}
		case 1:
			_, err := io.ReadFull(c, make([]byte, 1+r.IntN(64<<10)))
			if err != nil {
				return false, fmt.Errorf("flood: read: %w", err)
			}
		}
	case chaosCount:
		if err := writeAll(r.Uint64()); err != nil {
			return false, fmt.Errorf("count: write: %w", err)
		}
		got, err := io.ReadAll(c)
		if err != nil {
			return false, fmt.Errorf("count: read: %w", err)
		}
		if len(got) != 8 || binary.BigEndian.Uint64(got) != uint64(len(sent)) {
			return false, fmt.Errorf("count: answer %x for %d bytes sent", got, len(sent))
		}
	}
	return false, nil
}
