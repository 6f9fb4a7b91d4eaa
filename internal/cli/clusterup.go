package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/deploy/cluster"
	"github.com/maas-ml/maas/internal/api"
)

// launchFlags are the flags of up, down, upgrade and status -f.
type launchFlags struct {
	file       string
	supervisor string
	insecure   bool
	opts       cluster.LaunchOptions
}

func (lf *launchFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&lf.file, "file", "f", "cluster.yaml", "cluster file")
	f.StringVar(&lf.opts.SecretsDir, "secrets", "", "secrets `DIR` from maas cluster init (default: the file's secrets_dir, else ./<name>-secrets)")
	f.BoolVar(&lf.insecure, "insecure", false, "run the cluster without TLS, credentials or tokens (a trusted network only)")
}

func (lf *launchFlags) addStart(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&lf.opts.Binary, "binary", "", "maas executable to install on the hosts (default: this one)")
	f.StringVar(&lf.supervisor, "supervisor", "auto", "how to run the processes: auto (systemd where it runs and the ssh user is root), systemd or nohup")
	f.DurationVar(&lf.opts.ReadyTimeout, "timeout", 90*time.Second, "longest wait for each stage to be ready")
}

// secrets settles the secrets directory: none with --insecure; else
// --secrets or the file's default, which must hold the secrets of
// `maas cluster init` when need is set (a cluster is secured by default);
// without need, a missing directory means a cluster started --insecure.
func (lf *launchFlags) secrets(f *cluster.File, need bool) (string, error) {
	if lf.insecure {
		if lf.opts.SecretsDir != "" {
			return "", fmt.Errorf("--insecure and --secrets %s: choose one", lf.opts.SecretsDir)
		}
		return "", nil
	}
	dir := lf.opts.SecretsDir
	if dir == "" {
		dir = cluster.DefaultSecretsDir(f)
	}
	if _, err := os.Stat(filepath.Join(dir, cluster.CACertFile)); err != nil {
		if !need && lf.opts.SecretsDir == "" {
			return "", nil
		}
		return "", fmt.Errorf("cluster %s is secured by default, but %s holds no secrets (%v): run `maas cluster init -f %s` first, "+
			"give --secrets DIR, or pass --insecure for a cluster without TLS and credentials", f.Name, dir, err, lf.file)
	}
	return dir, nil
}

// load reads the cluster file and completes the options; needSecrets as
// for secrets.
func (lf *launchFlags) load(cmd *cobra.Command, needSecrets bool) (*cluster.File, cluster.LaunchOptions, error) {
	f, err := cluster.Load(lf.file)
	if err != nil {
		return nil, lf.opts, err
	}
	o := lf.opts
	switch s := cluster.Supervisor(lf.supervisor); s {
	case "", cluster.SupervisorAuto, cluster.SupervisorSystemd, cluster.SupervisorNohup:
		o.Supervisor = s
	default:
		return nil, o, fmt.Errorf("--supervisor %q: use auto, systemd or nohup", lf.supervisor)
	}
	if o.SecretsDir, err = lf.secrets(f, needSecrets); err != nil {
		return nil, o, err
	}
	o.Progress = cmd.ErrOrStderr()
	return f, o, nil
}

// clusterUpCmd is `maas cluster up`: it installs and starts the cluster of a
// cluster file over SSH (package deploy/cluster does the work).
func clusterUpCmd() *cobra.Command {
	var lf launchFlags
	cmd := &cobra.Command{
		Use:   "up -f cluster.yaml [--secrets DIR] [--binary PATH]",
		Short: "Install maas on a cluster's hosts over SSH and start its processes",
		Long: "up logs in to every host of the cluster file over SSH, checks its OS and architecture, installs the\n" +
			"maas binary in <data_dir>/bin and starts the processes in order: NATS, the first coordinator, the other\n" +
			"coordinators, parameter servers, workers, serve, waiting for each stage to be ready. Processes already\n" +
			"running are left alone. See docs/deploy.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, o, err := lf.load(cmd, true)
			if err != nil {
				return err
			}
			if err := cluster.Up(cmd.Context(), f, o); err != nil {
				return err
			}
			return printLaunched(cmd, f, o)
		},
	}
	lf.add(cmd)
	lf.addStart(cmd)
	return cmd
}

// printLaunched prints the coordinators' view of the cluster of f, as
// `maas cluster status` does, after up or upgrade.
func printLaunched(cmd *cobra.Command, f *cluster.File, o cluster.LaunchOptions) error {
	cs, err := cluster.ClusterStatus(cmd.Context(), f, o)
	if err != nil {
		return err
	}
	return printCluster(cmd.OutOrStdout(), cs, time.Now())
}

