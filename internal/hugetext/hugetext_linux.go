package hugetext

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

const hugePage = 2 << 20

// thpSetting is where Linux says whether transparent huge pages are on:
// "always", "madvise" (for memory that asks, as Remap's does) or "never".
const thpSetting = "/sys/kernel/mm/transparent_hugepage/enabled"

func remap() (int, error) {
	setting, err := os.ReadFile(thpSetting)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if bytes.Contains(setting, []byte("[never]")) {
		return 0, fmt.Errorf("%w: %s says never", ErrUnavailable, thpSetting)
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("finding the executable: %w", err)
	}
	maps, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	ms, err := readMappings(maps, exe)
	_ = maps.Close()
	if err != nil {
		return 0, fmt.Errorf("reading /proc/self/maps: %w", err)
	}
	// Read through /proc/self/mem: the code's bytes need no pointer made
	// from an address.
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		return 0, err
	}
	defer func() { _ = mem.Close() }()
	moved := 0
	for _, r := range plan(ms) {
		if err := move(mem, r); err != nil {
			return moved, err
		}
		moved += int(r.hi - r.lo)
	}
	if moved == 0 {
		return 0, fmt.Errorf("%w: the code spans no whole huge page", ErrUnavailable)
	}
	return moved, nil
}

// A mapping is one of the executable's read-only mappings: its code, or
// the read-only data after it.
type mapping struct {
	lo, hi uintptr
	exec   bool
}

// readMappings reads exe's read-only mappings from a /proc/PID/maps.
func readMappings(r io.Reader, exe string) ([]mapping, error) {
	var ms []mapping
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// address perms offset dev inode path
		f := strings.Fields(sc.Text())
		if len(f) < 6 || strings.Join(f[5:], " ") != exe || (f[1] != "r-xp" && f[1] != "r--p") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		l, err1 := strconv.ParseUint(lo, 16, 64)
		h, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || h <= l {
			return nil, fmt.Errorf("line %q: bad address range", sc.Text())
		}
		ms = append(ms, mapping{uintptr(l), uintptr(h), f[1] == "r-xp"})
	}
	return ms, sc.Err()
}

// A region is a run of whole huge pages to move.
type region struct{ lo, hi uintptr }

// plan picks the huge pages to move: those wholly inside the code, and
// the one that holds the code's end and the read-only data after it when
// that data is there (Go's linker puts it right after the code: without
// that page the code of the packages linked last, the program's own,
// would stay on small pages). That page is made executable whole, data
// and all; nothing in it is writable.
func plan(ms []mapping) []region {
	var rs []region
	for i := 0; i < len(ms); {
		// ms[i:j]: mappings that follow each other without a gap.
		j := i + 1
		for j < len(ms) && ms[j].lo == ms[j-1].hi {
			j++
		}
		for b := (ms[i].lo + hugePage - 1) &^ (hugePage - 1); b+hugePage <= ms[j-1].hi; b += hugePage {
			code := false
			for _, m := range ms[i:j] {
				code = code || (m.exec && m.lo < b+hugePage && b < m.hi)
			}
			if !code {
				continue
			}
			if n := len(rs); n > 0 && rs[n-1].hi == b {
				rs[n-1].hi += hugePage
				continue
			}
			rs = append(rs, region{b, b + hugePage})
		}
		i = j
	}
	return rs
}

// move copies r into anonymous memory on huge pages and moves that memory
// over r. The bytes are the same, and mremap swaps the page tables while
// holding the process's memory map lock, so a thread running code in r
// meanwhile waits for it and goes on in the copy.
func move(mem *os.File, r region) error {
	size := r.hi - r.lo
	// Reserve a huge page more, to start the copy on a huge page's
	// boundary, and give back the ends.
	p, err := unix.MmapPtr(-1, 0, nil, size+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("reserving %d bytes: %w", size, err)
	}
	skip := (uintptr(p)+hugePage-1)&^(hugePage-1) - uintptr(p)
	if skip > 0 {
		_ = unix.MunmapPtr(p, skip)
	}
	_ = unix.MunmapPtr(unsafe.Add(p, skip+size), hugePage-skip)
	p = unsafe.Add(p, skip)
	copied := unsafe.Slice((*byte)(p), size)
	fail := func(err error) error {
		_ = unix.MunmapPtr(p, size)
		return err
	}
	if err := unix.Madvise(copied, unix.MADV_HUGEPAGE); err != nil {
		return fail(fmt.Errorf("asking for huge pages: %w", err))
	}
	if _, err := mem.ReadAt(copied, int64(r.lo)); err != nil {
		return fail(fmt.Errorf("copying %#x-%#x: %w", r.lo, r.hi, err))
	}
	huge, err := hugeBytes(uintptr(p))
	if err != nil {
		return fail(err)
	}
	if huge == 0 {
		// Small pages: the move would cost memory for nothing.
		return fail(fmt.Errorf("%w: the kernel gave small pages for %#x-%#x", ErrUnavailable, r.lo, r.hi))
	}
	if err := unix.Mprotect(copied, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		return fail(fmt.Errorf("protecting the copy of %#x-%#x: %w", r.lo, r.hi, err))
	}
	if _, _, e := unix.Syscall6(unix.SYS_MREMAP, uintptr(p), size, size, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, r.lo, 0); e != 0 {
		return fail(fmt.Errorf("moving the copy over %#x-%#x: %w", r.lo, r.hi, e))
	}
	return nil
}

// hugeBytes is the AnonHugePages of the mapping that starts at addr, from
// /proc/self/smaps.
func hugeBytes(addr uintptr) (int, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	return smapsHuge(f, addr)
}

func smapsHuge(r io.Reader, addr uintptr) (int, error) {
	sc := bufio.NewScanner(r)
	in := false
	for sc.Scan() {
		line := sc.Text()
		// A mapping's first line starts with its address range.
		first, _, _ := strings.Cut(line, " ")
		if lo, _, ok := strings.Cut(first, "-"); ok {
			l, err := strconv.ParseUint(lo, 16, 64)
			in = err == nil && uintptr(l) == addr
			continue
		}
		if v, ok := strings.CutPrefix(line, "AnonHugePages:"); in && ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				return 0, fmt.Errorf("/proc/self/smaps: %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading /proc/self/smaps: %w", err)
	}
	return 0, fmt.Errorf("/proc/self/smaps has no mapping at %#x", addr)
}
