package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/meshway/meshway/internal/manifest"
)

const (
	// watchDebounce gathers the events of one save (an editor's write, rename
	// and chmod; a store write's temp file and rename) into one rescan. A
	// file written in place may be read half-written before its writer is
	// done: that is what the wait is for. Files replaced whole (a rename
	// over them: the store's writes, meshctl's, most editors') or removed
	// are complete at once, and a rescan of their directories is cheap, so
	// events on those alone wait only quickDebounce.
	watchDebounce = 30 * time.Millisecond
	quickDebounce = 2 * time.Millisecond
	// watchRescanInterval bounds how late a change is seen when inotify
	// cannot report it: without inotify, when a directory could not be
	// watched (the inotify watch limit), or on a network filesystem, whose
	// changes made on other machines raise no event here. The whole tree
	// is scanned that often, or, for a tree so big that a scan takes
	// longer than a tenth of that, every rescanCostFactor scans' time, so
	// that these scans take at most a tenth of a CPU.
	watchRescanInterval = 2 * time.Second
	rescanCostFactor    = 10
	// safetyRescanInterval replaces watchRescanInterval while inotify
	// follows every directory of a local filesystem: every change raises
	// an event then, and a lost one (a queue overflow) is reported and
	// scanned for at once. The periodic scan is only a safety net, and at
	// 100,000 files it costs seconds of CPU and delays the file events
	// that arrive meanwhile.
	safetyRescanInterval = 5 * time.Minute
	// scanBatch is how many objects a full scan reads per hold of the
	// store's shared lock: a writer waits for one batch (milliseconds),
	// not for the whole scan (seconds on a big store).
	scanBatch = 256
)

// dirHub serves all watches of one Dir from one fsnotify watcher and one
// snapshot: each rescan diffs the tree against the snapshot (by
// resourceVersion) and hands every watch the events it selects. It runs while
// at least one watch is open.
type dirHub struct {
	d    *Dir
	wake chan struct{} // capacity 1: a store write asks for a rescan

	mu       sync.Mutex
	subs     map[*dirSubscriber]struct{}
	snapshot map[objectKey]*storedObject
	// byDir lists the snapshot's keys by the directory their spec files
	// are in, for rescans of some directories.
	byDir map[dirKey][]objectKey
	loop  *dirWatchLoop // nil while no watch is open
}

// dirKey names a directory of spec files: one kind in one namespace (""
// for cluster-scoped kinds).
type dirKey struct {
	kind      *manifest.Kind
	namespace string
}

type dirSubscriber struct {
	filter watchFilter
	queue  *EventQueue
}

// dirWatchLoop is one run of the hub's goroutine, from the first watch opened
// to the last one closed.
type dirWatchLoop struct {
	fsw     *fsnotify.Watcher // nil if inotify is unavailable: rescans only
	watched map[string]bool   // directories added to fsw
	// unwatched counts the directories the last full scan failed to add
	// to fsw: their changes are seen by periodic scans only.
	unwatched int
	// remote is set when the store is on a network filesystem, where
	// inotify misses the changes other machines make; eventsLost once the
	// watcher stopped delivering events.
	remote, eventsLost bool
	cancel             context.CancelFunc
	done               chan struct{}
	lastErr            string // last scan error reported, so it is reported once
}

func newDirHub(d *Dir) *dirHub {
	return &dirHub{d: d, wake: make(chan struct{}, 1), subs: map[*dirSubscriber]struct{}{}}
}

// poke asks for a rescan soon; it never blocks.
func (h *dirHub) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Watch implements Store.
func (d *Dir) Watch(ctx context.Context, kind *manifest.Kind, opts ListOptions) (<-chan Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkNamespaceArg(opts); err != nil {
		return nil, err
	}
	return d.hub.subscribe(ctx, watchFilter{kind: kind, opts: opts})
}

