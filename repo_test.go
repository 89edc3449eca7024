package meshway_test

import (
	"bufio"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// packageDirs returns every directory holding non-test Go files, outside
// testdata and hack (the tools module is its own module).
func packageDirs(t *testing.T) map[string][]string {
	t.Helper()
	dirs := map[string][]string{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "testdata", "hack", ".git", ".ci":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			dirs[filepath.Dir(p)] = append(dirs[filepath.Dir(p)], p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// TestPackageDocs fails when a package has no package doc comment, or when more
// than one file carries it: each package says in one place what it owns.
func TestPackageDocs(t *testing.T) {
	for dir, files := range packageDirs(t) {
		var withDoc []string
		for _, f := range files {
			parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatalf("parsing %s: %v", f, err)
			}
			if parsed.Doc != nil && strings.TrimSpace(parsed.Doc.Text()) != "" {
				withDoc = append(withDoc, f)
			}
		}
		switch len(withDoc) {
		case 0:
			t.Errorf("package %s has no package doc comment; add one (e.g. in doc.go) saying what it owns", dir)
		case 1:
		default:
			t.Errorf("package %s has a package doc comment in %d files (%s); keep exactly one", dir, len(withDoc), strings.Join(withDoc, ", "))
		}
	}
}

// TestFileSize keeps hand-written files under about 1,000 lines.
func TestFileSize(t *testing.T) {
	for _, files := range packageDirs(t) {
		for _, f := range files {
			if strings.HasSuffix(f, ".pb.go") {
				continue
			}
			n := countLines(t, f)
			if n > 1000 {
				t.Errorf("%s has %d lines; split it by responsibility (limit ~1,000)", f, n)
			}
		}
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
	}
	return n
}
