package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// onVersion serves a call to a model version (infer, explain): it
// resolves the version, runs on, which answers and returns the status
// code, and counts the call in the request metrics.
func (s *Server) onVersion(on func(s *Server, w http.ResponseWriter, r *http.Request, v *version) int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		v, err := s.resolve(r)
		if err != nil {
			writeError(w, err)
			return
		}
		defer v.release()
		code := on(s, w, r, v)
		s.met.requests.WithLabelValues(v.name, v.label, strconv.Itoa(code)).Inc()
		s.met.latency.WithLabelValues(v.name, v.label).Observe(time.Since(start).Seconds())
	}
}

// await waits for j, queued on v, to be done or for ctx to end. It
// answers a timeout or j's error and returns its status code, or returns
// 0 when j's results are there to answer with.
func (s *Server) await(ctx context.Context, w http.ResponseWriter, r *http.Request, v *version, j *job) int {
	select {
	case <-j.done:
	case <-ctx.Done():
		select {
		case <-j.done: // finished just in time
		default:
			if r.Context().Err() != nil {
				return 499 // the client went away; nobody reads an answer
			}
			err := fmt.Errorf("%w after %v waiting for %s version %s (its queue holds %d requests); retry, or add capacity",
				ErrTimeout, s.cfg.RequestTimeout, v.name, v.label, len(v.batch.queue))
			writeError(w, err)
			return statusOf(err)
		}
	}
	if j.err != nil {
		writeError(w, j.err)
		return statusOf(j.err)
	}
	return 0
}

// readBody reads the request's body, at most Config.MaxBodyBytes, into
// a pooled buffer (putBuffer it).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (*bytes.Buffer, error) {
	body := getBuffer()
	if _, err := body.ReadFrom(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)); err != nil {
		putBuffer(body)
		if statusOf(err) == http.StatusRequestEntityTooLarge {
			return nil, fmt.Errorf("serve: request body over %d bytes: %w; send fewer samples per request", s.cfg.MaxBodyBytes, err)
		}
		return nil, badRequest("reading the body: %v", err)
	}
	return body, nil
}

// infer answers POST /v2/models/{m}[/versions/{v}]/infer on v and
// returns the status code.
func infer(s *Server, w http.ResponseWriter, r *http.Request, v *version) int {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	// incoming counts this request until just before it is queued: a
	// batcher that sees it neither queued nor incoming does not wait for it.
	v.incoming.Add(1)
	j, d, err := s.readJob(ctx, w, r, v)
	v.incoming.Add(-1)
	if err == nil && !v.runInline(j) {
		err = v.batch.submit(j)
	}
	if err != nil {
		writeError(w, err)
		return statusOf(err)
	}
	if code := s.await(ctx, w, r, v, j); code != 0 {
		return code
	}
	buf := getBuffer()
	defer putBuffer(buf)
	if v.text != nil {
		if err := appendTextResponse(buf, v, d, j); err != nil {
			writeError(w, err)
			return statusOf(err)
		}
		writeBody(w, http.StatusOK, buf.Bytes())
		return http.StatusOK
	}
	headerLen, err := appendResponse(buf, v, d, j)
	if err != nil {
		writeError(w, err)
		return statusOf(err)
	}
	if headerLen != noHeaderLength {
		w.Header().Set(HeaderContentLength, strconv.Itoa(headerLen))
		writeBodyAs(w, http.StatusOK, "application/octet-stream", buf.Bytes())
		return http.StatusOK
	}
	writeBody(w, http.StatusOK, buf.Bytes())
	return http.StatusOK
}