func (h *dirHub) subscribe(ctx context.Context, filter watchFilter) (<-chan Event, error) {
	sub := &dirSubscriber{filter: filter, queue: NewEventQueue()}
	h.mu.Lock()
	if h.loop == nil {
		h.startLocked()
	}
	// Scan now rather than serve the last snapshot, so a watch opened after a
	// write sees it among the initial objects; other watches get the changes.
	if err := h.rescanLocked(); err != nil {
		if len(h.subs) == 0 {
			h.mu.Unlock()
			h.stop()
		} else {
			h.mu.Unlock()
		}
		return nil, apiError(err)
	}
	keys := make([]objectKey, 0, len(h.snapshot))
	for k := range h.snapshot {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	var initial []Event
	for _, k := range keys {
		if ev, ok := filter.changeEvent(k, nil, h.snapshot[k].obj); ok {
			initial = append(initial, ev)
		}
	}
	sub.queue.Push(append(initial, Event{Type: Synced, Kind: filter.kind})...)
	h.subs[sub] = struct{}{}
	h.mu.Unlock()

	out := make(chan Event)
	go sub.queue.Run(ctx, out, func() { h.unsubscribe(sub) })
	return out, nil
}

// unsubscribe removes a watch; the last one out stops the loop and waits for
// it, so once a watch's channel is closed no goroutine of it is left.
func (h *dirHub) unsubscribe(sub *dirSubscriber) {
	h.mu.Lock()
	delete(h.subs, sub)
	last := len(h.subs) == 0
	h.mu.Unlock()
	if last {
		h.stop()
	}
}

// stop ends the loop if no watch has been opened meanwhile.
func (h *dirHub) stop() {
	h.mu.Lock()
	loop := h.loop
	if loop == nil || len(h.subs) > 0 {
		h.mu.Unlock()
		return
	}
	h.loop = nil
	h.snapshot = nil
	h.mu.Unlock()
	loop.cancel()
	<-loop.done
}

func (h *dirHub) startLocked() {
	ctx, cancel := context.WithCancel(context.Background())
	loop := &dirWatchLoop{watched: map[string]bool{}, cancel: cancel, done: make(chan struct{})}
	fsw, err := fsnotify.NewWatcher()
	if err == nil && h.d.noInotify {
		_ = fsw.Close() // as if inotify were unavailable (tests)
		fsw, err = nil, errors.New("inotify disabled by a test")
	}
	if err != nil {
		h.d.opts.Warn(fmt.Errorf("store directory %s: cannot watch for changes (%w); changes made outside this process are seen by rescanning every %v", h.d.root, err, watchRescanInterval))
	} else {
		loop.fsw = fsw
		loop.remote = isNetworkFilesystem(h.d.root)
	}
	h.loop = loop
	go h.run(ctx, loop)
}

// run waits for file events (debounced), store writes and the periodic
// rescan, and rescans.
func (h *dirHub) run(ctx context.Context, loop *dirWatchLoop) {
	defer close(loop.done)
	var fsEvents <-chan fsnotify.Event
	var fsErrors <-chan error
	if loop.fsw != nil {
		defer func() { _ = loop.fsw.Close() }()
		fsEvents, fsErrors = loop.fsw.Events, loop.fsw.Errors
	}
	ticker := time.NewTicker(h.rescanInterval(loop))
	defer ticker.Stop()
	fullScan := func() {
		began := time.Now()
		h.rescan(loop)
		ticker.Reset(max(h.rescanInterval(loop), rescanCostFactor*time.Since(began)))
	}
	debounce := time.NewTimer(watchDebounce)
	debounce.Stop()
	defer debounce.Stop()
	// What the events since the last rescan call for: the directories of
	// spec files whose files (or status files) changed, or everything.
	dirty := map[dirKey]bool{}
	full := false
	wait := quickDebounce // watchDebounce once a file is written in place
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-fsEvents:
			if !ok {
				fsEvents = nil
				h.mu.Lock()
				loop.eventsLost = true // only periodic scans see changes now
				h.mu.Unlock()
				ticker.Reset(h.rescanInterval(loop))
				continue
			}
			if k, ok := h.d.dirOfFile(ev.Name); ok {
				dirty[k] = true
			} else if k, ok := h.d.newObjectDir(ev); ok && loop.fsw.Add(ev.Name) == nil {
				// A namespace's first object of a kind: watch its new
				// directory and read it whole, rather than the tree
				// (meshd makes one per namespace for what it writes).
				h.mu.Lock() // rescanLocked reads loop.watched
				loop.watched[ev.Name] = true
				h.mu.Unlock()
				dirty[k] = true
			} else if h.newNamespaceDir(loop, ev, dirty) {
				// A namespace's first object: its directory and those of
				// its kinds are watched and read, not the tree.
			} else {
				full = true // a directory came or went, or a file out of place
			}
			// Temp files (dot-files, which scans skip) are written in
			// place before they are renamed over the real file.
			if ev.Has(fsnotify.Write) && !strings.HasPrefix(filepath.Base(ev.Name), ".") {
				wait = watchDebounce
			}
			debounce.Reset(wait)
		case _, ok := <-fsErrors:
			if !ok {
				fsErrors = nil
				continue
			}
			full = true // e.g. queue overflow: events were lost
			wait = watchDebounce
			debounce.Reset(wait)
		case <-h.wake:
			// A write of this process: fsnotify reports which files (and
			// whether a directory came); without it, look everywhere.
			full = full || loop.fsw == nil
			debounce.Reset(wait)
		case <-debounce.C:
			if full {
				fullScan()
			} else if len(dirty) > 0 {
				h.rescanDirs(loop, dirty)
			}
			dirty, full, wait = map[dirKey]bool{}, false, quickDebounce
		case <-ticker.C:
			fullScan()
		}
	}
}

