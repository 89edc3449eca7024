package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/manifest"
)

// This file holds the directory backend's on-disk format: where an object's
// files are, how they are encoded and decoded, and how a file a person wrote
// by hand is checked and completed on read.

const (
	clusterDir    = "_cluster" // holds cluster-scoped kinds; "_" cannot start a namespace
	statusDir     = ".status"  // mirrors the tree with the objects' status
	lockFile      = ".lock"
	objectFileExt = ".yaml"
)

// FileError reports a file in a directory store that cannot be used. The store
// skips such a file and leaves it as it is.
type FileError struct {
	Path string // absolute path of the file
	Err  error  // what is wrong with it
	Fix  string // what to do about it; empty when Err says it
}

func (e *FileError) Error() string {
	msg := e.Err.Error()
	if !strings.HasPrefix(msg, e.Path) {
		msg = e.Path + ": " + msg
	}
	if e.Fix == "" {
		return msg + " (the store skips this file until it is fixed, and never rewrites or deletes it)"
	}
	return msg + " (the store skips this file: " + e.Fix + ")"
}

func (e *FileError) Unwrap() error { return e.Err }

// storedObject is one object as read from disk.
type storedObject struct {
	key    objectKey
	obj    manifest.Object // status, defaults and resourceVersion filled in
	spec   []byte          // the spec file's bytes (nil from scanObject)
	status []byte          // the status file's bytes; nil when there is none (or from scanObject)
}

// relPath is the object's path relative to the store root, with slashes.
func (k objectKey) relPath() string {
	ns := k.namespace
	if !k.kind.Namespaced {
		ns = clusterDir
	}
	return ns + "/" + k.kind.QualifiedResource() + "/" + k.name + objectFileExt
}

func (d *Dir) specPath(k objectKey) string {
	return filepath.Join(d.root, filepath.FromSlash(k.relPath()))
}

func (d *Dir) statusPath(k objectKey) string {
	return filepath.Join(d.root, statusDir, filepath.FromSlash(k.relPath()))
}

// kindsByResource maps a resource directory name to its kind.
var kindsByResource = func() map[string]*manifest.Kind {
	m := map[string]*manifest.Kind{}
	for _, k := range manifest.All {
		m[k.QualifiedResource()] = k
	}
	return m
}()

// keyForPath is the object a file at rel (relative to the root, slashes) must
// hold; ok is false when no object belongs at that path.
func keyForPath(rel string) (objectKey, bool) {
	parts := strings.Split(rel, "/")
	if len(parts) != 3 || !strings.HasSuffix(parts[2], objectFileExt) {
		return objectKey{}, false
	}
	kind, ok := kindsByResource[parts[1]]
	if !ok {
		return objectKey{}, false
	}
	key := objectKey{kind: kind, name: strings.TrimSuffix(parts[2], objectFileExt)}
	switch {
	case parts[0] == clusterDir && !kind.Namespaced:
	case kind.Namespaced && len(validation.IsDNS1123Label(parts[0])) == 0:
		key.namespace = parts[0]
	default:
		return objectKey{}, false
	}
	return key, true
}

// isManifestFile reports whether the store reads a file with this name; other
// files (READMEs, editor backups, our temp files) are ignored silently.
func isManifestFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// resourceVersionOf hashes what is on disk, so a hand edit changes it and no
// counter has to be stored. The length prefix keeps (spec, status) unambiguous.
func resourceVersionOf(spec, status []byte) string {
	h := sha256.New()
	_ = binary.Write(h, binary.BigEndian, uint64(len(spec)))
	h.Write(spec)
	h.Write(status)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// encodeSpec renders the spec file: the object without status and without
// resourceVersion (which is computed on read), keys sorted as kubectl prints.
// A custom resource's file starts with the admitted header.
func encodeSpec(obj manifest.Object) ([]byte, error) {
	m, _, err := splitStatus(obj)
	if err != nil {
		return nil, err
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "resourceVersion")
	}
	body, err := sigsyaml.Marshal(m)
	if err != nil || !manifest.MustKindOf(obj).IsCustomResource() {
		return body, err
	}
	return append([]byte(admittedHeader+bodyHash(body)+"\n"), body...), nil
}

// admittedHeader is the first line of a custom resource's spec file that the
// store wrote, followed by a hash of the lines below it. The store admitted
// (validated and defaulted) the object when it wrote it; while the hash
// matches, a read takes the file as it is — as an API server reads what it
// stored — and spares the CRD's rules, the costly part of a first read. A
// file without the line, or edited since (the hash no longer matches), is
// admitted when read.
const admittedHeader = "# Written by meshway, valid for its CRD as written. sha256:"

func bodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:12])
}

// admittedAsWritten reports whether data is a spec file the store wrote and
// no one has edited since.
func admittedAsWritten(data []byte) bool {
	line, body, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return false
	}
	hash, ok := bytes.CutPrefix(line, []byte(admittedHeader))
	return ok && string(hash) == bodyHash(body)
}

// statusFile is the content of a status file. UID ties the status to one
// incarnation of the object: after the spec file is deleted by hand and a new
// one written, an old status file no longer applies.
type statusFile struct {
	UID    types.UID `json:"uid"`
	Status any       `json:"status"`
}

// encodeStatus renders the status file, or nil when the status is empty and
// no file is needed.
func encodeStatus(key objectKey, obj manifest.Object) ([]byte, error) {
	_, status, err := splitStatus(obj)
	if err != nil {
		return nil, err
	}
	if isEmptyStatus(status) {
		return nil, nil
	}
	body, err := sigsyaml.Marshal(statusFile{UID: obj.GetUID(), Status: status})
	if err != nil {
		return nil, fmt.Errorf("encoding status of %s: %w", key, err)
	}
	header := fmt.Sprintf("# Status of %s, written by meshway. The object itself is %s.\n", key, key.relPath())
	return append([]byte(header), body...), nil
}

// readFileAt reads a file and its modification time; a missing file is (nil, zero, nil).
func readFileAt(path string) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer func() { _ = f.Close() }() // read-only
	info, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if info.IsDir() {
		return nil, nil, nil
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, info, nil
}

// readObject reads the object stored at key's path. It returns (nil, nil) when
// there is no file, and a *FileError (already reported through Warn) when the
// file cannot be used. The object is the caller's. The caller holds the lock.
func (d *Dir) readObject(key objectKey) (*storedObject, error) {
	s, err := d.readObjectShared(key)
	if s != nil {
		s.obj = copyObject(s.obj)
	}
	return s, err
}

// readObjectShared is readObject returning the parse cache's object, which
// the caller must not modify.
func (d *Dir) readObjectShared(key objectKey) (*storedObject, error) {
	path := d.specPath(key)
	spec, info, err := readFileAt(path)
	if err != nil || info == nil {
		return nil, err
	}
	d.filesRead.Add(1)
	statusPath := d.statusPath(key)
	status, statusInfo, err := readFileAt(statusPath)
	if err != nil {
		return nil, err
	}
	stamps := [2]fileStamp{stampOf(info), stampOf(statusInfo)}
	rv := resourceVersionOf(spec, status)
	if obj, err, ok := d.cache.get(path, rv, info.ModTime(), stamps); ok {
		if err != nil {
			return nil, err
		}
		return &storedObject{key: key, obj: obj, spec: spec, status: status}, nil
	}
	entry := parseCacheEntry{resourceVersion: rv, specSum: specSumOf(spec), modTime: info.ModTime(), stamps: stamps}
	if obj, ok := d.statusChangedOnly(key, path, entry, status); ok {
		entry.obj = obj
		d.cache.put(path, entry)
		return &storedObject{key: key, obj: obj, spec: spec, status: status}, nil
	}
	d.specsDecoded.Add(1)
	obj, err := d.decodeObjectFile(key, path, spec, info)
	if err != nil {
		d.warnOnce(path, info, err)
		entry.err = err
		d.cache.put(path, entry)
		return nil, err
	}
	if status != nil {
		if _, statusErr := applyStatusFile(key, obj, statusPath, status); statusErr != nil {
			d.warnOnce(statusPath, statusInfo, statusErr) // the object is still usable, without status
		}
	}
	obj.SetResourceVersion(rv)
	entry.obj = obj
	d.cache.put(path, entry)
	return &storedObject{key: key, obj: obj, spec: spec, status: status}, nil
}

// statusChangedOnly returns the object at key when only its status file
// changed since the parse cache read it (a status write: meshd writes the
// status of thousands of objects): the cached object with the new status,
// without parsing the spec file and admitting a hand-written custom
// resource again. ok is false when the spec file changed, or the status
// file is gone, does not parse or belongs to another object of the name
// (the spec is then read whole, and any problem reported).
func (d *Dir) statusChangedOnly(key objectKey, path string, entry parseCacheEntry, status []byte) (manifest.Object, bool) {
	if status == nil {
		return nil, false
	}
	cached, ok := d.cache.sameSpec(path, entry.specSum, entry.modTime)
	if !ok {
		return nil, false
	}
	obj := copyObject(cached)
	if applied, err := applyStatusFile(key, obj, d.statusPath(key), status); err != nil || !applied {
		return nil, false
	}
	obj.SetResourceVersion(entry.resourceVersion)
	return obj, true
}

