// Command maas trains neural networks and serves them: one binary, one
// subcommand per role. It only parses flags and wires packages.
package main

import (
	"fmt"
	"os"

	"github.com/maas-ml/maas/internal/cli"
)

func main() {
	if err := cli.Root().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "maas:", err)
		os.Exit(1)
	}
}
