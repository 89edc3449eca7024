package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestTableBaselines: each target's added latency is over its own
// baseline — direct for the plain proxies and for direct over HBONE, direct
// over HBONE for the HBONE waypoint and floor — and the p99 verdicts
// compare those against nginx's; the HBONE waypoint's throughput verdict
// names the HBONE floor's.
func TestTableBaselines(t *testing.T) {
	us := time.Microsecond
	// result makes a target whose every request took lat.
	result := func(key, name string, proxied bool, lat time.Duration, maxRate int) *targetResult {
		fixed := &runStats{elapsed: time.Second, lat: []time.Duration{lat, lat}}
		mx := &runStats{elapsed: time.Second, lat: make([]time.Duration, maxRate)}
		return &targetResult{key: key, name: name, proxied: proxied, fixed: fixed, max: mx}
	}
	rs := []*targetResult{
		result("direct", "direct", false, 100*us, 1000),
		result("nginx", "nginx", true, 300*us, 600),
		result("waypoint", "waypoint", true, 550*us, 500),
		result("direct-hbone", "direct, HBONE", false, 700*us, 800),
		result("waypoint-hbone", "waypoint, HBONE both sides", true, 1000*us, 400),
		result("floor-hbone", "Go floor, HBONE both sides", true, 900*us, 500),
	}
	var out bytes.Buffer
	printTable(&out, config{rate: 1000, rateConns: 16, maxConns: 32}, nodeAddr, rs)
	row := func(prefix string) string {
		for line := range strings.SplitSeq(out.String(), "\n") {
			if strings.HasPrefix(line, "| "+prefix) {
				return line
			}
		}
		t.Fatalf("no row %q in:\n%s", prefix, out.String())
		return ""
	}
	// nginx +200, waypoint +450, direct over HBONE +600 over direct, the
	// HBONE waypoint +300 and the HBONE floor +200 over direct over HBONE.
	p99 := row("added latency, p99")
	for _, want := range []string{
		"| — | +200 µs | +450 µs | +600 µs | +300 µs | +200 µs |",
		"FAIL (+250 µs vs nginx)",
		"HBONE PASS (+100 µs vs nginx)",
	} {
		if !strings.Contains(p99, want) {
			t.Errorf("p99 row lacks %q:\n%s", want, p99)
		}
	}
	tp := row("maximum throughput")
	for _, want := range []string{
		"PASS (83% of nginx)",
		"HBONE FAIL (67% of nginx; 50% of direct over HBONE, nginx 60% of direct; Go floor, HBONE both sides 83% of nginx)",
	} {
		if !strings.Contains(tp, want) {
			t.Errorf("throughput row lacks %q:\n%s", want, tp)
		}
	}
}