// specSumOf hashes a spec file, for parseCacheEntry.specSum.
func specSumOf(spec []byte) string {
	sum := sha256.Sum256(spec)
	return string(sum[:16])
}

// scanObject is readObjectShared for scans of many objects: when neither the
// spec file nor the status file changed since the parse cache read them (by
// their stamps), it reads neither. The object is the cache's, which the
// caller must not modify; spec and status are not returned. The caller holds
// the lock.
func (d *Dir) scanObject(key objectKey) (*storedObject, error) {
	d.objectsScanned.Add(1)
	if d.scanning != nil {
		d.scanning()
	}
	path := d.specPath(key)
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	statusInfo, err := os.Stat(d.statusPath(key))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", d.statusPath(key), err)
	}
	if obj, err, ok := d.cache.unchanged(path, [2]fileStamp{stampOf(info), stampOf(statusInfo)}, d.now()); ok {
		if err != nil {
			return nil, err
		}
		return &storedObject{key: key, obj: obj}, nil
	}
	s, err := d.readObjectShared(key)
	if s != nil {
		s.spec, s.status = nil, nil // the snapshot keeps objects, not bytes
	}
	return s, err
}

// fileStamp identifies a version of a file without reading it, as git's
// index does: a write changes the size or the change time (ctime, which
// tools cannot set back), a replacement the inode. The zero stamp is a
// missing file.
type fileStamp struct {
	dev, ino         uint64
	size             int64
	mtimeNs, ctimeNs int64
}

func stampOf(info fs.FileInfo) fileStamp {
	if info == nil {
		return fileStamp{}
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		// No change time to trust: a stamp that never matches.
		return fileStamp{size: -1}
	}
	return fileStamp{
		dev: uint64(st.Dev), ino: st.Ino, size: st.Size, //nolint:unconvert // Dev's type differs between architectures
		mtimeNs: st.Mtim.Nano(), ctimeNs: st.Ctim.Nano(),
	}
}

// racyWindow: a stamp younger than this does not vouch for the content.
// File times come from a coarse clock (a few milliseconds), so a file
// rewritten twice within one tick, at the same size, keeps its stamp;
// git's index has the same "racy" problem and solution.
const racyWindow = time.Second

// decodeObjectFile parses a spec file, checks that it holds exactly the object
// its path names, and fills in what a hand-written file may lack.
func (d *Dir) decodeObjectFile(key objectKey, path string, data []byte, info fs.FileInfo) (manifest.Object, error) {
	admitted := admittedAsWritten(data)
	obj, err := decodeSingle(path, data, admitted)
	if err != nil {
		return nil, err
	}
	if key.kind.Namespaced && obj.GetNamespace() == "" {
		obj.SetNamespace(key.namespace) // as `kubectl apply -n` would; the path says which
	}
	found := objectKey{kind: manifest.MustKindOf(obj), namespace: obj.GetNamespace(), name: obj.GetName()}
	if found != key {
		return nil, d.misplaced(path, found)
	}
	// A status in the spec file is not the user's to set; the status file holds it.
	if err := setStatusJSON(obj, nil); err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	if obj.GetUID() == "" {
		obj.SetUID(uidForPath(key.relPath()))
	}
	if ts := obj.GetCreationTimestamp(); ts.IsZero() {
		obj.SetCreationTimestamp(metav1.NewTime(info.ModTime().Truncate(time.Second)))
	}
	if obj.GetGeneration() == 0 && key.kind.TracksGeneration {
		obj.SetGeneration(1)
	}
	if ns, ok := obj.(*corev1.Namespace); ok && ns.Status.Phase == "" {
		ns.Status.Phase = corev1.NamespaceActive
	}
	enforceNamespaceLabel(obj)
	// A file written by hand never went through a write's admission, so it
	// goes through it now (one the store wrote as it is did). An API server
	// never holds an object its CRD refuses, so neither does the store: such
	// a file is reported, like one that does not parse, and skipped.
	if !admitted {
		if obj, err = admit(context.Background(), manifest.Create, obj, nil); err != nil {
			return nil, &FileError{Path: path, Err: err}
		}
	}
	return obj, nil
}

