package main

import "testing"

// TestProfilePath: where -cpuprofile and -trace write, for each target and
// phase, and nothing after the first round or for other targets.
func TestProfilePath(t *testing.T) {
	b := &bench{cfg: config{cpuProfile: "/p/cpu.pprof", trace: "/p/run.trace"}}
	for _, c := range []struct{ key, phase, want string }{
		{"waypoint", "max", "/p/cpu.pprof"},
		{"waypoint", "rate", "/p/cpu-rate.pprof"},
		{"waypoint-hbone", "max", "/p/cpu-hbone.pprof"},
		{"waypoint-hbone", "rate", "/p/cpu-hbone-rate.pprof"},
		{"waypoint", "trace", "/p/run.trace"},
		{"waypoint-hbone", "trace", "/p/run-hbone.trace"},
		{"nginx", "trace", ""},
		{"waypoint-1cpu", "max", ""},
	} {
		if got := b.profilePath(c.key, c.phase); got != c.want {
			t.Errorf("profilePath(%q, %q) = %q, want %q", c.key, c.phase, got, c.want)
		}
	}
	b.round = 1
	if got := b.profilePath("waypoint", "trace"); got != "" {
		t.Errorf("after the first round: %q, want none", got)
	}
	if !b.cfg.inChild() || (&config{}).inChild() {
		t.Error("inChild: the plain waypoint runs in a child exactly when it is profiled or traced")
	}
}
