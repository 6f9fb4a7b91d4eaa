package serve

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// BenchmarkInferHTTP measures one single-sample inference request over
// loopback HTTP on the tiny model, whose forward pass is cheap: what is
// left is the serving overhead (HTTP, JSON, queue, batcher hand-off).
func BenchmarkInferHTTP(b *testing.B) {
	ts := newTestServer(b, func(c *Config) { c.Logger = nil }, nil)
	a := newArtifact(b, ts.be, 1, nil)
	if err := ts.Load("tiny", 1, a.specYAML, a.weights); err != nil {
		b.Fatal(err)
	}
	body := []byte(inferBody([]int{1, 784}, randomInput(1, 1), nil))
	url := ts.url + "/v2/models/tiny/infer"
	b.ReportAllocs()
	for b.Loop() {
		resp, err := ts.client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
	}
}

// BenchmarkDecodeInfer measures parsing and checking one single-sample
// request body.
func BenchmarkDecodeInfer(b *testing.B) {
	ts := newTestServer(b, func(c *Config) { c.Logger = nil }, nil)
	a := newArtifact(b, ts.be, 1, nil)
	if err := ts.Load("tiny", 1, a.specYAML, a.weights); err != nil {
		b.Fatal(err)
	}
	v, err := ts.acquire("tiny", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer v.release()
	body := []byte(inferBody([]int{1, 784}, randomInput(1, 1), nil))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeInfer(body, noHeaderLength, v); err != nil {
			b.Fatal(err)
		}
	}
}
