package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // decode JPEG inputs
	_ "image/png"  // decode PNG inputs
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/deploy/serve"
)

// DefaultServeURL is where `maas predict` finds `maas serve` without
// --server-url or $MAAS_SERVE_URL.
const DefaultServeURL = "http://127.0.0.1:8080"

// predictTimeout bounds each call to the serving endpoint.
const predictTimeout = 30 * time.Second

func predictCmd() *cobra.Command {
	var serverURL, token string
	var top int
	cmd := &cobra.Command{
		Use:   "predict NAME[:VERSION] INPUT",
		Short: "Classify an image (PNG, JPEG) or a tensor (.json) with a model that `maas serve` serves",
		Long: `predict sends INPUT to a model served by ` + "`maas serve`" + ` and prints the most
probable classes.

INPUT is a PNG or JPEG image, resized (bilinear) to the model's input and
converted to grayscale for 1-channel models or RGB for 3-channel ones; the
server normalises its pixels as training did. Or it is a .json file holding
a tensor the model takes as it is: a nested array such as [[[...]]] (one
sample of the model's input shape, or a batch of them), or an object
{"shape": [N, ...], "data": [...]}.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, err := parseModelRef(args[0])
			if err != nil {
				return err
			}
			if top < 1 {
				return fmt.Errorf("--top must be at least 1, got %d", top)
			}
			pc, err := newPredictClient(serverURL, token)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), predictTimeout)
			defer cancel()
			var meta serve.ModelMetadata
			if err := pc.call(ctx, http.MethodGet, modelURLPath(name, version, ""), nil, &meta); err != nil {
				return err
			}
			if len(meta.Inputs) != 1 || len(meta.Inputs[0].Shape) < 2 {
				return fmt.Errorf("model %s: the server describes inputs %+v; predict needs one input [-1, ...]", name, meta.Inputs)
			}
			in, err := readPredictInput(args[1], meta.Inputs[0].Shape[1:])
			if err != nil {
				return err
			}
			req := serve.InferRequest{
				Inputs:  []serve.InferInput{in},
				Outputs: []serve.InferRequestedOutput{{Name: serve.OutputProbability, Parameters: map[string]any{serve.ParamBinaryData: true}}},
			}
			resp, err := pc.infer(ctx, modelURLPath(name, version, "/infer"), req)
			if err != nil {
				return err
			}
			return printPredictions(cmd.OutOrStdout(), resp, top)
		},
	}
	def := os.Getenv("MAAS_SERVE_URL")
	if def == "" {
		def = DefaultServeURL
	}
	cmd.Flags().StringVar(&serverURL, "server-url", def, "serving endpoint (default: $MAAS_SERVE_URL, else maas serve's default address)")
	cmd.Flags().StringVar(&token, "token", os.Getenv("MAAS_SERVE_TOKEN"), "bearer token, if the server wants one (default: $MAAS_SERVE_TOKEN)")
	cmd.Flags().IntVar(&top, "top", 3, "how many classes to print")
	return cmd
}

// modelURLPath is /v2/models/NAME[/versions/V] + suffix.
func modelURLPath(name string, version int, suffix string) string {
	p := "/v2/models/" + url.PathEscape(name)
	if version > 0 {
		p += "/versions/" + strconv.Itoa(version)
	}
	return p + suffix
}

// predictClient calls a serving endpoint.
type predictClient struct {
	base  string
	token string
	hc    *http.Client
}

func newPredictClient(server, token string) (*predictClient, error) {
	s := strings.TrimRight(strings.TrimSpace(server), "/")
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	if u, err := url.Parse(s); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--server-url %q: want http://HOST:PORT, such as %s", server, DefaultServeURL)
	}
	return &predictClient{base: s, token: token, hc: &http.Client{}}, nil
}

// infer sends an inference request with its input's values as binary
// tensor data (a flat list; a nested one goes as JSON) and decodes the
// answer, JSON or binary.
func (pc *predictClient) infer(ctx context.Context, path string, req serve.InferRequest) (serve.InferResponse, error) {
	var flat []float32
	headerLen, body := -1, []byte(nil)
	var err error
	if in := &req.Inputs[0]; json.Unmarshal(in.Data, &flat) == nil {
		params := map[string]any{serve.ParamBinaryDataSize: 4 * len(flat)}
		for k, v := range in.Parameters {
			params[k] = v
		}
		in.Parameters, in.Data = params, nil
		hdr, err := json.Marshal(req)
		if err != nil {
			return serve.InferResponse{}, err
		}
		headerLen, body = len(hdr), hdr
		for _, f := range flat {
			body = binary.LittleEndian.AppendUint32(body, math.Float32bits(f))
		}
	} else if body, err = json.Marshal(req); err != nil {
		return serve.InferResponse{}, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, pc.base+path, bytes.NewReader(body))
	if err != nil {
		return serve.InferResponse{}, err
	}
	hreq.Header.Set("Content-Type", "application/octet-stream")
	if headerLen >= 0 {
		hreq.Header.Set(serve.HeaderContentLength, strconv.Itoa(headerLen))
	}
	b, h, err := pc.do(hreq, http.MethodPost, path)
	if err != nil {
		return serve.InferResponse{}, err
	}
	rhl := -1
	if v := h.Get(serve.HeaderContentLength); v != "" {
		if rhl, err = strconv.Atoi(v); err != nil {
			return serve.InferResponse{}, fmt.Errorf("POST %s: the answer's %s %q", path, serve.HeaderContentLength, v)
		}
	}
	resp, err := serve.DecodeInferResponse(b, rhl)
	if err != nil {
		return resp, fmt.Errorf("POST %s: decoding the answer: %w", path, err)
	}
	return resp, nil
}

// call sends in (if not nil) as JSON and decodes a 200 answer into out.
func (pc *predictClient) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, pc.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	b, _, err := pc.do(req, method, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// do sends req (with the token) and returns a 200 answer's body and
// headers, or an error with the server's message.
func (pc *predictClient) do(req *http.Request, method, path string) ([]byte, http.Header, error) {
	if pc.token != "" {
		req.Header.Set("Authorization", "Bearer "+pc.token)
	}
	resp, err := pc.hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("no answer from the serving endpoint %s: %w; start one with `maas serve --model-dir DIR`, or point --server-url at it", pc.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e serve.ErrorResponse
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
		return nil, nil, fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, e.Error)
	}
	return b, resp.Header, nil
}

// readPredictInput makes the request's input from an image or a .json
// tensor; sample is the model's per-sample input shape.
func readPredictInput(path string, sample []int) (serve.InferInput, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png", ".jpg", ".jpeg":
		c, h, w, err := imageShape(sample)
		if err != nil {
			return serve.InferInput{}, err
		}
		f, err := os.Open(path)
		if err != nil {
			return serve.InferInput{}, err
		}
		defer f.Close()
		img, _, err := image.Decode(f)
		if err != nil {
			return serve.InferInput{}, fmt.Errorf("%s: %w", path, err)
		}
		data, _ := json.Marshal(imagePixels(img, c, h, w))
		return serve.InferInput{Name: serve.InputName, Datatype: serve.DatatypeFP32, Shape: append([]int{1}, sample...),
			Parameters: map[string]any{serve.ParamRawPixels: true}, Data: data}, nil
	case ".json":
		return readTensorFile(path, sample)
	}
	return serve.InferInput{}, fmt.Errorf("%s: give a .png, .jpg or .json file", path)
}

// imageShape reads the channels, height and width of an image model's
// input: (C, H, W) with C 1 or 3, or (H, W) for one channel.
func imageShape(sample []int) (c, h, w int, err error) {
	switch {
	case len(sample) == 3 && (sample[0] == 1 || sample[0] == 3):
		return sample[0], sample[1], sample[2], nil
	case len(sample) == 2:
		return 1, sample[0], sample[1], nil
	}
	return 0, 0, 0, fmt.Errorf("the model takes %v per sample, not an image (C, H, W) with 1 or 3 channels; give a .json tensor", sample)
}

// imagePixels resizes img to h×w with bilinear interpolation (pixel
// centres aligned, as PIL and torchvision do) and returns its (c, h, w)
// pixels in [0, 255]: luma (ITU-R 601) for c = 1, RGB for c = 3.
// Transparent pixels count as black.
func imagePixels(img image.Image, c, h, w int) []float32 {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	src := make([][]float32, c)
	for ch := range src {
		src[ch] = make([]float32, sw*sh)
	}
	for y := range sh {
		for x := range sw {
			px := img.At(b.Min.X+x, b.Min.Y+y)
			if c == 1 {
				src[0][y*sw+x] = float32(color.GrayModel.Convert(px).(color.Gray).Y)
				continue
			}
			r, g, bl, _ := px.RGBA()
			src[0][y*sw+x], src[1][y*sw+x], src[2][y*sw+x] = float32(r>>8), float32(g>>8), float32(bl>>8)
		}
	}
	out := make([]float32, c*h*w)
	for y := range h {
		y0, y1, fy := bilinearTaps(y, h, sh)
		for x := range w {
			x0, x1, fx := bilinearTaps(x, w, sw)
			for ch, p := range src {
				top := p[y0*sw+x0]*(1-fx) + p[y0*sw+x1]*fx
				bot := p[y1*sw+x0]*(1-fx) + p[y1*sw+x1]*fx
				out[ch*h*w+y*w+x] = top*(1-fy) + bot*fy
			}
		}
	}
	return out
}

// bilinearTaps maps output index i of n onto a source of size m: the two
// neighbouring source indices and the weight of the second.
func bilinearTaps(i, n, m int) (i0, i1 int, f float32) {
	s := (float64(i)+0.5)*float64(m)/float64(n) - 0.5
	s = math.Max(0, math.Min(s, float64(m-1)))
	i0 = int(s)
	i1 = min(i0+1, m-1)
	return i0, i1, float32(s - float64(i0))
}

// readTensorFile reads a .json tensor: a nested array, or {"shape",
// "data"}. A single sample of the model's shape becomes a batch of one.
func readTensorFile(path string, sample []int) (serve.InferInput, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return serve.InferInput{}, err
	}
	bad := func(why string) error {
		return fmt.Errorf("%s: %s; give a nested array or {\"shape\": [N, ...], \"data\": [...]}", path, why)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return serve.InferInput{}, bad(err.Error())
	}
	var shape []int
	var values []float64
	switch t := v.(type) {
	case []any:
		if shape, values, err = flattenNested(t); err != nil {
			return serve.InferInput{}, bad(err.Error())
		}
	case map[string]any:
		var obj struct {
			Shape []int     `json:"shape"`
			Data  []float64 `json:"data"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return serve.InferInput{}, bad(err.Error())
		}
		if len(obj.Shape) == 0 {
			return serve.InferInput{}, bad("no shape")
		}
		shape, values = obj.Shape, obj.Data
	default:
		return serve.InferInput{}, bad("not an array or an object")
	}
	n := 1
	for _, d := range sample {
		n *= d
	}
	switch {
	case slices.Equal(shape, sample):
		shape = append([]int{1}, shape...)
	case len(shape) == 1 && shape[0] == n:
		shape = []int{1, n}
	}
	data, _ := json.Marshal(values)
	return serve.InferInput{Name: serve.InputName, Datatype: serve.DatatypeFP32, Shape: shape, Data: data}, nil
}

