package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maas-ml/maas/internal/dataset"
)

type explainOut struct {
	Class   int       `json:"class"`
	Probs   []float64 `json:"probabilities"`
	Method  string    `json:"method"`
	Delta   float64   `json:"delta"`
	Gap     float64   `json:"completeness_gap"`
	Layer   string    `json:"layer"`
	Heatmap string    `json:"heatmap"`
}

// TestExplainProcess trains the tiny CNN with `maas train`, then `maas
// explain` attributes its answers on ten MNIST test digits (PNG files):
// from the model directory, integrated gradients at 50 points from a black
// image close to within 1% of f(x) − f(black) on the median digit (2% on
// every one; 1% at 200 points on the worst), and the
// heat map is the image's size × --scale; `maas serve` serving the same
// directory gives the same explanation through POST .../explain, and
// Grad-CAM and saliency work both ways.
func TestExplainProcess(t *testing.T) {
	mnist, err := dataset.DefaultMNISTDir()
	if err != nil {
		t.Skip("real MNIST not in the module cache:", err)
	}
	bin := buildMaas(t)
	dir := t.TempDir()
	_, model := trainTiny(t, bin, dir)
	test, err := dataset.ReadMNIST(mnist, dataset.Test)
	if err != nil {
		t.Fatal(err)
	}
	const digits = 10
	x, y := make([]float32, digits*784), make([]int32, digits)
	idx := make([]int, digits)
	for i := range idx {
		idx[i] = i
	}
	if err := test.Batch(idx, dataset.Normalization{}, x, y); err != nil {
		t.Fatal(err)
	}
	images := make([]string, digits)
	for i := range digits {
		img := image.NewGray(image.Rect(0, 0, 28, 28))
		for p := range 784 {
			img.SetGray(p%28, p/28, color.Gray{Y: uint8(math.Round(float64(x[i*784+p]) * 255))})
		}
		images[i] = filepath.Join(dir, fmt.Sprintf("digit%d.png", i))
		f, err := os.Create(images[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	explain := func(args ...string) explainOut {
		t.Helper()
		b, err := exec.Command(bin, append([]string{"explain", "--json"}, args...)...).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("maas explain %v: %v\n%s", args, err, stderr)
		}
		var o explainOut
		if err := json.Unmarshal(b, &o); err != nil {
			t.Fatalf("maas explain %v: %q: %v", args, b, err)
		}
		return o
	}
	right, worstDigit := 0, 0
	var rels []float64
	for i, img := range images {
		heat := filepath.Join(dir, fmt.Sprintf("ig%d.png", i))
		o := explain(model, img, "-o", heat)
		rel := o.Gap / math.Abs(o.Delta)
		t.Logf("digit %d: class %d, f(x) − f(black) %.3f, gap %.3g (%.2f%%)", i, o.Class, o.Delta, o.Gap, 100*rel)
		rels = append(rels, rel)
		if rel > rels[worstDigit] {
			worstDigit = i
		}
		if rel > 0.02 {
			t.Errorf("digit %d: completeness gap %.3g is %.2f%% of f(x) − f(black) = %.3g", i, o.Gap, 100*rel, o.Delta)
		}
		if o.Class == int(y[i]) {
			right++
		}
		f, err := os.Open(heat)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width != 280 || cfg.Height != 280 {
			t.Errorf("heat map %s: %dx%d (%v), want 280x280", heat, cfg.Width, cfg.Height, err)
		}
	}
	worst := rels[worstDigit]
	slices.Sort(rels)
	median := (rels[digits/2-1] + rels[digits/2]) / 2
	t.Logf("integrated gradients at 50 points on %d MNIST digits: completeness gap a median %.2f%% of f(x) − f(black), at most %.2f%%; %d classified right",
		digits, 100*median, 100*worst, right)
	if median > 0.01 {
		t.Errorf("the median completeness gap is %.2f%% of f(x) − f(black), over 1%%", 100*median)
	}
	// More points close the gap: the worst digit's at 200.
	if o := explain(model, images[worstDigit], "--steps", "200", "-o", filepath.Join(dir, "ig200.png")); o.Gap > 0.01*math.Abs(o.Delta) {
		t.Errorf("digit %d at 200 points: completeness gap %.3g, over 1%% of %.3g", worstDigit, o.Gap, o.Delta)
	}
	if right < 8 {
		t.Errorf("the model explained classifies %d of %d digits right", right, digits)
	}

	// The same through maas serve.
	port := freePorts(t, 1)[0]
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv := exec.Command(bin, "serve", "--model-dir", model, "--addr", addr)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("maas serve not ready in 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	url := "http://" + addr
	local := explain(model, images[0], "-o", filepath.Join(dir, "local.png"))
	served := explain("tiny-cnn", images[0], "--server-url", url, "-o", filepath.Join(dir, "served.png"))
	if served.Class != local.Class || math.Abs(served.Delta-local.Delta) > 1e-4*math.Abs(local.Delta) || math.Abs(served.Gap-local.Gap) > 1e-3*math.Abs(local.Delta) {
		t.Errorf("served explanation %+v, local %+v", served, local)
	}
	for _, m := range []string{"gradcam", "saliency"} {
		l := explain(model, images[0], "--method", m, "-o", filepath.Join(dir, m+"-local.png"))
		s := explain("tiny-cnn", images[0], "--server-url", url, "--method", m, "-o", filepath.Join(dir, m+"-served.png"))
		if l.Class != s.Class || l.Method != m || s.Method != m {
			t.Errorf("%s: local %+v, served %+v", m, l, s)
		}
		if m == "gradcam" && (l.Layer != "conv1" || s.Layer != "conv1") {
			t.Errorf("Grad-CAM layers: local %q, served %q; want the only conv2d, conv1", l.Layer, s.Layer)
		}
	}
	// Bad input: a clear error, nothing written.
	bad := filepath.Join(dir, "bad.png")
	b, err := exec.Command(bin, "explain", model, images[0], "--method", "shap", "-o", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(b), `--method "shap"`) {
		t.Errorf("--method shap: %v %s", err, b)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a failed explain left %s", bad)
	}
}
