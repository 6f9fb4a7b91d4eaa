package cli

import (
	"fmt"
	"os"
	"runtime"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/tensor"
)

// newLogger returns the CLI's logger: human-readable lines on stderr.
func newLogger() *zap.Logger {
	cfg := zap.NewDevelopmentEncoderConfig()
	cfg.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05")
	cfg.EncodeCaller = nil
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(cfg), zapcore.Lock(os.Stderr), zapcore.InfoLevel)
	return zap.New(core)
}

// newBackend returns the compute backend for --threads (0: every core).
func newBackend(threads int) (*tensor.GoBackend, error) {
	if threads < 0 {
		return nil, fmt.Errorf("--threads must be 0 (every core) or positive, got %d", threads)
	}
	if threads > 0 {
		runtime.GOMAXPROCS(threads)
	}
	return tensor.NewGo(threads), nil
}

// isTerminal reports whether f is a terminal (progress bars go there; logs
// go everywhere else).
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// openData resolves a --data name such as mnist-test into a dataset; dir
// overrides where its files are (mnist defaults to the GoMNIST module copy).
func openData(name, dir string) (*dataset.Dataset, error) {
	kinds := map[string]string{"mnist-train": "mnist", "mnist-test": "mnist", "cifar10-train": "cifar10", "cifar10-test": "cifar10"}
	kind, ok := kinds[name]
	if !ok {
		return nil, fmt.Errorf("--data %q: one of mnist-train, mnist-test, cifar10-train, cifar10-test", name)
	}
	split := dataset.Train
	if name[len(name)-4:] == "test" {
		split = dataset.Test
	}
	return dataset.Open(kind, dir, split)
}
