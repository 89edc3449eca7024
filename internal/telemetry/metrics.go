package telemetry

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DurationBuckets are the upper bounds, in milliseconds, of
// istio_request_duration_milliseconds: Istio's (Envoy's) default buckets.
var DurationBuckets = []float64{
	0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
	60000, 300000, 600000, 1800000, 3600000,
}

// SizeBuckets are the upper bounds, in bytes, of istio_request_bytes and
// istio_response_bytes.
var SizeBuckets = []float64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000}

// Metrics holds Istio's standard metrics for one proxy, in a Prometheus
// registry of its own. It is safe for concurrent use.
type Metrics struct {
	reporter string
	reg      *prometheus.Registry

	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	requestSize  *prometheus.HistogramVec
	responseSize *prometheus.HistogramVec

	tcpOpened   *prometheus.CounterVec
	tcpClosed   *prometheus.CounterVec
	tcpSent     *prometheus.CounterVec
	tcpReceived *prometheus.CounterVec

	// httpSeries maps httpKey to *httpSeries, tcpSeries tcpKey to *tcpSeries:
	// the metric handles of every label set seen, so that a label set seen
	// before costs a lookup (no allocation), not WithLabelValues' hashing,
	// allocation and locking.
	httpSeries sync.Map
	tcpSeries  sync.Map
}

type httpSeries struct {
	requests     prometheus.Counter
	duration     prometheus.Observer
	requestSize  prometheus.Observer
	responseSize prometheus.Observer
}

type tcpSeries struct {
	opened, closed, sent, received prometheus.Counter
}

// NewMetrics returns the metrics of a proxy reporting as reporter
// ([ReporterWaypoint] for the waypoint; empty is reported as [Unknown]).
func NewMetrics(reporter string) *Metrics {
	m := &Metrics{
		reporter: or(reporter, Unknown),
		reg:      prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "istio_requests_total",
			Help: "Requests handled by the proxy.",
		}, httpLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "istio_request_duration_milliseconds",
			Help:    "Duration of requests, in milliseconds.",
			Buckets: DurationBuckets,
		}, httpLabels),
		requestSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "istio_request_bytes",
			Help:    "Sizes of requests, in bytes.",
			Buckets: SizeBuckets,
		}, httpLabels),
		responseSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "istio_response_bytes",
			Help:    "Sizes of responses, in bytes.",
			Buckets: SizeBuckets,
		}, httpLabels),
		tcpOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "istio_tcp_connections_opened_total",
			Help: "TCP connections opened.",
		}, tcpLabels),
		tcpClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "istio_tcp_connections_closed_total",
			Help: "TCP connections closed.",
		}, tcpLabels),
		tcpSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "istio_tcp_sent_bytes_total",
			Help: "Bytes sent to the downstream of TCP connections.",
		}, tcpLabels),
		tcpReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "istio_tcp_received_bytes_total",
			Help: "Bytes received from the downstream of TCP connections.",
		}, tcpLabels),
	}
	m.reg.MustRegister(m.requests, m.duration, m.requestSize, m.responseSize,
		m.tcpOpened, m.tcpClosed, m.tcpSent, m.tcpReceived)
	return m
}

// Registry is the registry the metrics are in, for a proxy to add collectors
// of its own (Go runtime, process) to the same scrape.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats (the text
// format unless the scraper asks for another).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ObserveRequest records one finished HTTP or gRPC request. A nil r records
// nothing.
func (m *Metrics) ObserveRequest(r *RequestInfo) {
	if r == nil {
		return
	}
	m.httpSeriesFor(r).observe(r)
}

// HTTPSeries is the metric handles of one label set: a caller that sees
// the same labels request after request (a connection's) keeps it and
// records with [HTTPSeries.Observe], sparing the label set's lookup.
type HTTPSeries struct{ s *httpSeries }

// Series returns the handles of r's label set.
func (m *Metrics) Series(r *RequestInfo) HTTPSeries { return HTTPSeries{m.httpSeriesFor(r)} }

// Observe records r, whose labels must be the series' (only its duration
// and sizes are read), as ObserveRequest would.
func (h HTTPSeries) Observe(r *RequestInfo) { h.s.observe(r) }

func (s *httpSeries) observe(r *RequestInfo) {
	s.requests.Inc()
	d := r.Duration
	if d < 0 {
		d = 0
	}
	s.duration.Observe(float64(d) / float64(time.Millisecond))
	s.requestSize.Observe(float64(max(r.RequestBytes, 0)))
	s.responseSize.Observe(float64(max(r.ResponseBytes, 0)))
}

// ObserveTCPOpen records a TCP connection opened (after its peer is known,
// as Istio does). A nil c records nothing.
func (m *Metrics) ObserveTCPOpen(c *TCPInfo) {
	if c == nil {
		return
	}
	m.tcpSeriesFor(c).opened.Inc()
}

// ObserveTCPBytes adds bytes a live TCP connection moved since the last call:
// sent to its downstream and received from it. Istio reports long-lived
// connections every 5s this way, so their traffic shows before they close.
// Negative counts are ignored. A nil c records nothing.
func (m *Metrics) ObserveTCPBytes(c *TCPInfo, sent, received int64) {
	if c == nil || (sent <= 0 && received <= 0) {
		return
	}
	addBytes(m.tcpSeriesFor(c), sent, received)
}

// ObserveTCPClose records a TCP connection closed, with the bytes it moved
// since the last [Metrics.ObserveTCPBytes] (all of them, if there was none).
// Negative counts are ignored. A nil c records nothing.
func (m *Metrics) ObserveTCPClose(c *TCPInfo, sent, received int64) {
	if c == nil {
		return
	}
	s := m.tcpSeriesFor(c)
	addBytes(s, sent, received)
	s.closed.Inc()
}

func addBytes(s *tcpSeries, sent, received int64) {
	if sent > 0 {
		s.sent.Add(float64(sent))
	}
	if received > 0 {
		s.received.Add(float64(received))
	}
}

func (m *Metrics) httpSeriesFor(r *RequestInfo) *httpSeries {
	k := httpKeyOf(r)
	if s, ok := m.httpSeries.Load(k); ok {
		return s.(*httpSeries)
	}
	lv := k.values(m.reporter)
	s, _ := m.httpSeries.LoadOrStore(k, &httpSeries{
		requests:     m.requests.WithLabelValues(lv...),
		duration:     m.duration.WithLabelValues(lv...),
		requestSize:  m.requestSize.WithLabelValues(lv...),
		responseSize: m.responseSize.WithLabelValues(lv...),
	})
	return s.(*httpSeries)
}

func (m *Metrics) tcpSeriesFor(c *TCPInfo) *tcpSeries {
	k := tcpKeyOf(&c.Source, &c.Destination, &c.Service, c.ResponseFlags, c.ConnectionSecurityPolicy)
	if s, ok := m.tcpSeries.Load(k); ok {
		return s.(*tcpSeries)
	}
	lv := validUTF8(k.values(m.reporter, ProtocolTCP))
	s, _ := m.tcpSeries.LoadOrStore(k, &tcpSeries{
		opened:   m.tcpOpened.WithLabelValues(lv...),
		closed:   m.tcpClosed.WithLabelValues(lv...),
		sent:     m.tcpSent.WithLabelValues(lv...),
		received: m.tcpReceived.WithLabelValues(lv...),
	})
	return s.(*tcpSeries)
}