// Filesystem types (statfs(2) f_type) whose files other machines, or the
// host of a virtual machine, can change without an inotify event here.
var networkFilesystems = map[int64]bool{
	0x6969:     true, // NFS
	0x517b:     true, // SMB
	0xfe534d42: true, // SMB2
	0xff534d42: true, // CIFS
	0x65735546: true, // FUSE (sshfs, s3fs, …)
	0x01021997: true, // 9p (WSL, QEMU shares)
	0x6a656a63: true, // virtiofs
	0x786f4256: true, // VirtualBox shared folders
	0x00c36400: true, // Ceph
	0x5346414f: true, // AFS
	0x0bd00bd0: true, // Lustre
	0x01161970: true, // GFS2
	0x7461636f: true, // OCFS2
}

// isNetworkFilesystem reports whether dir is on a filesystem where inotify
// may miss changes; when it cannot tell, it says no (a local filesystem is
// the common case, and a directory that inotify fails to watch is scanned
// often anyway).
func isNetworkFilesystem(dir string) bool {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return false
	}
	return networkFilesystems[int64(st.Type)] //nolint:unconvert // Type's type differs between architectures
}

// rescanInterval is how often the loop scans the whole tree: often when
// inotify may miss changes, rarely (a safety net) when it follows every
// directory of a local filesystem.
func (h *dirHub) rescanInterval(loop *dirWatchLoop) time.Duration {
	every := watchRescanInterval
	if h.d.rescanEvery > 0 {
		every = h.d.rescanEvery
	}
	h.mu.Lock() // the last full scan sets unwatched
	complete := loop.fsw != nil && !loop.remote && !loop.eventsLost && loop.unwatched == 0
	h.mu.Unlock()
	if complete {
		every = max(every, safetyRescanInterval)
	}
	return every
}

// newObjectDir returns the directory of spec (or status) files a Create
// event made: <kind>/<namespace> or _status/<kind>/<namespace>. Its files
// written before the watch on it was added are found by reading it whole.
func (d *Dir) newObjectDir(ev fsnotify.Event) (dirKey, bool) {
	if !ev.Has(fsnotify.Create) {
		return dirKey{}, false
	}
	k, ok := d.objectDirOf(ev.Name, 2)
	if !ok {
		return dirKey{}, false
	}
	if info, err := os.Lstat(ev.Name); err != nil || !info.IsDir() {
		return dirKey{}, false
	}
	return k, true
}

