// Package cli holds maas's cobra commands; cmd/maas only executes Root.
package cli

import (
	"github.com/spf13/cobra"
)

// Version is the maas version, set at link time.
var Version = "dev"

// Root returns the maas command with every subcommand.
func Root() *cobra.Command {
	root := &cobra.Command{
		Use:           "maas",
		Short:         "Train neural networks data-parallel and serve them (Model-as-a-Service)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	cluster := &cobra.Command{Use: "cluster", Short: "Set up and inspect a cluster"}
	cluster.AddCommand(withLaunchStatus(clusterStatusCmd()), clusterInitCmd(), clusterUpCmd(), clusterDownCmd(), clusterUpgradeCmd(), clusterRemoveNodeCmd())
	root.AddCommand(trainCmd(), evalCmd(), benchCmd(), localCmd(), jobCmd(), modelCmd(), cluster,
		natsCmd(), coordinatorCmd(), paramserverCmd(), workerCmd(), serveCmd(), predictCmd(), explainCmd(), generateCmd(), loginCmd(), dataCmd(), planCmd())
	return root
}
