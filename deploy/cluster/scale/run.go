package scale

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/jobspec"
)

// MaxCPU is the share of the machine's CPU above which a run is not valid:
// the emulation, not the emulated cluster, would then set its speed.
const MaxCPU = 0.70

// Config is one measured configuration on a testbed.
type Config struct {
	// Model names the model in the results (e.g. mnist-cnn); Spec is its
	// job: model, optimizer and per-worker batch (weak scaling: the job's
	// batch becomes per-worker batch × K).
	Model  string
	Spec   *jobspec.Spec
	Params int // the model's parameter count, for the results
	// DataPath is the MNIST directory every host reads.
	DataPath string
	// Rate is the emulated links' rate in bits/s; the links are shaped to
	// Rate / Dilation.
	Rate     float64
	Dilation float64
	// PerSample is one sample's compute time (undilated). Real makes the
	// workers compute for real instead of waiting it.
	PerSample time.Duration
	Real      bool
	// RealCheck marks the runs of the real-compute check.
	RealCheck bool
	// Compression is the job's compression type ("" or none: float32),
	// Aggregation its aggregation ("" or none, host).
	Compression, Aggregation string
	// Overlap is the job's overlap ("" or backward, none) and BucketKB
	// its bucket size (0: the default).
	Overlap  string
	BucketKB int
	// TopKRatio is a topk compression's share of values sent (0: the
	// default).
	TopKRatio float64
	// Warmup steps run before the Steps measured. With Budget set, fewer
	// steps are measured (at least MinSteps) when Steps would take longer
	// than Budget at the warm-up's pace.
	Warmup, Steps int
	Budget        time.Duration
}

// MinSteps is the fewest steps a run measures under a Budget.
const MinSteps = 5

// Result is one configuration's figures. Times and rates are the emulated
// cluster's (measured values divided or multiplied by the dilation);
// bytes and CPU time are per step.
type Result struct {
	Time            string  `json:"time"`
	CPU             string  `json:"cpu"`
	Model           string  `json:"model"`
	Params          int     `json:"params"`
	Workers         int     `json:"workers"`
	WorkerHosts     int     `json:"worker_hosts"`
	WorkersPerHost  int     `json:"workers_per_host"`
	Servers         int     `json:"parameter_servers"`
	ServerHosts     int     `json:"server_hosts,omitempty"` // the hosts the parameter servers are spread over (absent: 1)
	BatchPerWorker  int     `json:"batch_per_worker"`
	RealCheck       bool    `json:"real_check,omitempty"` // a run of the real-compute check (real, or synthetic beside it)
	Real            bool    `json:"real_compute"`
	Compression     string  `json:"compression,omitempty"`
	TopKRatio       float64 `json:"topk_ratio,omitempty"`
	Aggregation     string  `json:"aggregation,omitempty"`
	Overlap         string  `json:"overlap,omitempty"`   // "backward": pushes beside backward, forward beside the fan-out; "" none
	BucketKB        int     `json:"bucket_kb,omitempty"` // absent: 512 (the chunk size before buckets were a job setting)
	NATS            string  `json:"nats,omitempty"`      // "leaf": a leaf NATS server on every worker host, "routes": a full member on every one; "" one on the server host
	LinkGbit        float64 `json:"link_gbit"`
	Dilation        float64 `json:"dilation"`
	ShapedMbit      float64 `json:"shaped_mbit"`
	MeasuredMbit    float64 `json:"measured_mbit"`     // median over every worker host's path to the server host and back
	MeasuredMinMbit float64 `json:"measured_min_mbit"` // the slowest of them
	PerSampleUS     float64 `json:"compute_per_sample_us"`
	Steps           int64   `json:"steps"`
	SamplesPerSec   float64 `json:"samples_per_sec"`
	StepMS          float64 `json:"step_ms"`
	ComputeMS       float64 `json:"compute_ms"`
	PushMS          float64 `json:"push_ms"`
	WaitMS          float64 `json:"wait_ms"`
	OverlappedMS    float64 `json:"overlapped_ms,omitempty"` // pushes running beside compute
	ServerInMB      float64 `json:"server_in_mb"`
	ServerOutMB     float64 `json:"server_out_mb"`
	WorkerInMB      float64 `json:"worker_host_in_mb"`
	WorkerOutMB     float64 `json:"worker_host_out_mb"`
	MachineCPU      float64 `json:"machine_cpu"`
	MachineCores    int     `json:"machine_cores"`
	NATSCPUms       float64 `json:"nats_cpu_ms"`
	PSCPUms         float64 `json:"paramserver_cpu_ms"`
	Valid           bool    `json:"valid"`
	Why             string  `json:"why,omitempty"`
}

