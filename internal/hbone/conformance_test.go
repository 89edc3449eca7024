package hbone_test

// Conformance: hbone.Server driven frame by frame by a raw HTTP/2 client
// (golang.org/x/net/http2's Framer and hpack, nothing of net/http), so the
// tests see exactly what goes over the wire and can send what no well-behaved
// client would. Expectations cite RFC 9113 (HTTP/2) and RFC 9110 (HTTP
// semantics); where the RFC allows several answers, every allowed one passes.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
)

// stepTimeout bounds every wait for the server: generous for -race on a
// loaded machine, yet a hang fails the test long before go test's timeout.
const stepTimeout = 5 * time.Second

// clientWindow is the receive window the raw client advertises, per stream
// and for the connection: large, so that no test has to send WINDOW_UPDATEs
// to keep the server's responses flowing.
const clientWindow = 1 << 30

const testAuthority = "10.1.2.3:8080"

// errNoFrame: nothing arrived within the wait.
var errNoFrame = errors.New("no frame within the timeout")

// h2frame is a frame as read, copied out of the Framer's buffers (which the
// next ReadFrame reuses) so it can cross goroutines and be kept.
type h2frame struct {
	http2.FrameHeader
	data     []byte              // DATA payload, PING opaque data, GOAWAY debug data
	fields   []hpack.HeaderField // HEADERS (and CONTINUATION), decoded
	code     http2.ErrCode       // RST_STREAM, GOAWAY
	last     uint32              // GOAWAY last-stream-id
	incr     uint32              // WINDOW_UPDATE
	settings map[http2.SettingID]uint32
}

func snapshot(f http2.Frame) h2frame {
	out := h2frame{FrameHeader: f.Header()}
	switch f := f.(type) {
	case *http2.DataFrame:
		out.data = bytes.Clone(f.Data())
	case *http2.MetaHeadersFrame:
		out.fields = append([]hpack.HeaderField(nil), f.Fields...)
	case *http2.SettingsFrame:
		out.settings = map[http2.SettingID]uint32{}
		_ = f.ForeachSetting(func(s http2.Setting) error { out.settings[s.ID] = s.Val; return nil })
	case *http2.PingFrame:
		out.data = bytes.Clone(f.Data[:])
	case *http2.GoAwayFrame:
		out.code, out.last, out.data = f.ErrCode, f.LastStreamID, bytes.Clone(f.DebugData())
	case *http2.RSTStreamFrame:
		out.code = f.ErrCode
	case *http2.WindowUpdateFrame:
		out.incr = f.Increment
	}
	return out
}

func (f h2frame) String() string {
	s := f.FrameHeader.String()
	switch f.Type {
	case http2.FrameHeaders:
		return s + fmt.Sprint(" ", f.fields)
	case http2.FrameSettings:
		return s + fmt.Sprint(" ", f.settings)
	case http2.FrameData, http2.FrameGoAway, http2.FrameRSTStream:
		return s + fmt.Sprintf(" %.60q %v last=%d", f.data, f.code, f.last)
	case http2.FrameWindowUpdate:
		return s + fmt.Sprintf(" +%d", f.incr)
	}
	return s
}

// field returns the value of the header field name (e.g. ":status").
func (f h2frame) field(name string) (string, bool) {
	for _, hf := range f.fields {
		if hf.Name == name {
			return hf.Value, true
		}
	}
	return "", false
}

func (f h2frame) status() string {
	s, _ := f.field(":status")
	return s
}

// endsStream: the frame carries END_STREAM (same bit for DATA and HEADERS).
func (f h2frame) endsStream() bool {
	return (f.Type == http2.FrameData || f.Type == http2.FrameHeaders) && f.Flags.Has(http2.FlagDataEndStream)
}

func isGoAway(f h2frame) bool { return f.Type == http2.FrameGoAway }

