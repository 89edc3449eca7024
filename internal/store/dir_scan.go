package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/meshway/meshway/internal/manifest"
)

// This file holds how the directory backend finds objects: the scans of one
// kind (List) and of the whole tree (Watch), the cache that spares re-parsing
// unchanged files, and the once-per-file-version warnings.

// scanKind reads the objects of one kind, in one namespace or (empty) all.
// Files that cannot be used are reported and skipped. The caller holds the lock.
func (d *Dir) scanKind(kind *manifest.Kind, namespace string) ([]*storedObject, error) {
	var namespaces []string
	switch {
	case !kind.Namespaced:
		namespaces = []string{""}
	case namespace != "":
		namespaces = []string{namespace}
	default:
		entries, err := os.ReadDir(d.root)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", d.root, err)
		}
		for _, e := range entries {
			if e.IsDir() && len(validation.IsDNS1123Label(e.Name())) == 0 {
				namespaces = append(namespaces, e.Name())
			}
		}
	}
	var keys []objectKey
	for _, ns := range namespaces {
		dir := filepath.Dir(d.specPath(objectKey{kind: kind, namespace: ns, name: "x"}))
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("listing %s: %w", dir, err)
		}
		for _, e := range entries {
			if e.IsDir() || !isManifestFile(e.Name()) {
				continue
			}
			if !strings.HasSuffix(e.Name(), objectFileExt) {
				d.reportMisplacedFile(filepath.Join(dir, e.Name()))
				continue
			}
			keys = append(keys, objectKey{kind: kind, namespace: ns, name: strings.TrimSuffix(e.Name(), objectFileExt)})
		}
	}
	out, err := d.scanObjects(keys)
	if err != nil {
		return nil, err
	}
	for _, s := range out {
		s.obj = copyObject(s.obj) // the cache's
	}
	return out, nil
}

// scanDir reads the objects of one directory of spec files into out, as
// scanAll would. The caller holds the lock.
func (d *Dir) scanDir(dk dirKey, out map[objectKey]*storedObject) error {
	dir := filepath.Dir(d.specPath(objectKey{kind: dk.kind, namespace: dk.namespace, name: "x"}))
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed: its objects are gone
	} else if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() || !isManifestFile(e.Name()) {
			continue
		}
		if !strings.HasSuffix(e.Name(), objectFileExt) {
			d.reportMisplacedFile(filepath.Join(dir, e.Name()))
			continue
		}
		key := objectKey{kind: dk.kind, namespace: dk.namespace, name: strings.TrimSuffix(e.Name(), objectFileExt)}
		s, err := d.scanObject(key)
		var fe *FileError
		if errors.As(err, &fe) {
			continue
		} else if err != nil {
			return err
		}
		if s != nil {
			out[key] = s
		}
	}
	return nil
}

// scanAllBatched reads every object in the tree and reports every manifest
// file that is not where an object belongs. visitDir is called for each
// directory the watch must follow, before its entries are read, so that a
// file created in it meanwhile is either seen now or raises an event.
//
// It takes the store's shared lock itself, a batch of objects at a time:
// the walk lists directories without it (a listing is consistent without
// the lock: files are replaced by rename), and each object's spec and
// status files are read under one hold. An object removed between the walk
// and its batch is left out; one created meanwhile raises a file event.
func (d *Dir) scanAllBatched(visitDir func(path string)) (map[objectKey]*storedObject, error) {
	out := map[objectKey]*storedObject{}
	seen := map[string]bool{}
	var keys []objectKey
	statusRoot := filepath.Join(d.root, statusDir)
	err := filepath.WalkDir(d.root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed by hand while we walked
			}
			return err
		}
		inStatus := path == statusRoot || strings.HasPrefix(path, statusRoot+string(filepath.Separator))
		if e.IsDir() {
			if path != d.root && strings.HasPrefix(e.Name(), ".") && !inStatus {
				return filepath.SkipDir
			}
			visitDir(path) // status directories too: a status write changes the resourceVersion
			return nil
		}
		if inStatus || !isManifestFile(e.Name()) {
			return nil
		}
		rel, err := filepath.Rel(d.root, path)
		if err != nil {
			return err
		}
		key, ok := keyForPath(filepath.ToSlash(rel))
		if !ok {
			d.reportMisplacedFile(path)
			return nil
		}
		seen[path] = true
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scanning %s: %w", d.root, err)
	}
	for len(keys) > 0 {
		batch := keys[:min(scanBatch, len(keys))]
		keys = keys[len(batch):]
		unlock, err := d.lock(false)
		if err != nil {
			return nil, fmt.Errorf("scanning %s: %w", d.root, err)
		}
		found, err := d.scanObjects(batch)
		unlock()
		if err != nil {
			return nil, fmt.Errorf("scanning %s: %w", d.root, err)
		}
		for _, s := range found {
			out[s.key] = s
		}
	}
	d.cache.retain(seen)
	return out, nil
}

