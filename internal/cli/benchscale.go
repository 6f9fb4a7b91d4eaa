package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/deploy/cluster/scale"
	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/netemu"
)

// scaleFlags are `maas bench scale`'s settings.
type scaleFlags struct {
	workers, real         []int
	rates                 []float64 // Gbit/s
	models                []string  // job spec files
	maxHosts, servers     int
	serverHosts           int
	dilation, shaped      float64
	steps, warmup         int
	budget, compute       time.Duration
	out, dir, compression string
	nats, aggregation     string
	overlap               string
	bucketKB              int
	topkRatio             float64
	skipUnavailable, keep bool
	curves                bool
	plot                  string
}

func benchScaleCmd() *cobra.Command {
	var f scaleFlags
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Scaling curves of a training cluster on emulated hosts (network namespaces, shaped links); one JSON line per configuration",
		Long: `Builds a cluster on hosts emulated with network namespaces on this machine
(root, iproute2 and OpenSSH's sshd needed): --server-hosts server hosts with a
NATS server and parameter servers each (the first the coordinator too), and up
to --max-hosts worker hosts,
launched over SSH as 'maas cluster up' does. For each number of workers K, link
rate and model it runs a benchmark job (each worker keeps its batch: weak
scaling; compute replaced by waits of the model's measured compute time), with
time dilated by --dilation so that this machine's CPU is not the bottleneck,
and prints throughput, scaling efficiency and the step's split. --real adds
runs with real compute at the given K, each beside a synthetic run at the same
compute time. See docs/scaling.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBenchScale(cmd, f) },
	}
	fl := cmd.Flags()
	fl.IntSliceVar(&f.workers, "workers", []int{1, 2, 4, 8, 16, 32}, "numbers of workers K to measure")
	fl.Float64SliceVar(&f.rates, "rates", []float64{1, 10, 25}, "link rates in Gbit/s")
	fl.StringSliceVar(&f.models, "models", []string{"examples/mnist-cnn.yaml", "examples/mnist-lstm.yaml", "bench/specs/mnist-cnn-wide.yaml"}, "job specs whose models to measure")
	fl.IntVar(&f.maxHosts, "max-hosts", 8, "worker hosts at most (workers are spread evenly over them)")
	fl.IntVar(&f.servers, "servers", 1, "parameter servers, spread evenly over the server hosts")
	fl.IntVar(&f.serverHosts, "server-hosts", 1, "server hosts, each with its own link, a full NATS member and its share of the parameter servers (--servers a multiple of it); with --nats leaf the worker hosts' leaves take them in turn")
	fl.Float64Var(&f.dilation, "dilation", 0, "time dilation D: compute waits × D, link rates ÷ D (0: each rate's own, rate ÷ --shaped, at least 1)")
	fl.Float64Var(&f.shaped, "shaped", 1, "with --dilation 0: the rate in Gbit/s every link is shaped to")
	fl.IntVar(&f.steps, "steps", 20, "steps measured per configuration, at most")
	fl.DurationVar(&f.budget, "budget", 45*time.Second, "measure fewer steps (at least 5) where --steps would take longer than this")
	fl.DurationVar(&f.compute, "compute", 0, "one sample's compute time on one core for every model (0: each model's, measured here first); fixed, runs of different invocations compare step for step")
	fl.IntVar(&f.warmup, "warmup", 3, "steps run before measuring")
	fl.IntSliceVar(&f.real, "real", nil, "K values to also run with real compute, each beside a synthetic run at the same compute time")
	fl.StringVar(&f.out, "out", "", "JSON lines file (default bench/results/scale-<time>.jsonl)")
	fl.StringVar(&f.compression, "compression", "none", "the jobs' gradient compression: "+strings.Join(jobspec.Compressions, ", "))
	fl.StringVar(&f.aggregation, "aggregation", "none", "the jobs' aggregation: none, or host (each worker host's workers sum their gradients, one push per host)")
	fl.StringVar(&f.overlap, "overlap", "backward", "the jobs' overlap: backward (buckets pushed as backward finishes them, the next forward started as θ arrives) or none")
	fl.Float64Var(&f.topkRatio, "topk-ratio", 0, "with --compression topk: the share of values sent (0: the job spec's default, 0.01)")
	fl.IntVar(&f.bucketKB, "bucket-kb", 0, "the jobs' bucket size in KiB (0: the job spec's default)")
	fl.StringVar(&f.nats, "nats", "central", "central: one NATS server, on the server host; leaf: also one on every worker host, a leaf node of it, for the host's workers; routes: also one on every worker host, a full member routed to every other")
	fl.StringVar(&f.dir, "dir", "", "work directory for the hosts' files (default: a temporary one)")
	fl.BoolVar(&f.skipUnavailable, "skip-unavailable", false, "exit 0 with a message when this machine cannot emulate hosts")
	fl.BoolVar(&f.keep, "keep", false, "keep the work directory (logs of every process)")
	fl.StringVar(&f.plot, "plot", "", "directory to draw the measured curves into at the end (efficiency.png, split-MODEL.png; as `maas plan --plot`)")
	fl.BoolVar(&f.curves, "curves", true, "measure the --workers curves (false: only the --real checks)")
	return cmd
}

// scaleModel is a model to measure, with its compute time.
type scaleModel struct {
	name      string
	spec      *jobspec.Spec
	perSample time.Duration
	params    int
}

func (f scaleFlags) validate() error {
	switch {
	case (!f.curves || len(f.workers) == 0) && len(f.real) == 0:
		return errors.New("nothing to measure: give --workers (with --curves) or --real")
	case len(f.rates) == 0 || len(f.models) == 0:
		return errors.New("--rates and --models need at least one value each")
	case f.dilation != 0 && f.dilation < 1:
		return fmt.Errorf("--dilation must be 0 (each rate's own) or at least 1, got %g", f.dilation)
	case f.shaped <= 0:
		return fmt.Errorf("--shaped must be a positive rate in Gbit/s, got %g", f.shaped)
	case f.compute < 0:
		return fmt.Errorf("--compute must not be negative, got %v", f.compute)
	case f.steps < 2 || f.warmup < 1:
		return fmt.Errorf("--steps must be ≥ 2 and --warmup ≥ 1, got %d and %d", f.steps, f.warmup)
	case !slices.Contains(jobspec.Compressions, f.compression):
		return fmt.Errorf("--compression %q: one of %s", f.compression, strings.Join(jobspec.Compressions, ", "))
	case !slices.Contains(jobspec.Aggregations, f.aggregation):
		return fmt.Errorf("--aggregation %q: one of %s", f.aggregation, strings.Join(jobspec.Aggregations, ", "))
	case !slices.Contains(jobspec.Overlaps, f.overlap):
		return fmt.Errorf("--overlap %q: one of %s", f.overlap, strings.Join(jobspec.Overlaps, ", "))
	case f.bucketKB != 0 && (f.bucketKB < jobspec.MinBucketKB || f.bucketKB > jobspec.MaxBucketKB):
		return fmt.Errorf("--bucket-kb %d: 0 or %d..%d", f.bucketKB, jobspec.MinBucketKB, jobspec.MaxBucketKB)
	case f.topkRatio < 0 || f.topkRatio > 1 || f.topkRatio != 0 && f.compression != "topk":
		return fmt.Errorf("--topk-ratio %g: in (0, 1], with --compression topk", f.topkRatio)
	case f.nats != "central" && f.nats != "leaf" && f.nats != "routes":
		return fmt.Errorf("--nats %q: central, leaf or routes", f.nats)
	case f.maxHosts < 1 || f.servers < 1 || f.serverHosts < 1:
		return fmt.Errorf("--max-hosts, --servers and --server-hosts must be positive, got %d, %d and %d", f.maxHosts, f.servers, f.serverHosts)
	case f.servers%f.serverHosts != 0:
		return fmt.Errorf("--servers %d: a multiple of --server-hosts %d (as many parameter servers on every server host)", f.servers, f.serverHosts)
	}
	for _, r := range f.rates {
		if r <= 0 {
			return fmt.Errorf("--rates: %g Gbit/s is not a rate", r)
		}
	}
	for _, k := range append(append([]int(nil), f.workers...), f.real...) {
		if k < 1 {
			return fmt.Errorf("--workers/--real: %d workers", k)
		}
	}
	return nil
}

func runBenchScale(cmd *cobra.Command, f scaleFlags) error {
	if err := f.validate(); err != nil {
		return err
	}
	if err := netemu.Available(); err != nil {
		if f.skipUnavailable {
			fmt.Fprintf(cmd.ErrOrStderr(), "maas bench scale: skipped: %v\n", err)
			return nil
		}
		return err
	}
	if _, err := os.Stat(netemu.SSHD); err != nil {
		if f.skipUnavailable {
			fmt.Fprintf(cmd.ErrOrStderr(), "maas bench scale: skipped: no OpenSSH server at %s (apt-get install openssh-server)\n", netemu.SSHD)
			return nil
		}
		return fmt.Errorf("no OpenSSH server at %s (apt-get install openssh-server)", netemu.SSHD)
	}
	mnist, err := dataset.DefaultMNISTDir()
	if err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	models, err := scaleModels(cmd, f.models, f.compute)
	if err != nil {
		return err
	}
	out, closeOut, err := scaleOutput(f.out)
	if err != nil {
		return err
	}
	defer closeOut()
	dir := f.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "maas-scale-"); err != nil {
			return err
		}
		if !f.keep {
			defer os.RemoveAll(dir)
		}
	}
	ctx, stop := signalContext(cmd.Context())
	defer stop()
	s := &scaleRun{cmd: cmd, f: f, models: models, mnist: mnist, bin: bin, dir: dir, out: out}
	total := 2 * len(f.real)
	if f.curves {
		total += len(f.workers) * len(f.rates) * len(models)
	}
	if isTerminal(os.Stderr) { // else each configuration's row is the progress
		s.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionSetWidth(24), progressbar.OptionSetDescription("configurations"),
			progressbar.OptionClearOnFinish())
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%-16s %4s %5s %6s %11s %8s %8s %8s %8s %6s %5s %s\n",
		"model", "K", "hosts", "Gbit/s", "samples/s", "E(K)", "step ms", "push ms", "wait ms", "cpu", "valid", "links measured (median, slowest) / shaped Mbit/s")
	for _, k := range f.workers {
		if !f.curves {
			break
		}
		if err := s.layout(ctx, k, "", func(tb *scale.Testbed) error { return s.curves(ctx, tb) }); err != nil {
			return err
		}
	}
	for _, k := range f.real {
		if err := s.layout(ctx, k, "-real", func(tb *scale.Testbed) error { return s.realCheck(ctx, tb) }); err != nil {
			return err
		}
	}
	if s.bar != nil {
		_ = s.bar.Finish()
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "results: %s\n", s.outName)
	if f.plot != "" && len(s.results) > 0 {
		return planPlots(cmd, s.results, f.plot)
	}
	return nil
}

// dilationFor is the dilation of the runs at rate (Gbit/s).
func (f scaleFlags) dilationFor(rate float64) float64 {
	if f.dilation > 0 {
		return f.dilation
	}
	return max(1, rate/f.shaped)
}

// scaleModels loads the specs and times each model's compute.
func scaleModels(cmd *cobra.Command, paths []string, fixed time.Duration) ([]scaleModel, error) {
	var models []scaleModel
	for _, p := range paths {
		spec, err := jobspec.Load(p)
		if err != nil {
			return nil, err
		}
		per, params, err := scale.MeasureCompute(spec, 10)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if fixed > 0 {
			per = fixed
		}
		name := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d parameters, %v a sample to compute on one core (batch %d)\n", name, params, per, spec.BatchSize)
		models = append(models, scaleModel{name: name, spec: spec, perSample: per, params: params})
	}
	return models, nil
}

// scaleOutput opens the JSON lines file.
func scaleOutput(path string) (*os.File, func(), error) {
	if path == "" {
		if err := os.MkdirAll(filepath.Join("bench", "results"), 0o755); err != nil {
			return nil, nil, err
		}
		path = filepath.Join("bench", "results", "scale-"+time.Now().Format("20060102-150405")+".jsonl")
	}
	fh, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return fh, func() { fh.Close() }, nil
}

// scaleRun is one `maas bench scale` run.
type scaleRun struct {
	cmd     *cobra.Command
	f       scaleFlags
	models  []scaleModel
	mnist   string
	bin     string
	dir     string
	out     *os.File
	outName string
	bar     *progressbar.ProgressBar
	base    map[string]float64 // samples/s at K = 1, by model and rate
	// results are those recorded so far, for --plot.
	results []scale.Result
}

// layout brings a testbed of k workers up (its files in the work
// directory's k<k><suffix>), runs fn on it and takes it down.
func (s *scaleRun) layout(ctx context.Context, k int, suffix string, fn func(*scale.Testbed) error) error {
	l, err := scale.LayoutFor(k, s.f.maxHosts, s.f.servers, s.f.serverHosts)
	if err != nil {
		return err
	}
	l.DataRoots, l.LeafNATS, l.RoutedNATS = []string{s.mnist}, s.f.nats == "leaf", s.f.nats == "routes"
	dir := filepath.Join(s.dir, fmt.Sprintf("k%d%s", k, suffix))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "launch.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	tb, err := scale.Up(ctx, dir, s.bin, l, logf)
	if err != nil {
		return fmt.Errorf("K=%d testbed (%d worker hosts × %d workers): %w (launcher's log: %s)", k, l.WorkerHosts, l.WorkersPerHost, err, logf.Name())
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = tb.Close(cctx)
	}()
	return fn(tb)
}

// curves runs every rate and model on tb.
func (s *scaleRun) curves(ctx context.Context, tb *scale.Testbed) error {
	for _, rate := range s.f.rates {
		for _, m := range s.models {
			r, err := tb.Run(ctx, scale.Config{Model: m.name, Spec: m.spec, Params: m.params, DataPath: s.mnist, Rate: rate * 1e9,
				Dilation: s.f.dilationFor(rate), PerSample: m.perSample, Warmup: s.f.warmup, Steps: s.f.steps, Budget: s.f.budget,
				Compression: s.f.compression, Aggregation: s.f.aggregation, Overlap: s.f.overlap, BucketKB: s.f.bucketKB, TopKRatio: s.f.topkRatio})
			if err != nil {
				return fmt.Errorf("%s, K=%d, %g Gbit/s: %w", m.name, tb.Layout.Workers(), rate, err)
			}
			if err := s.record(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// realCheck runs the first model with real compute at the first rate,
// undilated, then synthetically with the compute time the real run
// measured: the step's other phases should agree.
func (s *scaleRun) realCheck(ctx context.Context, tb *scale.Testbed) error {
	m, rate := s.models[0], s.f.rates[0]*1e9
	c := scale.Config{Model: m.name, Spec: m.spec, Params: m.params, DataPath: s.mnist, Rate: rate, Dilation: 1,
		PerSample: m.perSample, Real: true, RealCheck: true, Warmup: s.f.warmup, Steps: s.f.steps, Budget: s.f.budget,
		Compression: s.f.compression, Aggregation: s.f.aggregation, Overlap: s.f.overlap, BucketKB: s.f.bucketKB, TopKRatio: s.f.topkRatio}
	real, err := tb.Run(ctx, c)
	if err != nil {
		return fmt.Errorf("real compute, K=%d: %w", tb.Layout.Workers(), err)
	}
	if err := s.record(real); err != nil {
		return err
	}
	c.Real = false
	c.PerSample = time.Duration(real.ComputeMS * 1e6 / float64(m.spec.BatchSize))
	syn, err := tb.Run(ctx, c)
	if err != nil {
		return fmt.Errorf("synthetic at the real compute time, K=%d: %w", tb.Layout.Workers(), err)
	}
	return s.record(syn)
}

// record writes a result's JSON line and its row.
func (s *scaleRun) record(r scale.Result) error {
	if s.outName == "" {
		s.outName = s.out.Name()
	}
	s.results = append(s.results, r)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := s.out.Write(append(b, '\n')); err != nil {
		return err
	}
	if s.base == nil {
		s.base = map[string]float64{}
	}
	key := r.Model + "@" + strconv.FormatFloat(r.LinkGbit, 'g', -1, 64) + "@" + strconv.FormatBool(r.Real)
	if r.Workers == 1 {
		s.base[key] = r.SamplesPerSec
	}
	eff := "-"
	if b1 := s.base[key]; b1 > 0 {
		eff = fmt.Sprintf("%.3f", r.SamplesPerSec/(float64(r.Workers)*b1))
	}
	model := r.Model
	if r.Real {
		model += " (real)"
	}
	if s.bar != nil {
		_ = s.bar.Clear()
	}
	fmt.Fprintf(s.cmd.OutOrStdout(), "%-16s %4d %5d %6g %11.1f %8s %8.1f %8.1f %8.1f %5.0f%% %5t %.0f, %.0f / %.0f\n",
		model, r.Workers, r.WorkerHosts, r.LinkGbit, r.SamplesPerSec, eff, r.StepMS, r.PushMS, r.WaitMS, 100*r.MachineCPU, r.Valid, r.MeasuredMbit, r.MeasuredMinMbit, r.ShapedMbit)
	if s.bar != nil {
		_ = s.bar.Add(1)
	}
	return nil
}