// newNamespaceDir handles the Create event of a namespace's directory (or
// _cluster's, or their status directories): a namespace's first object
// makes one, and meshd's first write of a status or of a ConfigMap into a
// namespace too. It watches the directory and the kinds' directories
// already in it, and marks those for a rescan, as newObjectDir does for
// one kind's: a directory made after the listing raises its own event.
// It returns false, for a full scan to handle (watching and reporting
// what is out of place), when the directory holds anything but kinds'
// directories of manifest files or a watch cannot be added.
func (h *dirHub) newNamespaceDir(loop *dirWatchLoop, ev fsnotify.Event, dirty map[dirKey]bool) bool {
	if !ev.Has(fsnotify.Create) || !h.d.isNamespaceDir(ev.Name) {
		return false
	}
	watch := func(dir string) bool {
		if loop.fsw.Add(dir) != nil {
			return false
		}
		h.mu.Lock() // rescanLocked reads loop.watched
		loop.watched[dir] = true
		h.mu.Unlock()
		return true
	}
	if !watch(ev.Name) {
		return false
	}
	entries, err := os.ReadDir(ev.Name)
	if err != nil {
		return false
	}
	found := map[dirKey]bool{}
	for _, e := range entries {
		path := filepath.Join(ev.Name, e.Name())
		if !e.IsDir() {
			if isManifestFile(e.Name()) {
				return false // out of place: the full scan reports it
			}
			continue
		}
		k, ok := h.d.objectDirOf(path, 2)
		if !ok || hasSubdirectory(path) || !watch(path) {
			return false
		}
		found[k] = true
	}
	for k := range found {
		dirty[k] = true
	}
	return true
}

// isNamespaceDir reports whether path is a directory that holds a
// namespace's kinds' directories: <namespace>, _cluster, or the same in
// the status directory.
func (d *Dir) isNamespaceDir(path string) bool {
	rel, err := filepath.Rel(d.root, path)
	if err != nil {
		return false
	}
	rel = filepath.ToSlash(rel)
	if r, ok := strings.CutPrefix(rel, statusDir+"/"); ok {
		rel = r
	}
	if strings.Contains(rel, "/") || (rel != clusterDir && len(validation.IsDNS1123Label(rel)) > 0) {
		return false
	}
	info, err := os.Lstat(path)
	return err == nil && info.IsDir()
}

// hasSubdirectory reports whether dir holds a directory (or cannot be
// listed): scans of a kind's directory skip those, and only a full scan
// reports the files in them.
func hasSubdirectory(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return true
	}
	for _, e := range entries {
		if e.IsDir() {
			return true
		}
	}
	return false
}

// dirOfFile returns the directory of spec files a file event at path
// concerns: <kind>/<namespace> for a file in a spec or status directory.
// false for anything else — a directory, a file out of place — which only
// a full scan handles (watching new directories, reporting misplaced
// files).
func (d *Dir) dirOfFile(path string) (dirKey, bool) {
	k, ok := d.objectDirOf(path, 3)
	if !ok {
		return dirKey{}, false
	}
	if info, err := os.Lstat(path); err == nil && info.IsDir() {
		return dirKey{}, false
	}
	return k, true
}

// objectDirOf returns the directory of spec files path is in or is:
// relative to the root (and to the status directory, for status files),
// path has elems elements of which the first two name the directory.
func (d *Dir) objectDirOf(path string, elems int) (dirKey, bool) {
	rel, err := filepath.Rel(d.root, path)
	if err != nil {
		return dirKey{}, false
	}
	rel = filepath.ToSlash(rel)
	if r, ok := strings.CutPrefix(rel, statusDir+"/"); ok {
		rel = r
	}
	parts := strings.Split(rel, "/")
	if len(parts) != elems {
		return dirKey{}, false
	}
	// As keyForPath reads the path, for any file name.
	key, ok := keyForPath(parts[0] + "/" + parts[1] + "/x" + objectFileExt)
	if !ok {
		return dirKey{}, false
	}
	return dirKey{key.kind, key.namespace}, true
}

func (h *dirHub) rescan(loop *dirWatchLoop) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.loop != loop {
		return // stopped meanwhile
	}
	if err := h.rescanLocked(); err != nil {
		if msg := err.Error(); msg != loop.lastErr {
			loop.lastErr = msg
			h.d.opts.Warn(err)
		}
		return
	}
	loop.lastErr = ""
}

