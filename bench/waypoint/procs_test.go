package main

import "testing"

// TestField reads /proc's "name: value" lines as peakRSS and activityOf
// do: tabs and spaces before the number, a unit after it.
func TestField(t *testing.T) {
	status := []byte("Name:\twaypoint\nVmHWM:\t   22040 kB\nvoluntary_ctxt_switches:\t1712\nnonvoluntary_ctxt_switches:\t93\n")
	for name, want := range map[string]uint64{"VmHWM:": 22040, "voluntary_ctxt_switches:": 1712, "nonvoluntary_ctxt_switches:": 93, "VmRSS:": 0} {
		if got := field(status, name); got != want {
			t.Errorf("field(%q) = %d; want %d", name, got, want)
		}
	}
}
