package waypoint

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/model"
)

// h1Case is a request a client sends and the answer the backend gives.
type h1Case struct {
	name, req, resp string
}

// h1Scenario is requests a client sends on one connection (pipelined),
// the answer the backend gives to each (after delay), and a change to the
// configuration.
type h1Scenario struct {
	name   string
	reqs   []string
	resp   string
	delay  time.Duration
	hangUp bool // the backend closes the connection after each answer
	config func(w *model.Waypoint)
	tries  int // requests the backend must see, if not one per request
}

// Answers of unknown length carry a Content-Type: net/http sniffs one
// only if the first body bytes win the race with ReverseProxy's first
// flush of the head; the fast path sends the head at once.
var h1Cases = []h1Case{
	{"plain", "GET /reviews/1?x=1 HTTP/1.1\r\nHost: reviews:9080\r\nUser-Agent: curl\r\nAccept: */*\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"},
	{"hop-by-hop and forwarding fields", "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Foo, keep-alive\r\nX-Foo: 1\r\nKeep-Alive: 5\r\n" +
		"Proxy-Connection: x\r\nTe: trailers, deflate\r\nForwarded: for=1.2.3.4\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Host: h\r\n" +
		"X-Forwarded-Proto: https\r\nProxy-Authorization: basic x\r\nX-Keep: yes\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: X-Bar\r\nX-Bar: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: x\r\nUpgrade: foo\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok"},
	{"no user agent, odd query and path", "GET /a%2Fb/caf%C3%A9/%7e?a=1;b=2&c=%zz HTTP/1.1\r\nHost: a\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"force query", "GET /a? HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"escaped path", "GET /a%20b/!*'()/%41 HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"post", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
		"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nyes"},
	{"put empty", "PUT /p HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"delete with length 0", "DELETE /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"pragma", "GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n"},
	{"repeated fields", "GET / HTTP/1.1\r\nHost: a\r\nAccept: a\r\nCookie: x=1\r\naccept: b\r\nCookie: y=2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 0\r\n\r\n"},
	{"chunked with trailers", "GET / HTTP/1.1\r\nHost: a\r\nTe: trailers\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"},
	{"chunked with declared trailers", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Trailer\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"},
	{"until close", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nall of it"},
	{"204 with length", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n"},
	{"304", "GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: x\r\n\r\n", "HTTP/1.1 304 Not Modified\r\nContent-Type: text/plain\r\nEtag: x\r\n\r\n"},
	{"head", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"},
	{"sniffed", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n<html>hi</html>"},
	{"encoded, not sniffed", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc"},
	{"early hints", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	{"folded response field", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok"},
	{"HTTP/1.0 answer", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	{"bad length", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"},
	{"unknown coding", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nabc"},
	{"unknown status", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 299 Whatever\r\nContent-Length: 0\r\n\r\n"},
	{"event stream", "GET /events HTTP/1.1\r\nHost: a\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n7\r\ndata: 1\r\n0\r\n\r\n"},
	{"client closes", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	{"large body", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("0123456789", 10000)},
	{"large chunked", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\n\r\n" + strings.Repeat("z", 70000),
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("2710\r\n"+strings.Repeat("y", 10000)+"\r\n", 7) + "0\r\n\r\n"},
	{"chunked request (net/http's)", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
}

// seenRequest is what the backend saw of a request.
type seenRequest struct {
	Method, URI, Host string
	Header            http.Header
	ContentLength     int64
	TE                []string
	Body              string
}

// cannedBackend answers every request with the same raw bytes, closing
// the connection after a close-delimited answer, and records what it saw.
func cannedBackend(t *testing.T, resp string, delay time.Duration, hangUp bool) (addr string, seen func() []seenRequest) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var mu sync.Mutex
	var reqs []seenRequest
	closing := hangUp || !strings.Contains(resp, "Content-Length") && !strings.Contains(resp, "chunked") && strings.Contains(resp, " 200 ")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body, _ := io.ReadAll(r.Body)
					h := r.Header.Clone()
					delete(h, "Traceparent") // random; checked below
					if r.Header.Get("Traceparent") == "" {
						h.Set("X-Missing-Traceparent", "1")
					}
					mu.Lock()
					reqs = append(reqs, seenRequest{r.Method, r.RequestURI, r.Host, h, r.ContentLength, r.TransferEncoding, string(body)})
					mu.Unlock()
					time.Sleep(delay)
					if _, err := io.WriteString(c, resp); err != nil || closing {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func() []seenRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]seenRequest(nil), reqs...)
	}
}

// seenResponse is what the client saw of an answer.
type seenResponse struct {
	Status        int
	Header        http.Header
	ContentLength int64
	TE            []string
	Close         bool
	Body          string
	Trailer       http.Header
	Err           string
}

// sendRaw writes reqs at once on a new connection and reads the answers.
func sendRaw(t *testing.T, addr string, reqs ...string) []seenResponse {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, strings.Join(reqs, "")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var got []seenResponse
	for _, req := range reqs {
		method, _, _ := strings.Cut(req, " ")
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		for err == nil && resp.StatusCode == http.StatusContinue {
			_ = resp.Body.Close()
			resp, err = http.ReadResponse(br, &http.Request{Method: method})
		}
		if err != nil {
			got = append(got, seenResponse{Err: err.Error()})
			break
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		s := seenResponse{Status: resp.StatusCode, Header: resp.Header, ContentLength: resp.ContentLength, TE: resp.TransferEncoding, Close: resp.Close, Body: string(body), Trailer: resp.Trailer}
		if err != nil {
			s.Err = err.Error()
		}
		delete(s.Header, "Date")
		got = append(got, s)
	}
	return got
}

// TestFastPathAsNetHTTP: for each case, the backend and the client see
// the same through the fast path as through net/http's server and
// httputil.ReverseProxy.
func TestFastPathAsNetHTTP(t *testing.T) {
	for _, tc := range h1Cases {
		bothPaths(t, h1Scenario{name: tc.name, reqs: []string{tc.req}, resp: tc.resp})
	}
	for _, sc := range h1Scenarios {
		bothPaths(t, sc)
	}
}

func bothPaths(t *testing.T, sc h1Scenario) {
	t.Run(sc.name, func(t *testing.T) {
		var (
			seen [2][]seenRequest
			got  [2][]seenResponse
		)
		for i, netOnly := range []bool{false, true} {
			backend, backendSeen := cannedBackend(t, sc.resp, sc.delay, sc.hangUp)
			w := &model.Waypoint{
				Name: "waypoint", Namespace: "default",
				Services: []model.Service{{Name: "reviews", Namespace: "default", Addresses: []string{"10.96.0.20"},
					Ports: []model.ServicePort{{Name: "http", Port: 9080, Protocol: model.ProtocolHTTP, Cluster: "reviews"}}}},
				Clusters: []model.Cluster{{Name: "reviews", Endpoints: []model.Endpoint{{Address: backend}}}},
			}
			if sc.config != nil {
				sc.config(w)
			}
			p := &Proxy{Logf: t.Logf, netHTTPOnly: netOnly}
			if err := p.Load(w); err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = p.ServeListener(ln, "10.96.0.20:9080") }()
			got[i] = sendRaw(t, ln.Addr().String(), sc.reqs...)
			seen[i] = backendSeen()
			_ = ln.Close()
			_ = p.Close()
		}
		for i := range got {
			for j := range got[i] {
				if got[i][j].Err != "" {
					// An answer cut short fails for the client either way:
					// net/http drops a small response's buffered head, the
					// fast path has sent it.
					got[i][j] = seenResponse{Err: "failed"}
				}
			}
		}
		if !reflect.DeepEqual(seen[0], seen[1]) {
			t.Errorf("the backend saw\nfast path %+v\nnet/http  %+v", seen[0], seen[1])
		}
		if !reflect.DeepEqual(got[0], got[1]) {
			t.Errorf("the client saw\nfast path %+v\nnet/http  %+v", got[0], got[1])
		}
		if sc.tries > 0 && len(seen[0]) != sc.tries {
			t.Errorf("the backend saw %d requests; want %d", len(seen[0]), sc.tries)
		}
		if len(got[0]) != len(sc.reqs) {
			t.Errorf("%d answers to %d requests", len(got[0]), len(sc.reqs))
		}
	})
}

func withRoute(rule model.RouteRule) func(w *model.Waypoint) {
	return func(w *model.Waypoint) {
		if len(rule.Backends) == 0 && rule.Fault == nil && len(rule.Filters) == 0 {
			rule.Backends = []model.Backend{{Cluster: "reviews"}}
		}
		w.Services[0].Ports[0].Routes = []model.HTTPRoute{{Name: "r", Namespace: "default", Rules: []model.RouteRule{rule}}}
	}
}

const okResp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

var h1Scenarios = []h1Scenario{
	{name: "pipelined", reqs: []string{
		"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"HEAD /3 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"GET /5 HTTP/1.1\r\nHost: a\r\n\r\n", // after close: never answered
	}, resp: okResp},
	{name: "POST with an extra CRLF", reqs: []string{
		"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\r\n",
		"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
	}, resp: okResp},
	{name: "handed to net/http mid-connection", reqs: []string{
		"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /2 HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
		"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
	}, resp: okResp},
	{name: "malformed", reqs: []string{"GET /1 HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n"}, resp: okResp},
	{name: "obs-fold", reqs: []string{"GET /1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n"}, resp: okResp},
	{name: "smuggling attempt", reqs: []string{
		"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
	}, resp: okResp},
	{name: "expect", reqs: []string{"POST /1 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"}, resp: okResp},
	{name: "denied, body unread", reqs: []string{
		"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		"HEAD /2 HTTP/1.1\r\nHost: a\r\nX-Deny: 1\r\n\r\n",
		"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
	}, resp: okResp, config: func(w *model.Waypoint) {
		w.Policies = []model.AuthorizationPolicy{{Name: "get-only", Namespace: "default", Action: model.ActionAllow,
			Rules: []model.Rule{{To: []model.Operation{{Methods: []string{"GET"}}}}}}}
	}},
	{name: "redirect", reqs: []string{"GET /old/x?y=1 HTTP/1.1\r\nHost: reviews:9080\r\n\r\n"}, resp: okResp,
		config: withRoute(model.RouteRule{Filters: []model.Filter{{Type: model.FilterRequestRedirect, RequestRedirect: &model.RequestRedirect{
			Scheme: "https", Hostname: "reviews.example.com", StatusCode: 301,
		}}}})},
	{name: "header modifiers and rewrite", reqs: []string{"GET /api/x HTTP/1.1\r\nHost: reviews:9080\r\nX-Remove: 1\r\nX-Set: old\r\n\r\n"},
		resp: "HTTP/1.1 200 OK\r\nX-Resp-Remove: 1\r\nContent-Length: 2\r\n\r\nok",
		config: withRoute(model.RouteRule{Filters: []model.Filter{
			{Type: model.FilterRequestHeaderModifier, HeaderModifier: &model.HeaderModifier{
				Set: []model.Header{{Name: "X-Set", Value: "new"}}, Add: []model.Header{{Name: "x-added", Value: "a"}}, Remove: []string{"X-Remove"}}},
			{Type: model.FilterResponseHeaderModifier, HeaderModifier: &model.HeaderModifier{
				Set: []model.Header{{Name: "X-Resp", Value: "r"}}, Remove: []string{"X-Resp-Remove"}}},
			{Type: model.FilterURLRewrite, URLRewrite: &model.URLRewrite{Hostname: "internal", Path: &model.PathModifier{Type: model.ReplaceFullPath, Value: "/fixed"}}},
		}, Backends: []model.Backend{{Cluster: "reviews"}}})},
	{name: "fault abort", reqs: []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"}, resp: okResp,
		config: withRoute(model.RouteRule{Fault: &model.Fault{Abort: &model.FaultAbort{Percent: 100, HTTPStatus: http.StatusTeapot}}})},
	{name: "rate limited", reqs: []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"}, resp: okResp,
		config: func(w *model.Waypoint) {
			w.Services[0].RateLimits = []model.LocalRateLimit{{Name: "one", Namespace: "default",
				Rules: []model.RateLimitRule{{Limit: model.RateLimitValue{Requests: 1, Unit: model.RateLimitHour}}}}}
		}},
	{name: "request timeout", reqs: []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n"}, resp: okResp, delay: 300 * time.Millisecond,
		config: withRoute(model.RouteRule{Timeouts: model.Timeouts{Request: model.Duration(50 * time.Millisecond)}})},
	{name: "body cut short", reqs: []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n"}, hangUp: true,
		resp: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nabc"},
	{name: "chunked body cut short", reqs: []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n"}, hangUp: true,
		resp: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"},
	{name: "retried POST", reqs: []string{"POST /r HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"},
		resp:   "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nbusy",
		config: withRoute(model.RouteRule{Retry: &model.Retry{Attempts: 2, Codes: []int{503}, Backoff: model.Duration(time.Millisecond)}}), tries: 3},
	{name: "dead endpoint", reqs: []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n"}, resp: okResp,
		config: func(w *model.Waypoint) { w.Clusters[0].Endpoints[0].Address = "127.0.0.1:1" }},
	{name: "no healthy endpoint", reqs: []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n"}, resp: okResp,
		config: func(w *model.Waypoint) { w.Clusters[0].Endpoints[0].Unhealthy = true }},
}