// decodeSingle decodes a file that must hold exactly one object; admitted
// says the store wrote it, after checking it against its CRD.
func decodeSingle(path string, data []byte, admitted bool) (manifest.Object, error) {
	decode := manifest.Decode
	if admitted {
		decode = manifest.DecodeAdmitted
	}
	docs, err := decode(path, bytes.NewReader(data))
	if err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	switch len(docs) {
	case 1:
		return docs[0].Object, nil
	case 0:
		return nil, &FileError{Path: path, Err: errors.New("holds no object"), Fix: "write one object in it, or remove it"}
	default:
		return nil, &FileError{Path: path, Err: fmt.Errorf("holds %d objects, but the store keeps one object per file", len(docs)),
			Fix: fmt.Sprintf("apply it with `meshctl apply -f %s` and then remove it", path)}
	}
}

// misplaced is the error for a file holding an object that belongs elsewhere.
func (d *Dir) misplaced(path string, found objectKey) error {
	want := d.specPath(found)
	return &FileError{Path: path, Err: fmt.Errorf("holds %s, which belongs in %s", found, want),
		Fix: fmt.Sprintf("move it to %s, or apply it with `meshctl apply -f %s` and then remove it", want, path)}
}

// reportMisplacedFile warns about a manifest file at a path where no object
// belongs (wrong depth, unknown resource directory, other extension).
func (d *Dir) reportMisplacedFile(path string) {
	data, info, err := readFileAt(path)
	if err != nil || info == nil {
		return // gone since the directory was listed
	}
	if d.alreadyWarned(path, info) {
		return
	}
	obj, err := decodeSingle(path, data, false)
	if err == nil {
		err = d.misplaced(path, objectKey{kind: manifest.MustKindOf(obj), namespace: obj.GetNamespace(), name: obj.GetName()})
		if manifest.MustKindOf(obj).Namespaced && obj.GetNamespace() == "" {
			err = &FileError{Path: path, Err: fmt.Errorf("holds %s %s, which has no namespace and is not in a namespace directory", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName()),
				Fix: fmt.Sprintf("apply it with `meshctl apply -n <namespace> -f %s` and then remove it", path)}
		}
	}
	d.warnOnce(path, info, err)
}

// statusFileJSON is a status file, its status left encoded for
// setStatusJSON.
type statusFileJSON struct {
	UID    types.UID       `json:"uid"`
	Status json.RawMessage `json:"status"`
}

// applyStatusFile sets obj's status to the one a status file keeps,
// changing obj. applied is false when the file holds the status of an
// earlier object of the same name (another uid); on an error obj is left
// without a status.
func applyStatusFile(key objectKey, obj manifest.Object, path string, data []byte) (applied bool, err error) {
	js, err := sigsyaml.YAMLToJSON(data)
	var sf statusFileJSON
	if err == nil {
		err = json.Unmarshal(js, &sf)
	}
	if err != nil {
		return false, &FileError{Path: path, Err: fmt.Errorf("malformed status file: %w", err), Fix: "remove it; meshway writes the status again"}
	}
	if sf.UID != obj.GetUID() {
		return false, nil
	}
	if err := setStatusJSON(obj, sf.Status); err != nil {
		return false, &FileError{Path: path, Err: fmt.Errorf("status does not fit %s: %w", key.kind.Kind, err), Fix: "remove it; meshway writes the status again"}
	}
	return true, nil
}

// uidForPath is the stable uid of a hand-written object that has none yet: the
// same on every read, in every process, until a store write records it.
func uidForPath(rel string) types.UID {
	sum := sha256.Sum256([]byte("meshway store object " + rel))
	var b [16]byte
	copy(b[:], sum[:16])
	return formatUUID(b, 5)
}

// writeFileAtomic replaces path with data so that a reader (or a crash) sees
// either the old file or the new one, never a mix: a temp file in the same
// directory, fsync, rename, fsync of the directory.
func (d *Dir) writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	mode := fs.FileMode(0o644)
	if info, err := os.Stat(path); err == nil {
		mode = info.Mode().Perm() // keep what the user chose for an existing file
	}
	// The dot keeps scans from reading a half-written temp file.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()           // the write already failed; report that
			_ = os.Remove(tmp.Name()) // best effort: a leftover dot-file is never read
			err = fmt.Errorf("writing %s: %w", path, err)
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if d.failTempWrite != nil {
		if err = d.failTempWrite(tmp.Name()); err != nil {
			return err
		}
	}
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// removeFile deletes path if it exists and makes the removal durable.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("removing %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer func() { _ = f.Close() }() // opened only to fsync
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// removeEmptyDirs removes dir and then its parents up to (not including) stop,
// as long as they are empty; a directory with anything left in it stays.
func removeEmptyDirs(dir, stop string) {
	for dir != stop && strings.HasPrefix(dir, stop+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}
