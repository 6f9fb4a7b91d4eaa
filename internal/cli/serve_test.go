package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap/zaptest"

	"github.com/maas-ml/maas/deploy/serve"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/internal/testcluster"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
)

// servedYAML is the small model of the serving tests, named digits.
var servedYAML = strings.Replace(string(must(os.ReadFile("../../testdata/specs/tiny-served.yaml"))), "name: tiny", "name: digits", 1)

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// servedModel writes the test model's directory and returns it with the
// spec and model.
func servedModel(t *testing.T, b tensor.Backend) (string, *jobspec.Spec, *nn.Model) {
	t.Helper()
	spec, err := jobspec.Parse([]byte(servedYAML))
	if err != nil {
		t.Fatal(err)
	}
	m, err := nn.BuildInference(spec.Model, b)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(3)
	dir := filepath.Join(t.TempDir(), "digits")
	if err := modeldir.Save(dir, spec, m, nil); err != nil {
		t.Fatal(err)
	}
	return dir, spec, m
}

// startServe serves dir with serve.Server behind an httptest server.
func startServe(t *testing.T, b tensor.Backend, dir string) string {
	t.Helper()
	cfg := serve.DefaultConfig()
	cfg.Backend, cfg.Registerer = b, prometheus.NewRegistry()
	s, err := serve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.LoadDir(dir, 1); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Shutdown(context.Background()) })
	return hs.URL
}

// runServeCLI runs a maas command line holding serve and predict, as
// root.go registers them.
func runServeCLI(ctx context.Context, stdout io.Writer, args ...string) (string, error) {
	root := &cobra.Command{Use: "maas", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(serveCmd(), predictCmd())
	var errb bytes.Buffer
	root.SetOut(stdout)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return errb.String(), err
}

// top3 returns the expected `maas predict` lines for logits.
func top3(logits []float32) []string {
	mx := logits[0]
	for _, v := range logits {
		mx = max(mx, v)
	}
	p := make([]float64, len(logits))
	sum := 0.0
	for i, v := range logits {
		p[i] = math.Exp(float64(v - mx))
		sum += p[i]
	}
	order := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	sort.SliceStable(order, func(a, b int) bool { return p[order[a]] > p[order[b]] })
	var lines []string
	for _, c := range order[:3] {
		lines = append(lines, fmt.Sprintf("%d      %.4f", c, p[c]/sum))
	}
	return lines
}

// writePNG writes a w×h image whose gray level is f(x, y).
func writePNG(t *testing.T, w, h int, f func(x, y int) uint8) string {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetGray(x, y, color.Gray{Y: f(x, y)})
		}
	}
	p := filepath.Join(t.TempDir(), "digit.png")
	fh, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := png.Encode(fh, img); err != nil {
		t.Fatal(err)
	}
	return p
}