// rescanLocked reads the tree, delivers the differences from the snapshot to
// every watch and makes the result the snapshot. The tree is read in
// batches, each under its own hold of the store's shared lock (see
// scanAllBatched): each object is read whole (spec and status files under
// one hold), but objects of different batches at different moments. A
// change made meanwhile to an object already read raises a file event,
// which the next rescan of its directory delivers.
func (h *dirHub) rescanLocked() error {
	loop := h.loop
	seenDirs := map[string]bool{}
	unwatched := 0
	next, err := h.d.scanAllBatched(func(dir string) {
		seenDirs[dir] = true
		if loop.fsw != nil && !loop.watched[dir] {
			// Failing to add one is covered by the periodic rescan,
			// which runs often while a directory is not watched.
			if loop.fsw.Add(dir) == nil {
				loop.watched[dir] = true
			} else {
				unwatched++
			}
		}
	})
	if err != nil {
		return err
	}
	loop.unwatched = unwatched
	for dir := range loop.watched {
		if !seenDirs[dir] {
			delete(loop.watched, dir)
			_ = loop.fsw.Remove(dir) // fails only when the kernel already dropped it with the directory
		}
	}
	if h.snapshot == nil {
		h.snapshot = next
		h.rebuildByDir()
		return nil
	}
	// Keep the snapshot's entry of each object that did not change, and
	// hand the watches only the objects that did.
	prev, changed := map[objectKey]*storedObject{}, map[objectKey]*storedObject{}
	keysChanged := false
	for k, n := range next {
		p, ok := h.snapshot[k]
		switch {
		case !ok:
			changed[k] = n
			keysChanged = true
		case p.obj.GetResourceVersion() != n.obj.GetResourceVersion():
			prev[k], changed[k] = p, n
		default:
			next[k] = p
		}
	}
	for k, p := range h.snapshot {
		if _, ok := next[k]; !ok {
			prev[k] = p
			keysChanged = true
		}
	}
	h.dispatchLocked(prev, changed)
	h.snapshot = next
	if keysChanged {
		h.rebuildByDir()
	}
	return nil
}

// rebuildByDir lists the snapshot's keys by directory again.
func (h *dirHub) rebuildByDir() {
	h.byDir = map[dirKey][]objectKey{}
	for k := range h.snapshot {
		dk := dirKey{k.kind, k.namespace}
		h.byDir[dk] = append(h.byDir[dk], k)
	}
}

// rescanDirs reads the spec files of the directories given (with their
// status files) and delivers what changed there, as rescan does for the
// whole tree.
func (h *dirHub) rescanDirs(loop *dirWatchLoop, dirs map[dirKey]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.loop != loop || h.snapshot == nil {
		return // stopped meanwhile
	}
	prev, next := map[objectKey]*storedObject{}, map[objectKey]*storedObject{}
	err := h.d.read(func() error {
		for dk := range dirs {
			for _, k := range h.byDir[dk] {
				prev[k] = h.snapshot[k]
			}
			if err := h.d.scanDir(dk, next); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if msg := err.Error(); msg != loop.lastErr {
			loop.lastErr = msg
			h.d.opts.Warn(err)
		}
		return
	}
	h.dispatchLocked(prev, next)
	for k := range prev {
		delete(h.snapshot, k)
	}
	for dk := range dirs {
		delete(h.byDir, dk)
	}
	for k, s := range next {
		h.snapshot[k] = s
		dk := dirKey{k.kind, k.namespace}
		h.byDir[dk] = append(h.byDir[dk], k)
	}
}

// dispatchLocked sends each watch the events between two snapshots, in key
// order except that a Namespace's deletion comes after its contents'.
func (h *dirHub) dispatchLocked(prev, next map[objectKey]*storedObject) {
	var changed []objectKey
	for k, p := range prev {
		if n, ok := next[k]; !ok || n.obj.GetResourceVersion() != p.obj.GetResourceVersion() {
			changed = append(changed, k)
		}
	}
	for k := range next {
		if _, ok := prev[k]; !ok {
			changed = append(changed, k)
		}
	}
	if len(changed) == 0 {
		return
	}
	isNamespaceDeletion := func(k objectKey) bool { return k.kind == manifest.Namespace && next[k] == nil }
	slices.SortFunc(changed, func(a, b objectKey) int {
		if da, db := isNamespaceDeletion(a), isNamespaceDeletion(b); da != db {
			if da {
				return 1
			}
			return -1
		}
		return compareKeys(a, b)
	})
	for sub := range h.subs {
		var events []Event
		for _, k := range changed {
			var old, new manifest.Object
			if p := prev[k]; p != nil {
				old = p.obj
			}
			if n := next[k]; n != nil {
				new = n.obj
			}
			if ev, ok := sub.filter.changeEvent(k, old, new); ok {
				events = append(events, ev)
			}
		}
		sub.queue.Push(events...)
	}
}