// h2Client is one raw HTTP/2 connection to a server. A goroutine reads
// frames into a channel so that waits can time out without breaking the
// Framer's framing (a deadline expiring mid-frame would). It acknowledges
// the server's SETTINGS and PINGs itself, as any client must, whether or not
// the test is reading at the time. Test-side methods (everything but
// readLoop and write) belong to the test goroutine.
type h2Client struct {
	t    testing.TB
	conn *tls.Conn
	fr   *http2.Framer

	wmu  sync.Mutex // serializes writes: the Framer's write buffer, enc, hbuf
	enc  *hpack.Encoder
	hbuf bytes.Buffer

	frames    chan h2frame
	done      chan struct{} // closed by close: readLoop stops delivering
	closeOnce sync.Once
	rerr      error // why readLoop stopped; read only after frames is closed

	settings map[http2.SettingID]uint32 // the server's first SETTINGS, once seen
	seen     []h2frame                  // every frame next returned, for failure messages
	pings    uint64
}

// dialH2 connects to addr as clientID, sends the client preface, a SETTINGS
// frame and a connection WINDOW_UPDATE (both raising our receive windows to
// clientWindow) and starts reading.
func dialH2(t testing.TB, m *mesh, addr string) *h2Client {
	t.Helper()
	conf := identity.ClientTLSConfig(m.source(t, clientID), m.mgr.Bundle(), []spiffeid.ID{serverID})
	conf.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: stepTimeout}, "tcp", addr, conf)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		conn.Close()
		t.Fatalf("ALPN %q; want h2", p)
	}
	c := &h2Client{t: t, conn: conn, frames: make(chan h2frame, 64), done: make(chan struct{})}
	c.fr = http2.NewFramer(conn, conn)
	c.fr.AllowIllegalWrites = true // the tests send invalid frames on purpose
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.hbuf)
	t.Cleanup(c.close)
	c.send("preface", func(fr *http2.Framer) error {
		if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
			return err
		}
		if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: clientWindow}); err != nil {
			return err
		}
		return fr.WriteWindowUpdate(0, clientWindow)
	})
	// Only now: the server's SETTINGS may arrive before our preface is out,
	// and readLoop's ACK must not precede it.
	go c.readLoop()
	return c
}

func (c *h2Client) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.conn.Close()
	})
}

func (c *h2Client) readLoop() {
	defer close(c.frames)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.rerr = err
			return
		}
		s := snapshot(f)
		switch {
		case s.Type == http2.FrameSettings && !s.Flags.Has(http2.FlagSettingsAck):
			_ = c.write(func(fr *http2.Framer) error { return fr.WriteSettingsAck() })
		case s.Type == http2.FramePing && !s.Flags.Has(http2.FlagPingAck):
			_ = c.write(func(fr *http2.Framer) error { return fr.WritePing(true, [8]byte(s.data)) })
		}
		select {
		case c.frames <- s:
		case <-c.done:
			return
		}
	}
}

// write runs fn with the Framer under the write lock and a write deadline.
func (c *h2Client) write(fn func(*http2.Framer) error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(stepTimeout))
	return fn(c.fr)
}

// send is write, failing the test on error.
func (c *h2Client) send(what string, fn func(*http2.Framer) error) {
	c.t.Helper()
	if err := c.write(fn); err != nil {
		c.t.Fatalf("sending %s: %v", what, err)
	}
}

// block encodes header fields given as name, value pairs; under wmu, as the
// encoder's dynamic table must change in the order blocks are sent.
func (c *h2Client) block(kv ...string) []byte {
	c.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = c.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return bytes.Clone(c.hbuf.Bytes())
}

// headers sends one HEADERS frame (END_HEADERS set) on stream id with the
// fields as name, value pairs, in the order given.
func (c *h2Client) headers(id uint32, endStream bool, kv ...string) {
	c.t.Helper()
	c.send("HEADERS", func(fr *http2.Framer) error {
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block(kv...), EndStream: endStream, EndHeaders: true})
	})
}

// connect opens stream id with a CONNECT to authority: only :method and
// :authority, as RFC 9113 §8.5 prescribes.
func (c *h2Client) connect(id uint32, authority string) {
	c.t.Helper()
	c.headers(id, false, ":method", http.MethodConnect, ":authority", authority)
}

