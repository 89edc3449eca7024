package waypoint_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/model"
)

// TestFilters: RequestRedirect, URLRewrite (prefix and full path, host)
// and RequestMirror, end to end.
func TestFilters(t *testing.T) {
	def, mirrorTo := newBackend(t, "reviews"), newBackend(t, "shadow")
	prefix := func(v string) []model.RouteMatch {
		return []model.RouteMatch{{Path: &model.PathMatch{Type: model.MatchPathPrefix, Value: v}}}
	}
	routes := []model.HTTPRoute{{Name: "filters", Namespace: "default", Rules: []model.RouteRule{
		{
			Matches: prefix("/old"),
			Filters: []model.Filter{{Type: model.FilterRequestRedirect, RequestRedirect: &model.RequestRedirect{
				Scheme: "https", Hostname: "reviews.example.com", Path: &model.PathModifier{Type: model.ReplacePrefixMatch, Value: "/new"}, StatusCode: 301,
			}}},
		},
		{
			Matches: prefix("/api/v1"),
			Filters: []model.Filter{{Type: model.FilterURLRewrite, URLRewrite: &model.URLRewrite{
				Hostname: "reviews-internal", Path: &model.PathModifier{Type: model.ReplacePrefixMatch, Value: "/"},
			}}},
			Backends: []model.Backend{{Cluster: "reviews"}},
		},
		{
			Matches:  prefix("/full"),
			Filters:  []model.Filter{{Type: model.FilterURLRewrite, URLRewrite: &model.URLRewrite{Path: &model.PathModifier{Type: model.ReplaceFullPath, Value: "/fixed"}}}},
			Backends: []model.Backend{{Cluster: "reviews"}},
		},
		{
			Matches:  prefix("/mirrored"),
			Filters:  []model.Filter{{Type: model.FilterRequestMirror, RequestMirror: &model.RequestMirror{Cluster: "shadow"}}},
			Backends: []model.Backend{{Cluster: "reviews"}},
		},
	}}}
	_, proxy := startProxy(t, reviewsConfig(routes, def.cluster(), mirrorTo.cluster()), reviewsVIP)
	c := client(t)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	resp, _ := get(t, c, proxy, http.MethodGet, "/old/page?x=1", nil)
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "https://reviews.example.com/new/page?x=1" {
		t.Errorf("redirect: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if def.hits.Load() != 0 {
		t.Error("a redirected request reached the backend")
	}
	resp, _ = get(t, c, proxy, http.MethodGet, "/api/v1/ratings?id=3", nil)
	if got := resp.Header.Get("X-Seen-Path"); got != "/ratings?id=3" || resp.Header.Get("X-Seen-Host") != "reviews-internal" {
		t.Errorf("prefix rewrite: backend saw %q on host %q; want /ratings?id=3 on reviews-internal", got, resp.Header.Get("X-Seen-Host"))
	}
	resp, _ = get(t, c, proxy, http.MethodGet, "/full/anything", nil)
	if got := resp.Header.Get("X-Seen-Path"); got != "/fixed" {
		t.Errorf("full-path rewrite: backend saw %q; want /fixed", got)
	}
	resp, _ = get(t, c, proxy, http.MethodGet, "/mirrored", nil)
	if resp.Header.Get("X-Backend") != "reviews" {
		t.Errorf("mirrored request answered by %q; want the primary backend", resp.Header.Get("X-Backend"))
	}
	eventually(t, func() bool { return mirrorTo.hits.Load() == 1 }, "the mirror to receive a copy")
	time.Sleep(10 * time.Millisecond)
	if mirrorTo.hits.Load() != 1 {
		t.Errorf("mirror got %d copies; want 1", mirrorTo.hits.Load())
	}
}
