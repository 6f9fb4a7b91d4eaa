package scale

import (
	"math"
	"strings"
	"testing"
)

// synthetic returns runs whose step times a known cost model made, at the
// dilation each rate would be run at (rate ÷ 1 Gbit/s): one worker a host
// with central NATS, and for the seed model also 4 a host with a leaf
// NATS server and aggregation, without and with overlap in 128 KiB
// buckets.
func synthetic(cm CostModel) []Result {
	var rs []Result
	add := func(r Result) {
		in, out := r.plane().copies(r.Workers)
		s := 4 * float64(r.Params)
		cpu := cm.CPUPerByte * (in + out) * s * 1e3
		r.NATSCPUms, r.PSCPUms = cpu*(1-cm.PSShare), cpu*cm.PSShare
		r.ServerInMB, r.ServerOutMB = in*s/1e6, out*s/1e6
		r.StepMS = r.ComputeMS + cm.dilatedComm(r)*1e3
		rs = append(rs, r)
	}
	for _, m := range []struct {
		name    string
		params  int
		compute float64 // ms
	}{{"small", 82186, 14}, {"seed", 241546, 40}, {"wide", 2443914, 140}} {
		for _, rate := range []float64{1, 10, 25} {
			for _, k := range []int{1, 2, 4, 8, 16, 32} {
				r := Result{Model: m.name, Params: m.params, Workers: k, WorkersPerHost: 1, Servers: 1, LinkGbit: rate, Dilation: math.Max(1, rate),
					ComputeMS: m.compute, Steps: 10, Valid: true, MachineCores: 2}
				add(r)
				if m.name == "seed" && k >= 8 {
					r.WorkersPerHost, r.NATS, r.Aggregation = 4, "leaf", "host"
					add(r)
					r.Overlap, r.BucketKB = "backward", 128
					add(r)
				}
			}
		}
	}
	return rs
}

// TestFitRecoversModel: fitted to runs a known model made, the cost model
// finds that model again: every held-out run predicted within 1%, and the
// undilated prediction of a large cluster within 1% of the truth.
func TestFitRecoversModel(t *testing.T) {
	truth := CostModel{Fixed: 0.8e-3, PerMessage: 40e-6, WireServer: 1.7, WireWorker: 0.3, CPUPerByte: 3.5e-9, PSShare: 0.25, AggregateHop: 4e-9, Hidden: 1}
	rs := synthetic(truth)
	_, checks, err := Validate(rs)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if math.Abs(c.ErrorPct) > 1 {
			t.Errorf("%s K=%d %g Gbit/s: predicted %.2f ms, made %.2f ms (%.2f%%)", c.Model, c.Workers, c.LinkGbit, c.PredictedStepMS, c.StepMS, c.ErrorPct)
		}
	}
	cm, err := Fit(rs)
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range []Scenario{
		{Params: 241546, Workers: 256, LinkGbit: 10, ComputeSeconds: 0.04},
		{Params: 2443914, Workers: 128, LinkGbit: 25, Servers: 4, ComputeSeconds: 0.14},
		{Params: 241546, Workers: 256, LinkGbit: 10, ComputeSeconds: 0.04, Plane: Plane{WorkersPerHost: 4, LeafNATS: true, Aggregate: true}},
		{Params: 241546, Workers: 256, LinkGbit: 10, ComputeSeconds: 0.04, Plane: Plane{WorkersPerHost: 4, LeafNATS: true, Aggregate: true,
			Overlap: true, BucketFloats: 32768}},
	} {
		got, gotE := cm.Step(sc)
		want, wantE := truth.Step(sc)
		if math.Abs(got-want) > 0.01*want || math.Abs(gotE-wantE) > 0.01*wantE {
			t.Errorf("%+v: step %.2f ms E %.3f, the truth %.2f ms E %.3f", sc, got*1e3, gotE, want*1e3, wantE)
		}
	}
}

