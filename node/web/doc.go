// Package web is the daemon's read-only status web page: the releases and
// their verdicts, each release's artifact × builder matrix and divergence
// diagnosis, the peers and this node's builds, each page with a JSON twin
// (the same data as the CLI's --json), plus /metrics and /healthz.
//
// It renders on the server with html/template, needs no JavaScript and
// escapes every value (builder ids and file names come from strangers). It
// reads the node through the narrow interfaces of Config and never writes.
package web
