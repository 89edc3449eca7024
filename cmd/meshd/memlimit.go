package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryLimitShare is the share of the container's memory limit meshd's Go
// heap is held under: the rest is for goroutine stacks, the binary and
// memory the runtime has not yet returned, so that the kernel's OOM killer
// is not what ends a burst of work (every ztunnel reconnecting at once).
const memoryLimitShare = 0.9

// gcPercent is meshd's GOGC unless the environment sets one. Most of
// meshd's heap lives as long as the mesh does (the store's objects, the
// translations, the encoded configurations): Go's default of 100 lets the
// heap grow to twice that before collecting, 1.2 GB for 600 MB of mesh at
// 50,000 pods. At 50 it collects at one and a half times; the collector
// runs twice as often, which costs CPU while meshd allocates (start-up,
// changes) and nothing when it is quiet. Prometheus made the same change
// (2.53) for the same kind of heap.
const gcPercent = 50

// setGCPercent sets the collector's target to gcPercent unless GOGC is
// set. It returns what it did, for the log.
func setGCPercent() string {
	if v := os.Getenv("GOGC"); v != "" {
		return "GOGC=" + v + " from the environment"
	}
	debug.SetGCPercent(gcPercent)
	return fmt.Sprintf("GOGC=%d (meshd's default: its heap is mostly the mesh, kept; set GOGC to choose another)", gcPercent)
}

// setMemoryLimit sets the Go runtime's soft memory limit from the cgroup's
// memory limit, as istiod's chart does with GOMEMLIMIT from the
// container's limits.memory, unless GOMEMLIMIT is set. Go collects at twice
// the live heap by default: a control plane holding 600 MB of mesh would
// reach 1.2 GB before collecting, over a 1 GiB limit it never needed. It
// returns what it did, for the log ("" when there is no limit).
func setMemoryLimit(cgroupRoot string) (string, error) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		return "GOMEMLIMIT=" + v + " from the environment", nil
	}
	limit, path, err := cgroupMemoryLimit(cgroupRoot)
	if err != nil || limit == 0 {
		return "", err
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	return fmt.Sprintf("Go memory limit %d MiB: %.0f%% of the cgroup's %d MiB (%s); set GOMEMLIMIT to choose another", soft>>20, memoryLimitShare*100, limit>>20, path), nil
}

// cgroupMemoryLimit reads the memory limit of this process's cgroup (v2:
// memory.max; v1: memory/memory.limit_in_bytes) under root, as mounted in
// a container. 0 means none: "max", a v1 limit of the kernel's "unlimited"
// (a page-rounded 2^63-1), or no cgroup filesystem.
func cgroupMemoryLimit(root string) (limit int64, path string, err error) {
	candidates := []string{filepath.Join(root, "memory.max"), filepath.Join(root, "memory", "memory.limit_in_bytes")}
	if own := ownCgroupV2(); own != "" && own != "/" {
		// Not in a container (a systemd service with MemoryMax): the
		// limit is on this process's own cgroup, below the root.
		candidates = append([]string{filepath.Join(root, own, "memory.max")}, candidates...)
	}
	for _, p := range candidates {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			return 0, p, fmt.Errorf("reading the memory limit: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, p, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, p, fmt.Errorf("reading the memory limit: %s: %q is not a number of bytes", p, v)
		}
		if n >= 1<<62 { // v1's "unlimited"
			return 0, p, nil
		}
		return n, p, nil
	}
	return 0, "", nil
}

// ownCgroupV2 is this process's cgroup v2 path ("0::/system.slice/x"), or
// "" if there is none.
func ownCgroupV2() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Clean(p)
		}
	}
	return ""
}