func (c *h2Client) data(id uint32, endStream bool, p []byte) {
	c.t.Helper()
	c.send("DATA", func(fr *http2.Framer) error { return fr.WriteData(id, endStream, p) })
}

// next returns the next frame, or errNoFrame after timeout, or the error
// that ended the connection.
func (c *h2Client) next(timeout time.Duration) (h2frame, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case f, ok := <-c.frames:
		if !ok {
			if c.rerr == nil {
				return h2frame{}, io.EOF
			}
			return h2frame{}, c.rerr
		}
		c.seen = append(c.seen, f)
		if f.Type == http2.FrameSettings && !f.Flags.Has(http2.FlagSettingsAck) && c.settings == nil {
			c.settings = f.settings
		}
		return f, nil
	case <-timer.C:
		return h2frame{}, errNoFrame
	}
}

func (c *h2Client) history() string {
	var sb strings.Builder
	for _, f := range c.seen {
		sb.WriteString("\t" + f.String() + "\n")
	}
	return sb.String()
}

// expect reads frames until match holds and returns that frame; it fails
// the test if the connection ends or stepTimeout passes first.
func (c *h2Client) expect(what string, match func(h2frame) bool) h2frame {
	c.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		f, err := c.next(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("waiting for %s: %v; frames received:\n%s", what, err, c.history())
		}
		if match(f) {
			return f
		}
	}
}

// expectClosed reads until the server closes the connection. After a GOAWAY
// for an error the server MUST close it (RFC 9113 §5.4.1).
func (c *h2Client) expectClosed() {
	c.t.Helper()
	if !endsOr(c, stepTimeout, nil) {
		c.t.Fatalf("connection still open %s after GOAWAY; frames received:\n%s", stepTimeout, c.history())
	}
}

// setting returns a setting from the server's first SETTINGS (waiting for
// it if needed), or def if the server did not send it.
func (c *h2Client) setting(id http2.SettingID, def uint32) uint32 {
	c.t.Helper()
	if c.settings == nil {
		c.expect("the server's SETTINGS", func(f h2frame) bool {
			return f.Type == http2.FrameSettings && !f.Flags.Has(http2.FlagSettingsAck)
		})
	}
	if v, ok := c.settings[id]; ok {
		return v
	}
	return def
}

// pingPong sends a PING and waits for its ACK; a GOAWAY first fails the
// test. The server handles frames in order, so everything it sent in answer
// to our earlier frames precedes the ACK.
func (c *h2Client) pingPong() {
	c.t.Helper()
	c.pings++
	var payload [8]byte
	copy(payload[:], fmt.Sprintf("ping%04d", c.pings))
	c.send("PING", func(fr *http2.Framer) error { return fr.WritePing(false, payload) })
	f := c.expect("PING ACK", func(f h2frame) bool {
		return f.Type == http2.FramePing && f.Flags.Has(http2.FlagPingAck) && bytes.Equal(f.data, payload[:]) || isGoAway(f)
	})
	if isGoAway(f) {
		c.t.Fatalf("GOAWAY instead of a PING ACK: %v; frames received:\n%s", f, c.history())
	}
}

// response waits for the answer on stream id: its HEADERS, or the
// RST_STREAM or GOAWAY that stands in for one.
func (c *h2Client) response(id uint32) h2frame {
	c.t.Helper()
	return c.expect(fmt.Sprintf("a response on stream %d", id), func(f h2frame) bool {
		return f.StreamID == id && (f.Type == http2.FrameHeaders || f.Type == http2.FrameRSTStream) || isGoAway(f)
	})
}

// accepted waits for a 200 on stream id.
func (c *h2Client) accepted(id uint32) h2frame {
	c.t.Helper()
	f := c.response(id)
	if f.Type != http2.FrameHeaders || f.status() != "200" {
		c.t.Fatalf("stream %d: got %v; want HEADERS :status 200; frames received:\n%s", id, f, c.history())
	}
	return f
}

