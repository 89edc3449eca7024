package telemetry

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches m's Handler as Prometheus does and parses the text format.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/stats/prometheus", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape Content-Type %q, want text/plain", ct)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parsing the scrape: %v\n%s", err, body)
	}
	return fams
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func labelNames(m *dto.Metric) []string {
	var names []string
	for _, lp := range m.GetLabel() {
		names = append(names, lp.GetName())
	}
	slices.Sort(names)
	return names
}

// the one series of name, failing unless there is exactly one.
func only(t *testing.T, fams map[string]*dto.MetricFamily, name string) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no %s in the scrape", name)
	}
	if len(f.GetMetric()) != 1 {
		t.Fatalf("%s has %d series, want 1", name, len(f.GetMetric()))
	}
	return f.GetMetric()[0]
}

func fullRequest() *RequestInfo {
	return &RequestInfo{
		Source: Workload{
			Name: "productpage-v1", Namespace: "bookinfo",
			Principal: "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage",
			App:       "productpage", Version: "v1",
			CanonicalService: "productpage", CanonicalRevision: "v1", Cluster: "Kubernetes",
		},
		Destination: Workload{
			Name: "reviews-v2", Namespace: "bookinfo",
			Principal: "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews",
			App:       "reviews", Version: "v2",
			CanonicalService: "reviews", CanonicalRevision: "v2", Cluster: "Kubernetes",
		},
		Service:                  Service{Host: "reviews.bookinfo.svc.cluster.local", Name: "reviews", Namespace: "bookinfo"},
		Protocol:                 ProtocolHTTP,
		ResponseCode:             200,
		ConnectionSecurityPolicy: SecurityMutualTLS,
		Duration:                 7 * time.Millisecond,
		RequestBytes:             120,
		ResponseBytes:            2048,
	}
}

func TestRequestLabels(t *testing.T) {
	m := NewMetrics(ReporterWaypoint)
	m.ObserveRequest(fullRequest())
	fams := scrape(t, m)

	want := map[string]string{
		"reporter":                       "waypoint",
		"source_workload":                "productpage-v1",
		"source_workload_namespace":      "bookinfo",
		"source_principal":               "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage",
		"source_app":                     "productpage",
		"source_version":                 "v1",
		"source_canonical_service":       "productpage",
		"source_canonical_revision":      "v1",
		"source_cluster":                 "Kubernetes",
		"destination_workload":           "reviews-v2",
		"destination_workload_namespace": "bookinfo",
		"destination_principal":          "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews",
		"destination_app":                "reviews",
		"destination_version":            "v2",
		"destination_canonical_service":  "reviews",
		"destination_canonical_revision": "v2",
		"destination_service":            "reviews.bookinfo.svc.cluster.local",
		"destination_service_name":       "reviews",
		"destination_service_namespace":  "bookinfo",
		"destination_cluster":            "Kubernetes",
		"request_protocol":               "http",
		"response_code":                  "200",
		"grpc_response_status":           "",
		"response_flags":                 "-",
		"connection_security_policy":     "mutual_tls",
	}
	for name, typ := range map[string]dto.MetricType{
		"istio_requests_total":                dto.MetricType_COUNTER,
		"istio_request_duration_milliseconds": dto.MetricType_HISTOGRAM,
		"istio_request_bytes":                 dto.MetricType_HISTOGRAM,
		"istio_response_bytes":                dto.MetricType_HISTOGRAM,
	} {
		if got := fams[name].GetType(); got != typ {
			t.Errorf("%s is a %v, want %v", name, got, typ)
		}
		series := only(t, fams, name)
		// grpc_response_status="" is written, as Envoy writes it.
		if diff := cmp.Diff(want, labelMap(series)); diff != "" {
			t.Errorf("%s labels (-want +got):\n%s", name, diff)
		}
	}
	if got := only(t, fams, "istio_requests_total").GetCounter().GetValue(); got != 1 {
		t.Errorf("istio_requests_total = %v, want 1", got)
	}
	// Every label Istio's HTTP metrics carry is declared, even when empty.
	names := slices.Clone(httpLabels)
	slices.Sort(names)
	wantNames := make([]string, 0, len(want))
	for k := range want {
		wantNames = append(wantNames, k)
	}
	slices.Sort(wantNames)
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("HTTP label names (-want +got):\n%s", diff)
	}
}

