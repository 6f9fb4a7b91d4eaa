package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/internal/dataset"
	"github.com/maas-ml/maas/internal/datastore"
	"github.com/maas-ml/maas/internal/wire"
)

// dataFlags are the NATS flags of the data commands, which talk to the
// cluster's Object Store directly rather than to a coordinator.
type dataFlags struct {
	url    string
	output string
	creds  natsCreds
}

func dataCmd() *cobra.Command {
	f := &dataFlags{}
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Push datasets to the cluster's Object Store, list and remove them",
		Long: `data keeps datasets in the cluster's JetStream Object Store (bucket ` + wire.DataBucket + `), so that
workers on any host train on them without a copy of the files on every host.

  maas data push mnist-full ~/data/mnist --kind mnist
  maas data ls
  maas data rm mnist-full

A job spec names a pushed dataset with ` + "`dataset: {name: mnist-full}`" + ` (instead of
dataset.path); workers fetch only the shards they use, check each against the
SHA-256 of the dataset's manifest, and cache them (maas worker --cache-dir).
On a secured cluster give the operator's credential and CA from ` + "`maas cluster init`" + `:
--nats-seed <secrets>/operator.nk --nats-ca <secrets>/ca.crt.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.url, "nats", DefaultNATS, "NATS URL of the cluster")
	f.creds.addFlags(pf)
	cmd.PersistentFlags().Lookup("nats-seed").Usage = "NATS user nkey seed file: the operator's (" + cluster.OperatorSeedFile + " from `maas cluster init`) on a secured cluster"
	cmd.AddCommand(dataPushCmd(f), dataLsCmd(f), dataRmCmd(f))
	return cmd
}

// connect opens a NATS connection for one command: no retrying, so an
// unreachable server or refused credentials are the command's error. The
// context it returns ends when the server refuses a subject (a refused
// request would otherwise wait for its timeout); explainData then says so.
func (f *dataFlags) connect(parent context.Context) (context.Context, jetstream.JetStream, func(), error) {
	opts, err := f.creds.options()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithCancelCause(parent)
	opts = append(opts, nats.Name("maas data"), nats.Timeout(5*time.Second), nats.MaxReconnects(3),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				cancel(fmt.Errorf("%w: %v", datastore.ErrPermission, err))
			}
		}))
	nc, err := nats.Connect(f.url, opts...)
	if err != nil {
		cancel(nil)
		hint := "is the cluster's NATS server up? give its URL with --nats"
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) {
			hint = "the server wants a credential of this cluster: --nats-seed <secrets>/" + cluster.OperatorSeedFile
		}
		return nil, nil, nil, fmt.Errorf("connect to NATS at %s: %w (%s)", f.url, err, hint)
	}
	js, err := wire.JetStream(nc)
	if err != nil {
		cancel(nil)
		nc.Close()
		return nil, nil, nil, err
	}
	return ctx, js, func() { nc.Close(); cancel(nil) }, nil
}

// explainData adds what to do to a datastore error, or to the refusal
// that ended ctx.
func explainData(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, datastore.ErrPermission) {
		err = cause
	}
	if errors.Is(err, datastore.ErrPermission) {
		return fmt.Errorf("%w\npushing and removing datasets needs the operator's credential: --nats-seed <secrets>/%s (from `maas cluster init`)", err, cluster.OperatorSeedFile)
	}
	return err
}

func dataPushCmd(f *dataFlags) *cobra.Command {
	var kind string
	var o datastore.PushOptions
	cmd := &cobra.Command{
		Use:   "push NAME [PATH]",
		Short: "Split a dataset into shards in the Object Store, replacing one of the same name",
		Long: `push reads both splits of a dataset (--kind mnist: the IDX files, raw or gzipped; --kind
cifar10: the binary batches) from PATH and stores them as dataset NAME: shards of
--shard-samples samples and a manifest with each shard's SHA-256, written last.
PATH may be left out for mnist: the copy shipped in the GoMNIST Go module. Pushing
a name again replaces the dataset. --limit N keeps the first N samples of each
split, for a trial run.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, path := args[0], ""
			if len(args) == 2 {
				path = args[1]
				if _, err := os.Stat(path); err != nil {
					return fmt.Errorf("dataset path: %w", err)
				}
			}
			if err := dataset.ValidName(name); err != nil {
				return err
			}
			sctx, stop := signalContext(cmd.Context())
			defer stop()
			ctx, js, closeNATS, err := f.connect(sctx)
			if err != nil {
				return err
			}
			defer closeNATS()
			p := newPushProgress(cmd.ErrOrStderr(), isTerminal(os.Stderr), name)
			o.Progress = p.update
			start := time.Now()
			m, err := datastore.Push(ctx, js, name, kind, path, o)
			p.finish()
			if err != nil {
				return explainData(ctx, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pushed %s: %s, %d training and %d test samples in %d shards (%s) to bucket %s in %s\n",
				name, m.Kind, m.Train.N, m.Test.N, m.Shards(), byteSize(m.Bytes()), wire.DataBucket, time.Since(start).Round(time.Millisecond))
			fmt.Fprintf(cmd.OutOrStdout(), "name it in a job spec: dataset: {name: %s}\n", name)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kind, "kind", "", "dataset kind: mnist or cifar10 (required)")
	fs.IntVar(&o.ShardSamples, "shard-samples", datastore.DefaultShardSamples, "samples per shard")
	fs.IntVar(&o.Limit, "limit", 0, "push at most the first N samples of each split (0: all)")
	cmd.MarkFlagRequired("kind")
	return cmd
}

