package waypoint

import (
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The downstream HTTP/1.1 fast path parses request heads itself, into
// state reused from one request to the next (h1server.go). It accepts a
// strict subset of what net/http's server accepts, with the same meaning;
// for anything else — a malformed request, HTTP/1.0, chunked bodies,
// Expect, upgrades, h2c's preface, obs-fold, bare LF line ends, a head
// larger than the read buffer — it says so (parseFallback) and the
// connection is handed, with the request still unread, to net/http's
// server, which answers exactly as it did before (400, 431, 505...). A
// differential test and a fuzz test hold the two parsers to that.

// parseResult is what parsing a buffered head found.
type parseResult int

const (
	parseOK       parseResult = iota
	parseMore                 // the head is not complete yet: read more
	parseFallback             // not for the fast path: net/http serves it
)

// headerState is a header map with the arrival order of its keys, the
// backing array of its one-value slices, and the classes of fields seen
// (hop-by-hop among them), all reused from one message to the next.
type headerState struct {
	h     http.Header
	order []string   // keys, in the order they first arrived
	vals  []string   // the values' backing array
	seen  fieldClass // the special fields that arrived: the parsers look up only those
}

// fieldClass marks the fields the parsers act on, so that a message
// without them costs no map lookup for each.
type fieldClass uint8

const (
	fieldHop fieldClass = 1 << iota // hop-by-hop (hopHeaders)
	fieldContentLength
	fieldTransferEncoding
	fieldConnection
	fieldExpect
	fieldUpgrade
	fieldPragma
	fieldTrailer
)

// classOf returns k's classes (k canonical); 0 for most fields.
func classOf(k string) fieldClass {
	switch k {
	case "Content-Length":
		return fieldContentLength
	case "Transfer-Encoding":
		return fieldTransferEncoding | fieldHop
	case "Connection":
		return fieldConnection | fieldHop
	case "Expect":
		return fieldExpect
	case "Upgrade":
		return fieldUpgrade | fieldHop
	case "Pragma":
		return fieldPragma
	case "Trailer":
		return fieldTrailer | fieldHop
	case "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te":
		return fieldHop
	}
	return 0
}

// hasHop reports whether a hop-by-hop field (or Connection) arrived.
func (hs *headerState) hasHop() bool { return hs.seen&fieldHop != 0 }

func (hs *headerState) reset() {
	if hs.h == nil {
		// Made for 8 fields, the map starts small: one group of slots,
		// cheaper to look up and to clear than the table a map made for
		// more starts as. A bigger head grows it.
		hs.h = make(http.Header, 8)
	} else {
		clear(hs.h)
	}
	hs.order = hs.order[:0]
	clear(hs.vals) // let the previous message's strings go
	hs.vals = hs.vals[:0]
	hs.seen = 0
}

// add adds one field; key is canonical, value trimmed.
func (hs *headerState) add(key, value string) {
	if vv, ok := hs.h[key]; ok {
		hs.h[key] = append(vv, value) // a repeated field: rare
		return
	}
	hs.vals = append(hs.vals, value)
	n := len(hs.vals)
	// Capacity 1, so an append never runs into the next field's value.
	hs.h[key] = hs.vals[n-1 : n : n]
	hs.order = append(hs.order, key)
	hs.seen |= classOf(key)
}

// cutLine is strings.Cut(s, "\r\n"), quicker on the heads headEnd
// accepts, where every LF ends a CRLF: it looks for one byte, not two.
func cutLine(s string) (line, rest string) {
	if i := strings.IndexByte(s, '\n'); i > 0 && s[i-1] == '\r' {
		return s[:i-1], s[i+1:]
	}
	line, rest, _ = strings.Cut(s, "\r\n")
	return line, rest
}

// field is h.Get(key) for a key already in canonical form, as the hot
// path's constant keys are: Get canonicalizes the key on every call.
func field(h http.Header, key string) string {
	if vv := h[key]; len(vv) > 0 {
		return vv[0]
	}
	return ""
}

// headEnd returns the length of the head at the start of buf (up to and
// including the blank line), 0 if buf holds no complete head yet, or -1 if
// a line ends in a bare LF (net/http accepts those: it serves them). from
// is where a previous call stopped looking.
func headEnd(buf []byte, from int) (end int, next int) {
	i := from
	for {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return 0, i
		}
		j += i
		if j == 0 || buf[j-1] != '\r' {
			return -1, i
		}
		if j == i+1 { // "\r\n" alone: the blank line
			return j + 1, j + 1
		}
		i = j + 1
	}
}