// clusterDownCmd is `maas cluster down`.
func clusterDownCmd() *cobra.Command {
	var lf launchFlags
	var purge bool
	cmd := &cobra.Command{
		Use:   "down -f cluster.yaml [--purge]",
		Short: "Stop a cluster's processes over SSH; --purge also removes their files",
		Long: "down stops the processes of the cluster file in reverse start order (SIGTERM, then SIGKILL after\n" +
			"10 s; or systemctl disable --now) and checks that none is left. Their data stays unless --purge,\n" +
			"which removes what up put under each data_dir: the binary, secrets, logs and state.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, o, err := lf.load(cmd, false)
			if err != nil {
				return err
			}
			if err := cluster.Down(cmd.Context(), f, o, purge); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %s is down\n", f.Name)
			return nil
		},
	}
	lf.add(cmd)
	cmd.Flags().BoolVar(&purge, "purge", false, "also remove the binary, secrets, logs and state that up created")
	return cmd
}

// clusterUpgradeCmd is `maas cluster upgrade`.
func clusterUpgradeCmd() *cobra.Command {
	var lf launchFlags
	cmd := &cobra.Command{
		Use:   "upgrade -f cluster.yaml [--binary PATH]",
		Short: "Install a new maas binary on a cluster's hosts and restart them one at a time",
		Long: "upgrade checks every host's platform, then host by host installs the binary and restarts the host's\n" +
			"processes in start order, waiting for each to be ready; coordinators restart one at a time and wait\n" +
			"until they answer again with a leader, so the Raft cluster keeps its quorum. See docs/deploy.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, o, err := lf.load(cmd, true)
			if err != nil {
				return err
			}
			if err := cluster.Upgrade(cmd.Context(), f, o); err != nil {
				return err
			}
			return printLaunched(cmd, f, o)
		},
	}
	lf.add(cmd)
	lf.addStart(cmd)
	return cmd
}

// withLaunchStatus adds -f to `maas cluster status`: with a cluster file,
// it shows each process (host, role, id, pid) as seen over SSH, then the
// coordinators' view; without, the command is unchanged.
func withLaunchStatus(cmd *cobra.Command) *cobra.Command {
	var lf launchFlags
	coordinatorView := cmd.RunE
	cmd.Use = "status [-f cluster.yaml | --server URL]"
	cmd.Short = "Show a cluster's coordinators, parameter servers and workers; with -f, its processes over SSH too"
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if lf.file == "" {
			return coordinatorView(cmd, args)
		}
		f, o, err := lf.load(cmd, false)
		if err != nil {
			return err
		}
		states, sshErr := cluster.Status(cmd.Context(), f, o)
		cs, apiErr := cluster.ClusterStatus(cmd.Context(), f, o)
		if out, _ := cmd.Flags().GetString("output"); out == "json" {
			return printJSON(cmd.OutOrStdout(), launchStatusJSON(states, cs, apiErr))
		}
		if err := printProcesses(cmd.OutOrStdout(), states); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout())
		if apiErr != nil {
			fmt.Fprintf(cmd.OutOrStdout(), "COORDINATORS\n(%v)\n", apiErr)
		} else if err := printCluster(cmd.OutOrStdout(), cs, time.Now()); err != nil {
			return err
		}
		return sshErr
	}
	f := cmd.Flags()
	f.StringVarP(&lf.file, "file", "f", "", "cluster file: show its processes over SSH as well")
	f.StringVar(&lf.opts.SecretsDir, "secrets", "", "with -f: secrets `DIR` from maas cluster init (default: the file's, when it exists)")
	f.BoolVar(&lf.insecure, "insecure", false, "with -f: a cluster started --insecure")
	return cmd
}

// printProcesses writes one row per process of the cluster file.
func printProcesses(w io.Writer, states []cluster.ProcessState) error {
	t := newTable(w, "HOST", "ROLE", "ID", "PID", "STATE")
	for _, s := range states {
		pid, state := "-", "stopped"
		switch {
		case s.Err != nil:
			state = "unreachable"
		case s.Running():
			pid, state = strconv.Itoa(s.PID), "running"
		}
		t.row(s.Host, string(s.Kind), s.ID, pid, state)
	}
	return t.flush()
}

// launchStatus is `maas cluster status -f FILE -o json`.
type launchStatus struct {
	Processes []processJSON      `json:"processes"`
	Cluster   *api.ClusterStatus `json:"cluster,omitempty"`
	Error     string             `json:"cluster_error,omitempty"`
}

type processJSON struct {
	Host    string `json:"host"`
	Role    string `json:"role"`
	ID      string `json:"id"`
	PID     int    `json:"pid,omitempty"`
	Running bool   `json:"running"`
	Error   string `json:"error,omitempty"`
}

func launchStatusJSON(states []cluster.ProcessState, cs api.ClusterStatus, apiErr error) launchStatus {
	var s launchStatus
	for _, p := range states {
		j := processJSON{Host: p.Host, Role: string(p.Kind), ID: p.ID, PID: p.PID, Running: p.Running()}
		if p.Err != nil {
			j.Error = p.Err.Error()
		}
		s.Processes = append(s.Processes, j)
	}
	if apiErr != nil {
		s.Error = apiErr.Error()
	} else {
		s.Cluster = &cs
	}
	return s
}
