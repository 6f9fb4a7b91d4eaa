package cli

import (
	"github.com/spf13/cobra"

	"github.com/maas-ml/maas/deploy/cluster"
)

// clusterInitCmd is `maas cluster init`: it makes a cluster's secrets
// (package deploy/cluster does the work).
func clusterInitCmd() *cobra.Command {
	var file, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "init -f cluster.yaml [--out DIR] [--force]",
		Short: "Make a cluster's secrets: CA and host certificates, NATS users, API tokens",
		Long: "init reads a cluster file and writes the cluster's secrets to a new directory (mode 0700,\n" +
			"files 0600): a certificate authority and a TLS certificate per host, a NATS user key per\n" +
			"process with the NATS servers' authorization config, and admin, submit and read API tokens.\n" +
			"It refuses to replace the secrets of an earlier init unless --force. See docs/deploy.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := cluster.Load(file)
			if err != nil {
				return err
			}
			dir := out
			if dir == "" {
				dir = cluster.DefaultSecretsDir(f)
			}
			s, err := cluster.Init(f, dir, cluster.InitOptions{Force: force})
			if err != nil {
				return err
			}
			return s.Print(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "cluster.yaml", "cluster file")
	cmd.Flags().StringVar(&out, "out", "", "secrets directory (default: the file's secrets_dir, else ./<name>-secrets)")
	cmd.Flags().BoolVar(&force, "force", false, "replace the secrets of an earlier init in the directory")
	return cmd
}
