// Package attest owns the formats and the judgement of rbnode: the
// cuprate-guix-attestation/v1 JSON, guix.sigs SHA256SUMS manifests, OpenPGP
// keys and detached signatures, the signed-document envelope, and the verdict
// (consensus, divergence or pending) over a release.
//
// attest is pure. It never touches the disk or the network, and it never asks
// the clock: every function that depends on time takes it as an argument.
// It must not import node, gossip, builder or cli.
package attest
