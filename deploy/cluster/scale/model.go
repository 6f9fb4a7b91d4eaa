package scale

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/optimize"

	"github.com/maas-ml/maas/internal/wire"
)

// CostModel predicts a synchronous step of the data plane: the workers'
// gradients reach the NATS server on the parameter servers' host, the
// parameter servers sum them behind their barrier, and θ fans out through
// the same server. For K workers on H hosts, a model of S bytes (float32
// parameters) in c chunks, links of B bit/s and a server host of n
// cores, the server host's link carries I copies of S in and O out a step:
// I = K, or H when each host aggregates its workers' gradients (one push
// per host); O = K, or H with a leaf NATS server on every worker host (one
// copy of θ per host). With several server hosts, I and O are the busiest
// one's (Plane.copies). With m = (I + O)/2:
//
//	step = compute + Fixed + PerMessage·m·c + max(wire, cpu) + hop
//	wire = WireServer·m·S·8/B + WireWorker·S·8/B
//	cpu  = CPUPerByte·(I + O)·S / n
//	hop  = AggregateHop·(w−1)·S / h (aggregating: the host's w workers to
//	       their aggregator, on the host's h cores)
//
// With overlap (a job's default) the buckets of the gradient leave while
// backward runs and the next forward starts on the first bucket of θ: of
// rest = PerMessage·m·c + max(wire, cpu) + hop, what runs beside the
// compute (Hidden = 1: pushes beside backward, θ beside forward) is
// hidden, and at least one bucket's share (rest/c: the last bucket's
// push, the first bucket of θ) is not:
//
//	step = compute + Fixed + max(rest/c, rest − Hidden·compute)
//
// Hidden is not fitted: fitted, it came out 1 on every run, but half the
// runs (those where communication is shorter than the compute, which the
// rest/c floor decides) left it free to wander, and a fit to them
// mispredicted the others by up to 46%.
//
// c is the model's buckets (chunks) per server range.
//
// wire is the links' time: WireServer is 2 when push and fan-out never
// overlap, 1 when they pipeline fully; a worker's link carries one copy
// each way.
// cpu is the NATS server's and the parameter servers' work on every byte
// in and out, spread over the host's cores; links and CPU work at once,
// so the slower of the two counts. CPUPerByte is measured (the server
// processes' CPU time per byte in the runs), the other terms are fitted
// to the runs' step times. Fixed, PerMessage and the CPU do not stretch
// with the emulation's dilation D (a run dilated by D shows them divided
// by D); the fit takes that into account, so the model predicts the
// undilated cluster.
type CostModel struct {
	Fixed      float64 `json:"fixed_s"`       // per step
	PerMessage float64 `json:"per_message_s"` // per chunk through the server
	WireServer float64 `json:"wire_server"`   // × the server link's time for K·S
	WireWorker float64 `json:"wire_worker"`   // × a link's time for S
	CPUPerByte float64 `json:"cpu_per_byte_s"`
	PSShare    float64 `json:"paramserver_share"` // of the CPU, the parameter servers' (split over P of them)
	// AggregateHop is the per-host aggregation's CPU per byte of each
	// worker's chunks: through the host's NATS server to the aggregator,
	// and summed. A host of the emulation has the machine's cores shared
	// by every host; a predicted host has one core per worker.
	AggregateHop float64 `json:"aggregate_hop_s_per_byte"`
	// Hidden is the fraction of a worker's compute that communication
	// runs beside with overlap: 1 (not fitted).
	Hidden float64 `json:"hidden"`
	Points int     `json:"points"` // runs fitted
}

// Scenario is a cluster to predict.
type Scenario struct {
	Params         int     // float32 parameters
	Workers        int     // K
	LinkGbit       float64 // every link's rate
	Servers        int     // parameter servers (default 1)
	ServerCores    float64 // cores of the server host (default 8)
	Compression    float64 // gradient and θ bytes divided by this (default 1)
	ComputeSeconds float64 // a worker's compute per step
	Plane
}

