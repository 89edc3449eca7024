package store

import "time"

// SetFailTempWrite makes d's file writes fail after the temp file is written
// and before it replaces the real file, as a full disk or a crash would.
func SetFailTempWrite(d *Dir, fail func(tmpPath string) error) { d.failTempWrite = fail }

// SetClock makes d read the time from now, so that tests can age file stamps.
func SetClock(d *Dir, now func() time.Time) { d.now = now }

// FilesRead counts the objects d has read from their files.
func FilesRead(d *Dir) int64 { return d.filesRead.Load() }

// SpecsDecoded counts the spec files d has parsed (and admitted).
func SpecsDecoded(d *Dir) int64 { return d.specsDecoded.Load() }

// SetRescanInterval replaces the periodic full rescan's interval of d's
// watches opened from now on, while inotify may miss changes (and the
// safety net's, when longer).
func SetRescanInterval(d *Dir, every time.Duration) { d.rescanEvery = every }

// SetScanning makes d's scans call fn before they look at each object.
func SetScanning(d *Dir, fn func()) { d.scanning = fn }

// DisableInotify makes d's watches opened from now on work as without
// inotify: by periodic full rescans.
func DisableInotify(d *Dir) { d.noInotify = true }

// IsNetworkFilesystem reports whether the watch takes dir for a network
// filesystem, where inotify misses changes.
func IsNetworkFilesystem(dir string) bool { return isNetworkFilesystem(dir) }

// ObjectsScanned counts the objects d's scans have looked at.
func ObjectsScanned(d *Dir) int64 { return d.objectsScanned.Load() }
