package attest

import (
	"bytes"
	"crypto/rsa"
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// ClockSkew is how far in the future a signature may be dated and still be
// accepted.
const ClockSkew = 10 * time.Minute

// Status is the outcome of checking one signature. Only StatusGood counts;
// every other status says why not.
type Status string

// The statuses a Verification can have.
const (
	StatusGood         Status = "good"
	StatusUnknownKey   Status = "unknown_key"   // no key with the issuer id is known
	StatusBadSignature Status = "bad_signature" // the signature does not match the bytes
	StatusExpiredKey   Status = "expired_key"   // made after the key (or subkey) expired
	StatusRevokedKey   Status = "revoked_key"   // the revocation rule voids it
	StatusInvalidKey   Status = "invalid_key"   // key not valid for signing at that time
	StatusFuture       Status = "future_signature"
	StatusWeakHash     Status = "weak_hash"
)

// Verification is the judgement of one signature. Fingerprint is set
// whenever the signing key is known, even when the status is not good.
type Verification struct {
	Status      Status    `json:"status"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	KeyID       string    `json:"key_id"`
	SignedAt    time.Time `json:"signed_at"`
	Detail      string    `json:"detail,omitempty"`
}

// OK reports whether the signature counts.
func (v Verification) OK() bool { return v.Status == StatusGood }

// Authentic reports whether the key named by Fingerprint made the
// signature over exactly these bytes, whether or not it counts: good, or
// voided by what the key itself says (revoked, expired, not for signing, a
// weak hash). These judgements depend only on the document and the key, so
// every node holding both reaches the same one. A bad signature, an
// unknown key or a date in the future is not authentic.
func (v Verification) Authentic() bool {
	switch v.Status {
	case StatusGood, StatusExpiredKey, StatusRevokedKey, StatusInvalidKey, StatusWeakHash:
		return v.Fingerprint != ""
	}
	return false
}

// Keyring holds the public keys a node knows, trusted or not.
type Keyring struct {
	byFP map[string]*Key
	byID map[uint64][]signer
}

// signer is one key of a certificate that may have made a signature.
type signer struct {
	key *Key
	pub *packet.PublicKey
	sub *openpgp.Subkey // nil for the primary key
}

// NewKeyring returns a keyring holding keys. A later key with the same
// fingerprint as an earlier one is merged into it.
func NewKeyring(keys ...*Key) *Keyring {
	kr := &Keyring{byFP: map[string]*Key{}, byID: map[uint64][]signer{}}
	for _, k := range keys {
		kr.Add(k)
	}
	return kr
}

// Add puts k in the keyring, merging it with a key of the same fingerprint.
// It returns the key as now held.
func (kr *Keyring) Add(k *Key) *Key {
	if prev := kr.byFP[k.Fingerprint]; prev != nil && bytes.Equal(prev.raw, k.raw) {
		return prev
	} else if prev != nil {
		if m, err := MergeKeys(prev, k); err == nil {
			k = m
		}
		kr.remove(prev)
	}
	kr.byFP[k.Fingerprint] = k
	e := k.entity
	kr.byID[e.PrimaryKey.KeyId] = append(kr.byID[e.PrimaryKey.KeyId], signer{key: k, pub: e.PrimaryKey})
	for i := range e.Subkeys {
		s := &e.Subkeys[i]
		kr.byID[s.PublicKey.KeyId] = append(kr.byID[s.PublicKey.KeyId], signer{key: k, pub: s.PublicKey, sub: s})
	}
	return k
}

func (kr *Keyring) remove(k *Key) {
	delete(kr.byFP, k.Fingerprint)
	for id, ss := range kr.byID {
		out := ss[:0]
		for _, s := range ss {
			if s.key != k {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			delete(kr.byID, id)
		} else {
			kr.byID[id] = out
		}
	}
}

// Clone returns a copy that can be changed while the original is read:
// a node swaps in a new keyring instead of locking readers out.
func (kr *Keyring) Clone() *Keyring {
	c := &Keyring{byFP: make(map[string]*Key, len(kr.byFP)), byID: make(map[uint64][]signer, len(kr.byID))}
	for fp, k := range kr.byFP {
		c.byFP[fp] = k
	}
	for id, ss := range kr.byID {
		c.byID[id] = append([]signer(nil), ss...)
	}
	return c
}

// Get returns the key with fingerprint fp, or nil.
func (kr *Keyring) Get(fp string) *Key { return kr.byFP[fp] }

// Len returns the number of certificates held.
func (kr *Keyring) Len() int { return len(kr.byFP) }

// Keys returns every key, ordered by fingerprint.
func (kr *Keyring) Keys() []*Key {
	out := make([]*Key, 0, len(kr.byFP))
	for _, k := range kr.byFP {
		out = append(out, k)
	}
	sortKeys(out)
	return out
}

// Verify checks sig over exactly body at time now. The signature is judged
// as of its own creation time: a key that expired later still vouches for
// what it signed while valid.
func (kr *Keyring) Verify(body []byte, sig *Signature, now time.Time) Verification {
	v := Verification{KeyID: sig.IssuerKeyID(), SignedAt: sig.Created().UTC()}
	cands := kr.byID[sig.issuerID()]
	if len(cands) == 0 {
		v.Status = StatusUnknownKey
		v.Detail = fmt.Sprintf("no known key has id %s", v.KeyID)
		return v
	}
	var cryptoErr error
	for _, c := range cands {
		if fp := sig.pkt.IssuerFingerprint; len(fp) == 20 && fingerprintString(fp) != fingerprintString(c.pub.Fingerprint) {
			continue
		}
		if err := checkCrypto(c.pub, body, sig.pkt); err != nil {
			cryptoErr = err
			continue
		}
		v.Fingerprint = c.key.Fingerprint
		v.Status, v.Detail = c.policy(sig.pkt, now)
		return v
	}
	v.Status = StatusBadSignature
	v.Fingerprint = cands[0].key.Fingerprint
	v.Detail = "signature does not match the document"
	if cryptoErr != nil {
		v.Detail += ": " + cryptoErr.Error()
	}
	return v
}

// checkCrypto verifies the signature mathematically over body.
func checkCrypto(pub *packet.PublicKey, body []byte, sig *packet.Signature) error {
	if pub.PubKeyAlgo != sig.PubKeyAlgo {
		return fmt.Errorf("key is %s, signature is algorithm %d", algorithmName(pub), sig.PubKeyAlgo)
	}
	h, err := sig.PrepareVerify()
	if err != nil {
		return err
	}
	// Only the document is hashed as canonical text; the trailer
	// (HashSuffix) is binary and goes to h itself.
	var doc io.Writer = h
	if sig.SigType == packet.SigTypeText {
		doc = openpgp.NewCanonicalTextHash(h)
	}
	doc.Write(body)
	if sig.Version == 4 {
		// Fast paths for the algorithms most builder keys use; see rsa.go
		// and secp256k1.go for why and how they are checked.
		if rsaPub, ok := pub.PublicKey.(*rsa.PublicKey); ok {
			h.Write(sig.HashSuffix)
			return verifyRSA(rsaPub, sig.Hash, h.Sum(nil), sig.RSASignature.Bytes())
		}
		if k, ok := isSecp256k1(pub.PublicKey); ok {
			h.Write(sig.HashSuffix)
			return verifySecp256k1(k, h.Sum(nil), sig.ECDSASigR.Bytes(), sig.ECDSASigS.Bytes())
		}
	}
	return pub.VerifySignature(h, sig)
}

// policy judges a mathematically valid signature against the key's
// lifetime, usage and revocations, all as of the signature's time.
func (s signer) policy(sig *packet.Signature, now time.Time) (Status, string) {
	t := sig.CreationTime
	day := func(t time.Time) string { return t.UTC().Format("2006-01-02") }
	if t.After(now.Add(ClockSkew)) {
		return StatusFuture, fmt.Sprintf("signature is dated %s, in the future", t.UTC().Format(time.RFC3339))
	}
	if weakHash(sig.Hash) {
		return StatusWeakHash, fmt.Sprintf("signature uses hash %v, which rbnode does not accept", sig.Hash)
	}
	e := s.key.entity
	for _, r := range e.Revocations {
		if revokedAt(r, t) {
			return StatusRevokedKey, fmt.Sprintf("key %s was revoked on %s (%s)", s.key.Fingerprint, day(r.CreationTime), revocationReason(r))
		}
	}
	if t.Before(e.PrimaryKey.CreationTime) {
		return StatusInvalidKey, fmt.Sprintf("signature predates its key (created %s)", day(e.PrimaryKey.CreationTime))
	}
	if exp, ok := s.key.Expires(); ok && !t.Before(exp) {
		return StatusExpiredKey, fmt.Sprintf("signature made %s, after key %s expired on %s", day(t), s.key.Fingerprint, day(exp))
	}
	if s.sub == nil {
		if self := s.key.latestSelfSig(); self != nil && self.FlagsValid && !self.FlagSign {
			return StatusInvalidKey, "primary key is not marked for signing"
		}
		return StatusGood, ""
	}
	for _, r := range s.sub.Revocations {
		if revokedAt(r, t) {
			return StatusRevokedKey, fmt.Sprintf("signing subkey %s was revoked on %s (%s)", keyIDString(s.pub.KeyId), day(r.CreationTime), revocationReason(r))
		}
	}
	if t.Before(s.pub.CreationTime) {
		return StatusInvalidKey, fmt.Sprintf("signature predates its subkey (created %s)", day(s.pub.CreationTime))
	}
	if b := s.sub.Sig; b.KeyLifetimeSecs != nil && *b.KeyLifetimeSecs != 0 {
		exp := s.pub.CreationTime.Add(time.Duration(*b.KeyLifetimeSecs) * time.Second)
		if !t.Before(exp) {
			return StatusExpiredKey, fmt.Sprintf("signature made %s, after subkey %s expired on %s", day(t), keyIDString(s.pub.KeyId), day(exp))
		}
	}
	if !s.sub.Sig.FlagsValid || !s.sub.Sig.FlagSign {
		return StatusInvalidKey, fmt.Sprintf("subkey %s is not marked for signing", keyIDString(s.pub.KeyId))
	}
	return StatusGood, ""
}
