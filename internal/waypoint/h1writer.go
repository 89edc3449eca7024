package waypoint

import (
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Writer is the fast path's http.ResponseWriter. It gives a response
// the framing and fields net/http's server would (server.go,
// chunkWriter.writeHeader: Content-Length for a body written whole,
// chunked otherwise, Date, Content-Type sniffing, Connection: close, no
// body for HEAD, 204 and 304), written straight into the connection's
// buffer; a proxied response's header map is adopted, not copied.
type h1Writer struct {
	dc      *h1Down
	req     *http.Request
	h       http.Header // the response's fields
	own     http.Header // the writer's map, reused
	order   []string    // h's keys in the order to write them (the upstream's); nil: sorted
	status  int
	cl      int64 // Content-Length, -1 if not known
	written int64
	pending []byte      // the start of a body of unknown length, held back to frame it
	trailer http.Header // trailers to send after a chunked body
	keys    []string    // scratch

	wroteHeader, committed, chunked, noBody, closeAfter, aborted bool
	err                                                          error
	scratch                                                      [40]byte
}

// bufferBeforeChunking is net/http's bufferBeforeChunkingSize: a body of
// unknown length that ends within it gets a Content-Length.
const bufferBeforeChunking = 2048

func (w *h1Writer) reset(r *http.Request) {
	if w.own == nil {
		w.own = make(http.Header, 8)
	} else {
		clear(w.own)
	}
	*w = h1Writer{dc: w.dc, req: r, h: w.own, own: w.own, cl: -1, pending: w.pending[:0], keys: w.keys[:0]}
}

// adopt makes h (with its keys' order) the response's fields if none are
// set yet; false means the caller copies.
func (w *h1Writer) adopt(h http.Header, order []string) bool {
	if len(w.h) > 0 || w.wroteHeader {
		return false
	}
	w.h, w.order = h, order
	return true
}

func (w *h1Writer) Header() http.Header { return w.h }

func (w *h1Writer) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code)) // as net/http
	}
	if w.wroteHeader || w.aborted {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response goes at once; the final one follows.
		bw := w.dc.bw
		w.writeStatus(code)
		w.writeFields(true)
		_, _ = bw.WriteString("\r\n")
		w.fail(bw.Flush())
		return
	}
	w.wroteHeader, w.status = true, code
	if cl := field(w.h, "Content-Length"); cl != "" {
		if v, err := strconv.ParseInt(cl, 10, 64); err == nil && v >= 0 {
			w.cl = v
		} else {
			delete(w.h, "Content-Length")
		}
	}
}

