package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/internal/api"
	"github.com/maas-ml/maas/internal/modeldir"
	"github.com/maas-ml/maas/nn/safetensors"
)

// Timings of --follow; tests shorten them.
var (
	// pollInterval is how often --follow asks the coordinator.
	pollInterval = 500 * time.Millisecond
	// followLogEvery is how often `job submit --follow` logs progress when
	// stderr is not a terminal.
	followLogEvery = 10 * time.Second
	// followGrace is how long --follow keeps asking while the coordinator
	// is unreachable or has no leader (e.g. during a leader election).
	followGrace = 30 * time.Second
)

// stderrIsTerminal reports whether progress bars may be drawn on stderr;
// tests replace it.
var stderrIsTerminal = func() bool { return isTerminal(os.Stderr) }

func jobCmd() *cobra.Command {
	r := &remote{}
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Submit, watch and cancel training jobs on a maas cluster",
	}
	r.addServerFlag(cmd, true)
	r.addOutputFlag(cmd, true)
	cmd.AddCommand(jobSubmitCmd(r), jobLsCmd(r), jobStatusCmd(r), jobLogsCmd(r), jobPlotCmd(r), jobCancelCmd(r))
	return cmd
}

func jobSubmitCmd(r *remote) *cobra.Command {
	var (
		specPath, initPath string
		workers, servers   int
		maxSteps           int64
		follow             bool
	)
	cmd := &cobra.Command{
		Use:   "submit -f JOB.yaml",
		Short: "Submit a training job and print its id (--follow: watch it to the end)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			if workers < 0 || servers < 0 {
				return errors.New("--workers and --parameter-servers must be positive (or 0 for the coordinator's default, 1)")
			}
			if maxSteps < 0 {
				return fmt.Errorf("--max-steps must be ≥ 0, got %d", maxSteps)
			}
			spec, err := os.ReadFile(specPath)
			if err != nil {
				return fmt.Errorf("reading the job spec: %w", err)
			}
			req := api.SubmitRequest{Spec: string(spec), Workers: workers, ParameterServers: servers, MaxSteps: maxSteps}
			if req.InitWeights, err = readInitWeights(initPath); err != nil {
				return err
			}
			resp, err := c.Submit(cmd.Context(), req)
			if errors.Is(err, api.ErrBadRequest) {
				return fmt.Errorf("%s: %w; fix the spec and submit again", specPath, err)
			}
			if err != nil {
				return explain(err, "")
			}
			out := cmd.OutOrStdout()
			if !follow {
				if r.json() {
					return printJSON(out, resp)
				}
				_, err := fmt.Fprintln(out, resp.ID)
				return err
			}
			if !r.json() {
				fmt.Fprintln(out, resp.ID)
			}
			return followJob(cmd, c, resp.ID, r.json())
		},
	}
	cmd.Flags().StringVarP(&specPath, "file", "f", "", "job spec (YAML)")
	cmd.Flags().IntVar(&workers, "workers", 0, "workers that train the job (default 1)")
	cmd.Flags().IntVar(&servers, "parameter-servers", 0, "parameter servers that split its parameters (default 1)")
	cmd.Flags().BoolVar(&follow, "follow", false, "show the job's progress until it ends; fail if the job does")
	cmd.Flags().StringVar(&initPath, "init", "", "start from these weights (safetensors, or a model directory) instead of the seed's initialisation")
	cmd.Flags().Int64Var(&maxSteps, "max-steps", 0, "stop after this many steps in all (the schedule still spans the spec's epochs)")
	cmd.MarkFlagRequired("file")
	return cmd
}

// readInitWeights reads --init's file (or a model directory's weights):
// nil for no path. The coordinator checks it against the spec's model.
func readInitWeights(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(initWeightsFile(path))
	if err != nil {
		return nil, fmt.Errorf("--init: %w", err)
	}
	if _, err := safetensors.Decode(b); err != nil {
		return nil, fmt.Errorf("--init %s: %w", path, err)
	}
	return b, nil
}

// initWeightsFile is path, or for a model directory its weights file.
func initWeightsFile(path string) string {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return filepath.Join(path, modeldir.WeightsFile)
	}
	return path
}

