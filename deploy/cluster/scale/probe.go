package scale

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"

	"github.com/maas-ml/maas/deploy/cluster"
)

// phases are the worker step phases maas_worker_step_seconds splits.
var phases = []string{"compute", "push", "wait", "overlapped"}

// snapshot is what the testbed has counted up to one moment: every
// worker's step phases (summed over workers), every link's bytes, the
// machine's CPU time and the server host's processes' CPU time.
type snapshot struct {
	at   time.Time
	step int64

	phaseSum   map[string]float64 // seconds, over every worker
	phaseCount map[string]uint64  // steps, over every worker

	linkIn, linkOut []uint64 // per host, bytes

	cpuBusy, cpuAll float64 // seconds of the machine's CPU time
	natsCPU, psCPU  float64 // seconds of CPU time of the NATS server and the parameter servers
}

// take records a snapshot of tb at step.
func (tb *Testbed) take(ctx context.Context, step int64) (snapshot, error) {
	s := snapshot{at: time.Now(), step: step, phaseSum: map[string]float64{}, phaseCount: map[string]uint64{}}
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return s, err
	}
	st, err := fs.Stat()
	if err != nil {
		return s, err
	}
	c := st.CPUTotal
	s.cpuAll = c.User + c.Nice + c.System + c.Idle + c.Iowait + c.IRQ + c.SoftIRQ + c.Steal
	s.cpuBusy = s.cpuAll - c.Idle - c.Iowait
	for _, pid := range tb.PIDs(cluster.KindNATS) {
		s.natsCPU += procCPU(fs, pid)
	}
	for _, pid := range tb.PIDs(cluster.KindParamServer) {
		s.psCPU += procCPU(fs, pid)
	}
	for i := range tb.Net.Hosts {
		in, out, err := tb.Net.LinkBytes(i)
		if err != nil {
			return s, err
		}
		s.linkIn, s.linkOut = append(s.linkIn, in), append(s.linkOut, out)
	}
	urls := tb.WorkerMetrics()
	type scraped struct {
		sum   map[string]float64
		count map[string]uint64
		err   error
	}
	res := make([]scraped, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].sum, res[i].count, res[i].err = scrapePhases(ctx, u)
		}()
	}
	wg.Wait()
	for i, r := range res {
		if r.err != nil {
			return s, fmt.Errorf("scale: worker metrics %s: %w", urls[i], r.err)
		}
		for _, p := range phases {
			s.phaseSum[p] += r.sum[p]
			s.phaseCount[p] += r.count[p]
		}
	}
	return s, nil
}

// procCPU is a process's CPU time so far in seconds (0 when it is gone).
func procCPU(fs procfs.FS, pid int) float64 {
	p, err := fs.Proc(pid)
	if err != nil {
		return 0
	}
	st, err := p.Stat()
	if err != nil {
		return 0
	}
	return st.CPUTime()
}

// scrapePhases reads maas_worker_step_seconds' sum and count per phase
// from a worker's metrics endpoint.
func scrapePhases(ctx context.Context, url string) (map[string]float64, map[string]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	sum, count := map[string]float64{}, map[string]uint64{}
	if mf := mfs["maas_worker_step_seconds"]; mf != nil {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "phase" {
					sum[l.GetValue()] += m.GetHistogram().GetSampleSum()
					count[l.GetValue()] += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return sum, count, nil
}
