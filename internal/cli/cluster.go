package cli

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/internal/api"
)

// clusterStatusCmd is `maas cluster status`. Its flags are its own, not
// persistent, so that they do not clash with the cluster command's.
func clusterStatusCmd() *cobra.Command {
	r := &remote{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the coordinators, parameter servers and workers of a maas cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			cs, err := c.Cluster(cmd.Context())
			if err != nil {
				return explain(err, "")
			}
			if r.json() {
				return printJSON(cmd.OutOrStdout(), cs)
			}
			return printCluster(cmd.OutOrStdout(), cs, time.Now())
		},
	}
	r.addServerFlag(cmd, false)
	r.addOutputFlag(cmd, false)
	return cmd
}

// printCluster writes one table per kind of node.
func printCluster(w io.Writer, cs api.ClusterStatus, now time.Time) error {
	fmt.Fprintln(w, "COORDINATORS")
	t := newTable(w, "ID", "RAFT", "HTTP", "ROLE", "TERM", "APPLIED")
	for _, n := range cs.Nodes {
		role := "follower"
		switch {
		case n.Leader:
			role = "leader"
		case n.State == "Candidate":
			role = "candidate (electing)"
		case n.Error != "":
			role = "unreachable"
		}
		term, applied := "", ""
		if n.Term > 0 {
			term, applied = strconv.FormatUint(n.Term, 10), strconv.FormatUint(n.AppliedIndex, 10)
		}
		t.row(n.ID, n.RaftAddr, n.HTTPAddr, role, term, applied)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if cs.Leader == "" {
		fmt.Fprintln(w, "no leader: an election is under way, or no majority of the coordinators is up")
	}
	for _, sec := range []struct {
		title   string
		members []api.Member
	}{{"PARAMETER SERVERS", cs.Servers}, {"WORKERS", cs.Workers}} {
		fmt.Fprintf(w, "\n%s\n", sec.title)
		if len(sec.members) == 0 {
			fmt.Fprintln(w, "(none registered)")
			continue
		}
		t := newTable(w, "ID", "HOST", "THREADS", "DEVICE", "STATE", "JOB", "LAST SEEN")
		for _, m := range sec.members {
			threads := ""
			if m.Threads > 0 {
				threads = strconv.Itoa(m.Threads)
			}
			seen := age(m.LastSeen, now)
			if seen != "" {
				seen += " ago"
			}
			t.row(m.ID, m.Host, threads, m.Device, m.State, m.Job, seen)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	return nil
}

// clusterRemoveNodeCmd is `maas cluster remove-node ID`: it takes a
// coordinator out of the Raft configuration (an admin token's call).
func clusterRemoveNodeCmd() *cobra.Command {
	r := &remote{}
	cmd := &cobra.Command{
		Use:   "remove-node ID",
		Short: "Take a coordinator out of the Raft configuration (one whose host is gone for good)",
		Long: "remove-node asks the leader to remove coordinator ID from the Raft configuration, so that its vote no\n" +
			"longer counts towards a quorum. Use it for a coordinator that will not come back; one restarted on the\n" +
			"same host rejoins by itself. A secured cluster needs an admin token. See docs/deploy.md, Operations.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			if err := c.RemoveNode(cmd.Context(), args[0]); err != nil {
				return explain(err, "")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "coordinator %s removed\n", args[0])
			return nil
		},
	}
	r.addServerFlag(cmd, false)
	return cmd
}
