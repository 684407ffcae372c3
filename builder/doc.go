// Package builder runs a release build through the Cuprate Guix pipeline
// (or a user-given command) as cancellable subprocesses, checks every output
// against the pipeline's contract, hashes it and returns a result ready to be
// signed. It never touches the network and never signs.
package builder