func TestUnknownDefaults(t *testing.T) {
	m := NewMetrics("")
	m.ObserveRequest(&RequestInfo{})
	m.ObserveTCPOpen(&TCPInfo{})
	fams := scrape(t, m)

	common := map[string]string{
		"reporter":                       "unknown",
		"source_workload":                "unknown",
		"source_workload_namespace":      "unknown",
		"source_principal":               "unknown",
		"source_app":                     "unknown",
		"source_version":                 "unknown",
		"source_canonical_service":       "unknown",
		"source_canonical_revision":      "latest",
		"source_cluster":                 "unknown",
		"destination_workload":           "unknown",
		"destination_workload_namespace": "unknown",
		"destination_principal":          "unknown",
		"destination_app":                "unknown",
		"destination_version":            "unknown",
		"destination_canonical_service":  "unknown",
		"destination_canonical_revision": "latest",
		"destination_service":            "unknown",
		"destination_service_name":       "unknown",
		"destination_service_namespace":  "unknown",
		"destination_cluster":            "unknown",
		"response_flags":                 "-",
		"connection_security_policy":     "unknown",
	}
	wantHTTP := map[string]string{"request_protocol": "http", "response_code": "0", "grpc_response_status": ""}
	wantTCP := map[string]string{"request_protocol": "tcp"}
	for k, v := range common {
		wantHTTP[k], wantTCP[k] = v, v
	}
	if diff := cmp.Diff(wantHTTP, labelMap(only(t, fams, "istio_requests_total"))); diff != "" {
		t.Errorf("HTTP labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantTCP, labelMap(only(t, fams, "istio_tcp_connections_opened_total"))); diff != "" {
		t.Errorf("TCP labels (-want +got):\n%s", diff)
	}
}

func TestGRPCStatus(t *testing.T) {
	m := NewMetrics(ReporterWaypoint)
	r := fullRequest()
	r.Protocol = ProtocolGRPC
	r.GRPCStatus = "14"
	m.ObserveRequest(r)
	// A plain HTTP request's grpc-status is not a label value.
	r = fullRequest()
	r.GRPCStatus = "5"
	r.ResponseCode = 503
	r.ResponseFlags = "UF,URX"
	m.ObserveRequest(r)

	var got []string
	for _, s := range scrape(t, m)["istio_requests_total"].GetMetric() {
		l := labelMap(s)
		got = append(got, l["request_protocol"]+" "+l["response_code"]+" grpc="+l["grpc_response_status"]+" flags="+l["response_flags"])
	}
	slices.Sort(got)
	want := []string{"grpc 200 grpc=14 flags=-", "http 503 grpc= flags=UF,URX"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
}

// bucketCounts maps each upper bound to its cumulative count.
func bucketCounts(h *dto.Histogram) map[float64]uint64 {
	out := map[float64]uint64{}
	for _, b := range h.GetBucket() {
		out[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	return out
}

func TestHistogramBuckets(t *testing.T) {
	m := NewMetrics(ReporterWaypoint)
	for _, c := range []struct {
		d         time.Duration
		req, resp int64
	}{
		{300 * time.Microsecond, 0, 1},  // 0.3ms: le 0.5; 0B: le 1; 1B: le 1
		{3 * time.Millisecond, 11, 100}, // le 5; le 100; le 100
		{2 * time.Second, 5000, 20_000_000},
		{2 * time.Hour, -1, 10}, // beyond the last bucket: +Inf only; negative bytes count as 0
	} {
		r := fullRequest()
		r.Duration, r.RequestBytes, r.ResponseBytes = c.d, c.req, c.resp
		m.ObserveRequest(r)
	}
	fams := scrape(t, m)

	dur := only(t, fams, "istio_request_duration_milliseconds").GetHistogram()
	bounds := make([]float64, 0, len(dur.GetBucket()))
	for _, b := range dur.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
	}
	inf := math.Inf(1)
	if diff := cmp.Diff(append(slices.Clone(DurationBuckets), inf), bounds); diff != "" {
		t.Errorf("duration buckets (-want +got):\n%s", diff)
	}
	if dur.GetSampleCount() != 4 {
		t.Errorf("duration count %d, want 4", dur.GetSampleCount())
	}
	wantSum := 0.3 + 3 + 2000 + 7_200_000
	if got := dur.GetSampleSum(); got < wantSum-1e-6 || got > wantSum+1e-6 {
		t.Errorf("duration sum %v, want %v", got, wantSum)
	}
	dc := bucketCounts(dur)
	for le, want := range map[float64]uint64{0.5: 1, 1: 1, 5: 2, 1000: 2, 2500: 3, 3600000: 3, inf: 4} {
		if dc[le] != want {
			t.Errorf("duration le=%v: %d, want %d", le, dc[le], want)
		}
	}

	req := only(t, fams, "istio_request_bytes").GetHistogram()
	resp := only(t, fams, "istio_response_bytes").GetHistogram()
	for _, h := range []*dto.Histogram{req, resp} {
		var got []float64
		for _, b := range h.GetBucket() {
			got = append(got, b.GetUpperBound())
		}
		if diff := cmp.Diff(append(slices.Clone(SizeBuckets), inf), got); diff != "" {
			t.Errorf("size buckets (-want +got):\n%s", diff)
		}
	}
	if diff := cmp.Diff(map[float64]uint64{1: 2, 10: 2, 100: 3, 1000: 3, 10000: 4, 100000: 4, 1e6: 4, 1e7: 4, inf: 4}, bucketCounts(req)); diff != "" {
		t.Errorf("request bytes buckets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[float64]uint64{1: 1, 10: 2, 100: 3, 1000: 3, 10000: 3, 100000: 3, 1e6: 3, 1e7: 3, inf: 4}, bucketCounts(resp)); diff != "" {
		t.Errorf("response bytes buckets (-want +got):\n%s", diff)
	}
	if resp.GetSampleCount() != 4 || resp.GetSampleSum() != 1+100+20_000_000+10 {
		t.Errorf("response bytes count %d sum %v", resp.GetSampleCount(), resp.GetSampleSum())
	}
}

func TestTCPMetrics(t *testing.T) {
	m := NewMetrics(ReporterWaypoint)
	c := &TCPInfo{
		Source:                   fullRequest().Source,
		Destination:              fullRequest().Destination,
		Service:                  fullRequest().Service,
		ConnectionSecurityPolicy: SecurityNone,
	}
	m.ObserveTCPOpen(c)
	m.ObserveTCPBytes(c, 100, 10)
	m.ObserveTCPBytes(c, -5, 0) // ignored
	m.ObserveTCPClose(c, 50, 5)
	m.ObserveTCPOpen(c)
	fams := scrape(t, m)

	for name, want := range map[string]float64{
		"istio_tcp_connections_opened_total": 2,
		"istio_tcp_connections_closed_total": 1,
		"istio_tcp_sent_bytes_total":         150,
		"istio_tcp_received_bytes_total":     15,
	} {
		if fams[name].GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s is a %v, want a counter", name, fams[name].GetType())
		}
		s := only(t, fams, name)
		if got := s.GetCounter().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
		l := labelMap(s)
		if l["request_protocol"] != "tcp" || l["connection_security_policy"] != "none" || l["reporter"] != "waypoint" ||
			l["destination_service"] != "reviews.bookinfo.svc.cluster.local" {
			t.Errorf("%s labels %v", name, l)
		}
		// TCP metrics have no response_code or grpc_response_status.
		wantNames := slices.Clone(commonLabels)
		slices.Sort(wantNames)
		if diff := cmp.Diff(wantNames, labelNames(s)); diff != "" {
			t.Errorf("%s label names (-want +got):\n%s", name, diff)
		}
	}
	if _, ok := fams["istio_requests_total"]; ok {
		t.Error("istio_requests_total without any request")
	}
}

func TestInvalidUTF8LabelValue(t *testing.T) {
	m := NewMetrics(ReporterWaypoint)
	r := fullRequest()
	r.Source.Name = "bad\xffname"
	m.ObserveRequest(r) // must not panic
	l := labelMap(only(t, scrape(t, m), "istio_requests_total"))
	if l["source_workload"] != "bad\uFFFDname" {
		t.Errorf("source_workload = %q", l["source_workload"])
	}
}

func TestNilInfo(t *testing.T) {
	m := NewMetrics(ReporterWaypoint)
	m.ObserveRequest(nil)
	m.ObserveTCPOpen(nil)
	m.ObserveTCPBytes(nil, 1, 1)
	m.ObserveTCPClose(nil, 1, 1)
	if fams := scrape(t, m); len(fams) != 0 {
		t.Errorf("scrape has %d families, want none", len(fams))
	}
}

func TestConcurrentObserve(t *testing.T) {
	m := NewMetrics(ReporterWaypoint)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r := fullRequest()
				r.ResponseCode = 200 + (w+i)%3
				m.ObserveRequest(r)
				m.ObserveTCPClose(&TCPInfo{}, 1, 2)
			}
		})
	}
	wg.Wait()
	fams := scrape(t, m)
	var total float64
	for _, s := range fams["istio_requests_total"].GetMetric() {
		total += s.GetCounter().GetValue()
	}
	if total != workers*each || len(fams["istio_requests_total"].GetMetric()) != 3 {
		t.Errorf("istio_requests_total: %v over %d series, want %d over 3", total, len(fams["istio_requests_total"].GetMetric()), workers*each)
	}
	if got := only(t, fams, "istio_tcp_received_bytes_total").GetCounter().GetValue(); got != 2*workers*each {
		t.Errorf("received bytes %v", got)
	}
}

