package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ebitengine/purego"
)

// Where the libraries are looked for, after the environment variable that
// names one directly and the directories of LD_LIBRARY_PATH; then the
// plain names, which the dynamic loader resolves through its cache.
var libraryDirs = []string{"/usr/local/nvidia/lib64", "/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/wsl/lib"}

// library describes one shared library Open needs.
type library struct {
	what  string   // for messages
	env   string   // overrides the search with one path
	names []string // sonames, preferred first
	fix   string
	kind  error
}

var (
	driverLib = library{
		what: "libcuda.so.1 (the NVIDIA driver)", env: "MAAS_CUDA_LIB",
		names: []string{"libcuda.so.1", "libcuda.so"},
		fix:   "Install the NVIDIA driver (nvidia-smi must list the GPU)", kind: ErrNoDriver,
	}
	cublasLib = library{
		what: "libcublas.so (cuBLAS)", env: "MAAS_CUBLAS_LIB",
		names: []string{"libcublas.so", "libcublas.so.13", "libcublas.so.12", "libcublas.so.11"},
		fix:   "Install cuBLAS (the CUDA toolkit or the libcublas package)", kind: ErrNoCUBLAS,
	}
)

// candidates returns the paths to try for lib, in order.
func (lib library) candidates(getenv func(string) string) []string {
	if p := getenv(lib.env); p != "" {
		return []string{p}
	}
	var dirs []string
	for _, d := range strings.Split(getenv("LD_LIBRARY_PATH"), ":") {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	dirs = append(dirs, libraryDirs...)
	var out []string
	for _, d := range dirs {
		for _, n := range lib.names {
			out = append(out, filepath.Join(d, n))
		}
	}
	return append(out, lib.names...)
}

// open loads lib from the first candidate that loads.
func (lib library) open() (uintptr, error) {
	override := os.Getenv(lib.env)
	var failed []string
	for _, path := range lib.candidates(os.Getenv) {
		if override == "" && strings.Contains(path, "/") {
			if _, err := os.Stat(path); err != nil {
				continue // not in this directory
			}
		}
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			return h, nil
		}
		if override == "" && !strings.Contains(path, "/") && strings.Contains(err.Error(), "cannot open shared object file") {
			continue // not in the loader's cache either
		}
		failed = append(failed, fmt.Sprintf("%s (%v)", path, err))
	}
	searched := lib.env + "=" + override
	if override == "" {
		searched = "LD_LIBRARY_PATH, " + strings.Join(libraryDirs, ", ") + " and the dynamic loader's cache"
	}
	return 0, &LibraryError{Lib: lib.what, Env: lib.env, Searched: searched, Failed: failed, Fix: lib.fix, kind: lib.kind}
}

// binding is a C function to register into a Go function pointer.
type binding struct {
	fptr any
	name string
}

// register binds every function of bs from the library h, or reports all
// the names h lacks (an older driver or cuBLAS than this package needs).
func register(h uintptr, what string, bs []binding) error {
	var missing []string
	for _, b := range bs {
		if _, err := purego.Dlsym(h, b.name); err != nil {
			missing = append(missing, b.name)
		}
	}
	if len(missing) > 0 {
		return errors.New("cuda: " + what + " lacks " + strings.Join(missing, ", ") + ": it is older than this build needs; update it")
	}
	for _, b := range bs {
		purego.RegisterLibFunc(b.fptr, h, b.name)
	}
	return nil
}
