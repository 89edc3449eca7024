package waypoint

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The fast path's forwarding: what httputil.ReverseProxy and the
// h1Transport do for a request on the slow path, without cloning the
// request or copying headers. The request head is written from the
// downstream request as ReverseProxy would send it (hop-by-hop and
// X-Forwarded-* fields dropped, query cleaned, Te: trailers kept) in
// net/http's wire format; the response head is parsed into reused state,
// or by net/http (http.ReadResponse) when it is anything unusual.

// forwardH1 sends r (its route decided, in x) to the endpoints over
// HTTP/1.1 and copies the answer to w, as ReverseProxy does.
func (p *Proxy) forwardH1(w http.ResponseWriter, r *http.Request, x *exchange, dc *h1Down) {
	resp, err := x.try(r, dc.roundTrip)
	if err != nil {
		upstreamError(w, r, err)
		return
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		_ = resp.Body.Close()
		upstreamError(w, r, fmt.Errorf("backend tried to switch protocol %q when %q was requested", resp.Header.Get("Upgrade"), ""))
		return
	}
	h := resp.Header
	if dc.up.hs.hasHop() || dc.up.viaNet {
		removeHopByHop(h)
	}
	trailersOnly(resp)
	for _, m := range x.respMods {
		modifyHeader(h, m)
	}
	order := dc.up.hs.order
	if dc.up.viaNet {
		order = nil
	}
	if !dc.w.adopt(h, order) {
		dst := w.Header()
		for k, vv := range h {
			dst[k] = append(dst[k], vv...)
		}
	}
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		w.Header().Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)
	flush := resp.ContentLength == -1 || isEventStream(field(h, "Content-Type"))
	if flush {
		// The head goes at once, as ReverseProxy means to (it flushes
		// from a timer that races with the first body bytes).
		w.(http.Flusher).Flush()
	}
	if err := copyResponse(w, resp.Body, flush); err != nil {
		// Nothing else to do mid-stream: the client sees the body cut,
		// as ReverseProxy's panic(http.ErrAbortHandler) does.
		dc.w.abort()
		_ = resp.Body.Close()
		return
	}
	_ = resp.Body.Close() // reads the trailers
	if len(resp.Trailer) > 0 {
		if !dc.w.committed {
			dc.w.Flush() // chunked, for the trailers
		}
		dc.w.trailer = resp.Trailer
	}
}

// isEventStream reports whether a Content-Type is text/event-stream,
// which ReverseProxy flushes at once.
func isEventStream(ct string) bool {
	const es = "text/event-stream"
	if len(ct) < len(es) || !strings.EqualFold(ct[:len(es)], es) {
		return false
	}
	rest := ct[len(es):]
	return rest == "" || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t'
}

