package attest

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// ReadStoredKey reads one certificate as Key.Bytes wrote it, without
// checking its self-signatures again. It is for a node's own store, where
// every key went through ReadKeys (and so through every check) on its way
// in: reading the keyring back then costs no RSA work, where ReadKeys would
// spend about a millisecond a key. Input from anywhere else must go
// through ReadKeys.
func ReadStoredKey(b []byte) (*Key, error) {
	pkts, err := splitPackets(b)
	if err != nil {
		return nil, fmt.Errorf("read stored key: %w", err)
	}
	certs, err := groupCerts(pkts, false)
	if err != nil {
		return nil, fmt.Errorf("read stored key: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("stored key holds %d certificates", len(certs))
	}
	c := certs[0]
	e, err := c.entityUnchecked()
	if err != nil {
		return nil, fmt.Errorf("read stored key: %w", err)
	}
	return &Key{
		Fingerprint: fingerprintString(e.PrimaryKey.Fingerprint),
		entity:      e,
		cert:        c,
		raw:         bytes.Clone(b),
	}, nil
}

// entityUnchecked assembles the go-crypto entity ReadEntity would make of
// c, taking every self-signature as valid.
func (c *cert) entityUnchecked() (*openpgp.Entity, error) {
	pk, err := parsePrimary(c.primary)
	if err != nil {
		return nil, err
	}
	e := &openpgp.Entity{PrimaryKey: pk, Identities: map[string]*openpgp.Identity{}}
	for _, p := range newest(c.direct) {
		sig, err := readSig(p)
		if err != nil {
			return nil, err
		}
		if sig.SigType == packet.SigTypeKeyRevocation {
			e.Revocations = append(e.Revocations, sig)
		}
	}
	for _, u := range c.uids {
		pp, err := packet.Read(bytes.NewReader(u.head.whole))
		if err != nil {
			return nil, err
		}
		uid, ok := pp.(*packet.UserId)
		if !ok {
			return nil, errors.New("user id packet expected")
		}
		id := &openpgp.Identity{Name: uid.Id, UserId: uid}
		for _, p := range newest(u.sigs) {
			sig, err := readSig(p)
			if err != nil {
				return nil, err
			}
			if sig.SigType == packet.SigTypeCertificationRevocation {
				id.Revocations = append(id.Revocations, sig)
			} else if id.SelfSignature == nil || sig.CreationTime.After(id.SelfSignature.CreationTime) {
				id.SelfSignature = sig
			}
			id.Signatures = append(id.Signatures, sig)
			e.Identities[uid.Id] = id
		}
	}
	for _, s := range c.subkeys {
		pp, err := packet.Read(bytes.NewReader(s.head.whole))
		if err != nil {
			return nil, err
		}
		pub, ok := pp.(*packet.PublicKey)
		if !ok {
			return nil, errors.New("subkey packet expected")
		}
		sk := openpgp.Subkey{PublicKey: pub}
		for _, p := range newest(s.sigs) {
			sig, err := readSig(p)
			if err != nil {
				return nil, err
			}
			switch sig.SigType {
			case packet.SigTypeSubkeyRevocation:
				sk.Revocations = append(sk.Revocations, sig)
			case packet.SigTypeSubkeyBinding:
				if sk.Sig == nil || sig.CreationTime.After(sk.Sig.CreationTime) {
					sk.Sig = sig
				}
			}
		}
		if sk.Sig != nil {
			e.Subkeys = append(e.Subkeys, sk)
		}
	}
	if len(e.Identities) == 0 {
		return nil, errors.New("no user id with a self-signature")
	}
	return e, nil
}

func readSig(p rawPacket) (*packet.Signature, error) {
	pp, err := packet.Read(bytes.NewReader(p.whole))
	if err != nil {
		return nil, err
	}
	sig, ok := pp.(*packet.Signature)
	if !ok {
		return nil, errors.New("signature packet expected")
	}
	return sig, nil
}
