package manifest

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Extensions of the files read from a directory, as kubectl reads them.
var Extensions = []string{".yaml", ".yml", ".json"}

// Load reads manifests from each path: "-" is stdin, a directory contributes its
// *.yaml, *.yml and *.json files in name order (recursively when recursive is
// set), and a file is read whatever its extension. Every document of every source
// is decoded before Load returns, so a caller can refuse the whole set on the
// first error and write nothing.
func Load(paths []string, stdin io.Reader, recursive bool) ([]Document, error) {
	var docs []Document
	for _, p := range paths {
		if p == "-" {
			d, err := Decode("<stdin>", stdin)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
			continue
		}
		files, err := expand(p, recursive)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			d, err := LoadFile(f)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
	}
	return docs, nil
}

// LoadFile decodes every document in one file.
func LoadFile(path string) ([]Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{Source: path, Err: fmt.Errorf("cannot read: %w", err)}
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose
	return Decode(path, f)
}

func expand(path string, recursive bool) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, &Error{Source: path, Err: fmt.Errorf("cannot read: %w; check the path given to -f", err)}
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != path && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		if hasManifestExtension(p) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, &Error{Source: path, Err: fmt.Errorf("cannot list directory: %w", err)}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, &Error{Source: path, Err: fmt.Errorf("directory has no %s files", strings.Join(Extensions, ", "))}
	}
	return files, nil
}

func hasManifestExtension(p string) bool {
	ext := strings.ToLower(filepath.Ext(p))
	for _, e := range Extensions {
		if ext == e {
			return true
		}
	}
	return false
}
