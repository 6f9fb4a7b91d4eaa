package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/internal/api"
)

func modelCmd() *cobra.Command {
	r := &remote{}
	cmd := &cobra.Command{
		Use:   "model",
		Short: "List and download the models a maas cluster published",
	}
	r.addServerFlag(cmd, true)
	cmd.AddCommand(modelLsCmd(r), modelPullCmd(r))
	return cmd
}

func modelLsCmd(r *remote) *cobra.Command {
	var serveURL string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List every version of every model",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			ms, err := c.Models(cmd.Context())
			if err != nil {
				return explain(err, "")
			}
			out := cmd.OutOrStdout()
			if r.json() {
				if ms == nil {
					ms = []api.ModelVersion{}
				}
				return printJSON(out, ms)
			}
			if len(ms) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no models yet; a job publishes one when it succeeds (`maas job submit -f JOB.yaml`)")
				return nil
			}
			sort.SliceStable(ms, func(i, j int) bool {
				if ms[i].Name != ms[j].Name {
					return ms[i].Name < ms[j].Name
				}
				return ms[i].Version < ms[j].Version
			})
			now := time.Now()
			served := map[string]map[string]bool{}
			t := newTable(out, "NAME", "VERSION", "JOB", "CREATED", "SERVED", "METRICS")
			for _, m := range ms {
				if _, asked := served[m.Name]; !asked {
					served[m.Name] = servedVersions(cmd.Context(), serveURL, m.Name)
				}
				state := "-"
				if vs := served[m.Name]; vs != nil {
					state = "no"
					if vs[strconv.Itoa(m.Version)] {
						state = "yes"
					}
				}
				t.row(m.Name, strconv.Itoa(m.Version), m.Job, age(m.Created, now), state, metrics(m.Metrics))
			}
			return t.flush()
		},
	}
	r.addOutputFlag(cmd, false)
	def := os.Getenv("MAAS_SERVE_URL")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	cmd.Flags().StringVar(&serveURL, "server-url", def, "serving endpoint to ask which versions it serves (default: $MAAS_SERVE_URL, else maas serve's default address; SERVED is - when it does not answer)")
	return cmd
}

// servedVersions asks a serving endpoint which versions of a model it
// serves (KServe V2 model metadata); nil when it cannot tell.
func servedVersions(ctx context.Context, serveURL, name string) map[string]bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(serveURL, "/")+"/v2/models/"+url.PathEscape(name), nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return map[string]bool{}
	}
	var md struct {
		Versions []string `json:"versions"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&md) != nil {
		return nil
	}
	out := map[string]bool{}
	for _, v := range md.Versions {
		out[v] = true
	}
	return out
}

func modelPullCmd(r *remote) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "pull NAME[:VERSION] -o DIR",
		Short: "Download a model version (default: the newest) into DIR",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, err := parseModelRef(args[0])
			if err != nil {
				return err
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			mv, err := c.Model(ctx, name, version)
			if err != nil {
				return explain(err, "list the models with `maas model ls`")
			}
			if mv.Version <= 0 {
				mv.Version = version
			}
			if mv.Version <= 0 {
				return fmt.Errorf("the coordinator did not say which version of %s is the newest; pull one by number, as in %s:1", name, name)
			}
			ref := fmt.Sprintf("%s:%d", name, mv.Version)
			written, err := pullFiles(ctx, c, name, mv, dir)
			if err != nil {
				return fmt.Errorf("pulling %s: %w; nothing was written to %s", ref, err, dir)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "pulled %s into %s\n", ref, dir)
			for i, f := range mv.Files {
				fmt.Fprintf(out, "  %s  %s\n", filepath.Join(dir, f), byteSize(written[i]))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&dir, "out", "o", "", "directory to write the model's files to (created if missing)")
	cmd.MarkFlagRequired("out")
	return cmd
}

// parseModelRef splits NAME[:VERSION]; version 0 is the newest.
func parseModelRef(s string) (name string, version int, err error) {
	bad := func(why string) error {
		return fmt.Errorf("model %q: %s; name a model as NAME or NAME:VERSION, as in mnist or mnist:3 (see `maas model ls`)", s, why)
	}
	name, v, hasVersion := strings.Cut(s, ":")
	if name == "" {
		return "", 0, bad("no name")
	}
	if !hasVersion {
		return name, 0, nil
	}
	version, err = strconv.Atoi(v)
	if err != nil || version < 1 {
		return "", 0, bad(fmt.Sprintf("version %q is not a number from 1 up", v))
	}
	return name, version, nil
}

// pullFiles downloads every file of mv into dir: each into a temporary
// file first, renamed into place only once all arrived, so that a failure
// leaves neither half-written files nor half a model. It returns the
// files' sizes.
func pullFiles(ctx context.Context, c *api.Client, name string, mv api.ModelVersion, dir string) (sizes []int64, err error) {
	if len(mv.Files) == 0 {
		return nil, errors.New("the coordinator lists no files for it")
	}
	for _, f := range mv.Files {
		if f == "" || f == "." || f == ".." || strings.ContainsAny(f, `/\`) || filepath.Base(f) != f {
			return nil, fmt.Errorf("the coordinator names a file %q, which is not a plain file name", f)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var temps []string
	defer func() {
		if err != nil {
			for _, t := range temps {
				os.Remove(t)
			}
		}
	}()
	for _, f := range mv.Files {
		if f == "" || f == "." || f == ".." || filepath.Base(f) != f {
			return nil, fmt.Errorf("model %s version %d lists a file %q that is not a plain file name", name, mv.Version, f)
		}
		tmp, err := os.CreateTemp(dir, "."+f+".*.part")
		if err != nil {
			return nil, err
		}
		if err := tmp.Chmod(0o644); err != nil {
			tmp.Close()
			return nil, err
		}
		temps = append(temps, tmp.Name())
		cw := &countingWriter{w: tmp}
		err = c.ModelFile(ctx, name, mv.Version, f, cw)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		sizes = append(sizes, cw.n)
	}
	for i, f := range mv.Files {
		if err := os.Rename(temps[i], filepath.Join(dir, f)); err != nil {
			return nil, err
		}
	}
	return sizes, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (cw *countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	return n, err
}
