package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestCgroupMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name, file, content string
		want                int64
		wantErr             string
	}{
		{name: "v2 limit", file: "memory.max", content: "1073741824\n", want: 1 << 30},
		{name: "v2 unlimited", file: "memory.max", content: "max\n"},
		{name: "v1 limit", file: "memory/memory.limit_in_bytes", content: "536870912\n", want: 512 << 20},
		{name: "v1 unlimited", file: "memory/memory.limit_in_bytes", content: "9223372036854771712\n"},
		{name: "no cgroup files"},
		{name: "garbage", file: "memory.max", content: "lots\n", wantErr: `"lots" is not a number of bytes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.file != "" {
				p := filepath.Join(root, tc.file)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, _, err := cgroupMemoryLimit(root)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("limit = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestSetMemoryLimit(t *testing.T) {
	share := memoryLimitShare
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "memory.max"), []byte("1073741824\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOMEMLIMIT", "")
	msg, err := setMemoryLimit(root)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := debug.SetMemoryLimit(-1), int64(float64(int64(1)<<30)*share); got != want {
		t.Fatalf("memory limit %d after a cgroup limit of 1 GiB, want %d (%s)", got, want, msg)
	}
	// GOMEMLIMIT wins: the runtime read it at start-up, meshd leaves it.
	debug.SetMemoryLimit(old)
	t.Setenv("GOMEMLIMIT", "700MiB")
	if msg, err := setMemoryLimit(root); err != nil || !strings.Contains(msg, "GOMEMLIMIT=700MiB") {
		t.Fatalf("with GOMEMLIMIT set: %q, %v", msg, err)
	}
	if got := debug.SetMemoryLimit(-1); got != old {
		t.Fatalf("memory limit changed to %d with GOMEMLIMIT set", got)
	}
}

func TestSetGCPercent(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	t.Setenv("GOGC", "")
	if msg := setGCPercent(); !strings.Contains(msg, "GOGC=50") {
		t.Errorf("message %q", msg)
	}
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Fatalf("GC percent %d without GOGC, want %d", got, gcPercent)
	}
	// GOGC wins: the runtime read it at start-up, meshd leaves it.
	t.Setenv("GOGC", "200")
	if msg := setGCPercent(); !strings.Contains(msg, "GOGC=200 from the environment") {
		t.Errorf("with GOGC set: %q", msg)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent changed to %d with GOGC set", got)
	}
}