// pushProgress shows a push's progress: a bar on a terminal, nothing
// elsewhere (the summary line follows).
type pushProgress struct {
	w    io.Writer
	tty  bool
	name string
	bar  *progressbar.ProgressBar
}

func newPushProgress(w io.Writer, tty bool, name string) *pushProgress {
	return &pushProgress{w: w, tty: tty, name: name}
}

func (p *pushProgress) update(done, total int) {
	if !p.tty {
		return
	}
	if p.bar == nil {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription("pushing "+p.name),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(24),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}
	p.bar.Set(done)
}

func (p *pushProgress) finish() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar = nil
	}
}

// dataSummary is a dataset as `maas data ls -o json` prints it.
type dataSummary struct {
	Name    string    `json:"name"`
	Kind    string    `json:"kind"`
	Shape   []int     `json:"shape"`
	Classes int       `json:"classes"`
	Train   int       `json:"train"`
	Test    int       `json:"test"`
	Shards  int       `json:"shards"`
	Bytes   int64     `json:"bytes"`
	Pushed  time.Time `json:"pushed"`
}

func dataLsCmd(f *dataFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the pushed datasets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.output != "table" && f.output != "json" {
				return fmt.Errorf("--output %q: use table or json", f.output)
			}
			tctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			ctx, js, closeNATS, err := f.connect(tctx)
			if err != nil {
				return err
			}
			defer closeNATS()
			ms, err := datastore.List(ctx, js)
			if err != nil {
				return explainData(ctx, err)
			}
			out := cmd.OutOrStdout()
			if f.output == "json" {
				all := []dataSummary{}
				for _, m := range ms {
					all = append(all, dataSummary{Name: m.Name, Kind: m.Kind, Shape: []int{m.C, m.H, m.W}, Classes: m.Classes,
						Train: m.Train.N, Test: m.Test.N, Shards: m.Shards(), Bytes: m.Bytes(), Pushed: m.Pushed})
				}
				return printJSON(out, all)
			}
			if len(ms) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no datasets yet; push one with `maas data push NAME PATH --kind mnist`")
				return nil
			}
			now := time.Now()
			t := newTable(out, "NAME", "KIND", "TRAIN", "TEST", "SHARDS", "SIZE", "PUSHED")
			for _, m := range ms {
				t.row(m.Name, m.Kind, strconv.Itoa(m.Train.N), strconv.Itoa(m.Test.N), strconv.Itoa(m.Shards()), byteSize(m.Bytes()), age(m.Pushed, now))
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	return cmd
}

func dataRmCmd(f *dataFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a pushed dataset (jobs that name it can no longer fetch its shards)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			ctx, js, closeNATS, err := f.connect(tctx)
			if err != nil {
				return err
			}
			defer closeNATS()
			if err := datastore.Remove(ctx, js, args[0]); err != nil {
				return explainData(ctx, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed dataset %s\n", args[0])
			return nil
		},
	}
}