// body collects the DATA on stream id up to END_STREAM; a reset first fails
// the test.
func (c *h2Client) body(id uint32) []byte {
	c.t.Helper()
	var b []byte
	for {
		f := c.expect(fmt.Sprintf("the rest of stream %d", id), func(f h2frame) bool { return f.StreamID == id || isGoAway(f) })
		switch f.Type {
		case http2.FrameData:
			b = append(b, f.data...)
		case http2.FrameRSTStream, http2.FrameGoAway:
			c.t.Fatalf("stream %d ended by %v before END_STREAM; body so far %q", id, f, b)
		}
		if f.endsStream() {
			return b
		}
	}
}

// echoes sends msg on stream id and waits for the same bytes back.
func (c *h2Client) echoes(id uint32, msg string) {
	c.t.Helper()
	c.data(id, false, []byte(msg))
	var got []byte
	for len(got) < len(msg) {
		f := c.expect(fmt.Sprintf("the echo of %q on stream %d", msg, id), func(f h2frame) bool { return f.StreamID == id || isGoAway(f) })
		if f.Type != http2.FrameData || f.endsStream() {
			c.t.Fatalf("stream %d: %v while waiting for the echo of %q (got %q)", id, f, msg, got)
		}
		got = append(got, f.data...)
	}
	if string(got) != msg {
		c.t.Fatalf("stream %d echoed %q; want %q", id, got, msg)
	}
}

// blocking is a handler that accepts and then neither reads nor writes
// until the test ends (release is closed in a cleanup) or the stream dies.
func blocking(t *testing.T, opened *atomic.Int32) hbone.Handler {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return hbone.HandlerFunc(func(ctx context.Context, s *hbone.Stream) {
		if opened != nil {
			opened.Add(1)
		}
		s.Accept()
		select {
		case <-release:
		case <-ctx.Done():
		}
	})
}

func TestConformanceConnectionPreface(t *testing.T) {
	m := newMesh(t, 0)
	_, addr := startServer(t, m, nil, echo)
	c := dialH2(t, m, addr)
	// RFC 9113 §3.4: the server's preface is a SETTINGS frame, its first.
	first, err := c.next(stepTimeout)
	if err != nil || first.Type != http2.FrameSettings || first.Flags.Has(http2.FlagSettingsAck) {
		t.Fatalf("first frame %v, %v; want SETTINGS", first, err)
	}
	for id, v := range first.settings {
		s := http2.Setting{ID: id, Val: v}
		if err := s.Valid(); err != nil {
			t.Errorf("server setting %v: %v", s, err)
		}
		if s.ID == http2.SettingEnablePush && s.Val != 0 {
			t.Errorf("server sent %v; a server MUST NOT set it to 1 (RFC 9113 §6.5.2)", s)
		}
	}
	// Documented defaults of hbone.Server.
	if v := c.setting(http2.SettingMaxConcurrentStreams, 0); v != hbone.DefaultMaxConcurrentStreams {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d; want %d", v, hbone.DefaultMaxConcurrentStreams)
	}
	if v := c.setting(http2.SettingMaxFrameSize, 16384); v != 16384 {
		t.Errorf("SETTINGS_MAX_FRAME_SIZE %d; want the minimum, 16384", v)
	}
	// §6.5.3: our SETTINGS is acknowledged.
	c.expect("the ACK of our SETTINGS", func(f h2frame) bool {
		return f.Type == http2.FrameSettings && f.Flags.Has(http2.FlagSettingsAck)
	})
	// §6.7: a PING is answered with an ACK carrying the same 8 bytes.
	payload := [8]byte{'m', 'e', 's', 'h', 'w', 'a', 'y', 0xff}
	c.send("PING", func(fr *http2.Framer) error { return fr.WritePing(false, payload) })
	f := c.expect("PING ACK", func(f h2frame) bool { return f.Type == http2.FramePing && f.Flags.Has(http2.FlagPingAck) })
	if !bytes.Equal(f.data, payload[:]) || f.StreamID != 0 {
		t.Errorf("PING ACK %v carries %q; want %q on stream 0", f, f.data, payload)
	}
}

