package attest

import (
	"bytes"
	"crypto"
	"fmt"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// MaxSignatureSize caps a detached signature file. An armoured RSA-4096
// signature is under 1 KiB.
const MaxSignatureSize = 16 << 10

// Signature is one detached OpenPGP signature over a document.
type Signature struct {
	pkt *packet.Signature
	raw []byte // the binary signature packet
}

// ParseSignature reads a detached signature, ASCII-armoured or binary. It
// must hold exactly one signature packet (guix.sigs' rule) of class binary
// or text document.
func ParseSignature(b []byte) (*Signature, error) {
	if len(b) > MaxSignatureSize {
		return nil, fmt.Errorf("signature is %d bytes, more than %d: %w", len(b), MaxSignatureSize, ErrMalformed)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("signature is empty: %w", ErrMalformed)
	}
	bin := b
	if armored(b) {
		blocks, err := dearmor(b, "PGP SIGNATURE")
		if err != nil {
			return nil, fmt.Errorf("signature: %w: %w", err, ErrMalformed)
		}
		if len(blocks) != 1 {
			return nil, fmt.Errorf("signature file holds %d armoured signatures, exactly one is allowed: %w", len(blocks), ErrMalformed)
		}
		bin = blocks[0]
	}
	pkts, err := splitPackets(bin)
	if err != nil {
		return nil, fmt.Errorf("signature: %w: %w", err, ErrMalformed)
	}
	if len(pkts) != 1 {
		return nil, fmt.Errorf("signature file holds %d packets, exactly one signature is allowed: %w", len(pkts), ErrMalformed)
	}
	if pkts[0].tag != tagSignature {
		return nil, fmt.Errorf("signature file holds a packet of tag %d, not a signature: %w", pkts[0].tag, ErrMalformed)
	}
	p, err := packet.Read(bytes.NewReader(pkts[0].whole))
	if err != nil {
		return nil, fmt.Errorf("signature: %w: %w", err, ErrMalformed)
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return nil, fmt.Errorf("signature packet of an unsupported version: %w", ErrMalformed)
	}
	if sig.SigType != packet.SigTypeBinary && sig.SigType != packet.SigTypeText {
		return nil, fmt.Errorf("signature of class 0x%02x is not a document signature: %w", uint8(sig.SigType), ErrMalformed)
	}
	if sig.IssuerKeyId == nil && sig.IssuerFingerprint == nil {
		return nil, fmt.Errorf("signature names no issuer key: %w", ErrMalformed)
	}
	return &Signature{pkt: sig, raw: pkts[0].whole}, nil
}

// Bytes returns the binary signature packet. Armour headers and line
// breaks are not part of it, so two armourings of one signature give the
// same bytes.
func (s *Signature) Bytes() []byte { return s.raw }

// Created returns the signature's creation time.
func (s *Signature) Created() time.Time { return s.pkt.CreationTime }

// IssuerKeyID returns the 16-hex key id the signature names.
func (s *Signature) IssuerKeyID() string {
	if s.pkt.IssuerKeyId != nil {
		return keyIDString(*s.pkt.IssuerKeyId)
	}
	fp := s.pkt.IssuerFingerprint
	if len(fp) >= 8 {
		return fingerprintString(fp[len(fp)-8:])
	}
	return ""
}

func (s *Signature) issuerID() uint64 {
	if s.pkt.IssuerKeyId != nil {
		return *s.pkt.IssuerKeyId
	}
	var id uint64
	if fp := s.pkt.IssuerFingerprint; len(fp) >= 8 {
		for _, c := range fp[len(fp)-8:] {
			id = id<<8 | uint64(c)
		}
	}
	return id
}

// weakHash reports hash algorithms rbnode refuses for document signatures.
func weakHash(h crypto.Hash) bool {
	switch h {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA224,
		crypto.SHA3_256, crypto.SHA3_512:
		return false
	}
	return true
}

func revocationReason(sig *packet.Signature) string {
	if sig.RevocationReason == nil {
		return "no reason given"
	}
	switch *sig.RevocationReason {
	case packet.NoReason:
		return "no reason given"
	case packet.KeySuperseded:
		return "superseded"
	case packet.KeyCompromised:
		return "compromised"
	case packet.KeyRetired:
		return "retired"
	}
	return fmt.Sprintf("reason %d", *sig.RevocationReason)
}

// revokedAt applies rbnode's revocation rule to one revocation and a
// signature made at t: a key retired or superseded keeps what it signed
// before the revocation; any other reason (compromise, none, unknown) voids
// everything the key ever signed.
func revokedAt(rev *packet.Signature, t time.Time) bool {
	if rev.RevocationReason != nil {
		switch *rev.RevocationReason {
		case packet.KeySuperseded, packet.KeyRetired:
			return !t.Before(rev.CreationTime)
		}
	}
	return true
}
