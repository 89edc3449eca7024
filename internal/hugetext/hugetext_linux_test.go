package hugetext

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlan(t *testing.T) {
	const M = hugePage
	for _, tc := range []struct {
		name string
		ms   []mapping
		want []region
	}{{
		name: "Go's layout: the page holding the code's end and the data after it moves too",
		ms:   []mapping{{0x400000, 0xb80000, true}, {0xb80000, 0x141b000, false}},
		want: []region{{0x400000, 0xc00000}},
	}, {
		name: "nothing after the code: its end stays",
		ms:   []mapping{{0x400000, 0xb80000, true}},
		want: []region{{0x400000, 0xa00000}},
	}, {
		name: "a gap after the code: its end stays",
		ms:   []mapping{{0x400000, 0xb80000, true}, {0xb81000, 0x141b000, false}},
		want: []region{{0x400000, 0xa00000}},
	}, {
		name: "position-independent: the start is not on a huge page",
		ms:   []mapping{{0x555555555000, 0x555555d00000, true}},
		want: []region{{0x555555600000, 0x555555c00000}},
	}, {
		name: "pages of data alone stay",
		ms:   []mapping{{4 * M, 4*M + 0x1000, true}, {4*M + 0x1000, 8 * M, false}},
		want: []region{{4 * M, 5 * M}},
	}, {
		name: "code within one huge page, not whole",
		ms:   []mapping{{4*M + 0x1000, 5*M - 0x1000, true}},
		want: nil,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, plan(tc.ms), cmp.AllowUnexported(region{})); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadMappings(t *testing.T) {
	const maps = `00400000-00b80000 r-xp 00000000 fd:01 1234   /opt/mesh way/waypoint
00b80000-0141b000 r--p 00780000 fd:01 1234   /opt/mesh way/waypoint
0141b000-014a0000 rw-p 0101b000 fd:01 1234   /opt/mesh way/waypoint
014a0000-034e6000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r-xp 00000000 fd:01 99   /usr/lib/other
`
	ms, err := readMappings(strings.NewReader(maps), "/opt/mesh way/waypoint")
	if err != nil {
		t.Fatal(err)
	}
	want := []mapping{{0x400000, 0xb80000, true}, {0xb80000, 0x141b000, false}}
	if diff := cmp.Diff(want, ms, cmp.AllowUnexported(mapping{})); diff != "" {
		t.Errorf("readMappings (-want +got):\n%s", diff)
	}
	if _, err := readMappings(strings.NewReader("0040000g-00b80000 r-xp 0 fd:01 1 /x\n"), "/x"); err == nil {
		t.Error("a bad address range was read without an error")
	}
}

func TestSmapsHuge(t *testing.T) {
	const smaps = `00400000-00c00000 r-xp 00000000 00:00 0
Size:               8192 kB
AnonHugePages:      8192 kB

7f0000000000-7f0000200000 rw-p 00000000 00:00 0
AnonHugePages:         0 kB
`
	for addr, want := range map[uintptr]int{0x400000: 8 << 20, 0x7f0000000000: 0} {
		got, err := smapsHuge(strings.NewReader(smaps), addr)
		if err != nil || got != want {
			t.Errorf("smapsHuge(%#x) = %d, %v; want %d", addr, got, err, want)
		}
	}
	if _, err := smapsHuge(strings.NewReader(smaps), 0x1000); err == nil {
		t.Error("no error for an address no mapping starts at")
	}
}

// TestRemap runs TestRemapInChild in a process of its own: the code moves
// once in a process.
func TestRemap(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestRemapInChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if bytes.Contains(out, []byte("--- SKIP")) {
		t.Skip("the child skipped")
	}
	if !bytes.Contains(out, []byte("--- PASS: TestRemapInChild")) {
		t.Fatal("the child did not run the test")
	}
}

const childEnv = "HUGETEXT_TEST_CHILD"

// TestRemapInChild moves this test binary's code: the same bytes are then
// on huge pages, in memory no longer mapped from the file, and the
// program runs on in them.
func TestRemapInChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestRemap")
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	mapsNow := func() []mapping {
		f, err := os.Open("/proc/self/maps")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		ms, err := readMappings(f, exe)
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	regions := plan(mapsNow())
	if len(regions) == 0 {
		t.Fatal("no huge page of code to move in this binary")
	}
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	read := func(r region) []byte {
		b := make([]byte, r.hi-r.lo)
		if _, err := mem.ReadAt(b, int64(r.lo)); err != nil {
			t.Fatal(err)
		}
		return b
	}
	var before [][]byte
	for _, r := range regions {
		before = append(before, read(r))
	}

	// Goroutines run code all through the move.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					_ = strings.Repeat("x", 100)
					runtime.Gosched()
				}
			}
		})
	}
	moved, err := Remap()
	close(stop)
	wg.Wait()
	if setting, rerr := os.ReadFile(thpSetting); errors.Is(err, ErrUnavailable) && (rerr != nil || bytes.Contains(setting, []byte("[never]"))) {
		t.Skipf("transparent huge pages are off here: %v", err)
	}
	if err != nil {
		t.Fatalf("Remap: %v (moved %d bytes)", err, moved)
	}
	want := 0
	for i, r := range regions {
		want += int(r.hi - r.lo)
		if !bytes.Equal(read(r), before[i]) {
			t.Errorf("the code at %#x-%#x changed", r.lo, r.hi)
		}
		huge, err := hugeBytes(r.lo)
		if err != nil {
			t.Fatal(err)
		}
		if huge != int(r.hi-r.lo) {
			t.Errorf("%#x-%#x: %d bytes on huge pages, want all %d", r.lo, r.hi, huge, r.hi-r.lo)
		}
	}
	if moved != want {
		t.Errorf("Remap moved %d bytes, want %d", moved, want)
	}
	// The moved code is no longer the file's.
	gc := reflect.ValueOf(runtime.GC).Pointer()
	for _, m := range mapsNow() {
		if m.lo <= gc && gc < m.hi {
			t.Errorf("runtime.GC (%#x) is still mapped from %s at %#x-%#x", gc, exe, m.lo, m.hi)
		}
	}
	runtime.GC() // and runs
}