// followJob polls the job until it ends, showing its progress on stderr,
// then prints a summary (or, with json, the final JobStatus) and fails if
// the job did. Ctrl-C stops following; the job keeps running.
func followJob(cmd *cobra.Command, c *api.Client, id string, asJSON bool) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
	defer stop()
	w := newJobWatcher(cmd.ErrOrStderr(), stderrIsTerminal())
	js, err := pollJob(ctx, c, id, w.update)
	w.finish()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("stopped following job %s; it keeps running: see it with `maas job status %s`, or cancel it with `maas job cancel %s`", id, id, id)
	}
	if err != nil {
		return explain(err, "")
	}
	out := cmd.OutOrStdout()
	if asJSON {
		if err := printJSON(out, js); err != nil {
			return err
		}
	} else {
		printSummary(out, js)
	}
	switch js.State {
	case api.JobFailed:
		return fmt.Errorf("job %s failed: %s; see `maas job logs %s`", id, orUnknown(js.Reason), id)
	case api.JobCancelled:
		if js.Reason != "" {
			return fmt.Errorf("job %s was cancelled: %s", id, js.Reason)
		}
		return fmt.Errorf("job %s was cancelled", id)
	}
	return nil
}

// pollJob asks for the job every pollInterval, passing each status to
// update, until it is terminal. It rides out followGrace of an
// unreachable or leaderless coordinator.
func pollJob(ctx context.Context, c *api.Client, id string, update func(api.JobStatus)) (api.JobStatus, error) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var failingSince time.Time
	for {
		js, err := c.Job(ctx, id)
		switch {
		case err == nil:
			failingSince = time.Time{}
			update(js)
			if api.Terminal(js.State) {
				return js, nil
			}
		case ctx.Err() != nil:
			return js, ctx.Err()
		case errors.Is(err, api.ErrNoLeader) || errors.Is(err, api.ErrUnreachable) || errors.Is(err, api.ErrTimeout):
			if failingSince.IsZero() {
				failingSince = time.Now()
			} else if time.Since(failingSince) > followGrace {
				return js, fmt.Errorf("gave up following job %s after %v without an answer (it may still be running; see `maas job status %s` later): %w",
					id, followGrace, id, err)
			}
		default:
			return js, err
		}
		select {
		case <-ctx.Done():
			return js, ctx.Err()
		case <-tick.C:
		}
	}
}

// jobWatcher shows a followed job's progress: a bar on a terminal, a line
// every followLogEvery elsewhere, and a line at each change of state.
type jobWatcher struct {
	w        io.Writer
	tty      bool
	bar      *progressbar.ProgressBar
	state    string
	lastLine time.Time
	// firstStep and firstAt are the first progress seen, for the ETA.
	firstStep int64
	firstAt   time.Time
}

func newJobWatcher(w io.Writer, tty bool) *jobWatcher {
	return &jobWatcher{w: w, tty: tty}
}

func (jw *jobWatcher) update(js api.JobStatus) {
	now := time.Now()
	if jw.firstAt.IsZero() && js.State == api.JobRunning {
		jw.firstStep, jw.firstAt = js.Step, now
	}
	if js.State != jw.state {
		jw.finish()
		jw.state = js.State
		if js.Reason != "" && !api.Terminal(js.State) { // a paused job says why
			fmt.Fprintf(jw.w, "%s job %s: %s: %s\n", now.Format("15:04:05"), js.ID, js.State, js.Reason)
		} else {
			fmt.Fprintf(jw.w, "%s job %s: %s\n", now.Format("15:04:05"), js.ID, js.State)
		}
		jw.lastLine = now
	}
	if js.State != api.JobRunning || js.TotalSteps <= 0 {
		return
	}
	desc := progressLine(js, jw.eta(js, now))
	if !jw.tty {
		if now.Sub(jw.lastLine) >= followLogEvery {
			jw.lastLine = now
			fmt.Fprintf(jw.w, "%s job %s: step %d/%d  %s\n", now.Format("15:04:05"), js.ID, js.Step, js.TotalSteps, desc)
		}
		return
	}
	if jw.bar == nil {
		jw.bar = progressbar.NewOptions64(js.TotalSteps,
			progressbar.OptionSetWriter(jw.w),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(false), // the ETA in the description counts from the first poll
			progressbar.OptionSetWidth(24),
			progressbar.OptionClearOnFinish()) // no throttle: it would hide every other poll

	}
	if jw.bar.GetMax64() != js.TotalSteps {
		jw.bar.ChangeMax64(js.TotalSteps)
	}
	jw.bar.Describe(desc)
	jw.bar.Set64(js.Step)
}

