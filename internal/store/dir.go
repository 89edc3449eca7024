package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/meshway/meshway/internal/manifest"
)

// Dir is a Store kept in a directory of manifests, one YAML file per object, so
// a person can read, edit, copy or version it with ordinary tools:
//
//	<dir>/<namespace>/<resource>/<name>.yaml   namespaced objects
//	<dir>/_cluster/<resource>/<name>.yaml      cluster-scoped objects
//	<dir>/.status/<same path>                  status, apart from the spec
//	<dir>/.lock                                flock(2): writers exclusive, readers shared
//
// <resource> is the kind's qualified resource ("services",
// "gateways.gateway.networking.k8s.io"). The resourceVersion is a hash of the
// spec and status files, computed on read and never stored, so a hand edit
// changes it and a writer holding the old one gets a Conflict. Several
// processes may use one directory at once.
type Dir struct {
	root     string
	lockPath string
	opts     Options
	cache    parseCache
	warnings warnings
	hub      *dirHub

	// failTempWrite, when set (by tests), runs after a temp file is written and
	// before it replaces the real one; an error aborts the write there.
	failTempWrite func(tmpPath string) error
	// now is time.Now unless a test moves the clock (see racyWindow);
	// filesRead counts objects read from their files, and specsDecoded
	// the spec files parsed (and admitted), for tests.
	now                     func() time.Time
	filesRead, specsDecoded atomic.Int64
	// rescanEvery replaces watchRescanInterval when set (tests);
	// objectsScanned counts objects looked at by scans, for tests.
	rescanEvery    time.Duration
	objectsScanned atomic.Int64
	// scanning, when set (tests), runs before a scan looks at an object,
	// to make scans slow; noInotify makes watches work without inotify.
	scanning  func()
	noInotify bool
}

var _ Store = (*Dir)(nil)

// OpenDir opens the store in dir, creating the directory if needed. A new store
// (a missing or empty directory) gets opts.InitialNamespaces.
func OpenDir(dir string, opts Options) (*Dir, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("creating store directory: %w", err)
	}
	d := &Dir{root: root, lockPath: filepath.Join(root, lockFile), opts: opts.withDefaults(), now: time.Now}
	d.cache.entries = map[string]parseCacheEntry{}
	d.warnings.seen = map[warningKey]struct{}{}
	d.hub = newDirHub(d)
	f, err := os.OpenFile(d.lockPath, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store directory %s: creating the lock file: %w", root, err)
	}
	_ = f.Close() // only created, never written
	if len(d.opts.InitialNamespaces) > 0 {
		err := d.write(func() error { return d.createInitialNamespacesLocked() })
		if err != nil {
			return nil, fmt.Errorf("store directory %s: %w", root, err)
		}
	}
	return d, nil
}

