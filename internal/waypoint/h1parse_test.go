package waypoint

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// requestSeeds are heads the fast path must parse as net/http does, or
// leave to it.
var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /reviews/1?x=1&y=2 HTTP/1.1\r\nHost: reviews:9080\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
	"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"GET / HTTP/1.1\r\nHost: a\n\r\n",
	"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
	"GET /a%2Fb/%7e?q=%zz HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /!$&'()*+,;=:@ HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a? HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a?? HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET //a//b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
	"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
	"get / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nconnection: Close\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nx-lower: 1\r\nX-LOUD: 2\r\nx-lower: 3\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Spaces:   v  \t\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n: no name\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: \xff\xfe\r\n\r\n",
	"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
}

// stdParseRequest is what net/http's server makes of a request: its
// parser, then the checks its server adds (server.go, readRequest). It
// returns the request and how many bytes its head took.
func stdParseRequest(raw []byte) (*http.Request, int, error) {
	rd := bytes.NewReader(raw)
	br := bufio.NewReaderSize(rd, 4096)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, 0, err
	}
	consumed := len(raw) - rd.Len() - br.Buffered()
	if req.ProtoMajor != 1 {
		return nil, 0, errors.New("unsupported protocol version")
	}
	// http.ReadRequest drops Host from the map: count it in the head.
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	if _, err := tp.ReadLine(); err != nil {
		return nil, 0, err
	}
	mh, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, 0, err
	}
	hosts, haveHost := mh["Host"]
	if req.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && req.Method != http.MethodConnect {
		return nil, 0, errors.New("missing required Host header")
	}
	if len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]) {
		return nil, 0, errors.New("malformed Host header")
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, 0, errors.New("invalid header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, 0, errors.New("invalid header value")
			}
		}
	}
	return req, consumed, nil
}

// checkRequestParse holds the fast path's parse of raw to net/http's.
func checkRequestParse(t *testing.T, raw []byte) {
	br := bufio.NewReaderSize(bytes.NewReader(raw), h1ReadBuffer)
	head, res := readHead(br)
	var (
		r  = new(http.Request)
		hs headerState
		u  url.URL
	)
	if res == parseOK {
		res = parseRequest(head, r, &hs, &u)
	}
	if res != parseOK {
		return // net/http serves it, whatever it is
	}
	want, consumed, err := stdParseRequest(raw)
	if err != nil {
		t.Fatalf("fast path accepted %q; net/http refuses it: %v", raw, err)
	}
	if consumed != len(head) {
		t.Fatalf("%q: head of %d bytes; net/http read %d", raw, len(head), consumed)
	}
	if len(want.Header) == 0 {
		want.Header = http.Header{}
	}
	type fields struct {
		Method, Proto, Host, RequestURI string
		Major, Minor                    int
		URL                             url.URL
		Header                          http.Header
		ContentLength                   int64
		Close                           bool
		TE                              []string
	}
	got := fields{r.Method, r.Proto, r.Host, r.RequestURI, r.ProtoMajor, r.ProtoMinor, *r.URL, r.Header, r.ContentLength, r.Close, r.TransferEncoding}
	exp := fields{want.Method, want.Proto, want.Host, want.RequestURI, want.ProtoMajor, want.ProtoMinor, *want.URL, want.Header, want.ContentLength, want.Close, want.TransferEncoding}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("%q:\nfast path %+v\nnet/http  %+v", raw, got, exp)
	}
}

// TestParseRequestAsNetHTTP: every head the fast path accepts, it reads
// as net/http's server does; the rest it leaves to net/http.
func TestParseRequestAsNetHTTP(t *testing.T) {
	accepted := 0
	for _, s := range requestSeeds {
		checkRequestParse(t, []byte(s))
		br := bufio.NewReaderSize(strings.NewReader(s), h1ReadBuffer)
		if head, res := readHead(br); res == parseOK && parseRequest(head, new(http.Request), &headerState{}, &url.URL{}) == parseOK {
			accepted++
		}
	}
	if accepted < 15 {
		t.Errorf("the fast path accepted only %d of the seeds", accepted)
	}
	// Each byte in a path either stands for itself or goes to net/url.
	for c := 0x21; c < 0x7f; c++ {
		checkRequestParse(t, []byte("GET /a"+string(rune(c))+"b?q"+string(rune(c))+" HTTP/1.1\r\nHost: a\r\n\r\n"))
	}
	// Too large for the fast path's buffer: net/http's.
	big := "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", h1ReadBuffer) + "\r\n\r\n"
	if _, res := readHead(bufio.NewReaderSize(strings.NewReader(big), h1ReadBuffer)); res != parseFallback {
		t.Errorf("a head larger than the buffer: %v; want it left to net/http", res)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkRequestParse(t, raw) })
}

