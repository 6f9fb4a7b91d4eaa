package coordinator

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckDataPath: with data roots, only paths inside one (at a
// separator, after cleaning and resolving links) are allowed; without
// roots, and for the shipped MNIST (the empty path), anything is.
func TestCheckDataPath(t *testing.T) {
	dir := t.TempDir()
	data, data2, outside := filepath.Join(dir, "data"), filepath.Join(dir, "data2"), filepath.Join(dir, "etc")
	for _, d := range []string{data, data2, outside, filepath.Join(data, "mnist")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(data, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(data, filepath.Join(dir, "alias")); err != nil {
		t.Fatal(err)
	}
	roots := []string{data}
	for _, c := range []struct {
		path  string
		roots []string
		ok    bool
	}{
		{"", roots, true},
		{data, roots, true},
		{filepath.Join(data, "mnist"), roots, true},
		{filepath.Join(data, "not-yet", "there"), roots, true},
		{filepath.Join(dir, "alias", "mnist"), roots, true}, // a link into the root
		{data2, roots, false},                               // a prefix, not a parent
		{filepath.Join(data2, "mnist"), roots, false},
		{filepath.Join(data, "..", "etc"), roots, false},
		{filepath.Join(data, "escape"), roots, false}, // a link out of the root
		{filepath.Join(data, "escape", "not-yet"), roots, false},
		{"data/mnist", roots, false},
		{"/anything", nil, true},
		{filepath.Join(data2, "x"), []string{outside, data2}, true},
	} {
		err := checkDataPath(c.path, c.roots)
		if (err == nil) != c.ok {
			t.Errorf("checkDataPath(%q, %v) = %v, want allowed %v", c.path, c.roots, err, c.ok)
		}
		if err != nil && (!errors.Is(err, ErrDataRoot) || !strings.Contains(err.Error(), "dataset.path") || !strings.Contains(err.Error(), c.roots[0])) {
			t.Errorf("checkDataPath(%q): %v, want ErrDataRoot naming dataset.path and the roots", c.path, err)
		}
	}
	// Empty roots, not nil: no path at all, only the built-in copy.
	if err := checkDataPath(data, []string{}); !errors.Is(err, ErrDataRoot) || !strings.Contains(err.Error(), "maas data push") {
		t.Errorf("a path with empty roots: %v, want ErrDataRoot pointing to maas data push", err)
	}
	if err := checkDataPath("", []string{}); err != nil {
		t.Errorf("the built-in MNIST with empty roots: %v", err)
	}
	for _, bad := range []string{"data", "/srv/../etc", "/srv/"} {
		if validateDataRoots([]string{bad}) == nil {
			t.Errorf("data root %q allowed", bad)
		}
	}
}
