package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// istioJSONFields are the keys of Istio's default JSON access log
// (EnvoyJSONLogFormatIstio).
var istioJSONFields = []string{
	"start_time", "route_name", "method", "path", "protocol", "response_code",
	"response_flags", "response_code_details", "connection_termination_details",
	"bytes_received", "bytes_sent", "duration", "upstream_service_time",
	"x_forwarded_for", "user_agent", "request_id", "authority", "upstream_host",
	"upstream_cluster", "upstream_local_address", "downstream_local_address",
	"downstream_remote_address", "requested_server_name",
	"upstream_transport_failure_reason",
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func sampleEntry() *AccessLogEntry {
	return &AccessLogEntry{
		StartTime:               time.Date(2026, 2, 24, 10, 30, 45, 123_456_789, time.FixedZone("CET", 3600)),
		Method:                  "GET",
		Path:                    "/status/200?x=1",
		Protocol:                "HTTP/1.1",
		ResponseCode:            200,
		ResponseCodeDetails:     "via_upstream",
		BytesReceived:           12,
		BytesSent:               615,
		Duration:                4*time.Millisecond + 900*time.Microsecond,
		UpstreamServiceTime:     3 * time.Millisecond,
		UserAgent:               "curl/8.5.0",
		RequestID:               "a1b2c3d4-e5f6-7890",
		Authority:               "httpbin.default:8000",
		UpstreamHost:            "10.244.1.5:8000",
		UpstreamCluster:         "inbound|8000||",
		UpstreamLocalAddress:    "127.0.0.6:44444",
		DownstreamLocalAddress:  "10.244.1.5:8000",
		DownstreamRemoteAddress: "10.244.1.3:45678",
		RouteName:               "default",
	}
}

func decodeLine(t *testing.T, line string) map[string]any {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("line is not JSON: %v\n%s", err, line)
	}
	return got
}

