package waypoint_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/meshway/meshway/internal/model"
)

// TestRateLimit429: a LocalRateLimitPolicy on the service, one bucket per
// X-User value: the third request of a user within the minute gets 429
// with retry-after, another user still passes, and a configuration push
// does not refill the buckets.
func TestRateLimit429(t *testing.T) {
	b := newBackend(t, "reviews")
	w := reviewsConfig(nil, b.cluster())
	w.Services[0].RateLimits = []model.LocalRateLimit{{
		Name: "per-user", Namespace: "default",
		Rules: []model.RateLimitRule{{
			ClientSelectors: []model.RateLimitSelector{{Headers: []model.RateLimitHeaderMatch{{Type: model.MatchDistinct, Name: "X-User"}}}},
			Limit:           model.RateLimitValue{Requests: 2, Unit: model.RateLimitMinute},
		}},
	}}
	p, proxy := startProxy(t, w, reviewsVIP)
	c := client(t)
	as := func(user string) (reply, string) {
		return get(t, c, proxy, http.MethodGet, "/", http.Header{"X-User": {user}})
	}
	for i := range 2 {
		if resp, _ := as("jason"); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d of 2 allowed: %d", i, resp.StatusCode)
		}
	}
	resp, body := as("jason")
	if resp.StatusCode != http.StatusTooManyRequests || body != "local_rate_limited" {
		t.Fatalf("third request: %d %q; want 429 local_rate_limited", resp.StatusCode, body)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 30 {
		t.Errorf("retry-after %q; want the seconds until a token is back (1-30 at 2/min)", resp.Header.Get("Retry-After"))
	}
	if resp, _ := as("ana"); resp.StatusCode != http.StatusOK {
		t.Errorf("another user: %d; want her own bucket", resp.StatusCode)
	}
	if err := p.Load(w); err != nil { // the same policy pushed again
		t.Fatal(err)
	}
	if resp, _ := as("jason"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("after a configuration push: %d; want the bucket kept (429)", resp.StatusCode)
	}
	if got := b.hits.Load(); got != 3 {
		t.Errorf("backend saw %d requests; want the 3 allowed", got)
	}
}
