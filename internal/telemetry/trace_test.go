package telemetry

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

const (
	validTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	validSpanID  = "00f067aa0ba902b7"
)

func TestParseTraceparentValid(t *testing.T) {
	for _, c := range []struct {
		in, canonical string
		flags         byte
	}{
		{"00-" + validTraceID + "-" + validSpanID + "-01", "", 0x01},
		{"00-" + validTraceID + "-" + validSpanID + "-00", "", 0x00},
		// Unknown flags are accepted (and kept by the parse).
		{"00-" + validTraceID + "-" + validSpanID + "-ff", "", 0xff},
		// Spaces and tabs around the value (optional whitespace of HTTP).
		{" \t00-" + validTraceID + "-" + validSpanID + "-01 ", "00-" + validTraceID + "-" + validSpanID + "-01", 0x01},
		// A later version: parsed as 00, extra fields after a '-' ignored.
		{"01-" + validTraceID + "-" + validSpanID + "-01", "00-" + validTraceID + "-" + validSpanID + "-01", 0x01},
		{"cc-" + validTraceID + "-" + validSpanID + "-01-what-the-future-will-be-like", "00-" + validTraceID + "-" + validSpanID + "-01", 0x01},
	} {
		sc, err := ParseTraceparent(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if sc.TraceID.String() != validTraceID || sc.SpanID.String() != validSpanID || sc.Flags != c.flags {
			t.Errorf("%q parsed as %s %s %02x", c.in, sc.TraceID, sc.SpanID, sc.Flags)
		}
		want := c.canonical
		if want == "" {
			want = c.in
		}
		if got := sc.Traceparent(); got != want {
			t.Errorf("%q formats back as %q, want %q", c.in, got, want)
		}
	}
}

func TestParseTraceparentInvalid(t *testing.T) {
	zeros32, zeros16 := strings.Repeat("0", 32), strings.Repeat("0", 16)
	for name, in := range map[string]string{
		"empty":                  "",
		"short":                  "00-" + validTraceID + "-" + validSpanID + "-0",
		"version ff":             "ff-" + validTraceID + "-" + validSpanID + "-01",
		"version uppercase":      "0A-" + validTraceID + "-" + validSpanID + "-01",
		"version not hex":        "0g-" + validTraceID + "-" + validSpanID + "-01",
		"version 00 too long":    "00-" + validTraceID + "-" + validSpanID + "-01-extra",
		"version 00 trailing":    "00-" + validTraceID + "-" + validSpanID + "-010",
		"future no dash":         "01-" + validTraceID + "-" + validSpanID + "-01x",
		"trace-id uppercase":     "00-" + strings.ToUpper(validTraceID) + "-" + validSpanID + "-01",
		"trace-id not hex":       "00-" + validTraceID[:31] + "z-" + validSpanID + "-01",
		"trace-id zeros":         "00-" + zeros32 + "-" + validSpanID + "-01",
		"trace-id short":         "00-" + validTraceID[:31] + "-" + validSpanID + "-01x",
		"parent-id uppercase":    "00-" + validTraceID + "-" + strings.ToUpper(validSpanID) + "-01",
		"parent-id zeros":        "00-" + validTraceID + "-" + zeros16 + "-01",
		"flags not hex":          "00-" + validTraceID + "-" + validSpanID + "-0x",
		"flags uppercase":        "00-" + validTraceID + "-" + validSpanID + "-0A",
		"separator":              "00_" + validTraceID + "-" + validSpanID + "-01",
		"separator after trace":  "00-" + validTraceID + "_" + validSpanID + "-01",
		"separator before flags": "00-" + validTraceID + "-" + validSpanID + "_01",
		"inner space":            "00-" + validTraceID + "- " + validSpanID[1:] + "-01",
	} {
		if sc, err := ParseTraceparent(in); err == nil {
			t.Errorf("%s: %q parsed as %+v, want an error", name, in, sc)
		} else if !errors.Is(err, ErrInvalidTraceparent) {
			t.Errorf("%s: error %v does not wrap ErrInvalidTraceparent", name, err)
		}
	}
}

func FuzzParseTraceparent(f *testing.F) {
	f.Add("00-" + validTraceID + "-" + validSpanID + "-01")
	f.Add("cc-" + validTraceID + "-" + validSpanID + "-01-future")
	f.Add("ff-" + validTraceID + "-" + validSpanID + "-01")
	f.Add("00-" + strings.Repeat("0", 32) + "-" + validSpanID + "-01")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseTraceparent(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidTraceparent) {
				t.Fatalf("%q: error %v does not wrap ErrInvalidTraceparent", s, err)
			}
			return
		}
		if !sc.IsValid() {
			t.Fatalf("%q parsed as an invalid context %+v", s, sc)
		}
		out := sc.Traceparent()
		if len(out) != traceparentLen || strings.ToLower(out) != out {
			t.Fatalf("%q formats as %q", s, out)
		}
		again, err := ParseTraceparent(out)
		if err != nil || again != sc {
			t.Fatalf("%q -> %q -> %+v, %v; want %+v", s, out, again, err, sc)
		}
		if trimmed := strings.Trim(s, " \t"); strings.HasPrefix(trimmed, "00-") && trimmed != out {
			t.Fatalf("version 00 %q formats back as %q", s, out)
		}
	})
}

