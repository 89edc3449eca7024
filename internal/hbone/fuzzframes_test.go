package hbone_test

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshway/meshway/internal/hbone"
)

// FuzzServerFrames writes arbitrary bytes after a valid preface and
// SETTINGS. The server must not panic (it runs in this process), must
// neither hang nor wedge the connection — it answers a PING sent after the
// input, or gives the connection up (GOAWAY with an error, or closing it),
// if need be once we end our side — and must still serve a fresh
// connection afterwards.
func FuzzServerFrames(f *testing.F) {
	for _, seed := range frameSeeds() {
		f.Add(seed)
	}
	m := newMesh(f, 0)
	// No Logf: rejected inputs would log on every run.
	_, addr := startServer(f, m, nil, echo, func(s *hbone.Server) { s.Logf = nil })
	const wait = 200 * time.Millisecond
	f.Fuzz(func(t *testing.T, input []byte) {
		c := dialH2(t, m, addr)
		probe := [8]byte{'f', 'u', 'z', 'z', 'p', 'i', 'n', 'g'}
		// Write errors are fine: the server may close on a bad frame.
		_ = c.write(func(fr *http2.Framer) error {
			if _, err := c.conn.Write(input); err != nil {
				return err
			}
			return fr.WritePing(false, probe)
		})
		// A GOAWAY for an error is as good as the close that must follow
		// (TestConformanceProtocolErrors checks that it does); net/http
		// waits a second before closing, too long to wait for every input.
		done := func(f h2frame) bool {
			return f.Type == http2.FramePing && f.Flags.Has(http2.FlagPingAck) && bytes.Equal(f.data, probe[:]) ||
				isGoAway(f) && f.code != http2.ErrCodeNo
		}
		if !endsOr(c, wait, done) {
			// The input may end inside a frame, which our PING then
			// completes: end our side; the server must close too.
			_ = c.conn.CloseWrite()
			if !endsOr(c, stepTimeout, done) {
				t.Fatalf("server neither answered a PING nor closed the connection after the input and our close_notify; frames:\n%s", c.history())
			}
		}
		c.close()

		fresh := dialH2(t, m, addr)
		fresh.connect(1, testAuthority)
		fresh.accepted(1)
		fresh.echoes(1, "still serving")
		fresh.close()
	})
}

// endsOr reads for at most wait until the connection ends or a frame
// satisfies stop (nil: none does), and reports whether either happened.
func endsOr(c *h2Client, wait time.Duration, stop func(h2frame) bool) bool {
	deadline := time.Now().Add(wait)
	for {
		f, err := c.next(time.Until(deadline))
		switch {
		case errors.Is(err, errNoFrame):
			return false
		case err != nil:
			return true
		case stop != nil && stop(f):
			return true
		}
	}
}

// frameSeeds are frame sequences, valid and not, to start fuzzing from
// (TestConformanceProtocolErrors has more invalid ones).
func frameSeeds() [][]byte {
	var (
		seeds   [][]byte
		out, hb bytes.Buffer
		enc     = hpack.NewEncoder(&hb)
	)
	fr := http2.NewFramer(&out, nil)
	fr.AllowIllegalWrites = true
	b := func(kv ...string) []byte {
		hb.Reset()
		for i := 0; i+1 < len(kv); i += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return bytes.Clone(hb.Bytes())
	}
	// cut ends a seed; each runs on a new connection, so with a new HPACK
	// context.
	cut := func() {
		seeds = append(seeds, bytes.Clone(out.Bytes()))
		out.Reset()
		enc = hpack.NewEncoder(&hb)
	}
	connect := []string{":method", http.MethodConnect, ":authority", testAuthority}
	hdrs := func(id uint32, end bool, frag []byte) http2.HeadersFrameParam {
		return http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: true}
	}
	cut() // nothing
	fr.WriteHeaders(hdrs(1, false, b(connect...)))
	fr.WriteData(1, true, []byte("hi"))
	cut()
	fr.WriteHeaders(hdrs(1, false, b(connect...)))
	fr.WriteData(1, false, []byte("hi"))
	fr.WriteRSTStream(1, http2.ErrCodeCancel)
	fr.WriteHeaders(hdrs(3, false, b(connect...)))
	fr.WriteWindowUpdate(3, 1000)
	cut()
	fr.WriteHeaders(hdrs(1, true, b(":method", http.MethodGet, ":scheme", "https", ":path", "/", ":authority", "x:1")))
	cut()
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b(connect...), PadLength: 5, EndHeaders: true})
	fr.WriteDataPadded(1, false, []byte("padded"), make([]byte, 10))
	cut()
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b(connect[:2]...)})
	fr.WriteContinuation(1, true, b(connect[2:]...))
	cut()
	fr.WriteHeaders(hdrs(2, false, b(connect...)))
	fr.WriteData(5, true, []byte("x"))
	cut()
	fr.WriteWindowUpdate(0, 1<<31-1)
	cut()
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b(connect...)})
	fr.WritePing(false, [8]byte{})
	cut()
	fr.WriteHeaders(hdrs(1, false, []byte{0xff, 0xff, 0xff, 0xff, 0xff})) // not HPACK
	cut()
	fr.WritePriority(1, http2.PriorityParam{StreamDep: 1, Weight: 15})
	cut()
	fr.WriteRawFrame(0xfa, 0xff, 3, []byte("unknown frame types are ignored"))
	fr.WriteRSTStream(9, http2.ErrCodeCancel)
	fr.WriteGoAway(0, http2.ErrCodeNo, []byte("bye"))
	cut()
	return append(seeds,
		[]byte{0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 'x'}, // 16 MiB announced, cut short
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
}
