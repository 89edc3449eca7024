package waypoint

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/meshway/meshway/internal/model"
)

// maxMirrorsInFlight bounds the mirrored requests outstanding; more are
// dropped (mirroring is best effort, it must not pile up behind a slow
// mirror).
const maxMirrorsInFlight = 1024

// mirror is a request copy to send once the route is decided.
type mirror struct {
	cl      *cluster
	percent float64
}

// runFilters applies a rule's (or backend's) filters in order. matched is
// the path prefix the rule matched on (for ReplacePrefixMatch). It returns
// false when a filter answered the request itself (a redirect).
func runFilters(w http.ResponseWriter, r *http.Request, x *exchange, cfg *config, filters []model.Filter, matched string) bool {
	for i := range filters {
		f := &filters[i]
		switch f.Type {
		case model.FilterRequestHeaderModifier:
			modifyHeader(r.Header, f.HeaderModifier)
		case model.FilterResponseHeaderModifier:
			x.respMods = append(x.respMods, f.HeaderModifier)
		case model.FilterRequestRedirect:
			redirect(w, r, f.RequestRedirect, matched)
			return false
		case model.FilterURLRewrite:
			if h := f.URLRewrite.Hostname; h != "" {
				r.Host = h
			}
			if p := f.URLRewrite.Path; p != nil {
				r.URL.Path = rewritePath(r.URL.Path, p, matched)
				r.URL.RawPath = ""
			}
		case model.FilterRequestMirror:
			if cl := cfg.clusters[f.RequestMirror.Cluster]; cl != nil {
				x.mirrors = append(x.mirrors, mirror{cl: cl, percent: f.RequestMirror.Percent})
			}
		}
	}
	return true
}

// rewritePath applies a path modifier.
func rewritePath(path string, p *model.PathModifier, matched string) string {
	if p.Type == model.ReplaceFullPath || matched == "" {
		return p.Value
	}
	rest := strings.TrimPrefix(path, strings.TrimSuffix(matched, "/"))
	switch {
	case rest == "":
		return p.Value
	case p.Value == "/":
		return rest
	}
	return strings.TrimSuffix(p.Value, "/") + rest
}

// redirect answers with the Gateway API's RequestRedirect.
func redirect(w http.ResponseWriter, r *http.Request, rr *model.RequestRedirect, matched string) {
	scheme := "http"
	if rr.Scheme != "" {
		scheme = rr.Scheme
	}
	host, port := r.Host, ""
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		host, port = h, p
	}
	if rr.Hostname != "" {
		host = rr.Hostname
	}
	switch {
	case rr.Port != 0:
		port = strconv.Itoa(int(rr.Port))
	case rr.Scheme != "":
		port = "" // the new scheme's well-known port
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	}
	path := r.URL.Path
	if rr.Path != nil {
		path = rewritePath(path, rr.Path, matched)
	}
	loc := scheme + "://" + host + path
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	code := rr.StatusCode
	if code == 0 {
		code = http.StatusFound
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(code)
}

// matchedPrefix returns the longest PathPrefix of the rule's matches that
// the request path starts with, element-wise; "" if none.
func matchedPrefix(rule *model.RouteRule, path string) string {
	best := ""
	for _, m := range rule.Matches {
		if m.Path == nil || m.Path.Type != model.MatchPathPrefix {
			continue
		}
		v := strings.TrimSuffix(m.Path.Value, "/")
		if (path == v || strings.HasPrefix(path, v+"/") || v == "") && len(v) >= len(best) {
			best = m.Path.Value
		}
	}
	return best
}

// sendMirrors sends copies of r to the mirror clusters, with Envoy's
// "-shadow" suffix on the host, and ignores the answers. A copy goes to
// its cluster as a request to d would (upstreamFor: HTTP/1.1 or h2c; plain
// TCP or HBONE as the endpoint says, under the cluster's per-connection
// limit). Requests with a body larger than maxReplayBody are not mirrored.
func (p *Proxy) sendMirrors(r *http.Request, x *exchange, d *dest) {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength < 0 || r.ContentLength > maxReplayBody {
			return
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, maxReplayBody+1))
		_ = r.Body.Close()
		if err != nil {
			return
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	for _, m := range x.mirrors {
		if m.percent > 0 && rand.Float64()*100 >= m.percent {
			continue
		}
		h := m.cl.pick(r, x.src, nil)
		if h == nil {
			continue
		}
		select {
		case p.mirrorSlots <- struct{}{}:
		default:
			continue // too many outstanding: drop
		}
		release, ok := m.cl.admitNow()
		if !ok {
			<-p.mirrorSlots
			continue // the mirror cluster's circuit breaker is open: drop
		}
		up := p.upstreamFor(d, r, m.cl)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out := r.Clone(context.WithValue(ctx, exchangeKey{}, &exchange{host: h, cl: m.cl, src: x.src}))
		out.RequestURI = ""
		out.URL.Scheme, out.URL.Host = "http", h.ep.Address
		host := r.Host
		if hn, port, err := net.SplitHostPort(host); err == nil {
			host = net.JoinHostPort(hn+"-shadow", port)
		} else {
			host += "-shadow"
		}
		out.Host = host
		// As ReverseProxy sends the request itself: no hop-by-hop fields
		// (HTTP/2 refuses them), but "te: trailers", which gRPC needs.
		trailers := httpguts.HeaderValuesContainsToken(out.Header["Te"], "trailers")
		removeHopByHop(out.Header)
		if trailers {
			out.Header.Set("Te", "trailers")
		}
		out.Close = false
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
		}
		go func() {
			defer func() { <-p.mirrorSlots }()
			defer release()
			defer cancel()
			resp, err := up.base.RoundTrip(out)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}()
	}
}