// Plane is the data plane's layout: workers per host, and what each host
// does for its workers.
type Plane struct {
	WorkersPerHost int  // default 1
	LeafNATS       bool // a leaf NATS server on every worker host
	// RoutedNATS: a full NATS member on every worker host, routed to
	// every other (one copy of θ per host, and no relays through the
	// server hosts' hubs)
	RoutedNATS bool
	Aggregate  bool // each host's gradients summed before they leave it
	// Overlap: pushes beside backward, the next forward beside the
	// fan-out; BucketFloats is the bucket (chunk) size (default
	// wire.DefaultChunkFloats).
	Overlap      bool
	BucketFloats int
	// ServerHosts is the number of server hosts S (default 1), each with
	// its own link, a NATS hub and servers/S parameter servers.
	ServerHosts int
}

// buckets is how many buckets a model of params has.
func (p Plane) buckets(params int) float64 {
	b := p.BucketFloats
	if b <= 0 {
		b = wire.DefaultChunkFloats
	}
	return math.Ceil(float64(params) / float64(b))
}

// exposed is the part of a step's communication the compute does not
// hide: all of it without overlap. rest is everything but fixed, compute
// the compute it may run beside (in the same time scale).
func (cm CostModel) exposed(fixed, rest, compute, buckets float64, overlap bool) float64 {
	if !overlap {
		return fixed + rest
	}
	return fixed + math.Max(rest/buckets, rest-cm.Hidden*compute)
}

// copies are the copies of S through the busiest server host's link, in
// and out. With one server host: I = K pushes in (H when each host
// aggregates) and O = K copies of θ out (H with a leaf NATS server on each
// host). With S server hosts, each a NATS hub with its share of the
// parameter servers and of the worker hosts' connections (their leaves, or
// their workers): a hub takes in its hosts' pushes (I/S), relays the
// (S−1)/S of them that are for other hubs' ranges and takes theirs for its
// own ((S−1)·I/S²); it sends θ to its hosts (O/S) and its range to the
// other hubs, and takes theirs ((S−1)/S each way):
//
//	in  = I/S + (S−1)·I/S² + (S−1)/S
//	out = O/S + (S−1)·I/S² + (S−1)/S
//
// With a full NATS member on every worker host (routes) each message goes
// straight to the servers that want it: I/S in and O/S out.
func (p Plane) copies(k int) (in, out float64) {
	h := float64((k + max(p.WorkersPerHost, 1) - 1) / max(p.WorkersPerHost, 1))
	in, out = float64(k), float64(k)
	if p.Aggregate {
		in = h
	}
	if p.LeafNATS || p.RoutedNATS {
		out = h
	}
	s := float64(p.serverHosts())
	if p.RoutedNATS {
		return in / s, out / s
	}
	relay := (s - 1) * in / (s * s)
	ranges := (s - 1) / s
	return in/s + relay + ranges, out/s + relay + ranges
}

// serverHosts is S (at least 1).
func (p Plane) serverHosts() int { return max(p.ServerHosts, 1) }

// terms are the parts of a step's communication, undilated.
type terms struct{ fixed, messages, wire, cpu, hop float64 }

func (cm CostModel) terms(params, k, servers int, linkGbit, compression, cores, hostCores float64, pl Plane) terms {
	if compression <= 0 {
		compression = 1
	}
	s := 4 * float64(params) / compression
	c := pl.buckets(params)
	link := s * 8 / (linkGbit * 1e9)
	p := float64(max(servers, 1)) / float64(pl.serverHosts()) // a server host's
	p = max(p, 1)
	in, out := pl.copies(k)
	m := (in + out) / 2
	cpu := cm.CPUPerByte * ((1 - cm.PSShare) + cm.PSShare/p) * (in + out) * s / cores
	t := terms{fixed: cm.Fixed, messages: cm.PerMessage * m * c, wire: cm.WireServer*m*link + cm.WireWorker*link, cpu: cpu}
	if pl.Aggregate && pl.WorkersPerHost > 1 && k > 1 {
		t.hop = cm.AggregateHop * float64(pl.WorkersPerHost-1) * s / hostCores
	}
	return t
}

// Comm predicts a step's communication time in seconds, undilated.
func (cm CostModel) Comm(sc Scenario) float64 {
	cores := sc.ServerCores
	if cores <= 0 {
		cores = 8
	}
	t := cm.terms(sc.Params, sc.Workers, sc.Servers, sc.LinkGbit, sc.Compression, cores, float64(max(sc.WorkersPerHost, 1)), sc.Plane)
	return cm.exposed(t.fixed, t.messages+math.Max(t.wire, t.cpu)+t.hop, sc.ComputeSeconds, sc.buckets(sc.Params), sc.Overlap)
}