// flattenNested returns a rectangular nested array's dimensions and its
// numbers in row-major order.
func flattenNested(a []any) ([]int, []float64, error) {
	var dims []int
	for cur := any(a); ; {
		arr, ok := cur.([]any)
		if !ok {
			break
		}
		dims = append(dims, len(arr))
		if len(arr) == 0 {
			break
		}
		cur = arr[0]
	}
	var values []float64
	var walk func(v any, depth int) error
	walk = func(v any, depth int) error {
		if depth == len(dims) {
			f, ok := v.(float64)
			if !ok {
				return fmt.Errorf("%v is not a number", v)
			}
			values = append(values, f)
			return nil
		}
		arr, ok := v.([]any)
		if !ok || len(arr) != dims[depth] {
			return errors.New("ragged nested array: every array at one depth must have the same length")
		}
		for _, e := range arr {
			if err := walk(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return dims, values, walk(a, 0)
}

// printPredictions prints the top classes of each sample by probability.
func printPredictions(w io.Writer, resp serve.InferResponse, top int) error {
	var probs []float32
	var classes int
	for _, o := range resp.Outputs {
		if o.Name == serve.OutputProbability && len(o.Shape) == 2 {
			p, err := o.Float32s()
			if err != nil {
				return fmt.Errorf("the server's probabilities: %w", err)
			}
			probs, classes = p, o.Shape[1]
		}
	}
	if classes == 0 || len(probs)%classes != 0 {
		return errors.New("the server's answer holds no probabilities")
	}
	n := len(probs) / classes
	fmt.Fprintf(w, "%s version %s\n", resp.ModelName, resp.ModelVersion)
	for i := range n {
		if n > 1 {
			fmt.Fprintf(w, "sample %d\n", i)
		}
		row := probs[i*classes : (i+1)*classes]
		order := make([]int, classes)
		for j := range order {
			order[j] = j
		}
		sort.SliceStable(order, func(a, b int) bool { return row[order[a]] > row[order[b]] })
		t := newTable(w, "CLASS", "PROBABILITY")
		for _, c := range order[:min(top, classes)] {
			t.row(strconv.Itoa(c), fmt.Sprintf("%.4f", row[c]))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	return nil
}