func TestConformanceConnectEcho(t *testing.T) {
	m := newMesh(t, 0)
	_, addr := startServer(t, m, nil, echo)
	c := dialH2(t, m, addr)
	c.connect(1, testAuthority)
	resp := c.accepted(1)
	if resp.endsStream() {
		t.Fatalf("the 200 ends the stream: %v", resp)
	}
	// RFC 9110 §9.3.6: no Content-Length or Transfer-Encoding in a 2xx to
	// CONNECT; RFC 9113 §8.2.2: no connection-specific fields at all.
	for _, name := range []string{"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"} {
		if v, ok := resp.field(name); ok {
			t.Errorf("200 to CONNECT has %s: %q", name, v)
		}
	}
	c.echoes(1, "hi")
	c.echoes(1, "full duplex: the request is still open")
	// Our END_STREAM: the handler reads EOF, half-closes, and the server's
	// END_STREAM follows with no more data.
	c.data(1, true, nil)
	if rest := c.body(1); len(rest) != 0 {
		t.Errorf("after our END_STREAM the server sent %q before its own", rest)
	}
}

func TestConformanceRejectsBadRequests(t *testing.T) {
	m := newMesh(t, 0)
	_, addr := startServer(t, m, nil, echo)
	t.Run("GET is 405", func(t *testing.T) {
		c := dialH2(t, m, addr)
		c.headers(1, true, ":method", http.MethodGet, ":scheme", "https", ":path", "/", ":authority", "10.0.0.1:80")
		resp := c.response(1)
		if resp.status() != "405" {
			t.Fatalf("got %v; want :status 405", resp)
		}
		// RFC 9110 §15.5.6: a 405 MUST list the allowed methods.
		if allow, _ := resp.field("allow"); !strings.Contains(allow, http.MethodConnect) {
			t.Errorf("405 with allow %q; want CONNECT", allow)
		}
		if !resp.endsStream() {
			if body := c.body(1); !strings.Contains(string(body), "only CONNECT") {
				t.Errorf("405 body %q; want it to say only CONNECT is served", body)
			}
		}
	})
	t.Run("CONNECT without a port is 400", func(t *testing.T) {
		c := dialH2(t, m, addr)
		c.connect(1, "10.0.0.1")
		resp := c.response(1)
		if resp.status() != "400" || resp.endsStream() {
			t.Fatalf("got %v; want :status 400 with a body", resp)
		}
		if body := c.body(1); !strings.Contains(string(body), "has no port") {
			t.Errorf("400 body %q; want it to name the missing port", body)
		}
		c.pingPong() // a stream error, not a connection error
	})
	// RFC 9113 §8.1.1: malformed requests are stream errors of type
	// PROTOCOL_ERROR; the server may answer with a 4xx instead. Neither may
	// reach the handler (echo would answer 200). A connection error would
	// also be allowed (§5.4.1), but it would abort every other tunnel of
	// the client, so the connection must survive.
	for _, tc := range []struct {
		name string
		kv   []string
	}{
		{"CONNECT with :scheme and :path", []string{":method", http.MethodConnect, ":scheme", "https", ":path", "/", ":authority", testAuthority}},
		{"CONNECT without :authority", []string{":method", http.MethodConnect}},
		{"uppercase field name", []string{":method", http.MethodConnect, ":authority", testAuthority, "Forwarded", `for="10.0.0.9:1"`}},
		{"connection-specific field", []string{":method", http.MethodConnect, ":authority", testAuthority, "connection", "keep-alive"}},
		{"pseudo-field after a regular one", []string{":method", http.MethodConnect, "baggage", "a=b", ":authority", testAuthority}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialH2(t, m, addr)
			c.headers(1, false, tc.kv...)
			resp := c.response(1)
			switch {
			case resp.Type == http2.FrameRSTStream && resp.code == http2.ErrCodeProtocol:
			case resp.Type == http2.FrameHeaders && len(resp.status()) == 3 && resp.status()[0] == '4':
			default:
				t.Fatalf("got %v; want RST_STREAM PROTOCOL_ERROR or a 4xx; frames received:\n%s", resp, c.history())
			}
			c.pingPong()
		})
	}
}

