package push

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the push server's Prometheus metrics, named after istiod's so
// that its dashboards and alerts carry over: pilot_xds (connected proxies),
// pilot_xds_pushes, pilot_total_xds_rejects and pilot_proxy_convergence_time
// (here: from a response sent to its ACK).
type Metrics struct {
	proxies     prometheus.Gauge
	pushes      *prometheus.CounterVec
	rejects     *prometheus.CounterVec
	slowAborts  prometheus.Counter
	convergence *prometheus.HistogramVec
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		proxies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pilot_xds", Help: "Number of proxies connected to this control plane.",
		}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_pushes", Help: "Responses pushed to proxies, by resource type.",
		}, []string{"type"}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_total_xds_rejects", Help: "Responses proxies rejected (NACK), by resource type.",
		}, []string{"type"}),
		slowAborts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshway_xds_slow_disconnects_total", Help: "Streams closed because the proxy did not answer a response in time.",
		}),
		convergence: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pilot_proxy_convergence_time", Help: "Seconds from a response sent to its ACK.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30},
		}, []string{"type"}),
	}
	reg.MustRegister(m.proxies, m.pushes, m.rejects, m.slowAborts, m.convergence)
	return m
}

// The methods accept a nil *Metrics, so a server without metrics skips them.

func (m *Metrics) connected() {
	if m != nil {
		m.proxies.Inc()
	}
}

func (m *Metrics) disconnected() {
	if m != nil {
		m.proxies.Dec()
	}
}

func (m *Metrics) pushed(typeURL string) {
	if m != nil {
		m.pushes.WithLabelValues(shortType(typeURL)).Inc()
	}
}

func (m *Metrics) rejected(typeURL string) {
	if m != nil {
		m.rejects.WithLabelValues(shortType(typeURL)).Inc()
	}
}

func (m *Metrics) acked(typeURL string, d time.Duration) {
	if m != nil {
		m.convergence.WithLabelValues(shortType(typeURL)).Observe(d.Seconds())
	}
}

func (m *Metrics) slow() {
	if m != nil {
		m.slowAborts.Inc()
	}
}