// parseRequest parses the complete head in raw (from headEnd, as one
// string the request's fields can keep) into r, hs and u.
func parseRequest(raw string, r *http.Request, hs *headerState, u *url.URL) parseResult {
	line, rest := cutLine(raw)
	method, rl, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rl, " ")
	if !ok1 || !ok2 || proto != "HTTP/1.1" || !isToken(method) ||
		method == http.MethodConnect || method == "PRI" || target == "" || target[0] != '/' {
		return parseFallback
	}
	if !parseTarget(target, u) {
		return parseFallback
	}
	hs.reset()
	host, hosts := "", 0
	for {
		line, rest = cutLine(rest)
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || !isToken(k) { // also obs-fold: a line starting with a space
			return parseFallback
		}
		for i := 0; i < len(v); i++ {
			if !validValueByte(v[i]) {
				return parseFallback
			}
		}
		v = textproto.TrimString(v)
		key := textproto.CanonicalMIMEHeaderKey(k)
		if key == "Host" {
			// Kept out of the map, as net/http does: it is r.Host.
			host, hosts = v, hosts+1
			continue
		}
		hs.add(key, v)
	}
	h := hs.h
	if hosts != 1 || !httpguts.ValidHostHeader(host) {
		return parseFallback // net/http answers 400
	}
	if hs.seen&(fieldTransferEncoding|fieldExpect|fieldUpgrade) != 0 {
		// Chunked bodies, and TE+CL smuggling, are net/http's; so are
		// Expect and upgrades.
		return parseFallback
	}
	var n int64
	if hs.seen&fieldContentLength != 0 {
		v, ok := parseLength(h["Content-Length"])
		if !ok {
			return parseFallback
		}
		n = v
	}
	if hs.seen&fieldPragma != 0 {
		fixPragma(h)
	}
	r.Method = method
	r.URL = u
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.Header = h
	r.Host = host
	r.RequestURI = target
	r.ContentLength = n
	r.Close = hs.seen&fieldConnection != 0 && httpguts.HeaderValuesContainsToken(h["Connection"], "close")
	return parseOK
}

// parseTarget sets u as url.ParseRequestURI(target) would, without
// allocating for the common paths: no escapes and no byte that net/url
// would escape in a path.
func parseTarget(target string, u *url.URL) bool {
	*u = url.URL{}
	path, query, hasQuery := strings.Cut(target, "?")
	plain := true
	for i := 0; i < len(path); i++ {
		if !plainPathByte(path[i]) {
			plain = false
			break
		}
	}
	for i := 0; plain && i < len(query); i++ {
		if c := query[i]; c <= ' ' || c >= 0x7f {
			plain = false
		}
	}
	if !plain {
		pu, err := url.ParseRequestURI(target)
		if err != nil {
			return false
		}
		*u = *pu
		return true
	}
	u.Path = path
	if hasQuery {
		// As net/url: a lone "?" at the end is ForceQuery.
		if query == "" && strings.Count(target, "?") == 1 {
			u.ForceQuery = true
		} else {
			u.RawQuery = query
		}
	}
	return true
}

// plainPathByte reports whether c stands for itself in a path: net/url
// neither unescapes it nor would escape it (so RawPath stays empty).
func plainPathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', '~', '$', '&', '+', ',', '/', ':', ';', '=', '@':
		return true
	}
	return false
}

// parseLength parses Content-Length values as net/http does for the
// cases it accepts without rewriting the header: one value, digits.
func parseLength(vv []string) (int64, bool) {
	if len(vv) != 1 || vv[0] == "" || len(vv[0]) > 18 {
		return 0, false
	}
	n, err := strconv.ParseUint(vv[0], 10, 63)
	if err != nil {
		return 0, false
	}
	return int64(n), true
}

// fixPragma is net/http's fixPragmaCacheControl: "Pragma: no-cache"
// without Cache-Control means "Cache-Control: no-cache" (RFC 7234).
func fixPragma(h http.Header) {
	if hp, ok := h["Pragma"]; ok && len(hp) > 0 && hp[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return true
}

// validValueByte is net/textproto's check of a field value's bytes:
// VCHAR, SP, HTAB and obs-text.
func validValueByte(c byte) bool {
	return c >= 0x20 && c != 0x7f || c == '\t'
}

// hopHeaders are the hop-by-hop fields a proxy does not forward, as
// httputil.ReverseProxy removes them.
var hopHeaders = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// connectionListed reports whether the Connection fields in h name k (a
// canonical key), which makes k hop-by-hop too.
func connectionListed(h http.Header, k string) bool {
	for _, f := range h["Connection"] {
		for f != "" {
			var tok string
			tok, f, _ = strings.Cut(f, ",")
			if tok = textproto.TrimString(tok); tok != "" && strings.EqualFold(tok, k) {
				return true
			}
		}
	}
	return false
}

// removeHopByHop deletes h's hop-by-hop fields, as ReverseProxy does.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}
