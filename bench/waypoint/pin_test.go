package main

import (
	"slices"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"1", []int{1}},
		{"2-3", []int{2, 3}},
		{"3,0-1,1", []int{0, 1, 3}},
		{" 1 , 2 ", []int{1, 2}},
	} {
		got, err := parseCPUList(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "a", "-1", "3-1", "1-", "1,,2"} {
		if got, err := parseCPUList(bad); err == nil {
			t.Errorf("parseCPUList(%q) = %v, want an error", bad, got)
		}
	}
}

func TestCPUPlanRefusesCPUsItCannotUse(t *testing.T) {
	if _, err := newCPUPlan("100000"); err == nil {
		t.Error("a CPU this process may not run on was accepted")
	}
	if plan, err := newCPUPlan(""); err != nil || plan.pinned() {
		t.Errorf("no -proxy-cpus: %+v, %v; want an unpinned plan", plan, err)
	}
	args := cpuPlan{proxy: []int{1, 2}, rest: []int{0}}.proxyArgs([]string{"nginx", "-c", "x"})
	if want := []string{"taskset", "-c", "1,2", "nginx", "-c", "x"}; !slices.Equal(args, want) {
		t.Errorf("proxyArgs = %q, want %q", args, want)
	}
}
