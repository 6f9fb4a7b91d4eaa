package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/nn"
)

// Character-level language models (dataset kind text) are served for
// generation through the same infer call: a BYTES input "prompt" of N
// strings, and a BYTES output "text" of N continuations, sampled token by
// token as `maas generate` does. Requests that arrive together generate in
// lockstep, one forward pass per token for the whole batch.

// Tensor names and datatype of text models.
const (
	InputPrompt   = "prompt"
	OutputText    = "text"
	DatatypeBytes = "BYTES"
)

// Generation parameters, in the request's (or the prompt input's)
// parameters.
const (
	// ParamMaxTokens is how many characters to generate per prompt
	// (default DefaultMaxTokens, at most MaxTokensLimit).
	ParamMaxTokens = "max_tokens"
	// ParamTemperature divides the logits before sampling (default 1;
	// 0 always takes the most likely character).
	ParamTemperature = "temperature"
	// ParamSeed seeds the sampling: the same seed, prompt and model give
	// the same text. Without it every request draws a new seed.
	ParamSeed = "seed"

	DefaultMaxTokens = 100
	MaxTokensLimit   = 2000
)

// textModel is what serving a language model needs besides the network.
type textModel struct {
	text *dataset.Text // the vocabulary; read only once built
}

func newTextModel(name string, vocab []rune, seqLen int) (*textModel, error) {
	t := &dataset.Text{Name: name, Vocab: vocab, SeqLen: seqLen}
	if _, err := t.Encode(""); err != nil { // builds the index before any request reads it
		return nil, err
	}
	return &textModel{text: t}, nil
}

// genRequest is a checked generation request.
type genRequest struct {
	prompts     [][]int32
	maxTokens   int
	temperature float64
	seed        uint64
}

// decodeGenerate parses and checks a generation request body for v.
func decodeGenerate(body []byte, v *version) (decoded, *genRequest, error) {
	var req InferRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return decoded{}, nil, badRequest("body: %v", err)
	}
	d := decoded{id: req.ID}
	for _, o := range req.Outputs {
		if o.Name != OutputText {
			return d, nil, outputErr(o.Name, "unknown; a text model has one output, %q", OutputText)
		}
	}
	if len(req.Inputs) != 1 || req.Inputs[0].Name != InputPrompt {
		return d, nil, badRequest("a text model takes one input, %q: a BYTES tensor of prompts", InputPrompt)
	}
	in := req.Inputs[0]
	if in.Datatype != DatatypeBytes {
		return d, nil, inputErr(InputPrompt, "datatype %q: expected %s", in.Datatype, DatatypeBytes)
	}
	var prompts []string
	if err := json.Unmarshal(in.Data, &prompts); err != nil {
		return d, nil, inputErr(InputPrompt, "data must be an array of strings")
	}
	if len(in.Shape) != 1 || in.Shape[0] != len(prompts) {
		return d, nil, inputErr(InputPrompt, "shape %s: expected [%d], the number of prompts", fmtShape(in.Shape), len(prompts))
	}
	if len(prompts) == 0 || len(prompts) > v.maxBatch {
		return d, nil, inputErr(InputPrompt, "%d prompts: send 1 to %d (the model's max_batch_size)", len(prompts), v.maxBatch)
	}
	g := &genRequest{maxTokens: DefaultMaxTokens, temperature: 1, seed: rand.Uint64()}
	for i, p := range prompts {
		if p == "" {
			return d, nil, inputErr(InputPrompt, "prompt %d is empty", i)
		}
		ids, err := v.text.text.Encode(p)
		if err != nil {
			return d, nil, inputErr(InputPrompt, "prompt %d: %v", i, err)
		}
		g.prompts = append(g.prompts, ids)
	}
	params := map[string]any{}
	for k, x := range req.Parameters {
		params[k] = x
	}
	for k, x := range in.Parameters {
		params[k] = x
	}
	if x, ok := params[ParamMaxTokens]; ok {
		n, ok := wholeNumber(x)
		if !ok || n < 1 || n > MaxTokensLimit {
			return d, nil, badRequest("parameter %s: %v is not a whole number from 1 to %d", ParamMaxTokens, x, MaxTokensLimit)
		}
		g.maxTokens = int(n)
	}
	if x, ok := params[ParamTemperature]; ok {
		t, ok := x.(float64)
		if !ok || t < 0 || t > 100 || math.IsNaN(t) {
			return d, nil, badRequest("parameter %s: %v is not a number from 0 to 100", ParamTemperature, x)
		}
		g.temperature = t
	}
	if x, ok := params[ParamSeed]; ok {
		n, ok := wholeNumber(x)
		if !ok || n < 0 {
			return d, nil, badRequest("parameter %s: %v is not a whole number ≥ 0", ParamSeed, x)
		}
		g.seed = uint64(n)
	}
	d.n = len(prompts)
	return d, g, nil
}

// wholeNumber reads a JSON number that is an integer below 2⁵³.
func wholeNumber(x any) (int64, bool) {
	f, ok := x.(float64)
	if !ok || f != math.Trunc(f) || math.Abs(f) >= 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// sequence is one prompt being extended.
type sequence struct {
	job  *job
	i    int // the prompt's index in its request
	ids  []int32
	left int
	rng  *rand.Rand
}

// generate extends every prompt of jobs in lockstep: per token, one
// forward pass over the windows of the sequences still going. A job whose
// caller has gone stops early.
func (b *batcher) generate(jobs []*job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("serve: forward pass failed: %v", r)
		}
	}()
	t, vocab := b.sampleSize, b.classes
	seqs := b.seqs[:0]
	for _, j := range jobs {
		for i, p := range j.gen.prompts {
			ids := make([]int32, len(p), len(p)+j.gen.maxTokens)
			copy(ids, p)
			seqs = append(seqs, sequence{job: j, i: i, ids: ids, left: j.gen.maxTokens, rng: rand.New(rand.NewPCG(j.gen.seed, uint64(i)))})
		}
	}
	b.sizes.Observe(float64(len(seqs)))
	for {
		active := b.active[:0]
		for k := range seqs {
			if seqs[k].left > 0 && seqs[k].job.ctx.Err() == nil {
				active = append(active, k)
			}
		}
		b.active = active
		if len(active) == 0 {
			break
		}
		for r, k := range active {
			b.at[r] = nn.Window(seqs[k].ids, b.x[r*t:(r+1)*t])
		}
		logits := b.model.Forward(b.x[:len(active)*t], len(active), false)
		for r, k := range active {
			s := &seqs[k]
			row := logits[(r*t+b.at[r])*vocab : (r*t+b.at[r]+1)*vocab]
			s.ids = append(s.ids, nn.Sample(row, b.scratch, s.job.gen.temperature, s.rng))
			s.left--
		}
	}
	for _, s := range seqs {
		s.job.texts[s.i] = b.text.text.Decode(s.ids[len(s.job.gen.prompts[s.i]):])
	}
	clear(seqs)
	b.seqs = seqs[:0]
	return nil
}

// appendTextResponse writes the OIP V2 answer of a generation job.
func appendTextResponse(buf *bytes.Buffer, v *version, d decoded, j *job) error {
	data, err := json.Marshal(j.texts)
	if err != nil {
		return err
	}
	resp := InferResponse{ModelName: v.name, ModelVersion: v.label, ID: d.id, Outputs: []InferOutput{
		{Name: OutputText, Shape: []int{len(j.texts)}, Datatype: DatatypeBytes, Data: data},
	}}
	return json.NewEncoder(buf).Encode(resp)
}
