package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/maas-ml/maas/internal/api"
)

// remote holds the flags of the commands that talk to a coordinator:
// --server and -o/--output.
type remote struct {
	server string
	output string
	// serverFlag is --server, to tell whether it was given.
	serverFlag *pflag.Flag
}

// addServerFlag adds --server to cmd (persistent: for its subcommands too).
func (r *remote) addServerFlag(cmd *cobra.Command, persistent bool) {
	def := os.Getenv("MAAS_SERVER")
	if def == "" {
		def = api.DefaultServer
	}
	fs := cmd.Flags()
	if persistent {
		fs = cmd.PersistentFlags()
	}
	fs.StringVar(&r.server, "server", def, "coordinator address (default: $MAAS_SERVER, else the current context of `maas login`, else the cluster of maas local)")
	r.serverFlag = fs.Lookup("server")
}

// addOutputFlag adds -o/--output to cmd (persistent: for its subcommands too).
func (r *remote) addOutputFlag(cmd *cobra.Command, persistent bool) {
	fs := cmd.Flags()
	if persistent {
		fs = cmd.PersistentFlags()
	}
	fs.StringVarP(&r.output, "output", "o", "table", "output format: table or json")
}

// client checks the flags and returns a client for the coordinator:
// --server or MAAS_SERVER if given, else the current context of `maas
// login`, with the credentials of the context for that coordinator.
func (r *remote) client() (*api.Client, error) {
	if r.output != "" && r.output != "table" && r.output != "json" {
		return nil, fmt.Errorf("--output %q: use table or json", r.output)
	}
	explicit := r.serverFlag != nil && r.serverFlag.Changed || os.Getenv("MAAS_SERVER") != ""
	t, err := resolveTarget(r.server, explicit)
	if err != nil {
		return nil, err
	}
	opts, err := t.ctx.options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, api.WithLeaderWait(api.DefaultLeaderWait, noticeLeaderWait))
	c, err := api.NewClient(t.server, opts...)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	return c, nil
}

// noticeLeaderWait says on stderr that a command waits for an election.
func noticeLeaderWait(d time.Duration) {
	fmt.Fprintf(os.Stderr, "maas: the coordinators have no leader yet; waiting up to %v for one to be elected…\n", d)
}

func (r *remote) json() bool { return r.output == "json" }

// explain adds what to do to an error from the coordinator: notFound for
// a 404, waiting for a leader for a 503, logging in for a 401 or 403.
func explain(err error, notFound string) error {
	var se *api.StatusError
	errors.As(err, &se)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, api.ErrNotFound) && notFound != "":
		return fmt.Errorf("%w; %s", err, notFound)
	case errors.Is(err, api.ErrNoLeader) && se != nil && se.Reason == api.ReasonNoLeader:
		return fmt.Errorf("%w; no leader was elected: a majority of the coordinators must be up and reach each other (`maas cluster status` shows them)", err)
	case errors.Is(err, api.ErrNoLeader):
		return fmt.Errorf("%w; the coordinators have no leader: wait a few seconds for an election, or bring back enough coordinators for a quorum", err)
	case errors.Is(err, api.ErrUnauthorized) && se != nil:
		login := fmt.Sprintf("maas login --server %s --ca ca.crt --token-file read.token", se.Server)
		switch se.Reason {
		case api.ReasonExpiredToken:
			return fmt.Errorf("%w\nthe token has expired: ask for a new one and run `%s` with it", err, login)
		case api.ReasonUnknownToken:
			return fmt.Errorf("%w\nthe server does not know this token (another cluster's, or replaced by a new `maas cluster init`): run `%s` with a token of this cluster", err, login)
		}
		return fmt.Errorf("%w\nthe server needs a token: run `%s` (the files of `maas cluster init`; submit.token to submit jobs)", err, login)
	case errors.Is(err, api.ErrForbidden) && se != nil && se.Need != "":
		return fmt.Errorf("%w\ntoken has role %s; this needs %s: log in with a token of that role: `maas login --server %s --token-file %s.token`",
			err, se.Role, se.Need, se.Server, se.Need)
	}
	return err
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns: one Row per line, then Flush.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// age says how long ago t was, coarsely: 42s, 5m, 3h, 2d.
func age(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// timestamp prints t in local time, with how long ago.
func timestamp(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format("2006-01-02 15:04:05"), age(t, now))
}

// metrics prints a model's metrics sorted by name: accuracy=0.99 loss=0.03.
func metrics(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%.4g", k, m[k])
	}
	return strings.Join(parts, " ")
}

// byteSize prints n bytes as 512 B, 1.2 kB, 3.4 MB.
func byteSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
