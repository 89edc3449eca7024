package waypoint

// Tests of the cluster's internals, inside the package.

import (
	"testing"
	"time"

	"github.com/meshway/meshway/internal/model"
)

// TestEjectionTime: Envoy's ejection time — the base time times the
// ejections, capped at 300s (or the base time if longer), the count
// lowered by one for each interval spent in the pool since the last
// ejection ended.
func TestEjectionTime(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name      string
		o         model.OutlierDetection
		ejections int
		returned  time.Duration // before now; 0: never returned
		want      time.Duration
	}{
		{"first", model.OutlierDetection{}, 0, 0, 30 * time.Second},
		{"second at once", model.OutlierDetection{}, 1, time.Millisecond, 60 * time.Second},
		{"capped at 300s", model.OutlierDetection{}, 12, time.Millisecond, 300 * time.Second},
		{"a long base is its own cap", model.OutlierDetection{BaseEjectionTime: model.Duration(400 * time.Second)}, 3, time.Millisecond, 400 * time.Second},
		{"two intervals healthy take two off", model.OutlierDetection{}, 3, 25 * time.Second, 60 * time.Second},
		{"long health starts over", model.OutlierDetection{Interval: model.Duration(time.Second)}, 5, time.Minute, 30 * time.Second},
	}
	for _, tc := range cases {
		c := &cluster{outlier: &tc.o}
		h := &host{ejections: tc.ejections}
		if tc.returned > 0 {
			h.returned = now.Add(-tc.returned)
		}
		if got := c.ejectionTime(h, now); got != tc.want {
			t.Errorf("%s: ejection time %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestHandedOverEjectionThatEnded: an endpoint whose ejection ended while
// nobody picked it, handed to a new configuration's cluster, is back in the
// pool without the cluster's count of ejected endpoints going below zero
// (which would let more than maxEjectionPercent be ejected).
func TestHandedOverEjectionThatEnded(t *testing.T) {
	mc := &model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: "10.0.0.1:80"}, {Address: "10.0.0.2:80"}},
		OutlierDetection: &model.OutlierDetection{Consecutive5xxErrors: 1}}
	prev := newCluster(mc, nil)
	prev.hosts[0].ejectedUntil = time.Now().Add(-time.Second)
	prev.hosts[0].ejections = 1
	prev.ejected = 1
	c := newCluster(mc, prev)
	now := time.Now()
	for _, h := range c.hosts {
		if c.isEjected(h, now) {
			t.Errorf("%s ejected", h.ep.Address)
		}
	}
	if c.ejected != 0 {
		t.Errorf("ejected count %d, want 0", c.ejected)
	}
	if c.hosts[0].returned.IsZero() || c.hosts[0].ejections != 1 {
		t.Errorf("the endpoint's history was lost: returned %v, ejections %d", c.hosts[0].returned, c.hosts[0].ejections)
	}
}
