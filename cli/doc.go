// Package cli is rbnode's command line: the urfave/cli application, its
// flags, configuration loading, logging set-up, signals, and everything
// printed to stdout (tables and --json). It maps errors and verdicts to exit
// codes; no other package writes to stdout or knows exit codes. It holds no
// logic of its own: it calls node.
package cli
