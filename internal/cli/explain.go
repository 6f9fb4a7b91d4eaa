package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/deploy/serve"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/nn"
)

// explainFlags are `maas explain`'s options.
type explainFlags struct {
	method, layer, out, serverURL, token string
	class, steps, scale                  int
	threads                              int
	json                                 bool
}

func explainCmd() *cobra.Command {
	var f explainFlags
	cmd := &cobra.Command{
		Use:   "explain MODEL IMAGE -o heatmap.png",
		Short: "Show which pixels made a model answer as it did: the image with the attributions as a heat map",
		Long: `explain attributes a classifier's answer on IMAGE (PNG or JPEG, resized to the
model's input as ` + "`maas predict`" + ` does) to the image's pixels and draws the
image with the attributions over it: red where a pixel speaks for the class,
blue where it speaks against it (integrated gradients, saliency), or a heat
map of Grad-CAM's. MODEL is a model directory (model.yaml and
model.safetensors, computed here) or NAME[:VERSION] of a model a serving
endpoint serves (--server-url; POST .../explain).

Methods: integrated_gradients (--steps points from a black image, the
completeness gap printed), saliency (the gradient times the input), gradcam
(--layer, default the last conv2d).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error { return runExplain(cmd, f, args[0], args[1]) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.method, "method", nn.IntegratedGradients, "integrated_gradients, saliency or gradcam")
	fl.IntVar(&f.class, "class", -1, "the class to explain (default: the predicted one)")
	fl.IntVar(&f.steps, "steps", nn.DefaultExplainSteps, "integrated gradients' points on the path")
	fl.StringVar(&f.layer, "layer", "", "Grad-CAM's conv2d layer (default: the last)")
	fl.StringVarP(&f.out, "out", "o", "", "the heat map to write (PNG)")
	fl.IntVar(&f.scale, "scale", 10, "pixels of the heat map per input pixel")
	fl.IntVar(&f.threads, "threads", 1, "cores to compute with (a model directory)")
	fl.BoolVar(&f.json, "json", false, "print the class, probabilities, method and (integrated gradients) f(x) − f(black) and the completeness gap as JSON")
	def := os.Getenv("MAAS_SERVE_URL")
	if def == "" {
		def = DefaultServeURL
	}
	fl.StringVar(&f.serverURL, "server-url", def, "serving endpoint, for a served MODEL (default: $MAAS_SERVE_URL, else maas serve's default address)")
	fl.StringVar(&f.token, "token", os.Getenv("MAAS_SERVE_TOKEN"), "bearer token, if the server wants one (default: $MAAS_SERVE_TOKEN)")
	return cmd
}

// explained is an explanation as either way gives it.
type explained struct {
	method string
	class  int
	probs  []float32
	attr   []float32
	shape  []int // the attributions'
	gap    float64
	delta  float64 // f(x) − f(baseline), integrated gradients
	layer  string
}

func runExplain(cmd *cobra.Command, f explainFlags, model, imagePath string) error {
	switch {
	case f.out == "":
		return fmt.Errorf("-o FILE.png is required: where to draw the heat map")
	case !strings.EqualFold(filepath.Ext(f.out), ".png"):
		return fmt.Errorf("-o %s: the heat map is a PNG; name it *.png", f.out)
	case !slices.Contains(nn.ExplainMethods, f.method):
		return fmt.Errorf("--method %q: use one of %v", f.method, nn.ExplainMethods)
	case f.scale < 1 || f.scale > 64:
		return fmt.Errorf("--scale must be 1..64, got %d", f.scale)
	case f.steps < 2 || f.steps > 1024:
		return fmt.Errorf("--steps must be 2..1024, got %d", f.steps)
	}
	var (
		ex     explained
		pixels []float32 // (C, H, W) in [0, 255]
		inC    int
		err    error
	)
	if st, serr := os.Stat(filepath.Join(model, modeldir.SpecFile)); serr == nil && !st.IsDir() {
		ex, pixels, inC, err = explainLocal(f, model, imagePath)
	} else {
		ex, pixels, inC, err = explainServed(cmd.Context(), f, model, imagePath)
	}
	if err != nil {
		return err
	}
	img, err := heatmap(pixels, inC, ex, f.scale)
	if err != nil {
		return err
	}
	if err := writeHeatmap(f.out, img); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.json {
		r := map[string]any{"class": ex.class, "probabilities": ex.probs, "method": ex.method, "heatmap": f.out}
		switch ex.method {
		case nn.IntegratedGradients:
			r["delta"], r["completeness_gap"], r["steps"] = ex.delta, ex.gap, f.steps
		case nn.GradCAM:
			r["layer"] = ex.layer
		}
		printJSON(out, r)
		return nil
	}
	fmt.Fprintf(out, "class %d (probability %.4f), %s", ex.class, ex.probs[ex.class], ex.method)
	switch ex.method {
	case nn.IntegratedGradients:
		fmt.Fprintf(out, ": f(x) − f(black) = %.4f, completeness gap %.3g (%.2f%%)", ex.delta, ex.gap, 100*ex.gap/math.Max(math.Abs(ex.delta), 1e-12))
	case nn.GradCAM:
		fmt.Fprintf(out, " on %s", ex.layer)
	}
	fmt.Fprintf(out, "\nheat map: %s\n", f.out)
	return nil
}

// readImagePixels reads an image as the model's (C, H, W) pixels in [0, 255].
func readImagePixels(path string, sample []int) ([]float32, int, error) {
	c, h, w, err := imageShape(sample)
	if err != nil {
		return nil, 0, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer fh.Close()
	img, _, err := image.Decode(fh)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w (give a PNG or JPEG image)", path, err)
	}
	return imagePixels(img, c, h, w), c, nil
}

func explainLocal(f explainFlags, dir, imagePath string) (explained, []float32, int, error) {
	be, err := newBackend(f.threads)
	if err != nil {
		return explained{}, nil, 0, err
	}
	defer be.Close()
	spec, m, err := modeldir.Load(dir, be)
	if err != nil {
		return explained{}, nil, 0, err
	}
	pixels, c, err := readImagePixels(imagePath, m.InShape())
	if err != nil {
		return explained{}, nil, 0, err
	}
	norm := spec.Normalization()
	if err := norm.Validate(c); err != nil {
		return explained{}, nil, 0, err
	}
	x, black := make([]float32, len(pixels)), make([]float32, len(pixels))
	plane := len(pixels) / c
	for i, p := range pixels {
		ch := i / plane
		x[i] = norm.Apply(p/255, ch)
		black[i] = norm.Apply(0, ch)
	}
	e, err := nn.NewExplainer(spec.Model, be)
	if err != nil {
		return explained{}, nil, 0, err
	}
	if err := e.SetParams(m.Params); err != nil {
		return explained{}, nil, 0, err
	}
	o := nn.ExplainOptions{Method: f.method, Class: f.class, Steps: f.steps, Layer: f.layer}
	if f.method == nn.IntegratedGradients {
		o.Baseline = black
	}
	r, err := e.Explain(x, o)
	if err != nil {
		return explained{}, nil, 0, err
	}
	return explained{method: r.Method, class: r.Class, probs: r.Probs, attr: r.Attributions, shape: r.Shape,
		gap: r.CompletenessGap, delta: r.Target - r.BaselineTarget, layer: r.Layer}, pixels, c, nil
}

func explainServed(ctx context.Context, f explainFlags, ref, imagePath string) (explained, []float32, int, error) {
	name, version, err := parseModelRef(ref)
	if err != nil {
		return explained{}, nil, 0, fmt.Errorf("%s is neither a model directory (no %s in it) nor a served model: %w", ref, modeldir.SpecFile, err)
	}
	pc, err := newPredictClient(f.serverURL, f.token)
	if err != nil {
		return explained{}, nil, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, predictTimeout)
	defer cancel()
	var meta serve.ModelMetadata
	if err := pc.call(ctx, http.MethodGet, modelURLPath(name, version, ""), nil, &meta); err != nil {
		return explained{}, nil, 0, err
	}
	if len(meta.Inputs) != 1 || len(meta.Inputs[0].Shape) < 2 {
		return explained{}, nil, 0, fmt.Errorf("model %s: the server describes inputs %+v; explain needs one image input [-1, C, H, W]", name, meta.Inputs)
	}
	pixels, c, err := readImagePixels(imagePath, meta.Inputs[0].Shape[1:])
	if err != nil {
		return explained{}, nil, 0, err
	}
	data, _ := json.Marshal(pixels)
	params := map[string]any{serve.ParamMethod: f.method, serve.ParamSteps: f.steps}
	if f.class >= 0 {
		params[serve.ParamClass] = f.class
	}
	if f.layer != "" {
		params[serve.ParamLayer] = f.layer
	}
	req := struct {
		Inputs     []serve.InferInput `json:"inputs"`
		Parameters map[string]any     `json:"parameters"`
	}{[]serve.InferInput{{Name: serve.InputName, Datatype: serve.DatatypeFP32, Shape: append([]int{1}, meta.Inputs[0].Shape[1:]...),
		Parameters: map[string]any{serve.ParamRawPixels: true}, Data: data}}, params}
	if f.method == nn.IntegratedGradients {
		params[serve.ParamBaseline] = 0 // a black image: raw pixels, as the input
	}
	var resp struct {
		Parameters map[string]json.RawMessage `json:"parameters"`
		Outputs    []serve.InferOutput        `json:"outputs"`
	}
	if err := pc.call(ctx, http.MethodPost, modelURLPath(name, version, "/explain"), req, &resp); err != nil {
		return explained{}, nil, 0, err
	}
	ex := explained{method: f.method, layer: f.layer}
	for _, o := range resp.Outputs {
		switch o.Name {
		case serve.OutputAttributions:
			if err := json.Unmarshal(o.Data, &ex.attr); err != nil {
				return explained{}, nil, 0, fmt.Errorf("attributions: %w", err)
			}
			ex.shape = o.Shape[1:]
		case serve.OutputProbability:
			if err := json.Unmarshal(o.Data, &ex.probs); err != nil {
				return explained{}, nil, 0, fmt.Errorf("probabilities: %w", err)
			}
		case serve.OutputClass:
			var cs []int
			if err := json.Unmarshal(o.Data, &cs); err != nil || len(cs) != 1 {
				return explained{}, nil, 0, fmt.Errorf("class: %v", err)
			}
			ex.class = cs[0]
		}
	}
	if len(ex.attr) == 0 || len(ex.probs) == 0 {
		return explained{}, nil, 0, fmt.Errorf("the serving endpoint answered no attributions or probabilities")
	}
	var gaps, targets, bases []float64
	json.Unmarshal(resp.Parameters["completeness_gap"], &gaps)
	json.Unmarshal(resp.Parameters["target"], &targets)
	json.Unmarshal(resp.Parameters["baseline_target"], &bases)
	if len(gaps) == 1 && len(targets) == 1 && len(bases) == 1 {
		ex.gap, ex.delta = gaps[0], targets[0]-bases[0]
	}
	json.Unmarshal(resp.Parameters[serve.ParamLayer], &ex.layer)
	return ex, pixels, c, nil
}

// heatmap draws the image (its luma, dimmed) scale× larger with the
// attributions over it: signed ones red (for) and blue (against), scaled
// by the largest magnitude; Grad-CAM's (non-negative, a coarser grid)
// upsampled bilinearly and drawn from transparent to red-yellow.
func heatmap(pixels []float32, c int, ex explained, scale int) (*image.RGBA, error) {
	plane := len(pixels) / c
	h, w := 0, 0
	switch {
	case len(ex.shape) == 3:
		h, w = ex.shape[1], ex.shape[2]
	case len(ex.shape) == 2 && ex.method != nn.GradCAM:
		h, w = ex.shape[0], ex.shape[1]
	case len(ex.shape) == 2:
		// Grad-CAM's map: on the image's grid.
		side := int(math.Round(math.Sqrt(float64(plane))))
		h, w = side, plane/max(side, 1)
	default:
		return nil, fmt.Errorf("attributions of shape %v cannot be drawn over an image", ex.shape)
	}
	if h*w != plane {
		return nil, fmt.Errorf("attributions of shape %v do not match the image's %d pixels", ex.shape, plane)
	}
	// One value per pixel: the sum over channels (or Grad-CAM upsampled).
	att := make([]float64, plane)
	if ex.method == nn.GradCAM {
		att = upsample(ex.attr, ex.shape[0], ex.shape[1], h, w)
	} else {
		for i, a := range ex.attr {
			att[i%plane] += float64(a)
		}
	}
	var peak float64
	for _, a := range att {
		peak = math.Max(peak, math.Abs(a))
	}
	img := image.NewRGBA(image.Rect(0, 0, w*scale, h*scale))
	for y := range h {
		for x := range w {
			var lum float64
			for ch := range c {
				lum += float64(pixels[ch*plane+y*w+x])
			}
			lum = 0.55 * lum / float64(c)
			a := 0.0
			if peak > 0 { // square-root scaled: the weaker attributions show too
				a = att[y*w+x] / peak
				a = math.Copysign(math.Sqrt(math.Abs(a)), a)
			}
			r, g, b := lum, lum, lum
			if ex.method == nn.GradCAM { // 0 → the image, 1 → yellow over red
				r, g, b = mix(r, 255, a), mix(g, 255*a, a), mix(b, 0, a)
			} else if a > 0 {
				r, g, b = mix(r, 255, a), mix(g, 40, a), mix(b, 40, a)
			} else {
				r, g, b = mix(r, 40, -a), mix(g, 90, -a), mix(b, 255, -a)
			}
			col := color.RGBA{uint8(r), uint8(g), uint8(b), 255}
			for dy := range scale {
				for dx := range scale {
					img.SetRGBA(x*scale+dx, y*scale+dy, col)
				}
			}
		}
	}
	return img, nil
}

func mix(from, to, a float64) float64 {
	a = math.Min(1, math.Max(0, a))
	return from + (to-from)*a
}

// upsample resizes an (h, w) map to (H, W) bilinearly, pixel centres
// aligned (as PyTorch's interpolate with align_corners=False).
func upsample(m []float32, h, w, H, W int) []float64 {
	out := make([]float64, H*W)
	for y := range H {
		y0, y1, fy := bilinearTaps(y, H, h)
		for x := range W {
			x0, x1, fx := bilinearTaps(x, W, w)
			top := float64(m[y0*w+x0])*(1-float64(fx)) + float64(m[y0*w+x1])*float64(fx)
			bot := float64(m[y1*w+x0])*(1-float64(fx)) + float64(m[y1*w+x1])*float64(fx)
			out[y*W+x] = top*(1-float64(fy)) + bot*float64(fy)
		}
	}
	return out
}

// writeHeatmap writes img as a PNG at path, through a temporary file in its
// directory: an error leaves no half-written image.
func writeHeatmap(path string, img image.Image) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".explain-*.png")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := png.Encode(tmp, img); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
