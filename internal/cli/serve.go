package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/deploy/serve"
	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/auth"
	"github.com/maas-ml/maas/internal/jobspec"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/internal/natsconn"
	"github.com/maas-ml/maas/tensor"
)

// serveShutdownGrace bounds how long `maas serve` waits for requests in
// flight when it is stopped.
const serveShutdownGrace = 10 * time.Second

// serveFlags are `maas serve`'s options; cfg takes those that are the
// endpoint's own.
type serveFlags struct {
	cfg                        serve.Config
	modelDirs                  []string
	server, natsURL, tokenFile string
	threads, instances         int
	noBatching                 bool
	tokensFile                 string
	serverCA, serverTokenFile  string
	httpTLS                    serverTLSFlags
	creds                      natsCreds
	dev                        deviceFlags
}

func serveCmd() *cobra.Command {
	f := &serveFlags{cfg: serve.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "serve [--model-dir DIR ...] [--server URL --nats URL]",
		Short: "Serve trained models over HTTP (KServe Open Inference Protocol V2)",
		Long: `serve answers the KServe Open Inference Protocol V2 REST API:
GET /v2/health/live|ready, GET /v2/models/NAME[/versions/V][/ready],
POST /v2/models/NAME[/versions/V]/infer, and Prometheus metrics on /metrics.

Models come from model directories (--model-dir, as ` + "`maas train`" + ` writes
them; a name given twice counts versions up in order), from a cluster's model
index (--server: the newest version of each model) and from the versions the
cluster publishes while it runs (--nats). A new version replaces the old one
without dropping a request; one that fails to load is logged and the old one
keeps serving.

Secured (files of ` + "`maas cluster init`" + `): --tls-cert and --tls-key serve HTTPS
(--client-ca: mutual TLS); --tokens tokens.json wants a bearer token of the read
role or above on every request but the health checks; --server-ca and
--server-token-file reach a secured coordinator; --nats-seed and --nats-ca a
secured NATS.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cfg.Addr, "addr", f.cfg.Addr, "address to listen on")
	fl.StringArrayVar(&f.modelDirs, "model-dir", nil, "model directory to serve (model.yaml and model.safetensors); repeatable")
	fl.StringVar(&f.server, "server", "", "coordinator API: serve the newest version of every model in its index")
	fl.StringVar(&f.natsURL, "nats", "", "NATS URL of the cluster: serve each new version as it is published")
	fl.StringVar(&f.tokenFile, "token-file", "", "file of bearer tokens, one a line: every request but /v2/health/* must carry one")
	fl.IntVar(&f.instances, "instances", 0, "copies of each model computing at once, each on its own batch (0: one per core; one with --device cuda)")
	fl.IntVar(&f.threads, "threads", 0, "cores each forward pass may use (0: cores / instances)")
	f.dev.add(fl)
	fl.BoolVar(&f.noBatching, "no-batching", false, "run each request alone instead of batching requests that arrive together")
	fl.Int64Var(&f.cfg.MaxBodyBytes, "max-body-bytes", f.cfg.MaxBodyBytes, "largest request body accepted (larger: 413)")
	fl.DurationVar(&f.cfg.RequestTimeout, "request-timeout", f.cfg.RequestTimeout, "longest wait for a result (longer: 503)")
	f.httpTLS.addFlags(fl, "the endpoint")
	fl.StringVar(&f.tokensFile, "tokens", "", "require an API token of the read role or above on every request but /v2/health/*: the cluster's tokens.json")
	fl.StringVar(&f.serverCA, "server-ca", "", "with --server: the CA of the coordinators' certificates (ca.crt); --server then uses https")
	fl.StringVar(&f.serverTokenFile, "server-token-file", "", "with --server: an API token file (read.token) for a coordinator started with --tokens")
	f.creds.addFlags(fl)
	return cmd
}

// runServe is `maas serve`: the backend, the endpoint's security, the
// endpoint itself, its model sources, then serving until a signal.
func runServe(cmd *cobra.Command, f *serveFlags) error {
	if len(f.modelDirs) == 0 && f.server == "" && f.natsURL == "" {
		return errors.New("nothing to serve: give --model-dir DIR (from `maas train`), or --server URL and --nats URL of a cluster")
	}
	log := newLogger()
	defer log.Sync()
	if f.instances < 0 || f.threads < 0 {
		return fmt.Errorf("--instances and --threads must be 0 (automatic) or positive, got %d and %d", f.instances, f.threads)
	}
	b, closeBackend, err := f.backend(log)
	if err != nil {
		return err
	}
	defer closeBackend()
	cfg := f.cfg
	cfg.Instances = f.instances
	if err := f.secure(&cfg); err != nil {
		return err
	}
	natsOpts, err := f.creds.connOptions()
	if err != nil {
		return err
	}
	var indexOpts []api.Option
	if f.server != "" {
		if indexOpts, err = coordinatorOptions(f.serverCA, f.serverTokenFile); err != nil {
			return err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Logger, cfg.Backend, cfg.Registerer, cfg.DisableBatching, cfg.Version = log, b, reg, f.noBatching, Version
	s, err := serve.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(cmd.Context())
	defer stop()
	if err := loadModelDirs(s, f.modelDirs); err != nil {
		s.Shutdown(context.Background())
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		s.Shutdown(context.Background())
		return fmt.Errorf("--addr %s: %w", cfg.Addr, err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "maas serve: listening on %s://%s (POST /v2/models/NAME/infer; metrics on /metrics)\n", scheme, ln.Addr())

	var wg sync.WaitGroup
	if err := f.watch(ctx, s, &wg, natsOpts, indexOpts, reg, log); err != nil {
		stop() // ends the sources already started
		s.Shutdown(context.Background())
		wg.Wait()
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		stop()
		s.Shutdown(context.Background())
		wg.Wait()
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), serveShutdownGrace)
	defer cancel()
	err = s.Shutdown(sctx)
	wg.Wait()
	if serr := <-served; serr != nil && err == nil {
		err = serr
	}
	return err
}

// backend is the backend the endpoint computes on: the CPU with
// --instances copies of --threads cores (by default one copy a core), or
// the GPU with one instance by default (it runs one call at a time, the
// requests that arrive together batched).
func (f *serveFlags) backend(log *zap.Logger) (tensor.Backend, func(), error) {
	if f.dev.onCPU() {
		if f.instances == 0 {
			f.instances = runtime.GOMAXPROCS(0)
		}
		if f.threads == 0 {
			f.threads = max(1, runtime.GOMAXPROCS(0)/f.instances)
		}
		gb := tensor.NewGo(f.threads)
		return gb, gb.Close, nil
	}
	f.instances = max(f.instances, 1)
	gb, closeGPU, err := openCUDA(f.dev.device, f.dev.tf32)
	if err != nil {
		return nil, nil, err
	}
	log.Info("serving on the GPU", zap.String("device", describeDevice(gb)))
	return gb, func() { closeGPU() }, nil
}

// secure sets the endpoint's tokens (a list, or the cluster's tokens.json
// wanting the read role) and TLS.
func (f *serveFlags) secure(cfg *serve.Config) error {
	if f.tokenFile != "" && f.tokensFile != "" {
		return errors.New("--token-file (a list of tokens) and --tokens (the cluster's tokens.json) do not go together: give one")
	}
	var err error
	if f.tokenFile != "" {
		if cfg.Tokens, err = readTokens(f.tokenFile); err != nil {
			return err
		}
	}
	if tk, err := loadTokens(f.tokensFile); err != nil {
		return err
	} else if tk != nil {
		// Everything the endpoint serves needs the read role.
		cfg.CheckToken = func(t string) error { return tk.Check(t, auth.RoleRead) }
	}
	cfg.TLS, err = f.httpTLS.config()
	return err
}

// watch starts the endpoint's cluster sources: the versions published on
// NATS (--nats) and the coordinator's model index (--server), each in a
// goroutine counted by wg that ends with ctx.
func (f *serveFlags) watch(ctx context.Context, s *serve.Server, wg *sync.WaitGroup, natsOpts natsconn.Options, indexOpts []api.Option, reg prometheus.Registerer, log *zap.Logger) error {
	if f.natsURL != "" {
		natsOpts.Metrics = natsconn.NewMetrics(reg)
		nc, err := connectNATS(f.natsURL, "serve", log, natsOpts)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nc.Close()
			if err := s.WatchPublished(ctx, nc); err != nil {
				log.Error("watching for published models", zap.Error(err))
			}
		}()
	}
	if f.server != "" {
		server := f.server
		if f.serverCA != "" && !strings.Contains(server, "://") {
			server = "https://" + server
		}
		c, err := api.NewClient(server, indexOpts...)
		if err != nil {
			return fmt.Errorf("--server: %w", err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); loadIndexRetrying(ctx, s, c, log) }()
	}
	return nil
}

// coordinatorOptions are the client options that reach a secured
// coordinator: its CA (over HTTPS) and an API token, each from a file;
// none when neither is given.
func coordinatorOptions(caFile, tokenFile string) ([]api.Option, error) {
	var opts []api.Option
	if caFile != "" {
		tc, err := cluster.ClientTLS(caFile, "", "")
		if err != nil {
			return nil, fmt.Errorf("--server-ca: %w", err)
		}
		opts = append(opts, api.WithTLSConfig(tc))
	}
	if tokenFile != "" {
		tok, err := readTokenFile("--server-token-file", tokenFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, api.WithToken(tok))
	}
	return opts, nil
}

// loadModelDirs loads each directory as the next version of the model its
// spec names: 1 for the first directory of a name, 2 for the second, ….
func loadModelDirs(s *serve.Server, dirs []string) error {
	versions := map[string]int{}
	for _, dir := range dirs {
		spec, err := jobspec.Load(filepath.Join(dir, modeldir.SpecFile))
		if err != nil {
			return fmt.Errorf("--model-dir %s: %w", dir, err)
		}
		versions[spec.Name]++
		if err := s.LoadDir(dir, versions[spec.Name]); err != nil {
			return fmt.Errorf("--model-dir %s: %w", dir, err)
		}
	}
	return nil
}

// loadIndexRetrying loads the cluster's model index, retrying while the
// coordinator cannot be reached; models that fail to load are logged.
func loadIndexRetrying(ctx context.Context, s *serve.Server, c *api.Client, log *zap.Logger) {
	wait := 500 * time.Millisecond
	for {
		err := s.LoadIndex(ctx, c)
		if err == nil || errors.Is(err, serve.ErrLoad) {
			if err != nil {
				log.Error("some models of the index failed to load", zap.Error(err))
			}
			return
		}
		log.Warn("model index unavailable; retrying", zap.String("server", c.Server()), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// readTokens reads bearer tokens, one a line; blank lines and lines
// starting with # are skipped.
func readTokens(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--token-file: %w", err)
	}
	defer f.Close()
	var tokens []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			tokens = append(tokens, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--token-file %s: %w", path, err)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("--token-file %s holds no token", path)
	}
	return tokens, nil
}

// startServing runs the serving endpoint of `maas local` on addr: it serves
// the newest version of each model in the index of the coordinator at
// apiURL and each version published on the NATS server at natsURL, with a
// backend of threads cores. stop shuts it down gracefully.
//
// With sec.tokens, every request but /v2/health/* wants a token of the
// read role or above, and the endpoint reads the index with sec.token.
func startServing(ctx context.Context, addr, natsURL, apiURL string, threads int, log *zap.Logger, sec localSecurity) (url string, stop func(), err error) {
	be := tensor.NewGo(threads) // not newBackend: GOMAXPROCS stays the cluster's
	cfg := serve.DefaultConfig()
	cfg.Addr, cfg.Logger, cfg.Backend, cfg.Version = addr, log.Named("serve"), be, Version
	if sec.tokens != nil {
		cfg.CheckToken = func(t string) error { return sec.tokens.Check(t, auth.RoleRead) }
	}
	s, err := serve.New(cfg)
	if err != nil {
		be.Close()
		return "", nil, err
	}
	fail := func(err error) (string, func(), error) {
		s.Shutdown(context.Background())
		be.Close()
		return "", nil, err
	}
	c, err := api.NewClient(apiURL, sec.clientOptions()...)
	if err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fail(fmt.Errorf("serving endpoint %s: %w", addr, err))
	}
	nc, err := connectNATS(natsURL, "serve", log, natsconn.Options{})
	if err != nil {
		ln.Close()
		return fail(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.Serve(ln) }()
	go func() { defer wg.Done(); s.WatchPublished(wctx, nc) }()
	go func() { defer wg.Done(); loadIndexRetrying(wctx, s, c, log) }()
	stop = func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), serveShutdownGrace)
		defer scancel()
		s.Shutdown(sctx)
		wg.Wait()
		nc.Close()
		be.Close()
	}
	return "http://" + ln.Addr().String(), stop, nil
}