func (w *h1Writer) Write(p []byte) (int, error) {
	if w.aborted || w.err != nil {
		return 0, w.failure()
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.cl != -1 && w.written > w.cl {
		return 0, http.ErrContentLength
	}
	if !w.committed {
		if w.cl == -1 && len(w.pending)+len(p) <= bufferBeforeChunking {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		first := p
		if len(w.pending) > 0 {
			first = w.pending
		}
		w.commit(first, false)
		w.writeBody(w.pending)
		w.pending = w.pending[:0]
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// Flush sends what is written so far: a body of unknown length is then
// chunked.
func (w *h1Writer) Flush() {
	if w.aborted {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(w.pending, false) // sniffed, as net/http's buffered start
		w.writeBody(w.pending)
		w.pending = w.pending[:0]
	}
	w.fail(w.dc.bw.Flush())
}

// abort gives up on the response (its body could not be read whole): the
// connection closes after what is buffered, so the client sees it cut.
func (w *h1Writer) abort() { w.aborted = true }

// finish completes the response and says whether the connection can
// serve another request.
func (w *h1Writer) finish() bool {
	bw := w.dc.bw
	if w.aborted {
		_ = bw.Flush()
		return false
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(w.pending, true)
		w.writeBody(w.pending)
	}
	if w.chunked {
		_, _ = bw.WriteString("0\r\n")
		w.writeTrailers()
		_, _ = bw.WriteString("\r\n")
	}
	w.fail(bw.Flush())
	if w.closeAfter || w.err != nil {
		return false
	}
	if w.req.Method != http.MethodHead && w.cl != -1 && bodyAllowedForStatus(w.status) && w.cl != w.written {
		return false // short: the client would read the next response as body
	}
	return w.dc.body.drain()
}

func (w *h1Writer) fail(err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
}

func (w *h1Writer) failure() error {
	if w.err != nil {
		return w.err
	}
	return http.ErrHandlerTimeout // aborted; any error will do
}

// commit writes the status line and fields. p is the start of the body
// (for sniffing), done says the handler finished (p is all of it).
func (w *h1Writer) commit(p []byte, done bool) {
	w.committed = true
	h, r, code := w.h, w.req, w.status
	isHEAD := r.Method == http.MethodHead
	te := field(h, "Transfer-Encoding")
	hasTE := te != ""
	trailers := len(w.trailer) > 0 || len(h["Trailer"]) > 0
	var setCL, setType, setConn, setTE string
	if _, ok := h["Content-Length"]; done && !ok && !trailers && !hasTE && bodyAllowedForStatus(code) && (!isHEAD || len(p) > 0) {
		w.cl = int64(len(p))
		setCL = strconv.Itoa(len(p))
	}
	if r.Close || field(h, "Connection") == "close" {
		w.closeAfter = true
	}
	if !w.closeAfter && !w.dc.body.drainable() {
		// Too much request body left to read it: close instead.
		w.closeAfter = true
		delete(h, "Connection")
		setConn = "close"
	}
	if bodyAllowedForStatus(code) {
		if _, haveType := h["Content-Type"]; !haveType && !hasTE && field(h, "Content-Encoding") == "" && len(p) > 0 {
			setType = http.DetectContentType(p)
		}
	} else {
		delete(h, "Content-Length")
		delete(h, "Transfer-Encoding")
		if code == http.StatusNotModified {
			delete(h, "Content-Type")
		}
	}
	_, hasDate := h["Date"]
	hasCL := w.cl != -1
	if hasCL && hasTE && te != "identity" {
		delete(h, "Content-Length")
		hasCL, w.cl = false, -1
	}
	switch {
	case isHEAD || !bodyAllowedForStatus(code):
		delete(h, "Transfer-Encoding")
		w.noBody = true
	case hasCL:
		delete(h, "Transfer-Encoding")
	case hasTE && te == "identity":
		w.closeAfter = true
		delete(h, "Transfer-Encoding")
	default:
		w.chunked, setTE = true, "chunked"
		if te == "chunked" {
			delete(h, "Transfer-Encoding")
		}
	}
	if w.chunked {
		delete(h, "Content-Length")
	}
	if w.closeAfter && !httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		delete(h, "Connection")
		setConn = "close"
	}
	bw := w.dc.bw
	w.writeStatus(code)
	w.writeFields(false)
	if !hasDate {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.Write(httpDate())
		_, _ = bw.WriteString("\r\n")
	}
	for _, f := range [...]struct{ k, v string }{{"Content-Length", setCL}, {"Content-Type", setType}, {"Connection", setConn}, {"Transfer-Encoding", setTE}} {
		if f.v != "" {
			writeField(bw, f.k, f.v)
		}
	}
	_, _ = bw.WriteString("\r\n")
}

func (w *h1Writer) writeStatus(code int) {
	bw := w.dc.bw
	_, _ = bw.WriteString("HTTP/1.1 ")
	if text := http.StatusText(code); text != "" {
		_, _ = bw.Write(strconv.AppendInt(w.scratch[:0], int64(code), 10))
		_ = bw.WriteByte(' ')
		_, _ = bw.WriteString(text)
		_, _ = bw.WriteString("\r\n")
		return
	}
	_, _ = fmt.Fprintf(bw, "%03d status code %d\r\n", code, code)
}

// writeFields writes the response's fields: in the upstream's order, then
// any others sorted; net/http's pseudo trailer keys are not fields.
func (w *h1Writer) writeFields(interim bool) {
	bw, h := w.dc.bw, w.h
	n := 0
	for _, k := range w.order {
		if vv, ok := h[k]; ok {
			n++
			w.writeKey(k, vv, interim)
		}
	}
	if n == len(h) {
		return
	}
	keys := w.keys[:0]
	for k := range h {
		if !slices.Contains(w.order, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		w.writeKey(k, h[k], interim)
	}
	clear(keys)
	w.keys = keys[:0]
	_ = bw
}

func (w *h1Writer) writeKey(k string, vv []string, interim bool) {
	if strings.HasPrefix(k, http.TrailerPrefix) || interim && (k == "Content-Length" || k == "Transfer-Encoding") {
		return
	}
	for _, v := range vv {
		writeField(w.dc.bw, k, v)
	}
}

// writeTrailers writes a chunked body's trailers: the upstream's, and
// those the handler set as net/http has them set (declared in Trailer,
// or prefixed with http.TrailerPrefix).
func (w *h1Writer) writeTrailers() {
	bw := w.dc.bw
	for k, vv := range w.trailer {
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
	if w.h == nil {
		return
	}
	for _, decl := range w.h["Trailer"] {
		for k := range strings.SplitSeq(decl, ",") {
			k = http.CanonicalHeaderKey(textproto.TrimString(k))
			if _, ok := w.trailer[k]; ok || k == "" {
				continue
			}
			for _, v := range w.h[k] {
				writeField(bw, k, v)
			}
		}
	}
	for k, vv := range w.h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vv {
				writeField(bw, name, v)
			}
		}
	}
}

func (w *h1Writer) writeBody(p []byte) {
	if len(p) == 0 || w.noBody || w.err != nil {
		return
	}
	bw := w.dc.bw
	if w.chunked {
		_, _ = bw.Write(strconv.AppendInt(w.scratch[:0], int64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
	}
	_, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	w.fail(err)
}

// writeField writes one field as net/http's Header.Write does: invalid
// names are dropped, line breaks in values become spaces.
func writeField(bw interface {
	WriteString(string) (int, error)
}, k, v string) {
	if !httpguts.ValidHeaderFieldName(k) {
		return
	}
	if needsCleaning(v) {
		v = textproto.TrimString(strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, v))
	}
	_, _ = bw.WriteString(k)
	_, _ = bw.WriteString(": ")
	_, _ = bw.WriteString(v)
	_, _ = bw.WriteString("\r\n")
}

func needsCleaning(v string) bool {
	if v == "" {
		return false
	}
	if c := v[0]; c == ' ' || c == '\t' {
		return true
	}
	if c := v[len(v)-1]; c == ' ' || c == '\t' {
		return true
	}
	// Two byte searches: ContainsAny builds a character set each call.
	return strings.IndexByte(v, '\n') >= 0 || strings.IndexByte(v, '\r') >= 0
}

func bodyAllowedForStatus(status int) bool {
	return (status < 100 || status > 199) && status != http.StatusNoContent && status != http.StatusNotModified
}

// httpDate is the Date field's value now, made once a second.
func httpDate() []byte {
	now := time.Now()
	sec := now.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return d.b
	}
	d := &cachedDate{sec: sec, b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	dateCache.Store(d)
	return d.b
}

type cachedDate struct {
	sec int64
	b   []byte
}

var dateCache atomic.Pointer[cachedDate]