func checkLines(t *testing.T, out string, want []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// TestPredictPNG: a 28×28 PNG is normalised by the server as training
// does, and predict prints the top 3 classes of the direct forward pass.
func TestPredictPNG(t *testing.T) {
	b := tensor.NewGo(1)
	defer b.Close()
	dir, spec, m := servedModel(t, b)
	url := startServe(t, b, dir)
	pix := func(x, y int) uint8 { return uint8((x*37 + y*11) % 256) }
	path := writePNG(t, 28, 28, pix)

	x := make([]float32, 784)
	norm := spec.Dataset.Normalize
	for y := range 28 {
		for xx := range 28 {
			x[y*28+xx] = (float32(pix(xx, y))/255 - norm.Mean[0]) / norm.Std[0]
		}
	}
	want := top3(m.Forward(x, 1, false))

	var out bytes.Buffer
	if stderr, err := runServeCLI(t.Context(), &out, "predict", "digits", path, "--server-url", url); err != nil {
		t.Fatalf("predict: %v\n%s", err, stderr)
	}
	checkLines(t, out.String(), append([]string{"digits version 1", "CLASS  PROBABILITY"}, want...))
	if n := strings.Count(out.String(), "\n"); n != 5 {
		t.Errorf("%d lines, want 5:\n%s", n, out.String())
	}
}

// TestPredictResizes: a uniform 56×40 image resizes to the same uniform
// 28×28 input as a uniform 28×28 one.
func TestPredictResizes(t *testing.T) {
	b := tensor.NewGo(1)
	defer b.Close()
	dir, _, _ := servedModel(t, b)
	url := startServe(t, b, dir)
	var small, large bytes.Buffer
	if _, err := runServeCLI(t.Context(), &small, "predict", "digits:1", writePNG(t, 28, 28, func(int, int) uint8 { return 200 }), "--server-url", url); err != nil {
		t.Fatal(err)
	}
	if _, err := runServeCLI(t.Context(), &large, "predict", "digits:1", writePNG(t, 56, 40, func(int, int) uint8 { return 200 }), "--server-url", url); err != nil {
		t.Fatal(err)
	}
	if small.String() != large.String() {
		t.Errorf("resized image predicts\n%s\nthe same image at 28×28 predicts\n%s", large.String(), small.String())
	}
	// Bilinear taps at equal sizes are the identity.
	img := image.NewGray(image.Rect(0, 0, 3, 2))
	copy(img.Pix, []uint8{0, 10, 20, 30, 40, 50})
	if got := imagePixels(img, 1, 2, 3); fmt.Sprint(got) != "[0 10 20 30 40 50]" {
		t.Errorf("same-size resize = %v", got)
	}
	// Halving averages neighbours at the centre taps.
	img = image.NewGray(image.Rect(0, 0, 2, 1))
	copy(img.Pix, []uint8{0, 100})
	if got := imagePixels(img, 1, 1, 1); fmt.Sprint(got) != "[50]" {
		t.Errorf("2→1 resize = %v", got)
	}
}

// TestPredictJSON: a .json tensor is sent as it is, nested or as
// {"shape", "data"}.
func TestPredictJSON(t *testing.T) {
	b := tensor.NewGo(1)
	defer b.Close()
	dir, _, m := servedModel(t, b)
	url := startServe(t, b, dir)
	x := make([]float32, 784)
	for i := range x {
		x[i] = float32(i%17)/8 - 1
	}
	want := top3(m.Forward(x, 1, false))
	nested := [][][]float32{make([][]float32, 28)}
	for h := range 28 {
		nested[0][h] = x[h*28 : (h+1)*28]
	}
	for name, v := range map[string]any{
		"nested.json": nested,
		"object.json": map[string]any{"shape": []int{1, 784}, "data": x},
	} {
		p := filepath.Join(t.TempDir(), name)
		data, _ := json.Marshal(v)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := runServeCLI(t.Context(), &out, "predict", "digits", p, "--server-url", url); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkLines(t, out.String(), want)
	}
}

func TestPredictErrors(t *testing.T) {
	b := tensor.NewGo(1)
	defer b.Close()
	dir, _, _ := servedModel(t, b)
	url := startServe(t, b, dir)
	png := writePNG(t, 28, 28, func(int, int) uint8 { return 0 })
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`[[1,2],[3]]`), 0o644)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"predict", "nope", png, "--server-url", url}, `404: serve: model not found: "nope" is not served`},
		{[]string{"predict", "digits:2", png, "--server-url", url}, "version 2 is not served"},
		{[]string{"predict", "digits", "input.gif", "--server-url", url}, "give a .png, .jpg or .json file"},
		{[]string{"predict", "digits", bad, "--server-url", url}, "ragged nested array"},
		{[]string{"predict", "digits", png, "--server-url", "http://127.0.0.1:1"}, "no answer from the serving endpoint"},
	} {
		_, err := runServeCLI(t.Context(), io.Discard, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.msg)
		}
	}
}

// TestServeCommand runs `maas serve --model-dir` on a free port, predicts
// through it, and stops it.
func TestServeCommand(t *testing.T) {
	b := tensor.NewGo(1)
	defer b.Close()
	dir, _, _ := servedModel(t, b)
	tokens := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(tokens, []byte("# tokens\n\nsecret\n"), 0o600)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := runServeCLI(ctx, pw, "serve", "--model-dir", dir, "--addr", "127.0.0.1:0", "--token-file", tokens)
		pw.Close()
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("serve printed %q: %v (%v)", line, err, <-done)
	}
	go io.Copy(io.Discard, pr)
	_, rest, ok := strings.Cut(line, "listening on ")
	if !ok {
		t.Fatalf("serve printed %q", line)
	}
	url, _, _ := strings.Cut(rest, " ")
	png := writePNG(t, 28, 28, func(x, y int) uint8 { return uint8(x * y) })
	if _, err := runServeCLI(t.Context(), io.Discard, "predict", "digits", png, "--server-url", url); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("predict without the token: %v, want 401", err)
	}
	var out bytes.Buffer
	if _, err := runServeCLI(t.Context(), &out, "predict", "digits", png, "--server-url", url, "--token", "secret"); err != nil {
		t.Fatalf("predict: %v", err)
	}
	if !strings.Contains(out.String(), "digits version 1") {
		t.Errorf("predict printed %s", out.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}

	if _, err := runServeCLI(t.Context(), io.Discard, "serve"); err == nil || !strings.Contains(err.Error(), "nothing to serve") {
		t.Errorf("serve without models: %v", err)
	}
}

// TestStartServing: the endpoint of `maas local` serves the models of the
// coordinator's index, and stops.
func TestStartServing(t *testing.T) {
	b := tensor.NewGo(1)
	defer b.Close()
	dir, _, _ := servedModel(t, b)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, []api.ModelVersion{{Name: "digits", Version: 4}})
	})
	mux.HandleFunc("GET /v1/models/digits/versions/4/files/{file}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(dir, r.PathValue("file")))
	})
	coord := httptest.NewServer(mux)
	defer coord.Close()
	ns := testcluster.StartNATS(t)

	url, stop, err := startServing(t.Context(), "127.0.0.1:0", ns.ClientURL(), coord.URL, 1, zaptest.NewLogger(t), localSecurity{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url + "/v2/models/digits/versions/4/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("version 4 of the index not served: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
