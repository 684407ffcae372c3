package attest

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// EnvelopeVersion is the wire format version Encode writes and Decode
// accepts. docs/protocol.md describes the format.
const EnvelopeVersion = 1

// MaxEnvelopeSize caps an encoded envelope: a document, its signature and
// its signer's minimal key.
const MaxEnvelopeSize = 512 << 10

// maxEnvelopeText caps the envelope's text fields (kind and context).
const maxEnvelopeText = MaxNameLen

// envelopeMagic starts every envelope: "RBE" and the format version.
var envelopeMagic = []byte{'R', 'B', 'E', EnvelopeVersion}

// Envelope is a document as it travels between nodes: the exact signed
// bytes, the detached signature, the context the signature does not cover
// and the signer's public key, so any node can verify it with no key server.
type Envelope struct {
	Doc Document
	Key []byte // the signer's certificate, binary OpenPGP (Key.Bytes)
}

// Encode writes the envelope: the magic "RBE\x01", then kind, version,
// signer, name, body, signature and key, each as a uvarint length and the
// bytes. Binary, not JSON: an envelope carries a key of several KiB, and
// a node decodes every envelope it receives.
func (e *Envelope) Encode() []byte {
	fields := [][]byte{[]byte(e.Doc.Kind), []byte(e.Doc.Version), []byte(e.Doc.Signer), []byte(e.Doc.Name), e.Doc.Body, e.Doc.Signature, e.Key}
	n := len(envelopeMagic)
	for _, f := range fields {
		n += binary.MaxVarintLen32 + len(f)
	}
	b := append(make([]byte, 0, n), envelopeMagic...)
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// DecodeEnvelope reads an envelope, checking its size, format, version and
// fields. It does not parse the document or verify anything. Every length
// must be minimally encoded and nothing may follow the last field, so an
// envelope re-encodes to the same bytes.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	bad := func(format string, a ...any) (*Envelope, error) {
		return nil, fmt.Errorf("envelope: "+format+": %w", append(a, ErrMalformed)...)
	}
	if len(b) > MaxEnvelopeSize {
		return bad("%d bytes, more than %d", len(b), MaxEnvelopeSize)
	}
	if len(b) < len(envelopeMagic) || !bytes.Equal(b[:3], envelopeMagic[:3]) {
		return bad("not an rbnode envelope")
	}
	if b[3] != EnvelopeVersion {
		return bad("envelope version %d, this node speaks %d", b[3], EnvelopeVersion)
	}
	rest := b[len(envelopeMagic):]
	limits := []int{maxEnvelopeText, maxEnvelopeText, maxEnvelopeText, maxEnvelopeText, MaxManifestSize, MaxSignatureSize, MaxEnvelopeSize}
	names := []string{"kind", "version", "signer", "name", "body", "signature", "key"}
	var fields [7][]byte
	for i := range fields {
		n, k := binary.Uvarint(rest)
		if k <= 0 {
			return bad("%s: truncated length", names[i])
		}
		if k != uvarintLen(n) {
			return bad("%s: length not minimally encoded", names[i])
		}
		if n > uint64(limits[i]) {
			return bad("%s is %d bytes, more than %d", names[i], n, limits[i])
		}
		if n > uint64(len(rest)-k) {
			return bad("%s: truncated", names[i])
		}
		fields[i], rest = bytes.Clone(rest[k:k+int(n)]), rest[k+int(n):]
	}
	if len(rest) > 0 {
		return bad("%d bytes after the key", len(rest))
	}
	kind := Kind(fields[0])
	switch {
	case kind != KindAttestation && kind != KindManifest && kind != KindRequest && kind != KindBuildFailure:
		return bad("kind %q is unknown", kind)
	case len(fields[4]) == 0 || len(fields[5]) == 0 || len(fields[6]) == 0:
		return bad("lacks a body, signature or key")
	}
	return &Envelope{
		Doc: Document{Kind: kind, Version: string(fields[1]), Signer: string(fields[2]), Name: string(fields[3]), Body: fields[4], Signature: fields[5]},
		Key: fields[6],
	}, nil
}

func uvarintLen(n uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], n)
}