// Run shapes the links, measures one of them, runs the benchmark job of c
// on the testbed and returns its figures over the measured steps.
func (tb *Testbed) Run(ctx context.Context, c Config) (Result, error) {
	k := tb.Layout.Workers()
	if c.Dilation < 1 || c.Rate <= 0 || c.Steps < 2 || c.Warmup < 1 {
		return Result{}, fmt.Errorf("scale: dilation %g, rate %g, %d steps after %d: want dilation ≥ 1, a rate, ≥ 2 steps after ≥ 1", c.Dilation, c.Rate, c.Steps, c.Warmup)
	}
	shaped := c.Rate / c.Dilation
	lm, err := tb.shape(ctx, shaped)
	if err != nil {
		return Result{}, err
	}
	spec := *c.Spec
	spec.BatchSize = c.Spec.BatchSize * k
	spec.Dataset.Path, spec.Dataset.Name = c.DataPath, ""
	if !c.Real {
		spec.Benchmark = &jobspec.Benchmark{SyntheticCompute: c.PerSample.String(), Dilation: c.Dilation}
	}
	if c.Compression != "" {
		spec.Compression = &jobspec.Compression{Type: c.Compression}
		if c.Compression == "topk" {
			spec.Compression.Ratio = c.TopKRatio
		}
	}
	spec.Aggregation = c.Aggregation
	spec.Overlap, spec.BucketKB = c.Overlap, c.BucketKB
	total := int64(c.Warmup + c.Steps + 1)
	spe := int64((60000 + spec.BatchSize - 1) / spec.BatchSize)
	spec.Epochs = int(total/spe) + 1
	text, err := spec.Marshal()
	if err != nil {
		return Result{}, err
	}
	sub, err := tb.API.Submit(ctx, api.SubmitRequest{Spec: string(text), Workers: k, ParameterServers: tb.Layout.Servers, MaxSteps: total})
	if err != nil {
		return Result{}, fmt.Errorf("scale: submit: %w", err)
	}
	if _, err := tb.wait(ctx, sub.ID, func(js api.JobStatus) bool { return js.Step >= 1 }); err != nil {
		return Result{}, err
	}
	first := time.Now()
	a, err := tb.at(ctx, sub.ID, int64(c.Warmup))
	if err != nil {
		return Result{}, err
	}
	steps := c.Steps
	if per := a.at.Sub(first) / time.Duration(max(c.Warmup-1, 1)); c.Budget > 0 && per > 0 {
		steps = max(MinSteps, min(steps, int(c.Budget/per)))
	}
	b, err := tb.at(ctx, sub.ID, int64(c.Warmup+steps))
	if err != nil {
		return Result{}, err
	}
	// The figures are taken: the rest of the job is not needed.
	if _, err := tb.API.Cancel(ctx, sub.ID); err != nil {
		return Result{}, fmt.Errorf("scale: cancel job %s: %w", sub.ID, err)
	}
	if _, err := tb.wait(ctx, sub.ID, func(js api.JobStatus) bool { return api.Terminal(js.State) }); err != nil && !errors.Is(err, errEnded) {
		return Result{}, err
	}
	r := tb.result(c, a, b)
	r.Params, r.ShapedMbit, r.MeasuredMbit, r.MeasuredMinMbit = c.Params, shaped/1e6, lm.median/1e6, lm.min/1e6
	return r, nil
}

// linkRates are the rates measured over every worker host's path to the
// server host and back, after shaping.
type linkRates struct{ median, min float64 }

// shape shapes every link to bits/s and measures each worker host's path
// to the (first) server host, both ways (once per rate).
func (tb *Testbed) shape(ctx context.Context, bits float64) (linkRates, error) {
	if lm, ok := tb.measured[bits]; ok && tb.Net.Rate == bits {
		return lm, nil
	}
	if err := tb.Net.Shape(bits); err != nil {
		return linkRates{}, err
	}
	var rates []float64
	for h := tb.Layout.serverHosts(); h < len(tb.Net.Hosts); h++ {
		for _, dir := range [][2]int{{h, 0}, {0, h}} {
			r, err := tb.Net.Measure(ctx, dir[0], dir[1], 500*time.Millisecond)
			if err != nil {
				return linkRates{}, err
			}
			rates = append(rates, r)
		}
	}
	slices.Sort(rates)
	lm := linkRates{median: rates[len(rates)/2], min: rates[0]}
	if tb.measured == nil {
		tb.measured = map[float64]linkRates{}
	}
	tb.measured[bits] = lm
	return lm, nil
}

// errEnded: the job ended before what was waited for.
var errEnded = errors.New("scale: the job ended")