// TestPredictionShape: more workers or fewer bits per second make a step
// longer and efficiency lower; compression and more parameter servers
// the other way; one worker is E = 1.
func TestPredictionShape(t *testing.T) {
	cm := CostModel{Fixed: 1e-3, PerMessage: 30e-6, WireServer: 1.8, WireWorker: 0.2, CPUPerByte: 3e-9, PSShare: 0.3, Hidden: 0.5}
	// One core: the server's CPU, not its link, sets the pace.
	base := Scenario{Params: 241546, Workers: 32, LinkGbit: 10, Servers: 1, ServerCores: 1, Compression: 1, ComputeSeconds: 0.04}
	step, e := cm.Step(base)
	if _, e1 := cm.Step(Scenario{Params: 241546, Workers: 1, LinkGbit: 10, ComputeSeconds: 0.04}); math.Abs(e1-1) > 1e-12 {
		t.Errorf("E(1) = %g", e1)
	}
	for _, c := range []struct {
		what   string
		edit   func(*Scenario)
		longer bool
	}{
		{"more workers", func(s *Scenario) { s.Workers = 64 }, true},
		{"slower links", func(s *Scenario) { s.LinkGbit = 1 }, true},
		{"compression", func(s *Scenario) { s.Compression = 4 }, false},
		{"more parameter servers", func(s *Scenario) { s.Servers = 4 }, false},
		{"a leaf NATS server a host", func(s *Scenario) { s.Plane = Plane{WorkersPerHost: 4, LeafNATS: true} }, false},
		{"aggregation per host", func(s *Scenario) { s.Plane = Plane{WorkersPerHost: 4, Aggregate: true} }, false},
		{"overlap", func(s *Scenario) { s.Plane = Plane{WorkersPerHost: 1, Overlap: true} }, false},
	} {
		sc := base
		c.edit(&sc)
		s2, e2 := cm.Step(sc)
		if c.longer != (s2 > step) || c.longer != (e2 < e) {
			t.Errorf("%s: step %.2f → %.2f ms, E %.3f → %.3f", c.what, step*1e3, s2*1e3, e, e2)
		}
	}
}

// TestReadResults: a results file reads back; a bad line is named.
func TestReadResults(t *testing.T) {
	rs, err := ReadResults(strings.NewReader(`{"model":"m","workers":2,"valid":true}` + "\n\n" + `{"model":"n","workers":4}` + "\n"))
	if err != nil || len(rs) != 2 || rs[1].Workers != 4 {
		t.Fatalf("%+v, %v", rs, err)
	}
	if _, err := ReadResults(strings.NewReader("{}\nnot json\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a bad line: %v", err)
	}
}

// TestServerHostsCopies: the copies of the model through the busiest
// server host's link, counted message by message for S hubs each holding
// 1/S of θ and serving 1/S of the worker hosts (their leaves).
func TestServerHostsCopies(t *testing.T) {
	for _, c := range []struct {
		hosts, perHost, s int
		aggregate, leaf   bool
	}{
		{8, 4, 1, true, true}, {8, 4, 2, true, true}, {8, 4, 4, true, true}, {2, 2, 2, true, true},
		{64, 4, 8, true, true}, {8, 1, 4, false, false}, {8, 4, 2, false, true},
	} {
		k := c.hosts * c.perHost
		// Count: hub j serves worker hosts h with h % S == j.
		var in, out float64
		for h := range c.hosts {
			if h%c.s != 0 {
				continue // hub 0's
			}
			pushes, thetas := float64(c.perHost), float64(c.perHost)
			if c.aggregate {
				pushes = 1
			}
			if c.leaf {
				thetas = 1
			}
			in += pushes                                  // every push reaches the host's hub
			out += pushes * float64(c.s-1) / float64(c.s) // the other hubs' ranges of it
			out += thetas                                 // θ, every range, to the host
		}
		for h := range c.hosts {
			if h%c.s == 0 {
				continue
			}
			pushes := float64(c.perHost)
			if c.aggregate {
				pushes = 1
			}
			in += pushes / float64(c.s) // hub 0's range of another hub's host's pushes
		}
		in += float64(c.s-1) / float64(c.s)  // the other ranges of θ
		out += float64(c.s-1) / float64(c.s) // hub 0's range to the other hubs
		pl := Plane{WorkersPerHost: c.perHost, LeafNATS: c.leaf, Aggregate: c.aggregate, ServerHosts: c.s}
		gin, gout := pl.copies(k)
		if math.Abs(gin-in) > 1e-9 || math.Abs(gout-out) > 1e-9 {
			t.Errorf("%+v: copies %.3f in, %.3f out; counted %.3f, %.3f", c, gin, gout, in, out)
		}
		// Routed: every host's pushes for hub 0's range, and θ's range to
		// every host, straight.
		pushes := float64(k)
		if c.aggregate {
			pushes = float64(c.hosts)
		}
		pl.LeafNATS, pl.RoutedNATS = false, true
		if rin, rout := pl.copies(k); math.Abs(rin-pushes/float64(c.s)) > 1e-9 || math.Abs(rout-float64(c.hosts)/float64(c.s)) > 1e-9 {
			t.Errorf("%+v routed: copies %.3f in, %.3f out; want %.3f, %.3f", c, rin, rout, pushes/float64(c.s), float64(c.hosts)/float64(c.s))
		}
	}
}
