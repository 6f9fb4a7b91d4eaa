// Command serve is a load generator for the maas serving endpoint (OIP V2
// REST): it sends -n inference requests from -c concurrent clients over
// loopback and prints the latency percentiles and the throughput.
//
//	go run ./bench/serve -url http://127.0.0.1:8080 -model mnist-cnn -c 1 -n 2000
//	go run ./bench/serve -start out/mnist-cnn -c 16 -n 4000 [-batching=false] [-threads 2]
//
// With -start DIR it serves the model directory itself, in process, on a
// free loopback port (batching as -batching says) and also reports the mean
// batch size the server ran.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maas-ml/maas/deploy/serve"
	"github.com/maas-ml/maas/tensor"
)

type options struct {
	url, model, start string
	version           int
	clients, requests int
	samples, warmup   int
	batching, raw     bool
	threads           int
	asJSON            bool
	cpuProfile        string
	instances         int
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:8080", "serving endpoint")
	flag.StringVar(&o.model, "model", "mnist-cnn", "model name (with -start: the directory's model)")
	flag.IntVar(&o.version, "version", 0, "model version (0: the newest)")
	flag.IntVar(&o.clients, "c", 1, "concurrent clients, each sending one request at a time")
	flag.IntVar(&o.requests, "n", 2000, "timed requests in all")
	flag.IntVar(&o.samples, "samples", 1, "samples per request")
	flag.IntVar(&o.warmup, "warmup", 200, "untimed requests first")
	flag.BoolVar(&o.raw, "raw", false, "send pixels in [0, 255] with raw_pixels: true")
	flag.StringVar(&o.start, "start", "", "serve this model directory in process on a free port instead of -url")
	flag.BoolVar(&o.batching, "batching", true, "with -start: batch requests dynamically")
	flag.IntVar(&o.threads, "threads", 0, "with -start: cores for the forward passes (0: all)")
	flag.IntVar(&o.instances, "instances", 1, "with -start: model instances per version")
	flag.BoolVar(&o.asJSON, "json", false, "print one JSON line")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the timed requests (server and clients) to this file")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/serve:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.clients < 1 || o.requests < 1 || o.samples < 1 {
		return fmt.Errorf("-c, -n and -samples must be at least 1")
	}
	var reg *prometheus.Registry
	if o.start != "" {
		var stop func()
		var err error
		if o.url, o.model, reg, stop, err = startServer(o); err != nil {
			return err
		}
		defer stop()
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.clients, DisableCompression: true}}
	path := o.url + "/v2/models/" + o.model
	if o.version > 0 {
		path += "/versions/" + strconv.Itoa(o.version)
	}
	body, err := requestBody(hc, path, o)
	if err != nil {
		return err
	}
	if _, err := load(hc, path+"/infer", body, o.clients, o.warmup); err != nil {
		return err
	}
	n0, sum0 := batchTotals(reg)
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	lat, err := load(hc, path+"/infer", body, o.clients, o.requests)
	if err != nil {
		return err
	}
	took := time.Since(start)
	n1, sum1 := batchTotals(reg)
	meanBatch := 0.0
	if n1 > n0 {
		meanBatch = (sum1 - sum0) / float64(n1-n0)
	}
	report(o, lat, took, reg != nil, meanBatch)
	return nil
}

// startServer serves o.start on a free loopback port.
func startServer(o options) (url, model string, reg *prometheus.Registry, stop func(), err error) {
	b := tensor.NewGo(o.threads)
	reg = prometheus.NewRegistry()
	cfg := serve.DefaultConfig()
	cfg.Backend, cfg.Registerer, cfg.DisableBatching, cfg.Instances = b, reg, !o.batching, o.instances
	s, err := serve.New(cfg)
	if err != nil {
		b.Close()
		return "", "", nil, nil, err
	}
	if err := s.LoadDir(o.start, 1); err != nil {
		s.Shutdown(context.Background())
		b.Close()
		return "", "", nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", nil, nil, err
	}
	go s.Serve(ln)
	stop = func() {
		s.Shutdown(context.Background())
		b.Close()
	}
	return "http://" + ln.Addr().String(), s.Models()[0].Name, reg, stop, nil
}

// requestBody reads the model's input shape and encodes one request of
// o.samples random samples.
func requestBody(hc *http.Client, path string, o options) ([]byte, error) {
	resp, err := hc.Get(path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var meta serve.ModelMetadata
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil || resp.StatusCode != http.StatusOK || len(meta.Inputs) != 1 {
		return nil, fmt.Errorf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	shape := append([]int{o.samples}, meta.Inputs[0].Shape[1:]...)
	n := 1
	for _, d := range shape {
		n *= d
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n)
	for i := range x {
		if o.raw {
			x[i] = float32(rng.IntN(256))
		} else {
			x[i] = rng.Float32()*2 - 1
		}
	}
	data, _ := json.Marshal(x)
	in := serve.InferInput{Name: serve.InputName, Shape: shape, Datatype: serve.DatatypeFP32, Data: data}
	if o.raw {
		in.Parameters = map[string]any{serve.ParamRawPixels: true}
	}
	return json.Marshal(serve.InferRequest{Inputs: []serve.InferInput{in}})
}

// load sends n requests from c clients and returns each one's latency.
func load(hc *http.Client, url string, body []byte, c, n int) ([]time.Duration, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("POST %s: %s", url, resp.Status)
					}
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					next.Store(int64(n))
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	return lat, firstErr
}

// report prints the percentiles and throughput.
func report(o options, lat []time.Duration, took time.Duration, inProcess bool, meanBatch float64) {
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	rps := float64(len(lat)) / took.Seconds()
	res := map[string]any{
		"model": o.model, "clients": o.clients, "requests": len(lat), "samples_per_request": o.samples,
		"p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "max_ms": pct(1),
		"requests_per_sec": rps, "samples_per_sec": rps * float64(o.samples),
	}
	if inProcess {
		res["batching"] = o.batching
		res["mean_batch"] = meanBatch
	}
	if o.asJSON {
		json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	fmt.Printf("%s c=%d n=%d samples/request=%d: p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms; %.0f requests/s, %.0f samples/s",
		o.model, o.clients, len(lat), o.samples, pct(0.5), pct(0.9), pct(0.99), pct(1), rps, rps*float64(o.samples))
	if inProcess {
		fmt.Printf("; batching %v, mean batch %.1f", o.batching, meanBatch)
	}
	fmt.Println()
}

// batchTotals returns the forward passes the in-process server ran and
// their samples (nothing without one).
func batchTotals(reg *prometheus.Registry) (n uint64, sum float64) {
	if reg == nil {
		return 0, 0
	}
	mfs, err := reg.Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() == "maas_serve_batch_size" {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return n, sum
}
