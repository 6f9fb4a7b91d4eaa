package coordinator

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrDataRoot: a job's dataset.path is not inside the data roots the
// coordinator allows (Config.DataRoots).
var ErrDataRoot = errors.New("coordinator: dataset path outside the data roots")

// validateDataRoots checks that each root is an absolute, clean path.
func validateDataRoots(roots []string) error {
	for _, r := range roots {
		if !filepath.IsAbs(r) || filepath.Clean(r) != r {
			return fmt.Errorf("coordinator: data root %q: give an absolute, clean directory (like /srv/datasets)", r)
		}
	}
	return nil
}

// checkDataPath reports whether path, a job's dataset.path, lies inside
// one of roots: after filepath.Clean, with the symbolic links of its
// longest existing part (and of each root) resolved on this host, it is a
// root or below one (/data2 is not below /data). The empty path (the MNIST
// copy shipped with maas) is always allowed; nil roots allow every path,
// and empty (not nil) roots none.
func checkDataPath(path string, roots []string) error {
	if path == "" || roots == nil {
		return nil
	}
	if len(roots) == 0 {
		return fmt.Errorf("%w: dataset.path %q: this cluster takes no dataset paths on its hosts (its coordinators have no --data-roots); push the data with `maas data push NAME PATH` and name it in dataset.name", ErrDataRoot, path)
	}
	list := strings.Join(roots, ", ")
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%w: dataset.path %q is relative; give an absolute path inside an allowed data root (%s)", ErrDataRoot, path, list)
	}
	resolved := resolveExisting(filepath.Clean(path))
	for _, r := range roots {
		if within(resolved, resolveExisting(r)) {
			return nil
		}
	}
	return fmt.Errorf("%w: dataset.path %q is not inside an allowed data root (%s); put the data under one, or ask the operator to add its directory to the coordinators' --data-roots", ErrDataRoot, path, list)
}

// within reports whether path is root or below it, at a separator.
func within(path, root string) bool {
	if path == root {
		return true
	}
	if !strings.HasSuffix(root, string(filepath.Separator)) {
		root += string(filepath.Separator)
	}
	return strings.HasPrefix(path, root)
}

// resolveExisting resolves the symbolic links of the longest existing
// leading part of path (absolute, clean) and appends the rest: a link
// below a root to a directory elsewhere leads outside, even when the file
// the spec names does not exist (yet) on this host.
func resolveExisting(path string) string {
	rest := ""
	for p := path; ; p = filepath.Dir(p) {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		if _, err := os.Lstat(p); err == nil {
			// It exists, but a link in it leads nowhere: judge the path as written.
			return path
		}
		if filepath.Dir(p) == p {
			return path
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}
