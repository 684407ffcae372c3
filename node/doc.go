// Package node is rbnode's composition root: the home directory and its
// configuration, the builder's own key, the keyring and trust set, importing
// and verifying documents into the store, and the verdicts the CLI shows.
// Later it runs the daemon (gossip, sync, the local API).
//
// node never prints to stdout and never exits the process: it returns values
// and errors, and the cli package decides what the user sees.
package node