func TestAccessLogJSON(t *testing.T) {
	got := decodeLine(t, string(AppendAccessLogJSON(nil, sampleEntry())))
	want := map[string]any{
		"authority":                         "httpbin.default:8000",
		"bytes_received":                    12.0,
		"bytes_sent":                        615.0,
		"connection_termination_details":    nil,
		"downstream_local_address":          "10.244.1.5:8000",
		"downstream_remote_address":         "10.244.1.3:45678",
		"duration":                          4.0,
		"method":                            "GET",
		"path":                              "/status/200?x=1",
		"protocol":                          "HTTP/1.1",
		"request_id":                        "a1b2c3d4-e5f6-7890",
		"requested_server_name":             nil,
		"response_code":                     200.0,
		"response_code_details":             "via_upstream",
		"response_flags":                    "-",
		"route_name":                        "default",
		"start_time":                        "2026-02-24T09:30:45.123Z",
		"upstream_cluster":                  "inbound|8000||",
		"upstream_host":                     "10.244.1.5:8000",
		"upstream_local_address":            "127.0.0.6:44444",
		"upstream_service_time":             "3",
		"upstream_transport_failure_reason": nil,
		"user_agent":                        "curl/8.5.0",
		"x_forwarded_for":                   nil,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entry (-want +got):\n%s", diff)
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fields := slices.Sorted(slices.Values(istioJSONFields))
	if diff := cmp.Diff(fields, keys); diff != "" {
		t.Errorf("keys are not Istio's (-istio +got):\n%s", diff)
	}
}

func TestAccessLogJSONEmpty(t *testing.T) {
	got := decodeLine(t, string(AppendAccessLogJSON(nil, &AccessLogEntry{Duration: -time.Second})))
	for _, k := range istioJSONFields {
		switch k {
		case "response_code", "bytes_received", "bytes_sent", "duration":
			if got[k] != 0.0 {
				t.Errorf("%s = %v, want 0", k, got[k])
			}
		case "response_flags":
			if got[k] != "-" {
				t.Errorf("%s = %v, want -", k, got[k])
			}
		default:
			if got[k] != nil {
				t.Errorf("%s = %v, want null", k, got[k])
			}
		}
	}
}

func TestAccessLogJSONEscaping(t *testing.T) {
	for _, s := range []string{
		`quote " and backslash \`,
		"new\nline\r\ttab\x00nul\x1fus\x7fdel",
		"<script>&amp;</script>",
		"line\u2028sep\u2029para",
		"héllo, 世界 🙂",
		"bad\xffutf8\xc3",
	} {
		line := string(AppendAccessLogJSON(nil, &AccessLogEntry{UserAgent: s}))
		if strings.ContainsAny(line, "\n\r") {
			t.Errorf("%q: line break in %q", s, line)
		}
		got := decodeLine(t, line)["user_agent"]
		if want := jsonDecodedString(s); got != want {
			t.Errorf("%q round-tripped to %q, want %q", s, got, want)
		}
	}
}

// jsonDecodedString is s as encoding/json decodes it after encoding:
// every invalid UTF-8 byte becomes U+FFFD.
func jsonDecodedString(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		sb.WriteRune(r)
		i += n
	}
	return sb.String()
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\", "\x00\x1f", "\u2028", "\xff", "é\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q encoded as invalid JSON %q: %v", s, b, err)
		}
		if want := jsonDecodedString(s); got != want {
			t.Fatalf("%q round-tripped to %q, want %q", s, got, want)
		}
	})
}

func TestAccessLoggerWritesLines(t *testing.T) {
	var buf syncBuffer
	l := NewAccessLogger(&buf, AccessLogOptions{})
	l.Log(sampleEntry())
	l.Log(nil)
	e := sampleEntry()
	e.Path = "/second"
	l.Log(e)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	if p := decodeLine(t, lines[1])["path"]; p != "/second" {
		t.Errorf("second line's path %v", p)
	}
	l.Log(sampleEntry()) // after Close: dropped, no panic
	if l.Dropped() != 1 {
		t.Errorf("Dropped() = %d, want 1", l.Dropped())
	}
	if err := l.Close(); err != nil { // Close twice
		t.Fatal(err)
	}
}

func TestAccessLoggerConcurrent(t *testing.T) {
	var buf syncBuffer
	const workers, each = 8, 400
	l := NewAccessLogger(&buf, AccessLogOptions{QueueSize: workers * each, BufferSize: 512})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				e := sampleEntry()
				e.RequestID = strings.Repeat("x", (w*each+i)%300) // lines of many lengths, some longer than the buffer
				e.ResponseCode = w*each + i
				l.Log(e)
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l.Dropped() != 0 {
		t.Fatalf("%d lines dropped", l.Dropped())
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != workers*each {
		t.Fatalf("%d lines, want %d", len(lines), workers*each)
	}
	seen := map[int]bool{}
	for _, line := range lines {
		seen[int(decodeLine(t, line)["response_code"].(float64))] = true
	}
	if len(seen) != workers*each {
		t.Errorf("%d distinct lines, want %d", len(seen), workers*each)
	}
}

type failingWriter struct {
	mu    sync.Mutex
	fails int // writes left to fail
	panic bool
	buf   bytes.Buffer
}

func (f *failingWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		if f.panic {
			panic("writer exploded")
		}
		return 0, errors.New("disk full")
	}
	return f.buf.Write(p)
}

func TestAccessLoggerFailingWriter(t *testing.T) {
	for _, panics := range []bool{false, true} {
		w := &failingWriter{fails: 1, panic: panics}
		l := NewAccessLogger(w, AccessLogOptions{})
		l.Log(sampleEntry()) // lost to the failed write
		deadline := time.Now().Add(5 * time.Second)
		for l.Dropped() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if l.Dropped() != 1 {
			t.Fatalf("panic=%v: Dropped() = %d after a failed write, want 1", panics, l.Dropped())
		}
		l.Log(sampleEntry()) // the writer works again
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		w.mu.Lock()
		out := w.buf.String()
		w.mu.Unlock()
		if strings.Count(out, "\n") != 1 {
			t.Fatalf("panic=%v: after recovery wrote %q, want one line", panics, out)
		}
		decodeLine(t, strings.TrimSuffix(out, "\n"))
	}
}

type blockingWriter struct{ release chan struct{} }

func (b blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	return len(p), nil
}

func TestAccessLoggerNeverBlocks(t *testing.T) {
	w := blockingWriter{release: make(chan struct{})}
	l := NewAccessLogger(w, AccessLogOptions{QueueSize: 4, BufferSize: 16, CloseTimeout: 50 * time.Millisecond})
	start := time.Now()
	for range 1000 {
		l.Log(sampleEntry())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("logging to a stuck writer took %v", d)
	}
	if l.Dropped() < 1000-4-1 {
		t.Errorf("Dropped() = %d, want at least %d", l.Dropped(), 1000-4-1)
	}
	if err := l.Close(); err == nil {
		t.Error("Close returned nil with the writer stuck")
	}
	close(w.release)
}

func BenchmarkAccessLog(b *testing.B) {
	l := NewAccessLogger(io.Discard, AccessLogOptions{QueueSize: 1 << 16})
	defer l.Close()
	e := sampleEntry()
	b.ReportAllocs()
	for b.Loop() {
		l.Log(e)
	}
}