func TestConformanceMaxConcurrentStreams(t *testing.T) {
	m := newMesh(t, 0)
	var opened atomic.Int32
	_, addr := startServer(t, m, nil, blocking(t, &opened), func(s *hbone.Server) { s.MaxConcurrentStreams = 2 })
	c := dialH2(t, m, addr)
	if v := c.setting(http2.SettingMaxConcurrentStreams, 0); v != 2 {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d; want 2", v)
	}
	c.connect(1, testAuthority)
	c.accepted(1)
	c.connect(3, testAuthority)
	c.accepted(3)
	c.connect(5, testAuthority)
	f := c.response(5)
	// RFC 9113 §5.1.2 allows PROTOCOL_ERROR or REFUSED_STREAM; Server's doc
	// promises REFUSED_STREAM, which tells the client the stream was not
	// processed and may be retried (§8.7).
	if f.Type != http2.FrameRSTStream || f.code != http2.ErrCodeRefusedStream {
		t.Fatalf("third stream: got %v; want RST_STREAM REFUSED_STREAM; frames received:\n%s", f, c.history())
	}
	c.pingPong() // the connection and its two streams go on
	if n := opened.Load(); n != 2 {
		t.Errorf("handler ran %d times; want 2: a refused stream must not be processed", n)
	}
}

// TestConformanceWriteAfterResetKeepsConnection: a handler answering and
// writing to a stream the client has reset gets an error, nothing of it
// goes out, and the connection, with its other streams, goes on.
func TestConformanceWriteAfterResetKeepsConnection(t *testing.T) {
	m := newMesh(t, 0)
	lateWrite := make(chan error, 1)
	var n atomic.Int32
	h := hbone.HandlerFunc(func(ctx context.Context, s *hbone.Stream) {
		if n.Add(1) > 1 {
			echo(ctx, s)
			return
		}
		<-ctx.Done()
		// Answers the CONNECT first: the 200 must not go out either.
		_, err := s.Write([]byte("too late"))
		lateWrite <- err
	})
	_, addr := startServer(t, m, nil, h)
	c := dialH2(t, m, addr)
	c.connect(1, testAuthority)
	c.send("RST_STREAM", func(fr *http2.Framer) error { return fr.WriteRSTStream(1, http2.ErrCodeCancel) })
	select {
	case err := <-lateWrite:
		if !errors.Is(err, hbone.ErrStreamClosed) {
			t.Errorf("write after the reset: %v; want ErrStreamClosed", err)
		}
	case <-time.After(stepTimeout):
		t.Fatal("handler never saw the reset")
	}
	c.connect(3, testAuthority)
	c.accepted(3)
	c.echoes(3, "the connection goes on")
}

// TestConformanceRapidReset: a client that resets every stream as soon as
// it opened it keeps the stream count low while each reset stream's handler
// may still be running; past four times the stream cap of such handlers the
// server gives up on the connection (ENHANCE_YOUR_CALM) instead of growing
// goroutines without bound (CVE-2023-44487).
func TestConformanceRapidReset(t *testing.T) {
	m := newMesh(t, 0)
	var opened atomic.Int32
	const limit = 2
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	// A handler slow to notice the reset: it ignores ctx.
	stuck := hbone.HandlerFunc(func(context.Context, *hbone.Stream) {
		opened.Add(1)
		<-release
	})
	_, addr := startServer(t, m, nil, stuck, func(s *hbone.Server) {
		s.MaxConcurrentStreams = limit
		s.Logf = nil
	})
	c := dialH2(t, m, addr)
	for id := uint32(1); id < 2*(4*limit+2); id += 2 {
		c.connect(id, testAuthority)
		c.send("RST_STREAM", func(fr *http2.Framer) error { return fr.WriteRSTStream(id, http2.ErrCodeCancel) })
	}
	f := c.expect("GOAWAY", isGoAway)
	if f.code != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("GOAWAY %v; want ENHANCE_YOUR_CALM", f.code)
	}
	c.expectClosed()
	if n := opened.Load(); n > 4*limit {
		t.Errorf("%d handlers ran; want at most %d", n, 4*limit)
	}
}