// createInitialNamespacesLocked creates the initial namespaces if the store is
// new. It runs under the write lock so two processes opening a new directory at
// once create them once.
func (d *Dir) createInitialNamespacesLocked() error {
	entries, err := os.ReadDir(d.root)
	if err != nil {
		return fmt.Errorf("listing %s: %w", d.root, err)
	}
	for _, e := range entries {
		if e.Name() != lockFile {
			return nil // not new
		}
	}
	for _, name := range d.opts.InitialNamespaces {
		ns := &corev1.Namespace{}
		ns.Name = name
		kind, key, obj, err := prepareCreate(context.Background(), ns)
		if err != nil {
			return err
		}
		if _, err := d.createLocked(kind, key, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

// Describe implements Store.
func (d *Dir) Describe() string { return "directory " + d.root }

// lock takes flock(2) on the lock file: exclusive for writers, shared for
// readers. Each call opens its own descriptor, because flock locks belong to
// an open file description: goroutines of one process exclude each other only
// through separate descriptors, exactly as separate processes do.
func (d *Dir) lock(exclusive bool) (unlock func(), err error) {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		f, err := os.OpenFile(d.lockPath, os.O_RDONLY|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("opening lock file %s: %w", d.lockPath, err)
		}
		for {
			err = unix.Flock(int(f.Fd()), how)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		if err != nil {
			_ = f.Close() // the lock error is the one to report
			return nil, fmt.Errorf("locking %s: %w", d.lockPath, err)
		}
		if !d.lockFileReplaced(f) {
			return func() { _ = f.Close() }, nil // closing the descriptor releases the lock
		}
		_ = f.Close() // a stale lock file: retry on the new one
	}
}

// lockFileReplaced reports whether the lock file f was removed (by hand) after
// it was opened: a lock on it excludes no one, so it must be taken again on the
// file now at the path.
func (d *Dir) lockFileReplaced(f *os.File) bool {
	var held, current unix.Stat_t
	if err := unix.Stat(d.lockPath, &current); err != nil {
		return errors.Is(err, unix.ENOENT)
	}
	if unix.Fstat(int(f.Fd()), &held) != nil {
		return false
	}
	return held.Dev != current.Dev || held.Ino != current.Ino
}

// read runs fn under the shared lock.
func (d *Dir) read(fn func() error) error {
	unlock, err := d.lock(false)
	if err != nil {
		return apiError(err)
	}
	defer unlock()
	return apiError(fn())
}

// write runs fn under the exclusive lock, then lets the watches look.
func (d *Dir) write(fn func() error) error {
	unlock, err := d.lock(true)
	if err != nil {
		return apiError(err)
	}
	err = fn()
	unlock()
	d.hub.poke()
	return apiError(err)
}

// apiError makes an I/O failure an API error (InternalError), as the Store
// contract promises; API errors and context errors pass through.
func apiError(err error) error {
	var status apierrors.APIStatus
	if err == nil || errors.As(err, &status) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return apierrors.NewInternalError(err)
}

// unreadable adds to a NotFound or AlreadyExists error why the file that is in
// the way cannot be used, so "not found" does not puzzle someone looking at it.
func unreadable(base error, fe *FileError) error {
	var status *apierrors.StatusError
	if errors.As(base, &status) {
		status.ErrStatus.Message += ": " + fe.Error()
	}
	return base
}

// Get implements Store.
func (d *Dir) Get(ctx context.Context, kind *manifest.Kind, namespace, name string) (manifest.Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key, err := lookupKey(kind, namespace, name)
	if err != nil {
		return nil, err
	}
	var out manifest.Object
	err = d.read(func() error {
		cur, err := d.currentObject(key)
		if err == nil {
			out = cur.obj
		}
		return err
	})
	return out, err
}

// currentObject reads the object at key, or returns NotFound.
func (d *Dir) currentObject(key objectKey) (*storedObject, error) {
	cur, err := d.readObject(key)
	var fe *FileError
	switch {
	case errors.As(err, &fe):
		return nil, unreadable(NotFound(key.kind, key.name), fe)
	case err != nil:
		return nil, err
	case cur == nil:
		return nil, NotFound(key.kind, key.name)
	}
	return cur, nil
}

// List implements Store.
func (d *Dir) List(ctx context.Context, kind *manifest.Kind, opts ListOptions) ([]manifest.Object, error) {
	if err := checkListArgs(ctx, kind, opts); err != nil {
		return nil, err
	}
	var found []*storedObject
	err := d.read(func() (err error) {
		found, err = d.scanKind(kind, opts.Namespace)
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(found, func(a, b *storedObject) int { return compareKeys(a.key, b.key) })
	var out []manifest.Object
	for _, s := range found {
		if opts.Matches(kind, s.obj) {
			out = append(out, s.obj)
		}
	}
	return out, nil
}

// Create implements Store.
func (d *Dir) Create(ctx context.Context, obj manifest.Object) (manifest.Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kind, key, obj, err := prepareCreate(ctx, obj)
	if err != nil {
		return nil, err
	}
	var out manifest.Object
	err = d.write(func() (err error) {
		out, err = d.createLocked(kind, key, obj)
		return err
	})
	return out, err
}

func (d *Dir) createLocked(kind *manifest.Kind, key objectKey, obj manifest.Object) (manifest.Object, error) {
	cur, err := d.readObject(key)
	var fe *FileError
	switch {
	case errors.As(err, &fe):
		return nil, unreadable(AlreadyExists(kind, key.name), fe)
	case err != nil:
		return nil, err
	case cur != nil:
		return nil, AlreadyExists(kind, key.name)
	}
	if kind.Namespaced {
		ns, err := d.readObject(objectKey{kind: manifest.Namespace, name: key.namespace})
		if err != nil && !errors.As(err, &fe) {
			return nil, err
		}
		if ns == nil { // absent, or a file that cannot be used (reported)
			return nil, NamespaceNotFound(key.namespace)
		}
	}
	d.opts.newObject(kind, obj)
	spec, err := encodeSpec(obj)
	if err != nil {
		return nil, err
	}
	status, err := encodeStatus(key, obj)
	if err != nil {
		return nil, err
	}
	// Status first: the object exists once its spec file does, and then whole.
	if err := d.writeStatusFile(key, status); err != nil {
		return nil, err
	}
	if err := d.writeFileAtomic(d.specPath(key), spec); err != nil {
		return nil, err
	}
	return d.readBack(key)
}

func (d *Dir) writeStatusFile(key objectKey, data []byte) error {
	if data == nil {
		return removeFile(d.statusPath(key))
	}
	return d.writeFileAtomic(d.statusPath(key), data)
}

// readBack returns what a write stored, exactly as Get will return it.
func (d *Dir) readBack(key objectKey) (manifest.Object, error) {
	cur, err := d.readObject(key)
	if err != nil || cur == nil {
		return nil, fmt.Errorf("reading back %s after writing it: %w", d.specPath(key), err)
	}
	return cur.obj, nil
}

// Update implements Store.
func (d *Dir) Update(ctx context.Context, obj manifest.Object) (manifest.Object, error) {
	return d.replace(ctx, obj, false)
}

// UpdateStatus implements Store.
func (d *Dir) UpdateStatus(ctx context.Context, obj manifest.Object) (manifest.Object, error) {
	return d.replace(ctx, obj, true)
}

// replace is Update (which writes only the spec file) and UpdateStatus (which
// writes only the status file, so it never clobbers a hand edit of the spec).
func (d *Dir) replace(ctx context.Context, obj manifest.Object, statusOnly bool) (manifest.Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kind, key, desired, err := prepareWrite(obj)
	if err != nil {
		return nil, err
	}
	var out manifest.Object
	err = d.write(func() error {
		cur, err := d.currentObject(key)
		if err != nil {
			return err
		}
		if err := checkResourceVersion(kind, key.name, desired.GetResourceVersion(), cur.obj.GetResourceVersion()); err != nil {
			return err
		}
		if statusOnly {
			next, err := statusUpdatedObject(ctx, kind, cur.obj, desired)
			if err != nil {
				return err
			}
			data, err := encodeStatus(key, next)
			if err != nil {
				return err
			}
			if slices.Equal(data, cur.status) {
				out = cur.obj
				return nil
			}
			if err := d.writeStatusFile(key, data); err != nil {
				return err
			}
		} else {
			next, err := updatedObject(ctx, kind, cur.obj, desired)
			if err != nil {
				return err
			}
			data, err := encodeSpec(next)
			if err != nil {
				return err
			}
			if slices.Equal(data, cur.spec) {
				out = cur.obj
				return nil
			}
			if err := d.writeFileAtomic(d.specPath(key), data); err != nil {
				return err
			}
		}
		out, err = d.readBack(key)
		return err
	})
	return out, err
}

// Delete implements Store.
func (d *Dir) Delete(ctx context.Context, kind *manifest.Kind, namespace, name string, opts DeleteOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key, err := lookupKey(kind, namespace, name)
	if err != nil {
		return err
	}
	if err := checkDeletable(key); err != nil {
		return err
	}
	return d.write(func() error {
		cur, err := d.currentObject(key)
		if err != nil {
			return err
		}
		if err := checkResourceVersion(kind, name, opts.ResourceVersion, cur.obj.GetResourceVersion()); err != nil {
			return err
		}
		if kind == manifest.Namespace {
			if err := d.deleteNamespaceContentsLocked(name); err != nil {
				return err
			}
		}
		return d.removeObjectLocked(key)
	})
}

// deleteNamespaceContentsLocked removes every object in a namespace. Files the
// store cannot use are left alone (they were reported), and so is the
// directory holding them.
func (d *Dir) deleteNamespaceContentsLocked(namespace string) error {
	for _, kind := range manifest.All {
		if !kind.Namespaced {
			continue
		}
		found, err := d.scanKind(kind, namespace)
		if err != nil {
			return err
		}
		for _, s := range found {
			if err := d.removeObjectLocked(s.key); err != nil {
				return err
			}
		}
	}
	removeEmptyDirs(filepath.Join(d.root, namespace), d.root)
	removeEmptyDirs(filepath.Join(d.root, statusDir, namespace), d.root)
	return nil
}

// removeObjectLocked removes an object's files: the spec file first, so the
// object is gone at once, then its status.
func (d *Dir) removeObjectLocked(key objectKey) error {
	if err := removeFile(d.specPath(key)); err != nil {
		return err
	}
	if err := removeFile(d.statusPath(key)); err != nil {
		return err
	}
	removeEmptyDirs(filepath.Dir(d.specPath(key)), d.root)
	removeEmptyDirs(filepath.Dir(d.statusPath(key)), d.root)
	return nil
}
