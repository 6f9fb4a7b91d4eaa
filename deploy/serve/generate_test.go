package serve

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/nn"
	"github.com/maas-ml/maas/tensor"
)

const lmVocab = " abcdefgh"

// lmYAML is a tiny character-level language model over lmVocab.
const lmYAML = `
name: lm
model:
  input: [8]
  layers:
    - {type: embedding, vocab: 9, units: 6}
    - {type: lstm, units: 12, return_sequences: true}
    - {type: dense, units: 9}
loss: softmax_cross_entropy
optimizer: {type: adam, lr: 0.01}
dataset: {kind: text, path: corpus.txt, seq_len: 8}
batch_size: 4
epochs: 1
seed: 1
serving: {max_batch_size: 8, max_queue_delay: 2ms, max_queue: 64}
`

// newLM builds the tiny language model from seed; meta holds its weights
// file's metadata (nil: the vocabulary).
func newLM(t *testing.T, b tensor.Backend, seed uint64, meta map[string]string) artifact {
	t.Helper()
	spec, err := jobspec.Parse([]byte(lmYAML))
	if err != nil {
		t.Fatal(err)
	}
	m, err := nn.BuildInference(spec.Model, b)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(seed)
	if meta == nil {
		meta = map[string]string{modeldir.VocabKey: lmVocab}
	}
	weights, specYAML, err := modeldir.Encode(spec, m, meta)
	if err != nil {
		t.Fatal(err)
	}
	return artifact{spec: spec, model: m, specYAML: specYAML, weights: weights}
}

// directGeneration is what the server must answer for prompt number i of a
// request: nn.Generate with the request's seed and the prompt's index.
func directGeneration(t *testing.T, m *nn.Model, prompt string, i, tokens int, temperature float64, seed uint64) string {
	t.Helper()
	text := &dataset.Text{Name: "lm", Vocab: []rune(lmVocab), SeqLen: 8}
	ids, err := text.Encode(prompt)
	if err != nil {
		t.Fatal(err)
	}
	out := nn.Generate(m, ids, 8, len(lmVocab), tokens, temperature, rand.New(rand.NewPCG(seed, uint64(i))))
	return text.Decode(out[len(ids):])
}

func genBody(prompts []string, params string) string {
	data, _ := json.Marshal(prompts)
	return fmt.Sprintf(`{"id":"g1","inputs":[{"name":"prompt","datatype":"BYTES","shape":[%d],"data":%s}],"parameters":{%s}}`, len(prompts), data, params)
}

func texts(t *testing.T, resp InferResponse) []string {
	t.Helper()
	if len(resp.Outputs) != 1 || resp.Outputs[0].Name != OutputText || resp.Outputs[0].Datatype != DatatypeBytes {
		t.Fatalf("outputs %+v, want one BYTES %q", resp.Outputs, OutputText)
	}
	var s []string
	if err := json.Unmarshal(resp.Outputs[0].Data, &s); err != nil {
		t.Fatal(err)
	}
	if len(resp.Outputs[0].Shape) != 1 || resp.Outputs[0].Shape[0] != len(s) {
		t.Fatalf("shape %v for %d strings", resp.Outputs[0].Shape, len(s))
	}
	return s
}

// TestGenerate serves a language model: metadata with BYTES tensors, and
// continuations equal to nn.Generate's (greedy, and sampled with a
// seed), for several prompts in one request.
func TestGenerate(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	a := newLM(t, ts.be, 3, nil)
	if err := ts.Load("", 1, a.specYAML, a.weights); err != nil {
		t.Fatal(err)
	}
	code, b := ts.do(t, http.MethodGet, "/v2/models/lm", "")
	var md ModelMetadata
	if code != http.StatusOK || json.Unmarshal(b, &md) != nil {
		t.Fatalf("metadata: %d %s", code, b)
	}
	if md.Inputs[0].Name != InputPrompt || md.Inputs[0].Datatype != DatatypeBytes || md.Outputs[0].Name != OutputText || md.Outputs[0].Datatype != DatatypeBytes {
		t.Errorf("metadata %+v, want BYTES prompt in and BYTES text out", md)
	}
	prompts := []string{"abc", "hag bed", "a"}
	resp := ts.infer(t, "/v2/models/lm/infer", genBody(prompts, `"max_tokens":20,"temperature":0`))
	if resp.ID != "g1" || resp.ModelVersion != "1" {
		t.Errorf("answer names id %q version %q", resp.ID, resp.ModelVersion)
	}
	for i, got := range texts(t, resp) {
		if want := directGeneration(t, a.model, prompts[i], i, 20, 0, 0); got != want {
			t.Errorf("greedy continuation of %q: %q, want %q", prompts[i], got, want)
		}
	}
	resp = ts.infer(t, "/v2/models/lm/infer", genBody(prompts, `"max_tokens":15,"temperature":0.8,"seed":7`))
	for i, got := range texts(t, resp) {
		if want := directGeneration(t, a.model, prompts[i], i, 15, 0.8, 7); got != want {
			t.Errorf("sampled continuation of %q: %q, want %q", prompts[i], got, want)
		}
		if len([]rune(got)) != 15 {
			t.Errorf("%d characters generated, want 15", len([]rune(got)))
		}
	}
}