// TestConformanceProtocolErrors: connection errors (RFC 9113 sections in
// the case names) get a GOAWAY with the right code, then the connection
// closes.
func TestConformanceProtocolErrors(t *testing.T) {
	m := newMesh(t, 0)
	_, addr := startServer(t, m, nil, echo)
	for _, tc := range []struct {
		name  string
		send  func(*h2Client)           // what to send, or
		frame func(*http2.Framer) error // the one frame to send
		want  http2.ErrCode
	}{
		{"§5.1.1 HEADERS on an even stream", func(c *h2Client) { c.connect(2, testAuthority) }, nil, http2.ErrCodeProtocol},
		{"§5.1.1 HEADERS on a stream id below one in use", func(c *h2Client) {
			c.connect(5, testAuthority)
			c.accepted(5)
			c.connect(3, testAuthority)
		}, nil, http2.ErrCodeProtocol},
		{"§6.1 DATA on stream 0", nil, func(fr *http2.Framer) error {
			return fr.WriteData(0, false, []byte("x"))
		}, http2.ErrCodeProtocol},
		{"§5.1 DATA on an idle stream", nil, func(fr *http2.Framer) error {
			return fr.WriteData(7, false, []byte("x"))
		}, http2.ErrCodeProtocol},
		{"§6.10 CONTINUATION without HEADERS", nil, func(fr *http2.Framer) error {
			return fr.WriteContinuation(1, true, []byte{0x82})
		}, http2.ErrCodeProtocol},
		{"§6.10 HEADERS without END_HEADERS, then PING", func(c *h2Client) {
			c.send("HEADERS", func(fr *http2.Framer) error {
				return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.block(":method", http.MethodConnect)})
			})
			c.send("PING", func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{}) })
		}, nil, http2.ErrCodeProtocol},
		{"§6.7 PING of 7 bytes", nil, func(fr *http2.Framer) error {
			return fr.WriteRawFrame(http2.FramePing, 0, 0, make([]byte, 7))
		}, http2.ErrCodeFrameSize},
		{"§6.5 SETTINGS ACK with a payload", nil, func(fr *http2.Framer) error {
			return fr.WriteRawFrame(http2.FrameSettings, http2.FlagSettingsAck, 0, make([]byte, 6))
		}, http2.ErrCodeFrameSize},
		{"§6.5.2 SETTINGS_INITIAL_WINDOW_SIZE of 2^31", nil, func(fr *http2.Framer) error {
			return fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31})
		}, http2.ErrCodeFlowControl},
		// Our connection window is already 65535 + 2^30.
		{"§6.9.1 WINDOW_UPDATE overflowing the connection window", nil, func(fr *http2.Framer) error {
			return fr.WriteWindowUpdate(0, 1<<31-1)
		}, http2.ErrCodeFlowControl},
		{"§6.9 WINDOW_UPDATE of 0 on the connection", nil, func(fr *http2.Framer) error {
			return fr.WriteWindowUpdate(0, 0)
		}, http2.ErrCodeProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // net/http closes only a second after the GOAWAY
			c := dialH2(t, m, addr)
			if tc.frame != nil {
				c.send(tc.name, tc.frame)
			} else {
				tc.send(c)
			}
			g := c.expect("GOAWAY", isGoAway)
			if g.code != tc.want {
				t.Errorf("GOAWAY %v; want %v", g, tc.want)
			}
			c.expectClosed()
		})
	}
}