// Step predicts a step's time in seconds and the scaling efficiency
// against one worker with the same links: E(K) = step(1) / step(K).
func (cm CostModel) Step(sc Scenario) (step, efficiency float64) {
	step = sc.ComputeSeconds + cm.Comm(sc)
	one := sc
	one.Workers = 1
	return step, (one.ComputeSeconds + cm.Comm(one)) / step
}

// ServerHostsEnough is how many server hosts sc's cluster needs, with
// perHost parameter servers on each: the fewest whose efficiency is within
// 0.01 of the best any number up to one per worker host gives (more hubs
// than that only relay), and that efficiency. Efficiencies are against
// one worker with one server host.
func ServerHostsEnough(cm CostModel, sc Scenario, perHost int) (int, float64) {
	hosts := (sc.Workers + max(sc.WorkersPerHost, 1) - 1) / max(sc.WorkersPerHost, 1)
	one := sc
	one.Workers, one.ServerHosts, one.Servers = 1, 1, max(perHost, 1)
	base, _ := cm.Step(one)
	effs := make([]float64, hosts+1)
	best := 0.0
	for s := 1; s <= hosts; s++ {
		c := sc
		c.ServerHosts, c.Servers = s, s*max(perHost, 1)
		step, _ := cm.Step(c)
		effs[s] = base / step
		best = max(best, effs[s])
	}
	for s := 1; s <= hosts; s++ {
		if effs[s] >= best-0.01 {
			return s, effs[s]
		}
	}
	return 1, effs[1]
}

// dilatedComm is Comm as a run dilated by d showed it (its times divided
// by d), on the calibration's cores: the terms that do not stretch shrink
// by d.
func (cm CostModel) dilatedComm(r Result) float64 {
	d := max(r.Dilation, 1)
	cores := float64(max(r.MachineCores, 1))
	pl := r.plane()
	hosts := float64(r.WorkerHosts + pl.serverHosts())
	// The emulated server hosts share the machine's cores.
	t := cm.terms(r.Params, r.Workers, r.Servers, r.LinkGbit, compressionOf(r), cores/float64(pl.serverHosts()), cores/hosts, pl)
	return cm.exposed(t.fixed/d, (t.messages+t.hop)/d+math.Max(t.wire, t.cpu/d), r.ComputeMS/1e3, pl.buckets(r.Params), pl.Overlap)
}

// plane is the data plane a run measured.
func (r Result) plane() Plane {
	return Plane{WorkersPerHost: max(r.WorkersPerHost, 1), LeafNATS: r.NATS == "leaf", RoutedNATS: r.NATS == "routes", Aggregate: r.Aggregation == "host",
		Overlap: r.Overlap == "backward", BucketFloats: r.BucketKB * 1024 / 4, ServerHosts: r.ServerHosts}
}

// compressionOf is how many times fewer bytes than float32 a run's
// pushes and fan-out carried together: fp16 and bf16 half each way, int8 a
// quarter, topk 8 bytes for each value kept (of 4) and θ's change a bit a
// value.
func compressionOf(r Result) float64 {
	return Compression(r.Compression, r.TopKRatio)
}

// Compression is how many times fewer bytes than float32 compression typ
// (a job spec's compression.type; ratio topk's) moves over a step's push
// and fan-out together.
func Compression(typ string, ratio float64) float64 {
	push, theta := 1.0, 1.0
	switch typ {
	case "fp16", "bf16":
		push, theta = 0.5, 0.5
	case "int8":
		push, theta = 0.25, 0.25
	case "topk":
		if ratio <= 0 {
			ratio = 0.01
		}
		push, theta = 2*ratio, 1.0/32
	}
	return 2 / (push + theta)
}

// ReadResults reads `maas bench scale`'s JSON lines.
func ReadResults(r io.Reader) ([]Result, error) {
	var out []Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var res Result
		if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
			return nil, fmt.Errorf("scale: results line %d: %w", line, err)
		}
		out = append(out, res)
	}
	return out, sc.Err()
}

