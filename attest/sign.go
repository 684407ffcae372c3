package attest

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// ErrPassphrase is returned when a secret key is protected and no (or a
// wrong) passphrase was given.
var ErrPassphrase = errors.New("secret key is protected by a passphrase")

// SecretKey is a builder's signing key.
type SecretKey struct {
	entity *openpgp.Entity
	public *Key
}

// GenerateKey makes a new Ed25519 signing key (OpenPGP v4, EdDSA as GnuPG
// 2.2 and later read it) for "name <email>", created at now, from rand.
func GenerateKey(name, email string, now time.Time, rand io.Reader) (*SecretKey, error) {
	if name == "" {
		return nil, errors.New("generate key: a name is required")
	}
	cfg := &packet.Config{
		Rand:        rand,
		Algorithm:   packet.PubKeyAlgoEdDSA,
		Curve:       packet.Curve25519,
		DefaultHash: crypto.SHA256,
		Time:        func() time.Time { return now },
	}
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return newSecretKey(e)
}

// ReadSecretKey reads a secret key as `gpg --export-secret-keys [--armor]`
// writes it. A protected key is unlocked with passphrase; nil or a wrong
// one gives ErrPassphrase. The file must hold exactly one key.
func ReadSecretKey(b, passphrase []byte) (*SecretKey, error) {
	if len(b) > MaxKeyFileSize {
		return nil, fmt.Errorf("key file is %d bytes, more than %d", len(b), MaxKeyFileSize)
	}
	blobs := [][]byte{b}
	if armored(b) {
		var err error
		if blobs, err = dearmor(b, "PGP PRIVATE KEY BLOCK"); err != nil {
			if bytes.Contains(b, []byte("PUBLIC KEY BLOCK")) {
				return nil, errors.New("this is a public key, not a secret one; add it with rbnode trust add")
			}
			return nil, err
		}
	}
	var certs []*cert
	for _, blob := range blobs {
		pkts, err := splitPackets(blob)
		if err != nil {
			return nil, fmt.Errorf("read secret key packets: %w", err)
		}
		cs, err := groupCerts(pkts, true)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cs...)
	}
	switch {
	case len(certs) == 0:
		return nil, ErrNoKeys
	case len(certs) > 1:
		return nil, fmt.Errorf("key file holds %d keys; export just the one to sign with", len(certs))
	case !certs[0].secret:
		return nil, errors.New("this is a public key, not a secret one; add it with rbnode trust add")
	}
	k, err := certs[0].build()
	if err != nil {
		return nil, err
	}
	e := k.entity
	if locked(e) {
		if len(passphrase) == 0 {
			return nil, ErrPassphrase
		}
		if err := e.DecryptPrivateKeys(passphrase); err != nil {
			return nil, fmt.Errorf("wrong passphrase: %w", ErrPassphrase)
		}
	}
	return newSecretKey(e)
}

func locked(e *openpgp.Entity) bool {
	if e.PrivateKey != nil && e.PrivateKey.Encrypted {
		return true
	}
	for _, s := range e.Subkeys {
		if s.PrivateKey != nil && s.PrivateKey.Encrypted {
			return true
		}
	}
	return false
}

func newSecretKey(e *openpgp.Entity) (*SecretKey, error) {
	if _, ok := e.SigningKey(e.PrimaryKey.CreationTime.Add(time.Second)); !ok {
		if _, ok := e.SigningKey(time.Now()); !ok {
			return nil, errors.New("key has no secret key valid for signing")
		}
	}
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		return nil, fmt.Errorf("serialize public key: %w", err)
	}
	ks, err := ReadKeys(pub.Bytes())
	if err != nil {
		return nil, fmt.Errorf("read back public key: %w", err)
	}
	return &SecretKey{entity: e, public: ks[0]}, nil
}

// Public returns the public half, as other nodes must know it.
func (sk *SecretKey) Public() *Key { return sk.public }

// RevokedPublic returns the public half with a revocation of the key made
// at time at: compromised voids every signature the key made, otherwise
// (retired) those made before at still count. The key itself is not
// changed.
func (sk *SecretKey) RevokedPublic(compromised bool, text string, at time.Time) (*Key, error) {
	e := *sk.entity
	e.Revocations = slices.Clone(e.Revocations)
	reason := packet.KeyRetired
	if compromised {
		reason = packet.KeyCompromised
	}
	if err := e.RevokeKey(reason, text, &packet.Config{Time: func() time.Time { return at }, DefaultHash: crypto.SHA256}); err != nil {
		return nil, fmt.Errorf("revoke key: %w", err)
	}
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		return nil, fmt.Errorf("serialize revoked key: %w", err)
	}
	ks, err := ReadKeys(pub.Bytes())
	if err != nil {
		return nil, fmt.Errorf("read back revoked key: %w", err)
	}
	return ks[0], nil
}

// Armored returns the secret key as an armoured block GnuPG can import
// (`gpg --import`). It is unprotected: keep it private.
func (sk *SecretKey) Armored() ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := sk.entity.SerializePrivateWithoutSigning(w, nil); err != nil {
		return nil, fmt.Errorf("serialize secret key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// Sign returns an ASCII-armoured detached signature over exactly body, made
// at now, as `gpg --detach-sign --armor` would (a binary-document signature
// with SHA-256).
func (sk *SecretKey) Sign(body []byte, now time.Time) ([]byte, error) {
	noNotation := false
	cfg := &packet.Config{
		DefaultHash:                           crypto.SHA256,
		Time:                                  func() time.Time { return now },
		NonDeterministicSignaturesViaNotation: &noNotation,
	}
	var buf bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&buf, sk.entity, bytes.NewReader(body), cfg); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}