// responseSeeds are upstream heads (and bodies) the fast path must read
// as http.ReadResponse does, or leave to it.
var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
	"HTTP/1.1 200 OK\r\n\r\nuntil the end",
	"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Type: text/plain\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
	"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 20 OK\r\n\r\n",
	"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
	"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
	"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nKeep-Alive: timeout=5\r\nContent-Length: 1\r\n\r\nx",
}

type nopConn struct{ net.Conn }

func (nopConn) Close() error { return nil }

// checkResponseParse holds the fast path's reading of a response to
// http.ReadResponse's.
func checkResponseParse(t *testing.T, raw []byte, method string) {
	out := &http.Request{Method: method}
	br := bufio.NewReaderSize(bytes.NewReader(raw), 4<<10)
	var u upState
	if err := u.read(br, out); err != nil || u.viaNet {
		return // net/http's reading, or its error
	}
	want, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), out)
	if err != nil {
		t.Fatalf("fast path read %q; net/http refuses it: %v", raw, err)
	}
	dc := &h1Down{p: &Proxy{h1: &upstream{h1: &h1Transport{}}}}
	pc := &h1Conn{c: nopConn{}, br: br}
	b := &u.body
	*b = upBody{dc: dc, pc: pc, resp: &u.resp, stop: noStop, keep: !u.resp.Close, mode: b.mode, n: b.n}
	if b.mode == bodyChunked {
		b.r = httputil.NewChunkedReader(br)
	}
	var gotBody []byte
	var gotErr error
	if b.mode != bodyNone {
		gotBody, gotErr = io.ReadAll(b)
	}
	wantBody, wantErr := io.ReadAll(want.Body)
	_ = want.Body.Close()
	type fields struct {
		Code          int
		Header        http.Header
		ContentLength int64
		Close         bool
		TE            []string
		Body          string
		Failed        bool
		Trailer       http.Header
	}
	if len(want.Header) == 0 {
		want.Header = http.Header{}
	}
	got := fields{u.resp.StatusCode, u.resp.Header, u.resp.ContentLength, u.resp.Close, u.resp.TransferEncoding, string(gotBody), gotErr != nil, u.resp.Trailer}
	exp := fields{want.StatusCode, want.Header, want.ContentLength, want.Close, want.TransferEncoding, string(wantBody), wantErr != nil, want.Trailer}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("%s %q:\nfast path %+v\nnet/http  %+v", method, raw, got, exp)
	}
}

func TestParseResponseAsNetHTTP(t *testing.T) {
	for _, s := range responseSeeds {
		checkResponseParse(t, []byte(s), http.MethodGet)
		checkResponseParse(t, []byte(s), http.MethodHead)
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, raw []byte, head bool) {
		m := http.MethodGet
		if head {
			m = http.MethodHead
		}
		checkResponseParse(t, raw, m)
	})
}

// TestClassOf: every field of hopHeaders is in the hop-by-hop class, and
// the fields the parsers act on have their classes, the others none.
func TestClassOf(t *testing.T) {
	for _, k := range hopHeaders {
		if classOf(k)&fieldHop == 0 {
			t.Errorf("classOf(%q) lacks fieldHop", k)
		}
	}
	for _, c := range []struct {
		k    string
		want fieldClass
	}{
		{"Content-Length", fieldContentLength},
		{"Transfer-Encoding", fieldTransferEncoding | fieldHop},
		{"Connection", fieldConnection | fieldHop},
		{"Expect", fieldExpect},
		{"Upgrade", fieldUpgrade | fieldHop},
		{"Pragma", fieldPragma},
		{"Trailer", fieldTrailer | fieldHop},
		{"Te", fieldHop},
		{"User-Agent", 0},
		{"Content-Type", 0},
		{"content-length", 0}, // keys are canonical by then
	} {
		if got := classOf(c.k); got != c.want {
			t.Errorf("classOf(%q) = %b, want %b", c.k, got, c.want)
		}
	}
}

// BenchmarkParseHeads: the fast path's parsers on a service-to-service
// request head and its answer's (as the waypoint benchmark sends and gets).
func BenchmarkParseHeads(b *testing.B) {
	req := "GET /reviews/1 HTTP/1.1\r\nHost: reviews.default.svc.cluster.local:9080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nX-Request-Id: 5f0c3c9e-4e7b-4d6c-9c1e-0f6f1f5e2a11\r\n\r\n"
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nContent-Type: application/octet-stream\r\nDate: Mon, 30 Nov 2026 01:00:00 GMT\r\n\r\n"
	var (
		r  http.Request
		hs headerState
		u  url.URL
		up upState
	)
	b.ReportAllocs()
	for b.Loop() {
		if parseRequest(req, &r, &hs, &u) != parseOK || up.parse(resp, http.MethodGet) != parseOK {
			b.Fatal("not parsed")
		}
	}
}
