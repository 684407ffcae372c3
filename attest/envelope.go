package attest

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// EnvelopeVersion is the wire format version Encode writes and Decode
// accepts. docs/protocol.md describes the format.
const EnvelopeVersion = 1

// MaxEnvelopeSize caps an encoded envelope: a document, its signature and
// its signer's minimal key, base64-encoded.
const MaxEnvelopeSize = 512 << 10

// Envelope is a document as it travels between nodes: the exact signed
// bytes, the detached signature, the context the signature does not cover
// and the signer's public key, so any node can verify it with no key server.
type Envelope struct {
	Doc Document
	Key []byte // the signer's certificate, binary OpenPGP (Key.Bytes)
}

type envelopeWire struct {
	V         int    `json:"rbnode_envelope"`
	Kind      Kind   `json:"kind"`
	Version   string `json:"version"`
	Signer    string `json:"signer"`
	Name      string `json:"name"`
	Body      []byte `json:"body"`
	Signature []byte `json:"signature"`
	Key       []byte `json:"key"`
}

var envelopeKeys = jsonKeys(envelopeWire{})

// Encode writes the envelope as one JSON object (byte fields in base64).
func (e *Envelope) Encode() []byte {
	b, _ := json.Marshal(envelopeWire{
		V: EnvelopeVersion, Kind: e.Doc.Kind, Version: e.Doc.Version,
		Signer: e.Doc.Signer, Name: e.Doc.Name,
		Body: e.Doc.Body, Signature: e.Doc.Signature, Key: e.Key,
	})
	return b
}

// DecodeEnvelope reads an envelope, checking its size, version and fields.
// It does not parse the document or verify anything.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("envelope is %d bytes, more than %d: %w", len(b), MaxEnvelopeSize, ErrMalformed)
	}
	if err := checkJSONObject(b, envelopeKeys); err != nil {
		return nil, fmt.Errorf("envelope: %w: %w", err, ErrMalformed)
	}
	var w envelopeWire
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("envelope: %s: %w", jsonErr(err), ErrMalformed)
	}
	switch {
	case w.V != EnvelopeVersion:
		return nil, fmt.Errorf("envelope version %d, this node speaks %d: %w", w.V, EnvelopeVersion, ErrMalformed)
	case w.Kind != KindAttestation && w.Kind != KindManifest:
		return nil, fmt.Errorf("envelope kind %q is unknown: %w", w.Kind, ErrMalformed)
	case len(w.Body) == 0 || len(w.Signature) == 0 || len(w.Key) == 0:
		return nil, fmt.Errorf("envelope lacks a body, signature or key: %w", ErrMalformed)
	case len(w.Body) > MaxManifestSize || len(w.Signature) > MaxSignatureSize:
		return nil, fmt.Errorf("envelope body or signature is too large: %w", ErrMalformed)
	}
	return &Envelope{
		Doc: Document{Kind: w.Kind, Version: w.Version, Signer: w.Signer, Name: w.Name, Body: w.Body, Signature: w.Signature},
		Key: w.Key,
	}, nil
}
