package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maas-ml/maas/internal/dataset"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildMaas compiles the real binary once for the tests of this package.
func buildMaas(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "maas-test-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "maas")
		cmd := exec.Command("go", "build", "-o", builtBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// trainTiny trains the tiny CNN (e2eSpec) for 100 steps with `maas train`
// into dir/model and returns its spec file and the model directory.
func trainTiny(t *testing.T, bin, dir string) (spec, model string) {
	t.Helper()
	spec, model = filepath.Join(dir, "tiny.yaml"), filepath.Join(dir, "model")
	if err := os.WriteFile(spec, []byte(e2eSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(bin, "train", "-f", spec, "-o", model, "--max-steps", "100", "--threads", "2").CombinedOutput(); err != nil {
		t.Fatalf("maas train: %v\n%s", err, b)
	}
	return spec, model
}

// TestTrainEvalProcess runs `maas train` and `maas eval` as real processes
// on real MNIST: one epoch (100 steps) of a small CNN must beat 85% on the
// test set, and eval must agree with itself across batch sizes.
func TestTrainEvalProcess(t *testing.T) {
	if _, err := dataset.DefaultMNISTDir(); err != nil {
		t.Skip("real MNIST not in the module cache:", err)
	}
	bin := buildMaas(t)
	dir := t.TempDir()
	spec, out := trainTiny(t, bin, dir)
	for _, f := range []string{"model.safetensors", "model.yaml"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Fatalf("train did not write %s: %v", f, err)
		}
	}
	eval := func(batch string) map[string]any {
		b, err := exec.Command(bin, "eval", out, "--data", "mnist-test", "--json", "--batch", batch).Output()
		if err != nil {
			t.Fatalf("maas eval: %v", err)
		}
		var r map[string]any
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("eval output %q: %v", b, err)
		}
		return r
	}
	r1, r2 := eval("256"), eval("100")
	acc := r1["test_accuracy"].(float64)
	t.Logf("tiny CNN after 100 steps: %.2f%% on mnist-test", acc)
	if acc < 85 || r1["samples"].(float64) != 10000 {
		t.Fatalf("eval: %v", r1)
	}
	if r1["test_accuracy"] != r2["test_accuracy"] {
		t.Fatalf("accuracy depends on the eval batch: %v vs %v", r1, r2)
	}

	// --init continues from the written weights.
	cmd := exec.Command(bin, "train", "-f", spec, "-o", filepath.Join(dir, "model2"), "--max-steps", "1", "--init", filepath.Join(out, "model.safetensors"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("maas train --init: %v\n%s", err, b)
	}
}

// TestBadInputProcess: a broken spec is refused before training, with the
// field named and a non-zero exit, and nothing is written.
func TestBadInputProcess(t *testing.T) {
	bin := buildMaas(t)
	dir := t.TempDir()
	cases := map[string]string{
		"model.layers[1].type":   strings.Replace(e2eSpec, "type: relu", "type: swish", 1),
		"batch_size":             strings.Replace(e2eSpec, "batch_size: 600", "batch_size: -1", 1),
		"model.layers[2].kernel": strings.Replace(e2eSpec, "kernel: 4}", "kernel: 99}", 1),
		"dataset.path":           strings.Replace(e2eSpec, "kind: mnist", "kind: mnist\n  path: /nonexistent", 1),
	}
	for field, src := range cases {
		spec := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(spec, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "never")
		b, err := exec.Command(bin, "train", "-f", spec, "-o", out).CombinedOutput()
		if err == nil {
			t.Fatalf("%s: train accepted a bad spec", field)
		}
		if !strings.Contains(string(b), field) {
			t.Errorf("%s: error does not name the field:\n%s", field, b)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: a refused run wrote %s", field, out)
		}
	}
	b, err := exec.Command(bin, "eval", filepath.Join(dir, "no-such-model")).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "model.yaml") {
		t.Fatalf("eval of a missing directory: %v\n%s", err, b)
	}
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// e2eSpec is the tiny CNN that tests which train for real share.
var e2eSpec = func() string {
	b, err := os.ReadFile("../../testdata/specs/tiny-cnn.yaml")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// TestLocalProcess runs `maas local` as a real process: the embedded
// cluster trains a job through NATS and Raft, publishes the model and pulls
// it; `maas eval` then reads the pulled model.
func TestLocalProcess(t *testing.T) {
	if _, err := dataset.DefaultMNISTDir(); err != nil {
		t.Skip("real MNIST not in the module cache:", err)
	}
	bin := buildMaas(t)
	dir := t.TempDir()
	spec := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(spec, []byte(e2eSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	p := freePorts(t, 4)
	out := filepath.Join(dir, "model")
	cmd := exec.Command(bin, "local", "-f", spec, "-o", out, "--data-dir", filepath.Join(dir, "data"), "--workers", "2",
		"--nats-port", fmt.Sprint(p[0]), "--api", fmt.Sprintf("127.0.0.1:%d", p[1]), "--raft", fmt.Sprintf("127.0.0.1:%d", p[2]),
		"--serve-addr", fmt.Sprintf("127.0.0.1:%d", p[3]))
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("maas local: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "succeeded") || !strings.Contains(string(b), "pulled into") {
		t.Fatalf("maas local output:\n%s", b)
	}
	e, err := exec.Command(bin, "eval", out, "--data", "mnist-test", "--json").Output()
	if err != nil {
		t.Fatalf("maas eval of the pulled model: %v", err)
	}
	var r map[string]any
	if err := json.Unmarshal(e, &r); err != nil || r["test_accuracy"].(float64) < 80 {
		t.Fatalf("eval: %s (%v)", e, err)
	}
}

// TestCharLMProcess trains a character-level model on a periodic text with
// `maas train`, then `maas generate` continues a prompt the way the text
// goes.
func TestCharLMProcess(t *testing.T) {
	bin := buildMaas(t)
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(corpus, []byte(strings.Repeat("maas trains models. ", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "lm.yaml")
	os.WriteFile(spec, []byte(fmt.Sprintf(`name: lm
model:
  input: [16]
  layers:
    - {type: embedding, vocab: 13, units: 8}
    - {type: lstm, units: 32, return_sequences: true}
    - {type: dense, units: 13}
loss: softmax_cross_entropy
optimizer: {type: adam, lr: 0.02}
dataset: {kind: text, path: %s, seq_len: 16, validation: 0.2}
batch_size: 8
epochs: 20
seed: 1
`, corpus)), 0o644)
	out := filepath.Join(dir, "lm")
	if b, err := exec.Command(bin, "train", "-f", spec, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("maas train: %v\n%s", err, b)
	}
	b, err := exec.Command(bin, "generate", out, "--prompt", "maas trains", "--length", "30", "--temperature", "0").Output()
	if err != nil {
		t.Fatalf("maas generate: %v", err)
	}
	got := strings.TrimSpace(string(b))
	t.Logf("generated %q", got)
	if want := "maas trains models. maas trains models."; !strings.HasPrefix(got, want) {
		t.Fatalf("generated %q, want it to start %q", got, want)
	}
	// A prompt with a character the model has never seen is refused by name.
	if b, err := exec.Command(bin, "generate", out, "--prompt", "maas!").CombinedOutput(); err == nil || !strings.Contains(string(b), "'!'") {
		t.Fatalf("unknown character: %v\n%s", err, b)
	}
	// maas serve generates the same text through the V2 infer call.
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	startProc(t, bin, "serve", "serve", "--model-dir", out, "--addr", addr)
	req := `{"inputs":[{"name":"prompt","datatype":"BYTES","shape":[1],"data":["maas trains"]}],"parameters":{"max_tokens":30,"temperature":0}}`
	var answer struct {
		Outputs []struct {
			Name     string   `json:"name"`
			Datatype string   `json:"datatype"`
			Data     []string `json:"data"`
		} `json:"outputs"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post("http://"+addr+"/v2/models/lm/infer", "application/json", strings.NewReader(req))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("infer: %d %s", resp.StatusCode, body)
			}
			if err := json.Unmarshal(body, &answer); err != nil {
				t.Fatalf("infer answer %s: %v", body, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("maas serve did not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(answer.Outputs) != 1 || answer.Outputs[0].Name != "text" || answer.Outputs[0].Datatype != "BYTES" ||
		len(answer.Outputs[0].Data) != 1 || "maas trains"+answer.Outputs[0].Data[0] != got[:len("maas trains")+30] {
		t.Fatalf("served generation %+v, want the continuation of %q", answer, got)
	}
	// A vocabulary that does not match the text is refused before training.
	os.WriteFile(spec, []byte(strings.Replace(string(mustRead(t, spec)), "vocab: 13", "vocab: 12", 1)), 0o644)
	if b, err := exec.Command(bin, "train", "-f", spec, "-o", filepath.Join(dir, "never")).CombinedOutput(); err == nil || !strings.Contains(string(b), "model.layers[0].vocab") {
		t.Fatalf("wrong vocabulary: %v\n%s", err, b)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