// at waits for the job to finish step and takes a snapshot then.
func (tb *Testbed) at(ctx context.Context, id string, step int64) (snapshot, error) {
	js, err := tb.wait(ctx, id, func(js api.JobStatus) bool { return js.Step >= step })
	if err != nil {
		return snapshot{}, err
	}
	return tb.take(ctx, js.Step)
}

// wait polls the job until done holds for its status; a job that ends
// otherwise is an error with its reason.
func (tb *Testbed) wait(ctx context.Context, id string, done func(api.JobStatus) bool) (api.JobStatus, error) {
	for {
		js, err := tb.API.Job(ctx, id)
		if err != nil && !errors.Is(err, api.ErrNoLeader) {
			return js, fmt.Errorf("scale: job %s: %w", id, err)
		}
		if err == nil {
			if done(js) {
				return js, nil
			}
			if api.Terminal(js.State) {
				return js, fmt.Errorf("%w: job %s ended %s at step %d: %s", errEnded, id, js.State, js.Step, js.Reason)
			}
		}
		select {
		case <-ctx.Done():
			return js, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// result turns two snapshots into the emulated cluster's figures.
func (tb *Testbed) result(c Config, a, b snapshot) Result {
	k, d := tb.Layout.Workers(), c.Dilation
	steps := b.step - a.step
	wall := b.at.Sub(a.at).Seconds()
	r := Result{Time: time.Now().UTC().Format(time.RFC3339), CPU: CPUModel(), Model: c.Model,
		Workers: k, WorkerHosts: tb.Layout.WorkerHosts, WorkersPerHost: tb.Layout.WorkersPerHost, Servers: tb.Layout.Servers,
		ServerHosts:    tb.Layout.ServerHosts,
		BatchPerWorker: c.Spec.BatchSize, Real: c.Real, RealCheck: c.RealCheck, Compression: c.Compression, Aggregation: c.Aggregation, LinkGbit: c.Rate / 1e9, Dilation: d,
		PerSampleUS: float64(c.PerSample) / 1e3, Steps: steps, MachineCores: runtime.NumCPU()}
	switch {
	case tb.Layout.LeafNATS:
		r.NATS = "leaf"
	case tb.Layout.RoutedNATS:
		r.NATS = "routes"
	}
	if c.Overlap != "none" {
		r.Overlap = "backward"
	}
	if c.Compression == "topk" {
		r.TopKRatio = c.TopKRatio
		if r.TopKRatio == 0 {
			r.TopKRatio = jobspec.DefaultTopKRatio
		}
	}
	r.BucketKB = c.BucketKB
	if r.BucketKB == 0 {
		r.BucketKB = jobspec.DefaultBucketKB
	}
	if steps <= 0 || wall <= 0 {
		r.Why = "no steps measured"
		return r
	}
	perStep := func(v float64) float64 { return v / float64(steps) }
	r.SamplesPerSec = float64(steps) * float64(c.Spec.BatchSize*k) / wall * d
	r.StepMS = wall / float64(steps) * 1e3 / d
	for _, p := range phases {
		n := b.phaseCount[p] - a.phaseCount[p]
		if n == 0 {
			continue
		}
		ms := (b.phaseSum[p] - a.phaseSum[p]) / float64(n) * 1e3 / d
		switch p {
		case "compute":
			r.ComputeMS = ms
		case "push":
			r.PushMS = ms
		case "wait":
			r.WaitMS = ms
		case "overlapped":
			r.OverlappedMS = ms
		}
	}
	// The server link is the busiest server host's, each way.
	sh := tb.Layout.serverHosts()
	for h := range sh {
		r.ServerInMB = max(r.ServerInMB, perStep(float64(b.linkIn[h]-a.linkIn[h]))/1e6)
		r.ServerOutMB = max(r.ServerOutMB, perStep(float64(b.linkOut[h]-a.linkOut[h]))/1e6)
	}
	var in, out float64
	for h := sh; h < len(b.linkIn); h++ {
		in += float64(b.linkIn[h] - a.linkIn[h])
		out += float64(b.linkOut[h] - a.linkOut[h])
	}
	hosts := float64(len(b.linkIn) - sh)
	r.WorkerInMB, r.WorkerOutMB = perStep(in/hosts)/1e6, perStep(out/hosts)/1e6
	if all := b.cpuAll - a.cpuAll; all > 0 {
		r.MachineCPU = (b.cpuBusy - a.cpuBusy) / all
	}
	r.NATSCPUms = perStep(b.natsCPU-a.natsCPU) * 1e3
	r.PSCPUms = perStep(b.psCPU-a.psCPU) * 1e3
	r.Valid = r.MachineCPU <= MaxCPU
	if !r.Valid {
		r.Why = fmt.Sprintf("the machine's CPU was %.0f%% busy (limit %.0f%%): raise the dilation", 100*r.MachineCPU, 100*MaxCPU)
	}
	return r
}