func TestObserveRequestCachedDoesNotAllocate(t *testing.T) {
	m := NewMetrics(ReporterWaypoint)
	r := fullRequest()
	m.ObserveRequest(r)
	if n := testing.AllocsPerRun(100, func() { m.ObserveRequest(r) }); n != 0 {
		t.Errorf("ObserveRequest allocates %v times a call for a known label set, want 0", n)
	}
	c := &TCPInfo{Source: r.Source}
	m.ObserveTCPOpen(c)
	if n := testing.AllocsPerRun(100, func() { m.ObserveTCPClose(c, 10, 10) }); n != 0 {
		t.Errorf("ObserveTCPClose allocates %v times a call for a known label set, want 0", n)
	}
}

// TestSeries: a kept series records as ObserveRequest does, into the same
// label set, without allocating.
func TestSeries(t *testing.T) {
	m := NewMetrics(ReporterWaypoint)
	r := fullRequest()
	s := m.Series(r)
	s.Observe(r)
	m.ObserveRequest(r)
	if n := testing.AllocsPerRun(100, func() { s.Observe(r) }); n != 0 {
		t.Errorf("HTTPSeries.Observe allocates %v times a call, want 0", n)
	}
	if got := only(t, scrape(t, m), "istio_requests_total").GetCounter().GetValue(); got != 103 { // AllocsPerRun calls once more to warm up
		t.Errorf("istio_requests_total %v, want 103 in one series", got)
	}
}

func BenchmarkObserveRequest(b *testing.B) {
	m := NewMetrics(ReporterWaypoint)
	r := fullRequest()
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveRequest(r)
	}
}

func BenchmarkObserveRequestParallel(b *testing.B) {
	m := NewMetrics(ReporterWaypoint)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := fullRequest()
		for pb.Next() {
			m.ObserveRequest(r)
		}
	})
}

// BenchmarkObserveRequestNewLabels is the cost of a label set's first
// request: the WithLabelValues path.
func BenchmarkObserveRequestNewLabels(b *testing.B) {
	m := NewMetrics(ReporterWaypoint)
	r := fullRequest()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.ResponseCode = i
		m.ObserveRequest(r)
	}
}
