package serve

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/nn/safetensors"
)

// TestHotSwapUnderLoad loads versions 2 and 3 while 8 clients send 200
// requests each: no request fails, each answer comes from a version that
// was loaded and holds that version's logits, and no client sees the
// version go backwards.
func TestHotSwapUnderLoad(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	x := randomInput(1, 11)
	body := inferBody([]int{1, 784}, x, nil, "logits")
	arts := map[string]artifact{}
	want := map[string][]float32{}
	for v := 1; v <= 3; v++ {
		a := newArtifact(t, ts.be, uint64(100+v), nil)
		arts[strconv.Itoa(v)] = a
		want[strconv.Itoa(v)] = forward(a.model, x, 1)
	}
	if err := ts.Load("tiny", 1, arts["1"].specYAML, arts["1"].weights); err != nil {
		t.Fatal(err)
	}

	const clients, perClient = 8, 200
	var done atomic.Int64
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := 0
			for i := range perClient {
				code, b := ts.do(t, http.MethodPost, "/v2/models/tiny/infer", body)
				done.Add(1)
				if code != http.StatusOK {
					errs <- fmt.Errorf("client %d request %d: %d %s", c, i, code, b)
					return
				}
				resp := decodeResponse(b)
				a, ok := want[resp.ModelVersion]
				if !ok {
					errs <- fmt.Errorf("client %d: model_version %q was never loaded", c, resp.ModelVersion)
					return
				}
				got, err := resp.Outputs[0].Float32s()
				if err != nil || maxDiff(got, a) > tol {
					errs <- fmt.Errorf("client %d: version %s answered logits %v, want %v", c, resp.ModelVersion, got, a)
					return
				}
				v, _ := strconv.Atoi(resp.ModelVersion)
				if v < last {
					errs <- fmt.Errorf("client %d: version went back from %d to %d", c, last, v)
					return
				}
				last = v
			}
		}()
	}
	for _, v := range []int{2, 3} {
		target := int64(v-1) * clients * perClient / 3
		waitFor(t, fmt.Sprintf("%d answers", target), func() bool { return done.Load() >= target || len(errs) > 0 })
		if err := ts.Load("tiny", v, arts[strconv.Itoa(v)].specYAML, arts[strconv.Itoa(v)].weights); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := ts.Models(); len(got) != 1 || !reflect.DeepEqual(got[0].Versions, []int{3, 2}) {
		t.Errorf("Models() = %+v, want tiny [3 2]", got)
	}
	if code, _ := ts.do(t, http.MethodGet, "/v2/models/tiny/versions/1/ready", ""); code != http.StatusNotFound {
		t.Errorf("version 1 still served: %d", code)
	}
	resp := ts.infer(t, "/v2/models/tiny/versions/2/infer", body)
	if resp.ModelVersion != "2" || maxDiff(output(t, resp, "logits"), want["2"]) > tol {
		t.Errorf("pinned version 2: %+v", resp)
	}
}

func decodeResponse(b []byte) InferResponse {
	var r InferResponse
	_ = json.Unmarshal(b, &r)
	return r
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// TestBadVersionKeepsServing loads broken versions over a good one: each
// fails with ErrLoad and is counted, and version 1 keeps serving.
func TestBadVersionKeepsServing(t *testing.T) {
	ts := newTestServer(t, nil, nil)
	good := newArtifact(t, ts.be, 1, nil)
	if err := ts.Load("tiny", 1, good.specYAML, good.weights); err != nil {
		t.Fatal(err)
	}
	wider := newArtifact(t, ts.be, 2, func(s *jobspec.Spec) { s.Model.Layers[0].Filters = 6 })
	nanWeights := nanArtifact(t, good)
	for _, tc := range []struct {
		name              string
		specYAML, weights []byte
		msg               string
	}{
		{"truncated weights", good.specYAML, good.weights[:len(good.weights)/2], "model.safetensors"},
		{"garbage weights", good.specYAML, []byte("not a safetensors file"), "model.safetensors"},
		{"weights of another model", good.specYAML, wider.weights, `tensor "conv1.weight" has shape [6 1 3 3]`},
		{"non-finite weights", good.specYAML, nanWeights, "non-finite outputs"},
		{"bad spec", []byte("name: tiny\nmodel: {input: [1, 28, 28]}\n"), good.weights, "model.yaml"},
	} {
		err := ts.Load("tiny", 2, tc.specYAML, tc.weights)
		if !errors.Is(err, ErrLoad) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: Load = %v, want ErrLoad with %q", tc.name, err, tc.msg)
		}
	}
	if got := testutil.ToFloat64(ts.met.loadFailures.WithLabelValues("tiny")); got != 5 {
		t.Errorf("load failures = %v, want 5", got)
	}
	if code, _ := ts.do(t, http.MethodGet, "/v2/health/ready", ""); code != http.StatusOK {
		t.Errorf("ready = %d after failed loads", code)
	}
	resp := ts.infer(t, "/v2/models/tiny/infer", inferBody([]int{1, 784}, randomInput(1, 1), nil))
	if resp.ModelVersion != "1" {
		t.Errorf("served version %s, want 1", resp.ModelVersion)
	}
	if got := ts.Models(); !reflect.DeepEqual(got, []ModelInfo{{Name: "tiny", Versions: []int{1}, Ready: true}}) {
		t.Errorf("Models() = %+v", got)
	}
}