// headerLength reads a request's Inference-Header-Content-Length
// (noHeaderLength without one).
func headerLength(r *http.Request) (int, error) {
	h := r.Header.Get(HeaderContentLength)
	if h == "" {
		return noHeaderLength, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || n < 0 {
		return 0, badRequest("header %s: %q is not a byte count", HeaderContentLength, h)
	}
	return n, nil
}

// readJob reads and checks the body and makes the job for the batcher.
func (s *Server) readJob(ctx context.Context, w http.ResponseWriter, r *http.Request, v *version) (*job, decoded, error) {
	body, err := s.readBody(w, r)
	if err != nil {
		return nil, decoded{}, err
	}
	defer putBuffer(body)
	if v.text != nil {
		if r.Header.Get(HeaderContentLength) != "" {
			return nil, decoded{}, badRequest("model %s generates text: its prompts are JSON strings, not binary tensor data", v.name)
		}
		d, g, err := decodeGenerate(body.Bytes(), v)
		if err != nil {
			return nil, d, err
		}
		return &job{ctx: ctx, n: d.n, gen: g, texts: make([]string, d.n), done: make(chan struct{})}, d, nil
	}
	headerLen, err := headerLength(r)
	if err != nil {
		return nil, decoded{}, err
	}
	d, err := decodeInfer(body.Bytes(), headerLen, v)
	if err != nil {
		return nil, d, err
	}
	k := v.classes
	out := make([]float32, 2*d.n*k)
	j := &job{ctx: ctx, x: d.x, n: d.n, logits: out[:d.n*k], probs: out[d.n*k:], class: make([]int64, d.n), done: make(chan struct{})}
	return j, d, nil
}

// appendResponse writes the OIP V2 answer for j's results into buf: the
// JSON, then the data of the outputs asked for as binary data, whose
// JSON carries binary_data_size instead. It returns the JSON's length
// when some data follows it, else noHeaderLength.
func appendResponse(buf *bytes.Buffer, v *version, d decoded, j *job) (int, error) {
	b := buf.AvailableBuffer()
	b = append(b, `{"model_name":`...)
	b = strconv.AppendQuote(b, v.name)
	b = append(b, `,"model_version":`...)
	b = strconv.AppendQuote(b, v.label)
	if d.id != "" {
		b = append(b, `,"id":`...)
		b = strconv.AppendQuote(b, d.id)
	}
	b = append(b, `,"outputs":[`...)
	first := true
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	var err error
	var bin []byte // the binary outputs' data, in order
	binaryHead := func(b []byte, name string, shape []int, datatype string, size int) []byte {
		b = append(b, `{"name":"`...)
		b = append(b, name...)
		b = append(b, `","shape":[`...)
		for i, d := range shape {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(d), 10)
		}
		b = append(b, `],"datatype":"`...)
		b = append(b, datatype...)
		b = append(b, `","parameters":{"`+ParamBinaryDataSize+`":`...)
		b = strconv.AppendInt(b, int64(size), 10)
		return append(b, "}}"...)
	}
	floats := func(name string, data []float32, asBinary bool) error {
		sep()
		if !asBinary {
			b, err = appendFloatTensor(b, name, d.n, v.classes, data)
			return err
		}
		if err := checkFinite(name, data, v.classes); err != nil {
			return err
		}
		b = binaryHead(b, name, []int{d.n, v.classes}, DatatypeFP32, 4*len(data))
		for _, f := range data {
			bin = binary.LittleEndian.AppendUint32(bin, math.Float32bits(f))
		}
		return nil
	}
	if d.outputs.logits {
		if err := floats(OutputLogits, j.logits, d.binary.logits); err != nil {
			return 0, err
		}
	}
	if d.outputs.probs {
		if err := floats(OutputProbability, j.probs, d.binary.probs); err != nil {
			return 0, err
		}
	}
	if d.outputs.class && d.binary.class {
		sep()
		b = binaryHead(b, OutputClass, []int{d.n}, DatatypeINT64, 8*len(j.class))
		for _, c := range j.class {
			bin = binary.LittleEndian.AppendUint64(bin, uint64(c))
		}
	} else if d.outputs.class {
		sep()
		b = append(b, `{"name":"`+OutputClass+`","shape":[`...)
		b = strconv.AppendInt(b, int64(d.n), 10)
		b = append(b, `],"datatype":"`+DatatypeINT64+`","data":[`...)
		for i, c := range j.class {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, c, 10)
		}
		b = append(b, "]}"...)
	}
	b = append(b, "]}\n"...)
	buf.Write(b)
	if d.binary == (outputSet{}) {
		return noHeaderLength, nil
	}
	headerLen := len(b)
	buf.Write(bin)
	return headerLen, nil
}

// checkFinite fails for a NaN or infinite value of output name (k values
// a sample).
func checkFinite(name string, data []float32, k int) error {
	for i, f := range data {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return fmt.Errorf("serve: output %q of sample %d is %v; the input is likely far outside the range the model was trained on", name, i/k, f)
		}
	}
	return nil
}

// appendFloatTensor appends an FP32 output (n, k) as JSON.
func appendFloatTensor(b []byte, name string, n, k int, data []float32) ([]byte, error) {
	b = append(b, `{"name":"`...)
	b = append(b, name...)
	b = append(b, `","shape":[`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, `],"datatype":"`+DatatypeFP32+`","data":[`...)
	for i, f := range data {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return b, fmt.Errorf("serve: output %q of sample %d is %v; the input is likely far outside the range the model was trained on", name, i/k, f)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
	}
	return append(b, "]}"...), nil
}
