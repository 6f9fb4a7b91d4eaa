package cli

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/deploy/cluster/scale"
	"github.com/maas-ml/maas/internal/jobspec"
)

// planFlags are `maas plan`'s settings.
type planFlags struct {
	results     []string
	model       string
	params      int
	compute     time.Duration
	workers     []int
	rates       []float64
	servers     int
	serverHosts int
	cores       float64
	compression float64
	perHost     int
	nats, agg   string
	overlap     string
	bucketKB    int
	validate    bool
	plot        string
}

func planCmd() *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Predict a training cluster's step time and scaling efficiency from a cost model fitted to measured runs",
		Long: `Fits the cost model of the data plane (a fixed cost per step, per message, the
links' transfer time and the NATS server's and parameter servers' cost per byte)
to the runs of 'maas bench scale' (--results; by default the calibration that
ships with maas, measured on emulated hosts) and predicts each K and link rate:
the step's time, its communication and E(K) = step(1) / step(K) for a model of
--params parameters computing --compute a step, or for a model measured in the
results (--model). --validate fits every other measured run and predicts the
others, printing each one's error; --plot draws the measured curves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPlan(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.results, "results", nil, "results of `maas bench scale` (JSON lines; default: the shipped calibration)")
	fl.StringVar(&f.model, "model", "mnist-cnn", "a model measured in the results: its parameters and compute time")
	fl.IntVar(&f.params, "params", 0, "float32 parameters of the model (instead of --model's)")
	fl.DurationVar(&f.compute, "compute", 0, "a worker's compute time per step (instead of --model's)")
	fl.IntSliceVar(&f.workers, "workers", []int{1, 8, 16, 32, 64, 128, 256}, "numbers of workers K")
	fl.Float64SliceVar(&f.rates, "rates", []float64{10, 25}, "link rates in Gbit/s")
	fl.IntVar(&f.servers, "servers", 1, "parameter servers, spread evenly over the server hosts")
	fl.IntVar(&f.serverHosts, "server-hosts", 1, "server hosts, each with its own link, a NATS hub and its share of the parameter servers and of the worker hosts")
	fl.Float64Var(&f.cores, "server-cores", 8, "cores of each server host (its NATS server and parameter servers)")
	fl.Float64Var(&f.compression, "compression", 1, "gradients and parameters sent this many times smaller (compression.type fp16 or bf16: 2, int8: 4, topk at ratio 0.01: 39)")
	fl.IntVar(&f.perHost, "workers-per-host", 1, "workers on each worker host")
	fl.StringVar(&f.nats, "nats", "central", "central (every worker talks to the server host's NATS), leaf (a leaf NATS server on every worker host: θ crosses the server link once per host) or routes (a full member on every worker host: as leaf, and no relays through the server hosts' hubs)")
	fl.StringVar(&f.agg, "aggregation", "none", "none or host (each host's gradients summed before they leave it: one push per host)")
	fl.StringVar(&f.overlap, "overlap", "backward", "backward (pushes beside backward, the next forward beside the fan-out: the job default) or none")
	fl.IntVar(&f.bucketKB, "bucket-kb", jobspec.DefaultBucketKB, "the bucket size in KiB")
	fl.BoolVar(&f.validate, "validate", false, "fit on half the measured runs, predict the other half, print the errors")
	fl.StringVar(&f.plot, "plot", "", "directory to draw the measured curves into (efficiency.png, split-MODEL.png)")
	return cmd
}

func runPlan(cmd *cobra.Command, f planFlags) error {
	switch {
	case f.params < 0 || f.compute < 0:
		return fmt.Errorf("--params and --compute must not be negative")
	case f.servers < 1 || f.serverHosts < 1:
		return fmt.Errorf("--servers and --server-hosts must be at least 1, got %d and %d", f.servers, f.serverHosts)
	case f.servers%f.serverHosts != 0:
		return fmt.Errorf("--servers %d: a multiple of --server-hosts %d (as many parameter servers on every server host)", f.servers, f.serverHosts)
	case f.cores <= 0:
		return fmt.Errorf("--server-cores must be positive, got %g", f.cores)
	case f.compression < 1:
		return fmt.Errorf("--compression must be at least 1, got %g", f.compression)
	case f.perHost < 1:
		return fmt.Errorf("--workers-per-host must be at least 1, got %d", f.perHost)
	case f.nats != "central" && f.nats != "leaf" && f.nats != "routes":
		return fmt.Errorf("--nats %q: central, leaf or routes", f.nats)
	case f.agg != "none" && f.agg != "host":
		return fmt.Errorf("--aggregation %q: none or host", f.agg)
	case !slices.Contains(jobspec.Overlaps, f.overlap):
		return fmt.Errorf("--overlap %q: one of %s", f.overlap, strings.Join(jobspec.Overlaps, ", "))
	case f.bucketKB < jobspec.MinBucketKB || f.bucketKB > jobspec.MaxBucketKB:
		return fmt.Errorf("--bucket-kb %d: want %d..%d", f.bucketKB, jobspec.MinBucketKB, jobspec.MaxBucketKB)
	}
	for _, k := range f.workers {
		if k < 1 {
			return fmt.Errorf("--workers: %d workers", k)
		}
	}
	for _, r := range f.rates {
		if r <= 0 {
			return fmt.Errorf("--rates: %g Gbit/s is not a rate", r)
		}
	}
	all, source, err := planResults(f.results)
	if err != nil {
		return err
	}
	usable := scale.Usable(all)
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "calibration: %s: %d runs, %d usable (valid, synthetic compute)\n", source, len(all), len(usable))
	if f.plot != "" {
		if err := planPlots(cmd, all, f.plot); err != nil {
			return err
		}
	}
	if f.validate {
		if err := planValidate(cmd, usable); err != nil {
			return err
		}
	}
	cm, err := scale.Fit(usable)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nmodel (all %d runs): fixed %.3g ms a step, %.3g µs a message, server link time × %.3f, worker link time × %.3f; server CPU %.2f ns a byte (measured; parameter servers' share %.0f%%); host aggregation %.3g ns a byte; with overlap, communication beside %.0f%% of the compute\n",
		cm.Points, cm.Fixed*1e3, cm.PerMessage*1e6, cm.WireServer, cm.WireWorker, cm.CPUPerByte*1e9, 100*cm.PSShare, cm.AggregateHop*1e9, 100*cm.Hidden)
	params, compute, err := planModel(f, all)
	if err != nil {
		return err
	}
	plane := scale.Plane{WorkersPerHost: f.perHost, LeafNATS: f.nats == "leaf", RoutedNATS: f.nats == "routes", Aggregate: f.agg == "host",
		Overlap: f.overlap == "backward", BucketFloats: f.bucketKB * 1024 / 4, ServerHosts: f.serverHosts}
	fmt.Fprintf(out, "\npredicted for %d parameters, %v compute a step, %d parameter server(s) on %d server host(s) of %g cores, compression %g, %d worker(s) a host, %s NATS, aggregation %s, overlap %s (%d KiB buckets):\n",
		params, compute.Round(10*time.Microsecond), f.servers, f.serverHosts, f.cores, f.compression, f.perHost, f.nats, f.agg, f.overlap, f.bucketKB)
	fmt.Fprintf(out, "%6s %8s %10s %10s %8s   %s\n", "K", "Gbit/s", "step ms", "comm ms", "E(K)", "server hosts enough (E within 0.01 of the most, at that count)")
	for _, rate := range f.rates {
		for _, k := range f.workers {
			sc := scale.Scenario{Params: params, Workers: k, LinkGbit: rate, Servers: f.servers, ServerCores: f.cores, Compression: f.compression,
				ComputeSeconds: compute.Seconds(), Plane: plane}
			step, eff := cm.Step(sc)
			n, e := scale.ServerHostsEnough(cm, sc, f.servers/f.serverHosts)
			fmt.Fprintf(out, "%6d %8g %10.1f %10.1f %8.3f   %d (%.3f)\n", k, rate, step*1e3, cm.Comm(sc)*1e3, eff, n, e)
		}
	}
	return nil
}

// planResults reads the results files, or the shipped calibration.
func planResults(paths []string) ([]scale.Result, string, error) {
	if len(paths) == 0 {
		rs, err := scale.ReadResults(strings.NewReader(scale.Calibration))
		return rs, "the shipped calibration (" + scale.CalibrationSource + ")", err
	}
	var all []scale.Result
	for _, p := range paths {
		fh, err := os.Open(p)
		if err != nil {
			return nil, "", err
		}
		rs, err := scale.ReadResults(fh)
		fh.Close()
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", p, err)
		}
		all = append(all, rs...)
	}
	return all, strings.Join(paths, ", "), nil
}

// planModel is the model to predict: given, or measured in the results.
func planModel(f planFlags, rs []scale.Result) (int, time.Duration, error) {
	params, compute := f.params, f.compute
	if params > 0 && compute > 0 {
		return params, compute, nil
	}
	for _, r := range rs {
		if r.Model == f.model && !r.Real {
			if params == 0 {
				params = r.Params
			}
			if compute == 0 {
				compute = time.Duration(r.PerSampleUS * float64(r.BatchPerWorker) * 1e3)
			}
			return params, compute, nil
		}
	}
	return 0, 0, fmt.Errorf("--model %s: no run of it in the results; give --params and --compute", f.model)
}

// planValidate prints the held-out runs' predictions and errors.
func planValidate(cmd *cobra.Command, usable []scale.Result) error {
	cm, checks, err := scale.Validate(usable)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "\nvalidation: fitted on %d runs, predicting the other %d\n", cm.Points, len(checks))
	fmt.Fprintf(out, "%-16s %4s %7s %-22s %10s %10s %8s\n", "model", "K", "Gbit/s", "plane", "measured", "predicted", "error")
	var errs []float64
	for _, c := range checks {
		fmt.Fprintf(out, "%-16s %4d %7g %-22s %8.1fms %8.1fms %7.1f%%\n", c.Model, c.Workers, c.LinkGbit, c.PlaneName(), c.StepMS, c.PredictedStepMS, c.ErrorPct)
		errs = append(errs, math.Abs(c.ErrorPct))
	}
	sort.Float64s(errs)
	if len(errs) > 0 {
		within := 0
		for _, e := range errs {
			if e <= 10 {
				within++
			}
		}
		fmt.Fprintf(out, "|error|: median %.1f%%, largest %.1f%%; %d of %d within 10%%\n", errs[len(errs)/2], errs[len(errs)-1], within, len(errs))
	}
	return nil
}

// planPlots draws the efficiency curves and each model's step split.
func planPlots(cmd *cobra.Command, rs []scale.Result, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []string{filepath.Join(dir, "efficiency.png")}
	if err := scale.PlotEfficiency(rs, files[0]); err != nil {
		return err
	}
	var models []string
	for _, r := range scale.Usable(rs) {
		if !slices.Contains(models, r.Model) {
			models = append(models, r.Model)
		}
	}
	for _, m := range models {
		p := filepath.Join(dir, "split-"+m+".png")
		if err := scale.PlotSplit(rs, m, p); err != nil {
			return err
		}
		files = append(files, p)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "plots: %s\n", strings.Join(files, ", "))
	return nil
}