// Usable keeps the valid, synthetic runs of the curves (not the
// real-compute check's) a model can be fitted to.
func Usable(rs []Result) []Result {
	var out []Result
	for _, r := range rs {
		if r.Valid && !r.Real && !r.RealCheck && r.Steps > 0 && r.StepMS > r.ComputeMS && r.Params > 0 && r.LinkGbit > 0 {
			out = append(out, r)
		}
	}
	return out
}

// Fit fits a cost model to runs (Usable ones): the CPU per byte from the server processes' CPU time, the
// rest minimising the squared relative error of the predicted step time.
func Fit(rs []Result) (CostModel, error) {
	if len(rs) < 5 {
		return CostModel{}, fmt.Errorf("scale: %d usable runs; the cost model needs at least 5", len(rs))
	}
	var nats, ps float64
	var perByte []float64
	for _, r := range rs {
		nats += r.NATSCPUms
		ps += r.PSCPUms
		// With several server hosts the server link is the busiest's, the
		// CPU time every host's.
		if b := (r.ServerInMB + r.ServerOutMB) * 1e6; b > 0 && r.Workers >= 4 && r.ServerHosts <= 1 {
			perByte = append(perByte, (r.NATSCPUms+r.PSCPUms)/1e3/b)
		}
	}
	share := 0.5
	if nats+ps > 0 {
		share = ps / (nats + ps)
	}
	cpu := 0.0
	if len(perByte) > 0 {
		sort.Float64s(perByte)
		cpu = perByte[len(perByte)/2]
	}
	// Parameters in log space keep every term positive.
	aggregated := slices.ContainsFunc(rs, func(r Result) bool { return r.plane().Aggregate && r.WorkersPerHost > 1 })
	model := func(x []float64) CostModel {
		cm := CostModel{Fixed: math.Exp(x[0]), PerMessage: math.Exp(x[1]), WireServer: math.Exp(x[2]), WireWorker: math.Exp(x[3]),
			CPUPerByte: cpu, PSShare: share, Hidden: 1}
		if aggregated {
			cm.AggregateHop = math.Exp(x[4])
		}
		return cm
	}
	loss := func(x []float64) float64 {
		cm := model(x)
		var sum float64
		for _, r := range rs {
			pred := r.ComputeMS/1e3 + cm.dilatedComm(r)
			e := (pred - r.StepMS/1e3) / (r.StepMS / 1e3)
			sum += e * e
		}
		return sum
	}
	start := []float64{math.Log(1e-3), math.Log(1e-4), 0, math.Log(0.5), math.Log(1e-9)}
	res, err := optimize.Minimize(optimize.Problem{Func: loss}, start, &optimize.Settings{MajorIterations: 20000, FuncEvaluations: 200000}, &optimize.NelderMead{})
	if err != nil && res == nil {
		return CostModel{}, err
	}
	if math.IsNaN(loss(res.X)) {
		return CostModel{}, errors.New("scale: the cost model's fit did not converge")
	}
	cm := model(res.X)
	cm.Points = len(rs)
	return cm, nil
}

// Check is one run predicted by a model fitted without it.
type Check struct {
	Result
	PredictedStepMS float64 `json:"predicted_step_ms"`
	ErrorPct        float64 `json:"error_pct"`
}

// Validate fits a model to every other run (sorted by model, link rate
// and K) and predicts the rest.
func Validate(rs []Result) (CostModel, []Check, error) {
	rs = append([]Result(nil), rs...)
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		if a.LinkGbit != b.LinkGbit {
			return a.LinkGbit < b.LinkGbit
		}
		return a.Workers < b.Workers
	})
	var fit, held []Result
	for i, r := range rs {
		if i%2 == 0 {
			fit = append(fit, r)
		} else {
			held = append(held, r)
		}
	}
	cm, err := Fit(fit)
	if err != nil {
		return CostModel{}, nil, err
	}
	var checks []Check
	for _, r := range held {
		pred := (r.ComputeMS/1e3 + cm.dilatedComm(r)) * 1e3
		checks = append(checks, Check{Result: r, PredictedStepMS: pred, ErrorPct: 100 * (pred - r.StepMS) / r.StepMS})
	}
	return cm, checks, nil
}
