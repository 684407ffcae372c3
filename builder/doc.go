// Package builder runs a release build through the Cuprate Guix pipeline
// (or a user-given command) as cancellable subprocesses, checks every output
// against the pipeline's contract, and signs the result through an injected
// Signer. It owns no keys and never touches the network: it does not fetch,
// and it does not publish what it signs.
//
// Build is the whole job: a self-contained git clone of the release commit
// under the request's work directory (the user's checkout is only read;
// the clone's .git lies inside it, so git works in a Guix container that
// sees nothing else), then
// contrib/guix/guix-mk-distsrc, guix-build and guix-checksums, each in its
// own process group with a timeout and a log, cancelled by SIGTERM and then
// SIGKILL to the whole group. The outputs are checked (SHA256SUMS and the
// .SHA256SUM sidecars against the files, build-metadata.json against the
// version and commit asked for, path-safe names, no native-arch flags in
// any log) before anything is signed, and the attestation is written as
// guix-attest writes it, atomically, beside its detached signature:
//
//	Dest/contrib/guix/sigs/<version>/<sanitized builder id>/attestation.json(.asc)
//
// With Request.Pipeline the scripts are replaced by `sh -c COMMAND` (OUT_DIR,
// VERSION, COMMIT and SOURCE_DATE_EPOCH in its environment) and the signed
// document is its SHA256SUMS in the guix.sigs layout:
//
//	Dest/<version>/<sanitized builder id>/<name>.SHA256SUMS(.asc)
//
// Attest checks and signs an output directory made by hand. Build returns a
// Record, JSON with stable field names, for the node to store; Progress
// reports feed a live progress line. Failures are typed: ErrUsage,
// ErrNoGuix, ErrUnknownRelease, *StageError (with the stage's log) and
// *CheckError (file, rule, detail); Hint gives the line a user can act on.
//
// builder imports attest and nothing else of rbnode; node and cli import
// builder. docs/builder.md describes the API and how to wire it.
package builder