// TestGenerateBatched: requests queued behind a busy instance generate
// together in lockstep and still get the answers they would alone.
func TestGenerateBatched(t *testing.T) {
	g := newGate()
	ts := newTestServer(t, nil, g.hook)
	defer g.release()
	a := newLM(t, ts.be, 4, nil)
	if err := ts.Load("", 1, a.specYAML, a.weights); err != nil {
		t.Fatal(err)
	}
	prompts := []string{"dead", "bad cab", "fee", "ha"}
	want := make([]string, len(prompts))
	for i, p := range prompts {
		want[i] = directGeneration(t, a.model, p, 0, 12, 0.5, uint64(100+i))
	}
	var wg sync.WaitGroup
	ask := func(i int) {
		defer wg.Done()
		resp := ts.infer(t, "/v2/models/lm/infer", genBody(prompts[i:i+1], fmt.Sprintf(`"max_tokens":12,"temperature":0.5,"seed":%d`, 100+i)))
		if got := texts(t, resp)[0]; got != want[i] {
			t.Errorf("continuation of %q: %q, want %q", prompts[i], got, want[i])
		}
	}
	wg.Add(1)
	go ask(0)
	<-g.entered // the first request holds the instance
	for i := 1; i < len(prompts); i++ {
		wg.Add(1)
		go ask(i)
	}
	waitFor(t, "2 queued requests", func() bool { return ts.batchQueued("lm") == 2 })
	g.release()
	wg.Wait()
	count, sum := histogram(t, ts.met.batchSize.WithLabelValues("lm", "1"))
	if count != 2 || sum != 4 {
		t.Errorf("%d batches of %v sequences in all, want 2 (the first alone, then 3 together)", count, sum)
	}
}

// batchQueued is the queue depth of version 1 of name.
func (ts *testServer) batchQueued(name string) int {
	v, err := ts.acquire(name, 1)
	if err != nil {
		return -1
	}
	defer v.release()
	return len(v.batch.queue)
}

// TestGenerateBadRequests: every malformed generation request gets 400
// naming what is wrong, and a model without its vocabulary is not loaded.
func TestGenerateBadRequests(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	a := newLM(t, ts.be, 5, nil)
	if err := ts.Load("", 1, a.specYAML, a.weights); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, body, want string }{
		{"unknown character", genBody([]string{"abz"}, ""), `'z' is not in the vocabulary`},
		{"empty prompt", genBody([]string{""}, ""), "prompt 0 is empty"},
		{"FP32 prompt", `{"inputs":[{"name":"prompt","datatype":"FP32","shape":[1],"data":[1]}]}`, `datatype "FP32": expected BYTES`},
		{"numbers as data", `{"inputs":[{"name":"prompt","datatype":"BYTES","shape":[1],"data":[1]}]}`, "array of strings"},
		{"shape", `{"inputs":[{"name":"prompt","datatype":"BYTES","shape":[2],"data":["ab"]}]}`, "shape [2]: expected [1]"},
		{"input name", `{"inputs":[{"name":"input","datatype":"BYTES","shape":[1],"data":["ab"]}]}`, `one input, "prompt"`},
		{"too many prompts", genBody(strings.Split("a,b,c,d,e,f,g,h,a", ","), ""), "9 prompts: send 1 to 8"},
		{"max_tokens 0", genBody([]string{"ab"}, `"max_tokens":0`), "max_tokens"},
		{"max_tokens huge", genBody([]string{"ab"}, `"max_tokens":100000`), "max_tokens"},
		{"max_tokens fraction", genBody([]string{"ab"}, `"max_tokens":2.5`), "max_tokens"},
		{"negative temperature", genBody([]string{"ab"}, `"temperature":-1`), "temperature"},
		{"seed text", genBody([]string{"ab"}, `"seed":"x"`), "seed"},
		{"output logits", `{"inputs":[{"name":"prompt","datatype":"BYTES","shape":[1],"data":["ab"]}],"outputs":[{"name":"logits"}]}`, `one output, "text"`},
		{"not JSON", `{"inputs":`, "body"},
	}
	for _, c := range cases {
		code, b := ts.do(t, http.MethodPost, "/v2/models/lm/infer", c.body)
		var e ErrorResponse
		json.Unmarshal(b, &e)
		if code != http.StatusBadRequest || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s: %d %s, want 400 saying %q", c.name, code, b, c.want)
		}
	}
	bad := newLM(t, ts.be, 5, map[string]string{"other": "x"})
	if err := ts.Load("", 2, bad.specYAML, bad.weights); err == nil || !strings.Contains(err.Error(), `metadata "vocab"`) {
		t.Errorf("loading weights without a vocabulary: %v", err)
	}
}
