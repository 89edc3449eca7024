package ratelimit

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/model"
)

// BenchmarkAllow measures one decision. Shared rules (one bucket) and
// Distinct rules on a known client allocate nothing; a new client's first
// request allocates its bucket.
func BenchmarkAllow(b *testing.B) {
	shared := model.RateLimitRule{
		ClientSelectors: []model.RateLimitSelector{{SourceCIDR: &model.RateLimitSourceMatch{Value: "10.0.0.0/8"}}},
		Limit:           perSecond(model.MaxRateLimitRequests),
	}
	perIP := model.RateLimitRule{
		ClientSelectors: []model.RateLimitSelector{{SourceCIDR: &model.RateLimitSourceMatch{Type: model.MatchDistinct, Value: "0.0.0.0/0"}}},
		Limit:           perSecond(model.MaxRateLimitRequests),
	}
	perUser := model.RateLimitRule{
		ClientSelectors: []model.RateLimitSelector{{Headers: []model.RateLimitHeaderMatch{{Type: model.MatchDistinct, Name: "x-user-id"}}}},
		Limit:           perSecond(model.MaxRateLimitRequests),
	}
	req := &Request{Headers: header("X-User-Id", "alice"), SourceIP: netip.MustParseAddr("10.1.2.3")}
	for _, c := range []struct {
		name  string
		rules []model.RateLimitRule
	}{
		{"shared", []model.RateLimitRule{shared}},
		{"distinct-ip", []model.RateLimitRule{perIP}},
		{"distinct-header", []model.RateLimitRule{perUser}},
		{"shared+distinct", []model.RateLimitRule{shared, perIP, perUser}},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := mustCompile(b, policy(c.rules...))
			now := t0
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Microsecond)
				if !l.Allow(req, now).Allowed {
					b.Fatal("denied")
				}
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			l := mustCompile(b, policy(c.rules...))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				now := t0
				for pb.Next() {
					now = now.Add(time.Microsecond)
					l.Allow(req, now)
				}
			})
		})
	}
	b.Run("distinct-header/new-clients", func(b *testing.B) {
		l := mustCompile(b, policy(perUser))
		h := header()
		r := &Request{Headers: h}
		ids := make([]string, 4*MaxBuckets)
		for i := range ids {
			ids[i] = strconv.Itoa(i)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			h["X-User-Id"] = ids[i%len(ids) : i%len(ids)+1]
			i++
			l.Allow(r, t0)
		}
	})
}
