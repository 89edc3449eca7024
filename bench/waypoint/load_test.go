package main

import (
	"testing"
	"time"
)

func TestFindStalls(t *testing.T) {
	ms := time.Millisecond
	got := findStalls([]sample{
		{0, 200 * time.Microsecond},
		{1 * ms, 5 * ms}, // burst 1: three requests, the third 3 ms after the first
		{2 * ms, 4 * ms},
		{4 * ms, 2 * ms},
		{5 * ms, 300 * time.Microsecond},
		{9 * ms, 1500 * time.Microsecond}, // burst 2: 5 ms after the last slow one
		{10 * ms, ms},                     // not over 1 ms
	})
	want := stalls{bursts: 2, requests: 4, biggest: 3, longest: 5 * ms}
	if got != want {
		t.Fatalf("findStalls = %+v, want %+v", got, want)
	}
}