// scanObjects is scanObject for many objects, on every CPU: parsing the
// files is most of the cost of a first scan (half a minute for 110,000
// files on one CPU). Files that cannot be used are left out (they were
// reported), as are missing ones; the first other error is returned.
func (d *Dir) scanObjects(keys []objectKey) ([]*storedObject, error) {
	found := make([]*storedObject, len(keys))
	errs := make([]error, len(keys))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(keys)/64+1) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(keys); i = int(next.Add(1) - 1) {
				found[i], errs[i] = d.scanObject(keys[i])
			}
		})
	}
	wg.Wait()
	out := found[:0]
	for i, s := range found {
		var fe *FileError
		switch err := errs[i]; {
		case errors.As(err, &fe):
		case err != nil:
			return nil, err
		case s != nil:
			out = append(out, s)
		}
	}
	return out, nil
}

// parseCache keeps the object decoded from each file, keyed by the file's
// resourceVersion (a hash of its bytes) and modification time (which a
// hand-written file's creationTimestamp comes from), so scans every few
// seconds do not parse unchanged YAML again.
type parseCache struct {
	mu      sync.Mutex
	entries map[string]parseCacheEntry
}

// Its objects are shared with the watch snapshot and must not be modified:
// callers handing an object out copy it.
type parseCacheEntry struct {
	resourceVersion string
	// specSum is a hash of the spec file alone: when only the status file
	// changed, the object's spec part is taken from obj rather than parsed
	// and admitted again.
	specSum string
	modTime time.Time
	// stamps are the spec and status files' when they were read.
	stamps [2]fileStamp
	obj    manifest.Object
	err    error
}

func (c *parseCache) get(path, resourceVersion string, modTime time.Time, stamps [2]fileStamp) (manifest.Object, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[path]
	if !ok || e.resourceVersion != resourceVersion || !e.modTime.Equal(modTime) {
		return nil, nil, false
	}
	// Same content: newer stamps vouch for it from now on.
	e.stamps = stamps
	c.entries[path] = e
	if e.err != nil {
		return nil, e.err, true
	}
	return e.obj, nil, true
}

// unchanged returns the entry of path if its files' stamps are those it was
// read with, and old enough to vouch for the content (see racyWindow).
func (c *parseCache) unchanged(path string, stamps [2]fileStamp, now time.Time) (manifest.Object, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[path]
	if !ok || e.stamps != stamps || stamps[0].size < 0 || stamps[1].size < 0 {
		return nil, nil, false
	}
	for _, st := range stamps {
		if st != (fileStamp{}) && now.Sub(time.Unix(0, max(st.ctimeNs, st.mtimeNs))) < racyWindow {
			return nil, nil, false
		}
	}
	return e.obj, e.err, true
}

// sameSpec returns the entry's object of path if it was read from the same
// spec file (by its hash and modification time) and is usable.
func (c *parseCache) sameSpec(path, specSum string, modTime time.Time) (manifest.Object, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[path]
	if !ok || e.err != nil || e.specSum != specSum || !e.modTime.Equal(modTime) {
		return nil, false
	}
	return e.obj, true
}

func (c *parseCache) put(path string, e parseCacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[path] = e
}

// retain drops the entries of files a full scan no longer found.
func (c *parseCache) retain(paths map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.entries {
		if !paths[p] {
			delete(c.entries, p)
		}
	}
}

// warnings remembers which file versions were reported, so a bad file is
// reported once per (path, size, mtime) per process rather than on every scan.
type warnings struct {
	mu   sync.Mutex
	seen map[warningKey]struct{}
	call sync.Mutex // held while Warn runs
}

type warningKey struct {
	path    string
	size    int64
	modTime time.Time
}

func keyForWarning(path string, info fs.FileInfo) warningKey {
	k := warningKey{path: path}
	if info != nil {
		k.size, k.modTime = info.Size(), info.ModTime()
	}
	return k
}

func (d *Dir) alreadyWarned(path string, info fs.FileInfo) bool {
	d.warnings.mu.Lock()
	defer d.warnings.mu.Unlock()
	_, ok := d.warnings.seen[keyForWarning(path, info)]
	return ok
}

func (d *Dir) warnOnce(path string, info fs.FileInfo, err error) {
	k := keyForWarning(path, info)
	d.warnings.mu.Lock()
	_, seen := d.warnings.seen[k]
	d.warnings.seen[k] = struct{}{}
	d.warnings.mu.Unlock()
	if !seen {
		// Scans read files on several goroutines; Warn is called on one
		// at a time.
		d.warnings.call.Lock()
		defer d.warnings.call.Unlock()
		d.opts.Warn(err)
	}
}
