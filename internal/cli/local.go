package cli

import (
	"context"
	"errors"
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
	"github.com/maas-ml/maas/internal/auth"
	"github.com/maas-ml/maas/internal/embedded"
	"github.com/maas-ml/maas/internal/jobspec"
)

// localFlags are `maas local`'s options.
type localFlags struct {
	dataDir, specPath, out, apiAddr, raftAddr, serveAddr, initPath string
	tokensPath, tokenFile                                          string
	natsPort, workers, servers, threads, epochs                    int
	maxSteps                                                       int64
	noJob, stats, keepServing                                      bool
}

func localCmd() *cobra.Command {
	var f localFlags
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
		RunE: func(cmd *cobra.Command, _ []string) error { return runLocal(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.specPath, "file", "f", "examples/mnist-cnn.yaml", "job spec to train")
	fl.StringVarP(&f.out, "out", "o", "", "directory to pull the trained model into (default out/NAME)")
	fl.StringVar(&f.dataDir, "data-dir", filepath.Join("out", "local"), "NATS JetStream and Raft data")
	fl.IntVar(&f.natsPort, "nats-port", 4222, "NATS client port")
	fl.StringVar(&f.apiAddr, "api", "127.0.0.1:7070", "coordinator API address")
	fl.StringVar(&f.raftAddr, "raft", "127.0.0.1:7000", "coordinator Raft address")
	fl.IntVar(&f.workers, "workers", 0, "workers (0: one per core)")
	fl.IntVar(&f.threads, "threads", 1, "cores per worker")
	fl.IntVar(&f.servers, "servers", 1, "parameter servers (the job's parameters are split among them)")
	fl.StringVar(&f.initPath, "init", "", "start the job from these weights (safetensors, or a model directory) instead of the seed's initialisation")
	fl.Int64Var(&f.maxSteps, "max-steps", 0, "stop the job after this many steps in all (the schedule still spans the spec's epochs)")
	fl.BoolVar(&f.noJob, "no-job", false, "keep the cluster up without submitting a job")
	fl.IntVar(&f.epochs, "epochs", 0, "train this many epochs instead of the spec's")
	fl.BoolVar(&f.keepServing, "keep-serving", false, "after the job, keep the cluster up serving the new model until Ctrl-C")
	fl.StringVar(&f.serveAddr, "serve-addr", "127.0.0.1:8080", "serving endpoint address (KServe Open Inference Protocol V2); empty: none")
	fl.StringVar(&f.tokensPath, "tokens", "", "want an API token on every call to the coordinator, the dashboard and the serving endpoint: the cluster's tokens.json (from `maas cluster init`); needs --token-file")
	fl.StringVar(&f.tokenFile, "token-file", "", "with --tokens: the token maas local itself calls with, of the submit role or above (admin.token or submit.token)")
	fl.BoolVar(&f.stats, "stats", false, "print the job's figures as JSON at the end: samples/s, step time split, bytes on the wire")
	return cmd
}

// runLocal is `maas local`: read the job, start the embedded cluster and
// the serving endpoint, then train the job on it (or keep it up).
func runLocal(cmd *cobra.Command, f localFlags) error {
	log := newLogger()
	defer log.Sync()
	if f.workers <= 0 {
		f.workers = runtime.NumCPU()
	}
	switch {
	case f.threads <= 0:
		return fmt.Errorf("--threads must be positive, got %d", f.threads)
	case f.servers <= 0:
		return fmt.Errorf("--servers must be positive, got %d", f.servers)
	case f.maxSteps < 0:
		return fmt.Errorf("--max-steps must be ≥ 0, got %d", f.maxSteps)
	}
	initWeights, err := readInitWeights(f.initPath)
	if err != nil {
		return err
	}
	var specText []byte
	if !f.noJob {
		if specText, err = localSpec(f.specPath, f.epochs); err != nil {
			return err
		}
	}
	sec, err := localSecurityFrom(f.tokensPath, f.tokenFile)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(cmd.Context())
	defer stop()
	cfg := embedded.Config{DataDir: f.dataDir, NATSPort: f.natsPort, APIAddr: f.apiAddr, RaftAddr: f.raftAddr,
		Workers: f.workers, Servers: f.servers, Threads: f.threads, Device: describeDevice, Logger: log,
		Coordinator: func(c *coordinator.Config) {
			if sec.tokens != nil {
				c.Tokens = sec.tokens
			}
			if f.serveAddr != "" {
				c.ServeURL = "http://" + f.serveAddr
			}
		}}
	cl, err := embedded.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	if f.serveAddr != "" {
		serveURL, stopServing, err := startServing(ctx, f.serveAddr, cl.NATSURL, cl.APIURL, f.threads, log, sec)
		if err != nil {
			return err
		}
		defer stopServing()
		log.Info("serving endpoint up", zap.String("url", serveURL))
	}
	log.Info("local cluster up", zap.String("nats", cl.NATSURL), zap.String("api", cl.APIURL),
		zap.Int("workers", f.workers), zap.Int("threads_per_worker", f.threads), zap.String("data", f.dataDir))
	dash := cl.APIURL + "/ui/"
	if sec.tokens != nil {
		dash += " (log in with a token of " + f.tokensPath + ", e.g. read.token)"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "maas local: dashboard %s\n", dash)
	if f.noJob {
		fmt.Fprintf(cmd.OutOrStdout(), "maas local: cluster up; API %s, NATS %s. Submit with `maas job submit -f JOB.yaml --workers %d`. Ctrl-C stops it.\n", cl.APIURL, cl.NATSURL, f.workers)
		<-ctx.Done()
		return nil
	}
	return localJob(ctx, cmd, cl, f, sec, api.SubmitRequest{Spec: string(specText), Workers: f.workers, ParameterServers: f.servers,
		MaxSteps: f.maxSteps, InitWeights: initWeights})
}

// localSecurity is `maas local`'s API tokens: the ones the coordinator and
// the serving endpoint take (nil: open), and the one it calls with.
type localSecurity struct {
	tokens *auth.Tokens
	token  string
}

// localSecurityFrom reads --tokens and --token-file; the token must be
// one of the tokens, allowed to submit jobs.
func localSecurityFrom(tokensPath, tokenFile string) (localSecurity, error) {
	switch {
	case tokensPath == "" && tokenFile == "":
		return localSecurity{}, nil
	case tokensPath == "":
		return localSecurity{}, errors.New("--token-file goes with --tokens (the tokens.json it is one of)")
	case tokenFile == "":
		return localSecurity{}, errors.New("--tokens needs --token-file: the token (admin.token or submit.token) maas local submits its job and reads the model index with")
	}
	tk, err := loadTokens(tokensPath)
	if err != nil {
		return localSecurity{}, err
	}
	tok, err := readTokenFile("--token-file", tokenFile)
	if err != nil {
		return localSecurity{}, err
	}
	if err := tk.Check(tok, auth.RoleSubmit); err != nil {
		return localSecurity{}, fmt.Errorf("--token-file %s: %s: give admin.token or submit.token of the same tokens.json", tokenFile, auth.Describe(err))
	}
	return localSecurity{tokens: tk, token: tok}, nil
}

func (s localSecurity) clientOptions() []api.Option {
	if s.token == "" {
		return nil
	}
	return []api.Option{api.WithToken(s.token)}
}

// localSpec reads the job spec, with --epochs applied.
func localSpec(path string, epochs int) ([]byte, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("job spec: %w", err)
	}
	if epochs <= 0 {
		return text, nil
	}
	spec, err := jobspec.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	spec.Epochs = epochs
	return spec.Marshal()
}