func TestNewRootAndChild(t *testing.T) {
	root := NewRoot(true)
	if !root.IsValid() || !root.Sampled() || root.Flags != FlagSampled {
		t.Fatalf("NewRoot(true) = %+v", root)
	}
	if other := NewRoot(false); other.Sampled() || other.TraceID == root.TraceID || other.SpanID == root.SpanID {
		t.Errorf("NewRoot(false) = %+v next to %+v", other, root)
	}
	parsed, err := ParseTraceparent(root.Traceparent())
	if err != nil || parsed != root {
		t.Errorf("root round trip: %+v, %v", parsed, err)
	}

	parent, _ := ParseTraceparent("00-" + validTraceID + "-" + validSpanID + "-ff")
	child := NewChild(parent)
	if child.TraceID != parent.TraceID {
		t.Errorf("child trace %s, want the parent's %s", child.TraceID, parent.TraceID)
	}
	if !child.SpanID.IsValid() || child.SpanID == parent.SpanID {
		t.Errorf("child span %s (parent %s)", child.SpanID, parent.SpanID)
	}
	if child.Flags != FlagSampled|FlagRandom {
		t.Errorf("child flags %02x, want the known bits of ff (03)", child.Flags)
	}
	if c := NewChild(SpanContext{Flags: FlagSampled}); !c.IsValid() || !c.Sampled() {
		t.Errorf("child of an invalid sampled parent: %+v", c)
	}
}

func traceIDWithLow(low uint64) TraceID {
	var id TraceID
	binary.BigEndian.PutUint64(id[:8], 0xdeadbeef)
	binary.BigEndian.PutUint64(id[8:], low)
	return id
}

func TestSampler(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ids := make([]TraceID, 20000)
	for i := range ids {
		binary.BigEndian.PutUint64(ids[i][:8], r.Uint64())
		binary.BigEndian.PutUint64(ids[i][8:], r.Uint64())
	}
	for _, c := range []struct {
		percent  float64
		min, max int
	}{
		{0, 0, 0}, {-5, 0, 0}, {100, 20000, 20000}, {250, 20000, 20000},
		{1, 140, 260}, {10, 1800, 2200}, {50, 9700, 10300},
	} {
		s := NewSampler(c.percent)
		n := 0
		for _, id := range ids {
			if s.Sample(id) {
				n++
			}
		}
		if n < c.min || n > c.max {
			t.Errorf("%v%%: sampled %d of %d, want %d..%d", c.percent, n, len(ids), c.min, c.max)
		}
	}

	// Decided by the low 56 bits alone, and monotonic in the percentage.
	half := NewSampler(50)
	if !half.Sample(traceIDWithLow(0)) || !half.Sample(traceIDWithLow(1<<55-1)) || half.Sample(traceIDWithLow(1<<55)) {
		t.Error("50% does not split the 56-bit range in half")
	}
	if !half.Sample(traceIDWithLow(0xff << 56)) {
		t.Error("the top byte of the trace id's low half is not ignored")
	}
	lo, hi := NewSampler(10), NewSampler(20)
	for _, id := range ids {
		if lo.Sample(id) && !hi.Sample(id) {
			t.Fatalf("%s sampled at 10%% but not at 20%%", id)
		}
	}
	if NewSampler(math.NaN()).Sample(traceIDWithLow(0)) {
		t.Error("NaN samples")
	}
}

func BenchmarkParseTraceparent(b *testing.B) {
	s := "00-" + validTraceID + "-" + validSpanID + "-01"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTraceparent(s); err != nil {
			b.Fatal(err)
		}
	}
}