// eta estimates the time left from the steps done since the first poll.
func (jw *jobWatcher) eta(js api.JobStatus, now time.Time) time.Duration {
	done, took := js.Step-jw.firstStep, now.Sub(jw.firstAt)
	if done <= 0 || took <= 0 {
		return 0
	}
	left := time.Duration(float64(js.TotalSteps-js.Step) / float64(done) * float64(took))
	return (left + time.Second - 1).Truncate(time.Second) // rounded up
}

func (jw *jobWatcher) finish() {
	if jw.bar != nil {
		jw.bar.Finish()
		jw.bar = nil
	}
}

// progressLine describes a running job: epoch 2/10  loss 0.1234  acc
// 96.50%  3400 samples/s  ETA 1m20s (eta 0: not known yet).
func progressLine(js api.JobStatus, eta time.Duration) string {
	s := fmt.Sprintf("epoch %s  loss %.4f  acc %.2f%%  %.0f samples/s", epochOf(js), js.Loss, 100*js.Accuracy, js.SamplesPerSec)
	if eta > 0 {
		s += "  ETA " + eta.String()
	}
	return s
}

// printSummary says how a finished job ended.
func printSummary(w io.Writer, js api.JobStatus) {
	fmt.Fprintf(w, "job %s (%s) %s after %s steps", js.ID, js.Name, js.State, stepsOf(js))
	if !js.Started.IsZero() && !js.Finished.IsZero() {
		fmt.Fprintf(w, " in %v", js.Finished.Sub(js.Started).Round(time.Second))
	}
	fmt.Fprintln(w)
	if js.Reason != "" {
		fmt.Fprintf(w, "  reason:   %s\n", js.Reason)
	}
	if js.Step > 0 {
		fmt.Fprintf(w, "  training loss:     %.4f (last epoch)\n  training accuracy: %.2f%%\n", js.Loss, 100*js.Accuracy)
	}
	if m := js.Model; m != nil {
		if acc, ok := m.Metrics["test_accuracy"]; ok {
			fmt.Fprintf(w, "  test accuracy:     %.2f%% (loss %.4f)\n", 100*acc, m.Metrics["test_loss"])
		}
		fmt.Fprintf(w, "  model:             %s:%d (download it with `maas model pull %s:%d -o DIR`)\n", m.Name, m.Version, m.Name, m.Version)
	}
}

func jobLsCmd(r *remote) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			jobs, err := c.Jobs(cmd.Context())
			if err != nil {
				return explain(err, "")
			}
			out := cmd.OutOrStdout()
			if r.json() {
				if jobs == nil {
					jobs = []api.JobStatus{}
				}
				return printJSON(out, jobs)
			}
			if len(jobs) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no jobs yet; submit one with `maas job submit -f JOB.yaml`")
				return nil
			}
			now := time.Now()
			t := newTable(out, "ID", "NAME", "STATE", "STEP", "EPOCH", "LOSS", "ACC", "AGE")
			for _, js := range jobs {
				loss, acc := "", ""
				if js.Step > 0 {
					loss, acc = fmt.Sprintf("%.4f", js.Loss), fmt.Sprintf("%.2f%%", 100*js.Accuracy)
				}
				t.row(js.ID, js.Name, js.State, stepsOf(js), epochOf(js), loss, acc, age(js.Submitted, now))
			}
			return t.flush()
		},
	}
}

func jobStatusCmd(r *remote) *cobra.Command {
	return &cobra.Command{
		Use:   "status ID",
		Short: "Show a job's state and progress",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			js, err := c.Job(cmd.Context(), args[0])
			if err != nil {
				return explain(err, "list the jobs with `maas job ls`")
			}
			if r.json() {
				return printJSON(cmd.OutOrStdout(), js)
			}
			return printJob(cmd.OutOrStdout(), js, time.Now())
		},
	}
}