// nanArtifact returns a's weights with the first bias set to NaN.
func nanArtifact(t *testing.T, a artifact) []byte {
	f, err := safetensors.Decode(a.weights)
	if err != nil {
		t.Fatal(err)
	}
	b := f.Tensors["fc1.bias"]
	if b.Data == nil {
		for name := range f.Tensors {
			t.Logf("tensor %s", name)
		}
		t.Fatal("no fc1.bias")
	}
	binary.LittleEndian.PutUint32(b.Data[:4], math.Float32bits(float32(math.NaN())))
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, f); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestVersionsKept checks which versions stay: the newest two; loading a
// served one or an older one changes nothing; Unload removes them all.
func TestVersionsKept(t *testing.T) {
	// Record how many versions are still loaded as each new one is built.
	ts := newTestServer(t, nil, nil)
	var mu sync.Mutex
	most := 0
	ts.beforeBuild = func() {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range ts.Models() {
			most = max(most, len(m.Versions))
		}
	}
	arts := make([]artifact, 4)
	for v := 1; v <= 3; v++ {
		arts[v] = newArtifact(t, ts.be, uint64(v), nil)
		if err := ts.Load("tiny", v, arts[v].specYAML, arts[v].weights); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.Load("tiny", 3, arts[3].specYAML, arts[3].weights); !errors.Is(err, ErrVersionLoaded) {
		t.Errorf("loading version 3 again: %v, want ErrVersionLoaded", err)
	}
	if err := ts.Load("tiny", 1, arts[1].specYAML, arts[1].weights); !errors.Is(err, ErrVersionOld) {
		t.Errorf("loading version 1 again: %v, want ErrVersionOld", err)
	}
	if err := ts.Load("tiny", 0, arts[1].specYAML, arts[1].weights); !errors.Is(err, ErrLoad) {
		t.Errorf("loading version 0: %v, want ErrLoad", err)
	}
	if got := ts.Models(); !reflect.DeepEqual(got, []ModelInfo{{Name: "tiny", Versions: []int{3, 2}, Ready: true}}) {
		t.Errorf("Models() = %+v", got)
	}
	mu.Lock()
	if most > 1 { // loading 3 with {2, 1} served: 1 goes first, so old + new
		t.Errorf("%d versions were loaded while another was built; a swap may hold only the old one and the new one", most)
	}
	mu.Unlock()
	if err := ts.Unload("tiny"); err != nil {
		t.Fatal(err)
	}
	if err := ts.Unload("tiny"); !errors.Is(err, ErrModelNotFound) {
		t.Errorf("second Unload: %v", err)
	}
	if code, _ := ts.do(t, http.MethodGet, "/v2/health/ready", ""); code != http.StatusServiceUnavailable {
		t.Errorf("ready after Unload: %d", code)
	}
	if code, _ := ts.do(t, http.MethodGet, "/v2/models/tiny", ""); code != http.StatusNotFound {
		t.Errorf("metadata after Unload: %d", code)
	}
}