func copyResponse(w http.ResponseWriter, body io.Reader, flush bool) error {
	bp := copyBufferPool.Get().(*[]byte)
	defer copyBufferPool.Put(bp)
	buf := *bp
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush {
				w.(http.Flusher).Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// roundTrip is one try: out to the endpoint h, on a pooled connection. A
// keep-alive connection the endpoint closed meanwhile fails at once; the
// request then goes again on a new one when that is safe.
func (dc *h1Down) roundTrip(out *http.Request, h *host) (*http.Response, error) {
	t := dc.p.h1.h1
	ctx := out.Context()
	safe := out.ContentLength == 0 && (out.Method == http.MethodGet || out.Method == http.MethodHead || out.Method == http.MethodOptions)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pc, reused, err := t.getEP(ctx, h.ep)
		if err != nil {
			return nil, err
		}
		pc.use(h.maxUses)
		resp, sent, err := dc.exchange(ctx, pc, out)
		if err == nil {
			return resp, nil
		}
		_ = pc.c.Close()
		if reused && !sent && safe && ctx.Err() == nil {
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
}

func noStop() bool { return true }

// exchange writes out on pc and reads the response head; sent says
// whether the endpoint may have seen the request.
func (dc *h1Down) exchange(ctx context.Context, pc *h1Conn, out *http.Request) (*http.Response, bool, error) {
	stop := noStop
	if ctx != dc.ctx {
		// A timeout: its end interrupts the connection. (The client
		// going away does too, through the watcher, at no cost per
		// request.)
		pc.dl.Store(true)
		stop = context.AfterFunc(ctx, pc.interrupt)
	}
	if !dc.useUp(pc) {
		stop()
		return nil, false, context.Canceled
	}
	fail := func(err error, sent bool) (*http.Response, bool, error) {
		stop()
		dc.dropUp()
		return nil, sent, err
	}
	if err := writeRequest(pc.bw, out, dc.hs.order); err != nil {
		return fail(err, false)
	}
	if n := out.ContentLength; n > 0 {
		if err := copyBody(pc.bw, out.Body, n); err != nil {
			return fail(err, false)
		}
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(err, false)
	}
	if dc.body.n == 0 {
		dc.arm() // the request is read: the connection can be watched
	}
	u := &dc.up
	for {
		if err := u.read(pc.br, out); err != nil {
			return fail(err, pc.br.Buffered() > 0)
		}
		if c := u.resp.StatusCode; c < 100 || c > 199 || c == http.StatusSwitchingProtocols {
			break
		}
		// Informational: the answer follows.
	}
	resp := &u.resp
	b := &u.body
	*b = upBody{dc: dc, pc: pc, resp: resp, stop: stop, keep: !resp.Close, mode: b.mode, n: b.n, r: b.r}
	switch {
	case u.viaNet:
		b.mode, b.r = bodyNet, resp.Body
	case b.mode == bodyChunked:
		b.r = httputil.NewChunkedReader(pc.br)
	}
	resp.Body = b
	if b.mode == bodyNone {
		resp.Body = http.NoBody
		b.release()
	}
	return resp, true, nil
}

// copyBody writes the n bytes of a request body, read straight into the
// connection's buffer.
func copyBody(bw *bufio.Writer, src io.Reader, n int64) error {
	for n > 0 {
		if bw.Available() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		buf := bw.AvailableBuffer()
		buf = buf[:min(int64(cap(buf)), n)]
		m, err := src.Read(buf)
		_, _ = bw.Write(buf[:m])
		n -= int64(m)
		if n > 0 && err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// writeRequest writes out's head as ReverseProxy's outgoing request would
// be written by net/http (Request.Write), the fields in their order of
// arrival rather than sorted.
func writeRequest(bw *bufio.Writer, out *http.Request, order []string) error {
	host := out.Host
	if host == "" {
		host = out.URL.Host
	}
	if !isASCII(host) {
		h, err := httpguts.PunycodeHostPort(host)
		if err != nil {
			return err
		}
		host = h
	}
	if !httpguts.ValidHostHeader(host) {
		return errors.New("http: invalid Host header")
	}
	host = removeZone(host)
	_, _ = bw.WriteString(out.Method)
	_ = bw.WriteByte(' ')
	writeRequestURI(bw, out.URL)
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = bw.WriteString(host)
	_, _ = bw.WriteString("\r\n")
	h := out.Header
	if ua := h["User-Agent"]; len(ua) > 0 && ua[0] != "" {
		writeField(bw, "User-Agent", ua[0])
	}
	if n := out.ContentLength; n > 0 || n == 0 && (out.Method == http.MethodPost || out.Method == http.MethodPut || out.Method == http.MethodPatch) {
		var b [20]byte
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(b[:0], n, 10))
		_, _ = bw.WriteString("\r\n")
	}
	_, hasConn := h["Connection"]
	written := 0
	for _, k := range order {
		if vv, ok := h[k]; ok {
			written++
			writeForwarded(bw, h, k, vv, hasConn)
		}
	}
	if written < len(h) {
		var keys []string
		for k := range h {
			if !slices.Contains(order, k) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			writeForwarded(bw, h, k, h[k], hasConn)
		}
	}
	if httpguts.HeaderValuesContainsToken(h["Te"], "trailers") {
		_, _ = bw.WriteString("Te: trailers\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// writeForwarded writes a request field unless ReverseProxy would drop
// it: hop-by-hop, client-provided forwarding fields, and those net/http
// writes itself.
func writeForwarded(bw *bufio.Writer, h http.Header, k string, vv []string, hasConn bool) {
	switch k {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer",
		"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Upgrade",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return
	}
	if hasConn && connectionListed(h, k) {
		return
	}
	for _, v := range vv {
		writeField(bw, k, v)
	}
}

// writeRequestURI writes u's request URI with ReverseProxy's cleaning of
// the query.
func writeRequestURI(bw *bufio.Writer, u *url.URL) {
	q := cleanQueryParams(u.RawQuery)
	if u.Opaque != "" {
		c := *u
		c.RawQuery = q
		_, _ = bw.WriteString(c.RequestURI())
		return
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	_, _ = bw.WriteString(path)
	if u.ForceQuery || q != "" {
		_ = bw.WriteByte('?')
		_, _ = bw.WriteString(q)
	}
}

// cleanQueryParams is ReverseProxy's: a query net/url cannot parse is
// re-encoded (dropping what it cannot parse).
func cleanQueryParams(s string) string {
	reencode := func(s string) string {
		v, _ := url.ParseQuery(s)
		return v.Encode()
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case ';':
			return reencode(s)
		case '%':
			if i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2]) {
				return reencode(s)
			}
			i += 3
		default:
			i++
		}
	}
	return s
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// removeZone removes an IPv6 zone from a host, as net/http does.
func removeZone(host string) string {
	if !strings.HasPrefix(host, "[") {
		return host
	}
	i := strings.LastIndex(host, "]")
	if i < 0 {
		return host
	}
	j := strings.LastIndex(host[:i], "%")
	if j < 0 {
		return host
	}
	return host[:j] + host[i:]
}

// upState is the upstream side of a fast-path request, reused.
type upState struct {
	resp   http.Response
	hs     headerState
	body   upBody
	viaNet bool // the head was parsed by net/http
}

// release drops the finished response (closing its connection if it was
// not read whole).
func (u *upState) release() {
	if u.body.pc != nil {
		_ = u.body.Close()
	}
	u.body = upBody{}
	u.resp = http.Response{}
}

// read reads a response head from br.
func (u *upState) read(br *bufio.Reader, out *http.Request) error {
	u.viaNet = false
	scanned, want := 0, 1
	for {
		want = max(want, br.Buffered())
		buf, err := br.Peek(want)
		if err != nil {
			if len(buf) == 0 {
				return err
			}
			break // a partial head: net/http says what is wrong
		}
		end, next := headEnd(buf, scanned)
		if end > 0 {
			raw := string(buf[:end])
			if u.parse(raw, out.Method) == parseOK {
				_, _ = br.Discard(end)
				u.resp.Request = out
				return nil
			}
			break
		}
		if end < 0 || len(buf) >= br.Size() {
			break
		}
		scanned, want = next, len(buf)+1
	}
	resp, err := http.ReadResponse(br, out) //nolint:bodyclose // upBody closes it
	if err != nil {
		return err
	}
	u.viaNet = true
	u.resp = *resp
	u.body.mode = bodyNet
	return nil
}

// parse parses a complete response head, as http.ReadResponse would for
// the cases it accepts; anything else is parseFallback.
func (u *upState) parse(raw, method string) parseResult {
	line, rest := cutLine(raw)
	if len(line) < 12 || line[:9] != "HTTP/1.1 " || len(line) > 12 && line[12] != ' ' {
		return parseFallback
	}
	status, code := line[9:], 0
	for _, c := range []byte(line[9:12]) {
		if c < '0' || c > '9' {
			return parseFallback
		}
		code = code*10 + int(c-'0')
	}
	hs := &u.hs
	hs.reset()
	for {
		line, rest = cutLine(rest)
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || !isToken(k) {
			return parseFallback
		}
		for i := 0; i < len(v); i++ {
			if !validValueByte(v[i]) {
				return parseFallback
			}
		}
		hs.add(textproto.CanonicalMIMEHeaderKey(k), textproto.TrimString(v))
	}
	h := hs.h
	chunked := false
	if hs.seen&fieldTransferEncoding != 0 {
		if te := h["Transfer-Encoding"]; len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return parseFallback
		}
		delete(h, "Transfer-Encoding")
		chunked = true
	}
	n := int64(-1)
	if hs.seen&fieldContentLength != 0 {
		v, ok := parseLength(h["Content-Length"])
		if !ok {
			return parseFallback
		}
		n = v
	}
	noBody := method == http.MethodHead || !bodyAllowedForStatus(code)
	if chunked && !noBody {
		// Chunked overrides Content-Length (RFC 9112 6.3), which goes.
		delete(h, "Content-Length")
		n = -1
	}
	if hs.seen&fieldTrailer != 0 && chunked {
		return parseFallback // declared trailers: net/http parses them
	}
	closing := false
	if hs.seen&fieldConnection != 0 && httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		closing = true
		delete(h, "Connection")
	}
	if hs.seen&fieldPragma != 0 {
		fixPragma(h)
	}
	u.resp = http.Response{
		Status: status, StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: n, Close: closing,
	}
	b := &u.body
	switch {
	case noBody:
		b.mode = bodyNone
		if method != http.MethodHead {
			u.resp.ContentLength = 0
		}
	case chunked:
		b.mode = bodyChunked
	case n == 0:
		b.mode = bodyNone
	case n > 0:
		b.mode, b.n = bodyFixed, n
	default:
		b.mode = bodyClose // until the endpoint closes
		u.resp.Close = true
	}
	if chunked {
		u.resp.TransferEncoding = []string{"chunked"}
	}
	return parseOK
}

const (
	bodyNone = iota
	bodyFixed
	bodyChunked
	bodyClose
	bodyNet // net/http's body (the head was parsed by net/http)
)

// upBody is a response body read from an upstream connection: read to
// its end it gives the connection back to the pool, closed early it
// closes it.
type upBody struct {
	dc   *h1Down
	pc   *h1Conn
	resp *http.Response
	mode int
	n    int64     // bodyFixed: left to read
	r    io.Reader // bodyChunked, bodyNet
	stop func() bool
	keep bool
	eof  bool
	done bool
}

func (b *upBody) Read(p []byte) (int, error) {
	if b.eof || b.done {
		return 0, io.EOF
	}
	var (
		n   int
		err error
	)
	switch b.mode {
	case bodyFixed:
		if int64(len(p)) > b.n {
			p = p[:b.n]
		}
		n, err = b.pc.br.Read(p)
		b.n -= int64(n)
		switch {
		case b.n == 0:
			err = io.EOF
		case errors.Is(err, io.EOF):
			err = io.ErrUnexpectedEOF
		}
	case bodyChunked, bodyNet:
		n, err = b.r.Read(p)
		if errors.Is(err, io.EOF) && b.mode == bodyChunked {
			if terr := b.readTrailer(); terr != nil {
				err = terr
			}
		}
	case bodyClose:
		n, err = b.pc.br.Read(p)
	default:
		err = io.EOF
	}
	if errors.Is(err, io.EOF) {
		b.eof = true
		b.release()
		return n, io.EOF
	}
	if err != nil && isTimeout(err) {
		err = context.DeadlineExceeded // the request's timeout, as net/http reports it
		if b.dc.ctx.Err() != nil {
			err = context.Canceled // the client went away
		}
	}
	return n, err
}

// readTrailer reads what follows a chunked body's last chunk, as
// net/http's body.readTrailer does.
func (b *upBody) readTrailer() error {
	br := b.pc.br
	buf, err := br.Peek(2)
	if bytes.Equal(buf, []byte("\r\n")) {
		_, _ = br.Discard(2)
		return nil
	}
	if len(buf) < 2 {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	// A bounded trailer only: its end must be within the buffer.
	for want := 4; ; want++ {
		buf, err := br.Peek(want)
		if bytes.HasSuffix(buf, []byte("\r\n\r\n")) {
			break
		}
		if err != nil {
			return errors.New("http: suspiciously long trailer after chunked body")
		}
	}
	hdr, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		return err
	}
	b.resp.Trailer = http.Header(hdr)
	return nil
}

// release gives the connection back (or closes it) once the body is
// read whole.
func (b *upBody) release() {
	pc := b.pc
	if pc == nil {
		return
	}
	b.pc = nil
	b.dc.dropUp()
	if b.mode == bodyNet {
		_ = b.r.(io.Closer).Close()
	}
	if b.stop() && b.keep && b.mode != bodyClose {
		b.dc.p.h1.h1.put(pc)
		return
	}
	_ = pc.c.Close()
}

func (b *upBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	if pc := b.pc; pc != nil {
		// Not read whole: the connection goes.
		b.pc = nil
		b.dc.dropUp()
		b.stop()
		_ = pc.c.Close()
		if b.mode == bodyNet {
			_ = b.r.(io.Closer).Close()
		}
	}
	return nil
}
