// Command rbnode verifies reproducible release builds across independent
// builders. See README.md.
package main

import (
	"os"

	"github.com/rbnode/rbnode/cli"
)

func main() {
	os.Exit(cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
