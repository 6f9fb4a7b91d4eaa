package scale

import (
	"fmt"
	"image/color"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// palette colours the curves of a plot, one per series.
var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff}, color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
	color.RGBA{R: 0xbc, G: 0xbd, B: 0x22, A: 0xff},
}

// series is one curve: its label and points.
type series struct {
	label string
	xy    plotter.XYs
}

// Efficiencies returns E(K) = throughput(K) / (K · throughput(1)) of the
// valid synthetic runs, by "model @ rate Gbit/s", K ascending.
func Efficiencies(rs []Result) map[string]plotter.XYs {
	base := map[string]float64{}
	for _, r := range Usable(rs) {
		if r.Workers == 1 {
			base[seriesKey(r)] = r.SamplesPerSec
		}
	}
	out := map[string]plotter.XYs{}
	for _, r := range Usable(rs) {
		b := base[seriesKey(r)]
		if b == 0 {
			continue
		}
		k := seriesKey(r)
		out[k] = append(out[k], plotter.XY{X: float64(r.Workers), Y: r.SamplesPerSec / (float64(r.Workers) * b)})
	}
	for _, xy := range out {
		sort.Slice(xy, func(i, j int) bool { return xy[i].X < xy[j].X })
	}
	return out
}

// seriesKey names a run's curve: its model and rate, and its data plane
// when that is not the central one.
func seriesKey(r Result) string {
	k := fmt.Sprintf("%s @ %g Gbit/s", r.Model, r.LinkGbit)
	if p := r.PlaneName(); p != "central" {
		k += ", " + p
	}
	return k
}

// PlaneName names a run's data plane: central (one NATS server), leaf (a
// leaf NATS server per worker host), +host with aggregation per host,
// +overlap with pushes beside backward and +Nsrv with the parameter
// servers on N server hosts.
func (r Result) PlaneName() string {
	name := "central"
	if r.NATS == "leaf" || r.NATS == "routes" {
		name = r.NATS
	}
	if r.Aggregation == "host" {
		name += "+host"
	}
	if r.Overlap == "backward" {
		name += "+overlap"
	}
	if r.ServerHosts > 1 {
		name += fmt.Sprintf("+%dsrv", r.ServerHosts)
	}
	return name
}

// PlotEfficiency draws E(K) against K (log scale) for every model and
// link rate into path (PNG, SVG or PDF by its extension).
func PlotEfficiency(rs []Result, path string) error {
	eff := Efficiencies(rs)
	var ss []series
	for k, xy := range eff {
		ss = append(ss, series{k, xy})
	}
	sort.Slice(ss, func(i, j int) bool { return ss[i].label < ss[j].label })
	p := plot.New()
	p.Title.Text = "Scaling efficiency, weak scaling (batch 64 a worker)"
	p.X.Label.Text = "workers K"
	p.Y.Label.Text = "E(K) = throughput(K) / (K · throughput(1))"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1.05
	p.Legend.Top, p.Legend.Left = false, true
	p.Add(plotter.NewGrid())
	return drawLines(p, ss, path)
}

// PlotSplit draws a model's mean step split (compute, push, wait) against
// K for each link rate into path, of the runs with the central data plane.
func PlotSplit(rs []Result, model, path string) error {
	byRate := map[float64][]Result{}
	for _, r := range Usable(rs) {
		if r.Model == model && r.PlaneName() == "central" {
			byRate[r.LinkGbit] = append(byRate[r.LinkGbit], r)
		}
	}
	if len(byRate) == 0 {
		return fmt.Errorf("scale: no usable runs of %s to plot", model)
	}
	var rates []float64
	for g := range byRate {
		rates = append(rates, g)
	}
	sort.Float64s(rates)
	var ss []series
	for _, g := range rates {
		runs := byRate[g]
		sort.Slice(runs, func(i, j int) bool { return runs[i].Workers < runs[j].Workers })
		var comm plotter.XYs
		for _, r := range runs {
			comm = append(comm, plotter.XY{X: float64(r.Workers), Y: r.PushMS + r.WaitMS})
		}
		ss = append(ss, series{fmt.Sprintf("push + wait @ %g Gbit/s", g), comm})
	}
	var compute plotter.XYs
	for _, r := range byRate[rates[0]] {
		compute = append(compute, plotter.XY{X: float64(r.Workers), Y: r.ComputeMS})
	}
	ss = append(ss, series{"compute", compute})
	p := plot.New()
	p.Title.Text = model + ": a worker's step, by phase"
	p.X.Label.Text = "workers K"
	p.Y.Label.Text = "ms per step"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	return drawLines(p, ss, path)
}

func drawLines(p *plot.Plot, ss []series, path string) error {
	for i, s := range ss {
		l, pts, err := plotter.NewLinePoints(s.xy)
		if err != nil {
			return err
		}
		c := palette[i%len(palette)]
		l.Color, pts.Color = c, c
		l.Width = vg.Points(1.5)
		p.Add(l, pts)
		p.Legend.Add(s.label, l)
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}