// printJob writes a job as a block of "Field: value" lines, leaving out
// what is not known.
func printJob(w io.Writer, js api.JobStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	line("ID", js.ID)
	line("Name", js.Name)
	line("State", js.State)
	line("Reason", js.Reason)
	line("Submitted", timestamp(js.Submitted, now))
	line("Started", timestamp(js.Started, now))
	line("Finished", timestamp(js.Finished, now))
	line("Workers", members(js.Workers, js.Members))
	if len(js.Members) > 0 {
		line("Membership epoch", fmt.Sprint(js.Epoch))
	}
	line("Parameter servers", members(js.ParameterServers, js.Servers))
	steps := stepsOf(js)
	if js.CommittedStep > 0 {
		steps += fmt.Sprintf(" (checkpoint at %d)", js.CommittedStep)
	}
	line("Step", steps)
	line("Epoch", epochOf(js))
	if js.Step > 0 {
		line("Loss", fmt.Sprintf("%.4f", js.Loss))
		line("Accuracy", fmt.Sprintf("%.2f%%", 100*js.Accuracy))
	}
	if js.State == api.JobRunning && js.SamplesPerSec > 0 {
		line("Throughput", fmt.Sprintf("%.0f samples/s", js.SamplesPerSec))
	}
	if m := js.Model; m != nil {
		line("Model", fmt.Sprintf("%s:%d", m.Name, m.Version))
	}
	return tw.Flush()
}

// members prints "2: w1, w2", or just the count before any joined.
func members(n int, ids []string) string {
	if len(ids) == 0 {
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%d: %s", n, strings.Join(ids, ", "))
}

func jobLogsCmd(r *remote) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a job's events (--follow: until the job ends)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			err = printLogs(ctx, cmd.OutOrStdout(), c, args[0], follow, r.json())
			if follow && ctx.Err() != nil {
				return nil // Ctrl-C ends --follow
			}
			return explain(err, "list the jobs with `maas job ls`")
		},
	}
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing new events until the job ends")
	return cmd
}

// printLogs prints the job's entries as "TIME  message" lines (or JSON
// lines), asking again every pollInterval with follow until the page says
// Done.
func printLogs(ctx context.Context, w io.Writer, c *api.Client, id string, follow, asJSON bool) error {
	enc := json.NewEncoder(w)
	var since int64
	for {
		page, err := c.Logs(ctx, id, since)
		if err != nil {
			return err
		}
		n := 0
		for _, e := range page.Entries {
			if e.Seq <= since {
				continue // the coordinator repeated it
			}
			since, n = e.Seq, n+1
			if asJSON {
				err = enc.Encode(e)
			} else {
				_, err = fmt.Fprintf(w, "%s  %s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Message)
			}
			if err != nil {
				return err
			}
		}
		if n > 0 {
			continue // there may be more pages
		}
		if page.Done || !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

func jobCancelCmd(r *remote) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a job",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			js, err := c.Cancel(cmd.Context(), args[0])
			if err != nil {
				return explain(err, "list the jobs with `maas job ls`")
			}
			if r.json() {
				return printJSON(cmd.OutOrStdout(), js)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "job %s: %s\n", js.ID, js.State)
			return err
		},
	}
}

// stepsOf prints a job's progress in steps: 1200/6000.
func stepsOf(js api.JobStatus) string {
	if js.TotalSteps > 0 {
		return fmt.Sprintf("%d/%d", js.Step, js.TotalSteps)
	}
	return fmt.Sprint(js.Step)
}

// epochOf prints the training epoch the job is in: 2/10 ("" if unknown).
// Step counts finished steps, so step StepsPerEpoch still ends epoch 1.
func epochOf(js api.JobStatus) string {
	if js.StepsPerEpoch <= 0 || js.Epochs <= 0 {
		return ""
	}
	e := 1
	if js.Step > 0 {
		e = int((js.Step-1)/js.StepsPerEpoch) + 1
	}
	return fmt.Sprintf("%d/%d", min(e, js.Epochs), js.Epochs)
}

func orUnknown(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}
