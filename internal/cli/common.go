package cli

import (
	"fmt"
	"os"
	"runtime"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/train"
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

// deviceFlags are --device and --allow-tf32, for the commands that train.
type deviceFlags struct {
	device string
	tf32   bool
}

func (d *deviceFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&d.device, "device", "cpu", "compute on cpu, or on NVIDIA GPU N with cuda[:N] (needs the NVIDIA driver and cuBLAS; see docs/gpu.md)")
	fs.BoolVar(&d.tf32, "allow-tf32", false, "with --device cuda: let cuBLAS use TF32 tensor cores for GEMMs (faster, about 3 digits per product)")
}

// onCPU reports whether --device is the CPU.
func (d deviceFlags) onCPU() bool { return d.device == "" || d.device == "cpu" }

// backend returns the compute backend for --device (and --threads on the
// CPU), and the function that releases it.
func (d deviceFlags) backend(threads int) (tensor.Backend, func(), error) {
	if d.onCPU() {
		b, err := newBackend(threads)
		if err != nil {
			return nil, nil, err
		}
		return b, b.Close, nil
	}
	return openCUDA(d.device, d.tf32) // device_cuda.go, or device_nocuda.go with -tags nocuda
}

// deviceTrainer is a training step resident on a GPU (gputrain's
// Trainer): train.Device for `maas train` and `maas bench train`,
// worker.DeviceTrainer for workers.
type deviceTrainer interface {
	train.Device
	Grads(dst []float32) error
	Close() error
}

// describeDevice says what b computes on, for logs and the cluster's
// member table: the GPU's name, or "cpu (go+avx2, 8 threads)".
func describeDevice(b tensor.Backend) string {
	if d, ok := b.(interface{ Device() string }); ok {
		return d.Device()
	}
	return fmt.Sprintf("cpu (%s, %d threads)", b.Name(), b.Threads())
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