func TestConformanceFlowControl(t *testing.T) {
	m := newMesh(t, 0)
	_, addr := startServer(t, m, nil, blocking(t, nil))
	c := dialH2(t, m, addr)
	c.connect(1, testAuthority)
	c.accepted(1)
	// Any WINDOW_UPDATE the server sends on its own (at start or on opening
	// the stream) precedes this PING's ACK.
	c.pingPong()
	window := int64(c.setting(http2.SettingInitialWindowSize, 65535))
	connWindow := int64(65535)
	for _, f := range c.seen {
		if f.Type == http2.FrameWindowUpdate && f.StreamID == 0 {
			connWindow += int64(f.incr)
		}
		if f.Type == http2.FrameWindowUpdate && f.StreamID == 1 {
			window += int64(f.incr)
		}
	}
	frameSize := int64(c.setting(http2.SettingMaxFrameSize, 16384))
	// Exactly the window is legal; one more byte is not. Staying within the
	// connection's window makes it the stream's limit that is tested, unless
	// the connection's is the smaller one, and then a GOAWAY is the answer.
	legal := min(window, connWindow)
	t.Logf("stream window %d, connection window %d: sending %d bytes, then 1 more", window, connWindow, legal)
	chunk := bytes.Repeat([]byte("w"), int(frameSize))
	for sent := int64(0); sent < legal; {
		n := min(frameSize, legal-sent)
		c.data(1, false, chunk[:n])
		sent += n
	}
	c.send("PING", func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{'f', 'u', 'l', 'l'}) })
	f := c.expect("PING ACK after filling the window", func(f h2frame) bool {
		return f.Type == http2.FramePing && f.Flags.Has(http2.FlagPingAck) || f.StreamID == 1 && f.Type == http2.FrameRSTStream || isGoAway(f)
	})
	if f.Type != http2.FramePing {
		t.Fatalf("filling the window exactly was answered with %v", f)
	}
	c.data(1, false, []byte("!"))
	f = c.expect("RST_STREAM or GOAWAY for overflowing the window", func(f h2frame) bool {
		return f.StreamID == 1 && f.Type == http2.FrameRSTStream || isGoAway(f)
	})
	if f.code != http2.ErrCodeFlowControl {
		t.Fatalf("got %v; want FLOW_CONTROL_ERROR (RFC 9113 §6.9.1)", f)
	}
}

func TestConformanceShutdownGoAway(t *testing.T) {
	m := newMesh(t, 0)
	srv, addr := startServer(t, m, nil, echo)
	c := dialH2(t, m, addr)
	c.connect(1, testAuthority)
	c.accepted(1)
	c.echoes(1, "before")

	ctx, cancel := context.WithTimeout(context.Background(), 2*stepTimeout)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	// RFC 9113 §6.8: graceful shutdown is a GOAWAY with NO_ERROR whose
	// last-stream-id covers the streams the server will still complete. It
	// may come in two steps, the first with 2^31-1 (then the second must
	// follow, or the server would have to accept streams forever).
	g := c.expect("GOAWAY", isGoAway)
	if g.code == http2.ErrCodeNo && g.last == 1<<31-1 {
		g = c.expect("the GOAWAY after the one with 2^31-1", isGoAway)
	}
	if g.code != http2.ErrCodeNo || g.last < 1 {
		t.Fatalf("GOAWAY %v; want NO_ERROR with last-stream-id >= 1", g)
	}
	c.echoes(1, "after the GOAWAY")

	// A stream above last-stream-id is refused or ignored, never served.
	c.connect(3, testAuthority)
	c.pingPong()
	endsOr(c, 300*time.Millisecond, nil) // a handler's 200 would come asynchronously
	for _, f := range c.seen {
		if f.StreamID == 3 && (f.Type != http2.FrameRSTStream || f.code != http2.ErrCodeRefusedStream) {
			t.Errorf("stream opened after GOAWAY: got %v; want RST_STREAM REFUSED_STREAM or nothing", f)
		}
	}
	c.echoes(1, "still")
	c.data(1, true, nil)
	if rest := c.body(1); len(rest) != 0 {
		t.Errorf("after our END_STREAM: %q", rest)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(2 * stepTimeout):
		t.Fatal("Shutdown did not return after the last stream ended")
	}
	c.expectClosed()
}
