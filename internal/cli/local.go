package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/coordinator"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/member"
	"github.com/maas-ml/maas/internal/natsconn"
	"github.com/maas-ml/maas/internal/natsserver"
	"github.com/maas-ml/maas/paramserver"
	"github.com/maas-ml/maas/tensor"
	"github.com/maas-ml/maas/worker"
)

func localCmd() *cobra.Command {
	var (
		dataDir, specPath, out, apiAddr, raftAddr, serveAddr, initPath string
		natsPort, workers, servers, threads, epochs                    int
		maxSteps                                                       int64
		noJob, stats, keepServing                                      bool
	)
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run a whole cluster in this process (NATS, coordinator, parameter server, workers) and train a job on it",
		Long: `local starts the embedded default on loopback: a NATS server with JetStream,
a one-node Raft coordinator, one parameter server, one worker per core and the
serving endpoint (KServe V2 on --serve-addr), all talking over NATS exactly as
a cluster does. It then submits the job spec, shows its progress, pulls the
published model into --out and stops, or with --keep-serving keeps serving
it. With --no-job it keeps the cluster up for ` + "`maas job submit`" + ` (the CLI's
default --server is this cluster's API).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger()
			defer log.Sync()
			if workers <= 0 {
				workers = runtime.NumCPU()
			}
			if threads <= 0 {
				return fmt.Errorf("--threads must be positive, got %d", threads)
			}
			if servers <= 0 {
				return fmt.Errorf("--servers must be positive, got %d", servers)
			}
			if maxSteps < 0 {
				return fmt.Errorf("--max-steps must be ≥ 0, got %d", maxSteps)
			}
			initWeights, err := readInitWeights(initPath)
			if err != nil {
				return err
			}
			var specText []byte
			if !noJob {
				var err error
				if specText, err = os.ReadFile(specPath); err != nil {
					return fmt.Errorf("job spec: %w", err)
				}
				if epochs > 0 {
					spec, err := jobspec.Parse(specText)
					if err != nil {
						return fmt.Errorf("%s: %w", specPath, err)
					}
					spec.Epochs = epochs
					if specText, err = spec.Marshal(); err != nil {
						return err
					}
				}
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()

			nc := natsserver.DefaultConfig()
			nc.Port, nc.StoreDir = natsPort, filepath.Join(dataDir, "nats")
			ns, err := natsserver.Start(nc)
			if err != nil {
				return err
			}
			defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
			url := ns.ClientURL()

			cc := coordinator.DefaultConfig()
			cc.ID, cc.RaftAddr, cc.HTTPAddr, cc.DataDir, cc.Bootstrap, cc.Logger = "local", raftAddr, apiAddr, filepath.Join(dataDir, "raft"), true, log
			cconn, err := connectNATS(url, "coordinator", log, natsconn.Options{})
			if err != nil {
				return err
			}
			defer cconn.Close()
			node, err := coordinator.Open(cc, cconn)
			if err != nil {
				return err
			}
			defer node.Close()
			wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
			err = node.WaitForLeader(wctx)
			wcancel()
			if err != nil {
				return err
			}

			members, mcancel := context.WithCancel(context.Background())
			done := make(chan struct{}, workers+servers)
			defer func() {
				mcancel()
				for range workers + servers {
					<-done
				}
			}()
			for i := range servers {
				pconn, err := connectNATS(url, fmt.Sprintf("parameter server %d", i+1), log, natsconn.Options{})
				if err != nil {
					done <- struct{}{}
					continue
				}
				defer pconn.Close()
				psCfg := paramserver.DefaultConfig()
				psCfg.Logger = log
				ps := paramserver.NewAgent(pconn, member.Config{ID: fmt.Sprintf("local-ps-%d", i+1), Host: "localhost", Logger: log}, psCfg)
				go func() { ps.Run(members, pconn); done <- struct{}{} }()
			}
			var wconns []*nats.Conn
			for i := range workers {
				wconn, err := connectNATS(url, fmt.Sprintf("worker %d", i+1), log, natsconn.Options{})
				if err != nil {
					done <- struct{}{}
					continue
				}
				wconns = append(wconns, wconn)
				defer wconn.Close()
				b := tensor.NewGo(threads)
				defer b.Close()
				wc := worker.DefaultConfig()
				wc.Backend, wc.Logger = b, log
				w := worker.NewAgent(wconn, member.Config{ID: fmt.Sprintf("local-worker-%d", i+1), Host: "localhost", Threads: threads, Device: describeDevice(b), Logger: log}, wc)
				go func() { w.Run(members); done <- struct{}{} }()
			}
			apiURL := "http://" + node.HTTPAddr()
			if serveAddr != "" {
				serveURL, stopServing, err := startServing(ctx, serveAddr, url, apiURL, threads, log)
				if err != nil {
					return err
				}
				defer stopServing()
				log.Info("serving endpoint up", zap.String("url", serveURL))
			}
			log.Info("local cluster up", zap.String("nats", url), zap.String("api", apiURL),
				zap.Int("workers", workers), zap.Int("threads_per_worker", threads), zap.String("data", dataDir))
			if noJob {
				fmt.Fprintf(cmd.OutOrStdout(), "maas local: cluster up; API %s, NATS %s. Submit with `maas job submit -f JOB.yaml --workers %d`. Ctrl-C stops it.\n", apiURL, url, workers)
				<-ctx.Done()
				return nil
			}
			c, err := api.NewClient(apiURL)
			if err != nil {
				return err
			}
			waitMembers(ctx, c, workers)
			sub, err := c.Submit(ctx, api.SubmitRequest{Spec: string(specText), Workers: workers, ParameterServers: servers,
				MaxSteps: maxSteps, InitWeights: initWeights})
			if err != nil {
				return explain(err, "")
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "maas local: submitted job %s (%d workers × %d threads)\n", sub.ID, workers, threads)
			if err := followJob(cmd, c, sub.ID, false); err != nil {
				return err
			}
			js, err := c.Job(ctx, sub.ID)
			if err != nil || js.Model == nil {
				return fmt.Errorf("job %s finished without a published model", sub.ID)
			}
			if stats {
				printLocalStats(cmd, js, wconns)
			}
			if out == "" {
				out = filepath.Join("out", js.Model.Name)
			}
			if _, err := pullFiles(ctx, c, js.Model.Name, *js.Model, out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "model %s version %d published (Object Store %s/%s) and pulled into %s\n",
				js.Model.Name, js.Model.Version, js.Model.Bucket, js.Model.Prefix, out)
			if keepServing && serveAddr != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "serving %s (KServe Open Inference Protocol V2) at http://%s:\n"+
					"  curl http://%s/v2/models/%s\n"+
					"  maas predict %s IMAGE.png --server-url http://%s\n"+
					"Ctrl-C stops the cluster.\n", js.Model.Name, serveAddr, serveAddr, js.Model.Name, js.Model.Name, serveAddr)
				<-ctx.Done()
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&specPath, "file", "f", "examples/mnist-cnn.yaml", "job spec to train")
	f.StringVarP(&out, "out", "o", "", "directory to pull the trained model into (default out/NAME)")
	f.StringVar(&dataDir, "data-dir", filepath.Join("out", "local"), "NATS JetStream and Raft data")
	f.IntVar(&natsPort, "nats-port", 4222, "NATS client port")
	f.StringVar(&apiAddr, "api", "127.0.0.1:7070", "coordinator API address")
	f.StringVar(&raftAddr, "raft", "127.0.0.1:7000", "coordinator Raft address")
	f.IntVar(&workers, "workers", 0, "workers (0: one per core)")
	f.IntVar(&threads, "threads", 1, "cores per worker")
	f.IntVar(&servers, "servers", 1, "parameter servers (the job's parameters are split among them)")
	f.StringVar(&initPath, "init", "", "start the job from these weights (safetensors, or a model directory) instead of the seed's initialisation")
	f.Int64Var(&maxSteps, "max-steps", 0, "stop the job after this many steps in all (the schedule still spans the spec's epochs)")
	f.BoolVar(&noJob, "no-job", false, "keep the cluster up without submitting a job")
	f.IntVar(&epochs, "epochs", 0, "train this many epochs instead of the spec's")
	f.BoolVar(&keepServing, "keep-serving", false, "after the job, keep the cluster up serving the new model until Ctrl-C")
	f.StringVar(&serveAddr, "serve-addr", "127.0.0.1:8080", "serving endpoint address (KServe Open Inference Protocol V2); empty: none")
	f.BoolVar(&stats, "stats", false, "print the job's figures as JSON at the end: samples/s, step time split, bytes on the wire")
	return cmd
}

// printLocalStats prints the data plane's figures for a finished job:
// throughput, the mean step split, and the bytes the workers sent and
// received per step against the ideal 2 × 4 bytes × parameters × workers
// (each worker pushes its gradient once and receives θ once).
func printLocalStats(cmd *cobra.Command, js api.JobStatus, wconns []*nats.Conn) {
	var bytes uint64
	for _, c := range wconns {
		st := c.Stats()
		bytes += st.InBytes + st.OutBytes
	}
	params := js.NumParams
	steps := float64(js.TotalSteps)
	ideal := 2 * 4 * float64(params) * float64(len(wconns))
	out := map[string]any{"job": js.ID, "workers": len(wconns), "steps": js.TotalSteps, "samples_per_sec": js.SamplesPerSec,
		"params": params, "wire_bytes_per_step": float64(bytes) / steps, "ideal_bytes_per_step": ideal,
		"wire_over_ideal": float64(bytes) / steps / ideal}
	if js.StepTime != nil {
		out["compute_ms"], out["push_ms"], out["wait_ms"] = js.StepTime.ComputeMS, js.StepTime.PushMS, js.StepTime.WaitMS
	}
	printJSON(cmd.OutOrStdout(), out)
}

// waitMembers waits until the workers and a parameter server have
// registered, so the job starts at once.
func waitMembers(ctx context.Context, c *api.Client, workers int) {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if cs, err := c.Cluster(ctx); err == nil {
			idle := 0
			for _, w := range cs.Workers {
				if w.State == "idle" {
					idle++
				}
			}
			if idle >= workers && len(cs.Servers) > 0 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}