// localJob submits the job to the embedded cluster, follows it to its
// end, pulls the published model into --out and, with --keep-serving,
// serves it until ctx ends.
func localJob(ctx context.Context, cmd *cobra.Command, cl *embedded.Cluster, f localFlags, sec localSecurity, req api.SubmitRequest) error {
	c, err := api.NewClient(cl.APIURL, sec.clientOptions()...)
	if err != nil {
		return err
	}
	waitMembers(ctx, c, f.workers)
	sub, err := c.Submit(ctx, req)
	if err != nil {
		return explain(err, "")
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "maas local: submitted job %s (%d workers × %d threads)\n", sub.ID, f.workers, f.threads)
	if err := followJob(cmd, c, sub.ID, false); err != nil {
		return err
	}
	js, err := c.Job(ctx, sub.ID)
	if err != nil || js.Model == nil {
		return fmt.Errorf("job %s finished without a published model", sub.ID)
	}
	if f.stats {
		printLocalStats(cmd, js, cl.WorkerConns())
	}
	out := f.out
	if out == "" {
		out = filepath.Join("out", js.Model.Name)
	}
	if _, err := pullFiles(ctx, c, js.Model.Name, *js.Model, out); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "model %s version %d published (Object Store %s/%s) and pulled into %s\n",
		js.Model.Name, js.Model.Version, js.Model.Bucket, js.Model.Prefix, out)
	if f.keepServing && f.serveAddr != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "serving %s (KServe Open Inference Protocol V2) at http://%s:\n"+
			"  curl http://%s/v2/models/%s\n"+
			"  maas predict %s IMAGE.png --server-url http://%s\n"+
			"Ctrl-C stops the cluster.\n", js.Model.Name, f.serveAddr, f.serveAddr, js.Model.Name, js.Model.Name, f.serveAddr)
		<-ctx.Done()
	}
	return nil
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
