package cli

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/maas-ml/maas/internal/api"
)

func jobPlotCmd(r *remote) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "plot ID [ID...]",
		Short: "Draw jobs' training curves (loss, accuracy, samples/s) into a PNG",
		Long: `Draws the training curves the coordinator keeps in each job's history: the
training loss and accuracy against the step (a point every few steps, and each
finished epoch's mean), and the throughput. Several jobs are drawn over each
other for comparison.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			var curves []jobCurves
			for _, id := range args {
				m, err := c.Metrics(cmd.Context(), id)
				if err != nil {
					return explain(err, "list the jobs with `maas job ls`")
				}
				if len(m.Points) == 0 {
					return fmt.Errorf("job %s has no training metrics yet (a point every few steps once it trains)", id)
				}
				curves = append(curves, jobCurves{id, m})
			}
			if err := plotJobs(curves, out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "curves.png", "the PNG image to write")
	return cmd
}

// jobCurves is one job's metrics, named by its id.
type jobCurves struct {
	id string
	m  api.JobMetrics
}

var curveColors = []color.Color{
	color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 214, G: 39, B: 40, A: 255},
	color.RGBA{R: 44, G: 160, B: 44, A: 255}, color.RGBA{R: 255, G: 127, B: 14, A: 255},
	color.RGBA{R: 148, G: 103, B: 189, A: 255}, color.RGBA{R: 140, G: 86, B: 75, A: 255},
}

// plotJobs draws three panels, one above the other: loss, accuracy and
// samples/s against the step, a line per job (the points) and markers
// for its epochs' means.
func plotJobs(jobs []jobCurves, path string) error {
	if strings.ToLower(filepath.Ext(path)) != ".png" {
		return fmt.Errorf("--output %q: want a .png file", path)
	}
	panels := []struct {
		title, y string
		point    func(api.MetricPoint) float64
		epoch    func(api.EpochMetrics) float64
		eval     func(api.EvalMetrics) float64
	}{
		{"loss", "loss", func(p api.MetricPoint) float64 { return p.Loss }, func(e api.EpochMetrics) float64 { return e.TrainLoss },
			func(e api.EvalMetrics) float64 { return e.Loss }},
		{"accuracy", "accuracy", func(p api.MetricPoint) float64 { return p.Accuracy }, func(e api.EpochMetrics) float64 { return e.TrainAccuracy },
			func(e api.EvalMetrics) float64 { return e.Accuracy }},
		{"throughput", "samples/s", func(p api.MetricPoint) float64 { return p.SamplesPerSec }, nil, nil},
	}
	plots := make([][]*plot.Plot, len(panels))
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		p.X.Label.Text = "step"
		p.Y.Label.Text = pn.y
		p.Add(plotter.NewGrid())
		p.Legend.Top = true
		for j, jc := range jobs {
			c := curveColors[j%len(curveColors)]
			xy := make(plotter.XYs, 0, len(jc.m.Points))
			for _, pt := range jc.m.Points {
				xy = append(xy, plotter.XY{X: float64(pt.Step), Y: pn.point(pt)})
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return err
			}
			l.Color, l.Width = c, vg.Points(1.2)
			p.Add(l)
			if i == 0 { // one legend: the panels share the colours
				p.Legend.Add(jc.id, l)
			}
			if pn.epoch != nil && len(jc.m.Epochs) > 0 {
				exy := make(plotter.XYs, 0, len(jc.m.Epochs))
				for _, e := range jc.m.Epochs {
					exy = append(exy, plotter.XY{X: float64(e.Step), Y: pn.epoch(e)})
				}
				s, err := plotter.NewScatter(exy)
				if err != nil {
					return err
				}
				s.Color, s.Shape, s.Radius = c, draw.CircleGlyph{}, vg.Points(3.5)
				p.Add(s)
				if i == 0 && j == 0 {
					p.Legend.Add("training, epoch mean", s)
				}
				if err := addEval(p, jc.m.Epochs, pn.eval, c, i == 0 && j == 0); err != nil {
					return err
				}
			}
		}
		if pn.y == "accuracy" {
			p.Y.Min, p.Y.Max = 0, 1
		}
		plots[i] = []*plot.Plot{p}
	}
	const w, h = 8 * vg.Inch, 10 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	return saveCanvas(img, path)
}

// addEval marks each epoch's held-out value (eval of it) on p as squares,
// naming them in the legend when legend is set.
func addEval(p *plot.Plot, epochs []api.EpochMetrics, eval func(api.EvalMetrics) float64, c color.Color, legend bool) error {
	var xy plotter.XYs
	name := ""
	for _, e := range epochs {
		if e.Eval != nil {
			xy = append(xy, plotter.XY{X: float64(e.Step), Y: eval(*e.Eval)})
			name = e.Eval.Set
		}
	}
	if len(xy) == 0 {
		return nil
	}
	s, err := plotter.NewScatter(xy)
	if err != nil {
		return err
	}
	s.Color, s.Shape, s.Radius = c, draw.BoxGlyph{}, vg.Points(3.5)
	p.Add(s)
	if legend {
		p.Legend.Add(name+", epoch end", s)
	}
	return nil
}

// saveCanvas writes img as a PNG at path, through a temporary file in
// its directory: an error leaves no half-written image.
func saveCanvas(img *vgimg.Canvas, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".plot-*.png")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
