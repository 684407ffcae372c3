package attest

import (
	"bytes"
	//lint:ignore SA1019 go-crypto holds DSA keys as crypto/dsa keys; we only read their sizes
	"crypto/dsa"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// MaxKeyFileSize caps a key file. Real exports with many third-party
// certifications reach a few hundred KiB; rbnode keeps only the minimal form.
const MaxKeyFileSize = 4 << 20

// ErrNoKeys is returned when a key file holds no usable public key.
var ErrNoKeys = errors.New("no usable public key")

// Key is one OpenPGP certificate: a primary key with its user IDs, subkeys,
// self-signatures and revocations. rbnode keeps the minimal form: third-party
// certifications, user attributes and GnuPG trust packets are dropped, so the
// key stays small enough to travel with every document.
type Key struct {
	// Fingerprint is the primary key's v4 fingerprint, 40 uppercase hex:
	// the builder's identity everywhere in rbnode.
	Fingerprint string
	entity      *openpgp.Entity
	cert        *cert
	raw         []byte
	// Dropped lists the parts of the input that were left out because no
	// valid self-signature binds them (GnuPG ignores them the same way).
	Dropped []string
}

// ReadKeys reads every public key in b: armoured (one or several blocks) or
// binary, as `gpg --export [--armor]` writes it. Certificates with the same
// fingerprint are merged. A certificate that cannot be used at all is an
// error naming it; parts of one that are merely unusable are listed in
// Key.Dropped.
func ReadKeys(b []byte) ([]*Key, error) {
	if len(b) > MaxKeyFileSize {
		return nil, fmt.Errorf("key file is %d bytes, more than %d", len(b), MaxKeyFileSize)
	}
	var blobs [][]byte
	if armored(b) {
		var err error
		if blobs, err = dearmor(b, "PGP PUBLIC KEY BLOCK"); err != nil {
			if bytes.Contains(b, []byte("PRIVATE KEY BLOCK")) {
				return nil, errors.New("this is a secret key; rbnode key import takes it as the node's signing key")
			}
			return nil, err
		}
	} else {
		blobs = [][]byte{b}
	}
	var certs []*cert
	for _, blob := range blobs {
		pkts, err := splitPackets(blob)
		if err != nil {
			return nil, fmt.Errorf("read key packets: %w", err)
		}
		cs, err := groupCerts(pkts, false)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cs...)
	}
	if len(certs) == 0 {
		return nil, ErrNoKeys
	}
	var out []*Key
	byFP := map[string]*Key{}
	for _, c := range certs {
		k, err := c.build()
		if err != nil {
			return nil, err
		}
		if prev := byFP[k.Fingerprint]; prev != nil {
			merged, err := MergeKeys(prev, k)
			if err != nil {
				return nil, err
			}
			*prev = *merged
			continue
		}
		byFP[k.Fingerprint] = k
		out = append(out, k)
	}
	return out, nil
}

// MergeKeys combines two copies of one certificate (an older export and a
// newer one with extended expiry or a revocation) into one holding every
// self-signature of both.
func MergeKeys(a, b *Key) (*Key, error) {
	if a.Fingerprint != b.Fingerprint {
		return nil, fmt.Errorf("merge keys: %s and %s are different keys", a.Fingerprint, b.Fingerprint)
	}
	c := a.cert.clone()
	c.merge(b.cert)
	k, err := c.build()
	if err != nil {
		return nil, err
	}
	k.Dropped = append(slices.Clone(a.Dropped), b.Dropped...)
	return k, nil
}

// Bytes returns the minimal certificate in binary OpenPGP form: what rbnode
// stores and sends with documents. ReadKeys(k.Bytes()) gives k back.
func (k *Key) Bytes() []byte { return k.raw }

// Armored returns the minimal certificate as an armoured public key block.
func (k *Key) Armored() []byte {
	var buf bytes.Buffer
	w, _ := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	w.Write(k.raw)
	w.Close()
	buf.WriteByte('\n')
	return buf.Bytes()
}

// KeyID returns the primary key's 64-bit key id as 16 uppercase hex digits.
func (k *Key) KeyID() string { return keyIDString(k.entity.PrimaryKey.KeyId) }

// KeyIDs returns the key ids of the primary key and every subkey, the ids a
// signature's issuer field may name.
func (k *Key) KeyIDs() []string {
	ids := []string{keyIDString(k.entity.PrimaryKey.KeyId)}
	for _, s := range k.entity.Subkeys {
		ids = append(ids, keyIDString(s.PublicKey.KeyId))
	}
	return ids
}

// UserID returns the primary user id ("Name <email>").
func (k *Key) UserID() string {
	if id := k.primaryIdentity(); id != nil {
		return id.Name
	}
	return ""
}

// Name returns the name part of the primary user id, or the user id.
func (k *Key) Name() string {
	if id := k.primaryIdentity(); id != nil && id.UserId != nil && id.UserId.Name != "" {
		return id.UserId.Name
	}
	return k.UserID()
}

// primaryIdentity picks the user id to show, as go-crypto's
// PrimaryIdentity does (not revoked, then marked primary, then the newest
// self-signature) but deterministically: ties go to the user id that comes
// first in the certificate. go-crypto ranges over a map, so a key with two
// equally good user ids showed either from one run to the next.
func (k *Key) primaryIdentity() *openpgp.Identity {
	var best *openpgp.Identity
	for _, u := range k.cert.uids {
		id := k.entity.Identities[string(u.head.body)]
		if id == nil {
			continue
		}
		if best == nil || preferIdentity(best, id) {
			best = id
		}
	}
	if best == nil {
		return k.entity.PrimaryIdentity()
	}
	return best
}

// preferIdentity reports whether b should be shown rather than a.
func preferIdentity(a, b *openpgp.Identity) bool {
	if len(a.Revocations) != len(b.Revocations) {
		return len(b.Revocations) < len(a.Revocations)
	}
	if a.SelfSignature == nil || b.SelfSignature == nil {
		return a.SelfSignature == nil && b.SelfSignature != nil
	}
	pa := a.SelfSignature.IsPrimaryId != nil && *a.SelfSignature.IsPrimaryId
	pb := b.SelfSignature.IsPrimaryId != nil && *b.SelfSignature.IsPrimaryId
	if pa != pb {
		return pb
	}
	return b.SelfSignature.CreationTime.After(a.SelfSignature.CreationTime)
}

// Created returns the primary key's creation time.
func (k *Key) Created() time.Time { return k.entity.PrimaryKey.CreationTime }

// Expires returns when the primary key expires according to its newest
// self-signature, and false if it never does.
func (k *Key) Expires() (time.Time, bool) {
	sig := k.latestSelfSig()
	if sig == nil || sig.KeyLifetimeSecs == nil || *sig.KeyLifetimeSecs == 0 {
		return time.Time{}, false
	}
	return k.entity.PrimaryKey.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second), true
}

// Revocation describes a revocation of the primary key, if any: the reason
// code and when it was made. ok is false for a key that is not revoked.
func (k *Key) Revocation() (reason string, at time.Time, ok bool) {
	if len(k.entity.Revocations) == 0 {
		return "", time.Time{}, false
	}
	r := k.entity.Revocations[0]
	return revocationReason(r), r.CreationTime, true
}

// Algorithm names the primary key's algorithm and size ("rsa4096", "ed25519").
func (k *Key) Algorithm() string { return algorithmName(k.entity.PrimaryKey) }

// curveNames are GnuPG's names of the ECDSA curves.
var curveNames = map[packet.Curve]string{
	packet.CurveNistP256: "nistp256", packet.CurveNistP384: "nistp384", packet.CurveNistP521: "nistp521",
	packet.CurveSecP256k1: "secp256k1", packet.CurveBrainpoolP256: "brainpoolP256r1",
	packet.CurveBrainpoolP384: "brainpoolP384r1", packet.CurveBrainpoolP512: "brainpoolP512r1",
}

func algorithmName(pk *packet.PublicKey) string {
	bits, _ := pk.BitLength()
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly:
		return fmt.Sprintf("rsa%d", bits)
	case packet.PubKeyAlgoEdDSA, packet.PubKeyAlgoEd25519:
		return "ed25519"
	case packet.PubKeyAlgoEd448:
		return "ed448"
	case packet.PubKeyAlgoECDSA:
		// Named by curve, as GnuPG lists them: the bit length of an
		// ECDSA key is that of its encoded point (515 for P-256).
		if c, err := pk.Curve(); err == nil {
			if name, ok := curveNames[c]; ok {
				return name
			}
			return "ecdsa-" + strings.ToLower(string(c))
		}
		return "ecdsa"
	case packet.PubKeyAlgoDSA:
		return fmt.Sprintf("dsa%d", bits)
	}
	return fmt.Sprintf("algo%d", pk.PubKeyAlgo)
}

// latestSelfSig is the newest self-signature over any user id (or a direct
// key signature): GnuPG takes key expiry from it, and so does rbnode.
func (k *Key) latestSelfSig() *packet.Signature {
	var best *packet.Signature
	consider := func(s *packet.Signature) {
		if s != nil && (best == nil || s.CreationTime.After(best.CreationTime)) {
			best = s
		}
	}
	for _, id := range k.entity.Identities {
		consider(id.SelfSignature)
	}
	consider(k.entity.SelfSignature)
	return best
}

func keyIDString(id uint64) string { return fmt.Sprintf("%016X", id) }

func fingerprintString(fp []byte) string { return strings.ToUpper(hex.EncodeToString(fp)) }

// NormalizeFingerprint accepts a fingerprint with or without spaces, "0x" or
// lowercase letters and returns 40 uppercase hex digits.
func NormalizeFingerprint(s string) (string, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	s = strings.ReplaceAll(s, " ", "")
	h, err := hexField("fingerprint", s, 40)
	if err != nil {
		return "", err
	}
	return strings.ToUpper(h), nil
}

// cert is a certificate as a set of packets grouped by what they bind.
type cert struct {
	primary rawPacket
	direct  []rawPacket // direct-key signatures and key revocations
	uids    []segment
	subkeys []segment
	secret  bool
	dropped []string
}

type segment struct {
	head rawPacket
	sigs []rawPacket
}

// groupCerts sorts packets into certificates, keeping only self-signatures
// of the kinds GnuPG would accept in each place. withSecret allows secret key
// packets (key import of the node's own key).
func groupCerts(pkts []rawPacket, withSecret bool) ([]*cert, error) {
	var certs []*cert
	var cur *cert
	var seg *segment // current user id or subkey segment, nil for direct
	var segKind int
	var primaryID uint64
	for i, p := range pkts {
		switch p.tag {
		case tagPublicKey, tagSecretKey:
			if p.tag == tagSecretKey && !withSecret {
				return nil, errors.New("this is a secret key; rbnode key import takes it as the node's signing key")
			}
			pk, err := parsePrimary(p)
			if err != nil {
				return nil, fmt.Errorf("key %d: %w", len(certs)+1, err)
			}
			cur = &cert{primary: p, secret: p.tag == tagSecretKey}
			certs = append(certs, cur)
			seg, primaryID = nil, pk.KeyId
		case tagUserID, tagPublicSubkey, tagSecretSubkey, tagUserAttribute:
			if cur == nil {
				return nil, fmt.Errorf("packet %d (tag %d) comes before any primary key", i, p.tag)
			}
			if p.tag == tagSecretSubkey && !withSecret {
				return nil, errors.New("this is a secret key; rbnode key import takes it as the node's signing key")
			}
			segKind = p.tag
			switch p.tag {
			case tagUserID:
				cur.uids = append(cur.uids, segment{head: p})
				seg = &cur.uids[len(cur.uids)-1]
			case tagPublicSubkey, tagSecretSubkey:
				if err := checkKeyCost(p); err != nil {
					cur.dropped = append(cur.dropped, fmt.Sprintf("a subkey: %v", err))
					seg = &segment{} // dropped with its signatures
					break
				}
				cur.subkeys = append(cur.subkeys, segment{head: p})
				seg = &cur.subkeys[len(cur.subkeys)-1]
			default: // user attributes (photos): not needed, dropped
				seg = &segment{}
			}
		case tagSignature:
			if cur == nil {
				return nil, fmt.Errorf("signature packet %d comes before any primary key", i)
			}
			st, issuer, ok := sigTypeAndIssuer(&p)
			if !ok || issuer != primaryID && issuer != 0 {
				continue // third-party certification or unreadable: not needed
			}
			switch {
			case seg == nil:
				if st == packet.SigTypeDirectSignature || st == packet.SigTypeKeyRevocation {
					cur.direct = append(cur.direct, p)
				}
			case segKind == tagUserID:
				if st >= packet.SigTypeGenericCert && st <= packet.SigTypePositiveCert || st == packet.SigTypeCertificationRevocation {
					seg.sigs = append(seg.sigs, p)
				}
			case segKind == tagPublicSubkey || segKind == tagSecretSubkey:
				if st == packet.SigTypeSubkeyBinding || st == packet.SigTypeSubkeyRevocation {
					seg.sigs = append(seg.sigs, p)
				} else {
					cur.dropped = append(cur.dropped, fmt.Sprintf("a signature of class 0x%02x after a subkey", uint8(st)))
				}
			}
		case tagTrust, tagMarker:
			// GnuPG's local trust packets and marker packets carry nothing.
		default:
			return nil, fmt.Errorf("packet %d has tag %d, which does not belong in a key file", i, p.tag)
		}
	}
	return certs, nil
}

func parsePrimary(p rawPacket) (*packet.PublicKey, error) {
	pp, err := packet.Read(bytes.NewReader(p.whole))
	if err != nil {
		return nil, fmt.Errorf("read primary key: %w", err)
	}
	var pk *packet.PublicKey
	switch v := pp.(type) {
	case *packet.PublicKey:
		pk = v
	case *packet.PrivateKey:
		pk = &v.PublicKey
	default:
		return nil, errors.New("not a key packet")
	}
	if pk.Version != 4 {
		return nil, fmt.Errorf("v%d keys are not supported: rbnode identifies builders by v4 fingerprints", pk.Version)
	}
	if err := checkDSASize(pk); err != nil {
		return nil, err
	}
	return pk, nil
}

// DSA keys are limited to the sizes FIPS 186 defines, the largest GnuPG
// makes. Checking a DSA signature costs two exponentiations modulo p with
// exponents as long as q, both chosen by the key's author: with 64 Kibit
// parameters one check takes minutes, and keys travel in gossiped
// envelopes. (RSA verification uses the small public exponent, and the
// elliptic curves have fixed sizes.)
const (
	maxDSAPBits = 3072
	maxDSAQBits = 256
)

func checkDSASize(pk *packet.PublicKey) error {
	if k, ok := pk.PublicKey.(*dsa.PublicKey); ok && (k.P.BitLen() > maxDSAPBits || k.Q.BitLen() > maxDSAQBits) {
		return fmt.Errorf("DSA key with a %d-bit p and a %d-bit q is larger than DSA allows (%d and %d bits)", k.P.BitLen(), k.Q.BitLen(), maxDSAPBits, maxDSAQBits)
	}
	return nil
}

// checkKeyCost applies checkDSASize to a subkey packet. A packet that does
// not parse is left for go-crypto to refuse.
func checkKeyCost(p rawPacket) error {
	pp, err := packet.Read(bytes.NewReader(p.whole))
	if err != nil {
		return nil
	}
	switch v := pp.(type) {
	case *packet.PublicKey:
		return checkDSASize(v)
	case *packet.PrivateKey:
		return checkDSASize(&v.PublicKey)
	}
	return nil
}

// sigTypeAndIssuer reads a v4 signature packet's class and issuer key id
// without verifying it. Issuer 0 means the packet names none.
func sigTypeAndIssuer(p *rawPacket) (packet.SignatureType, uint64, bool) {
	pp, err := packet.Read(bytes.NewReader(p.whole))
	if err != nil {
		return 0, 0, false
	}
	s, ok := pp.(*packet.Signature)
	if !ok {
		return 0, 0, false // v3 signatures and the like
	}
	var issuer uint64
	if s.IssuerKeyId != nil {
		issuer = *s.IssuerKeyId
	}
	p.sigType, p.created = s.SigType, s.CreationTime.Unix()
	return s.SigType, issuer, true
}

// newest keeps, of a place's self-signatures, every revocation and the
// newest of the others: the only one go-crypto and GnuPG use. Older
// binding and certification signatures (one per expiry extension) would
// each cost a verification on every load.
func newest(sigs []rawPacket) []rawPacket {
	best := -1
	for i, p := range sigs {
		if isRevocation(p.sigType) {
			continue
		}
		if best < 0 || p.created > sigs[best].created {
			best = i
		}
	}
	out := make([]rawPacket, 0, len(sigs))
	for i, p := range sigs {
		if i == best || isRevocation(p.sigType) {
			out = append(out, p)
		}
	}
	return out
}

func isRevocation(t packet.SignatureType) bool {
	return t == packet.SigTypeKeyRevocation || t == packet.SigTypeSubkeyRevocation || t == packet.SigTypeCertificationRevocation
}

func (c *cert) clone() *cert {
	n := *c
	n.direct = slices.Clone(c.direct)
	n.uids = cloneSegs(c.uids)
	n.subkeys = cloneSegs(c.subkeys)
	n.dropped = nil
	return &n
}

func cloneSegs(s []segment) []segment {
	out := make([]segment, len(s))
	for i, x := range s {
		out[i] = segment{head: x.head, sigs: slices.Clone(x.sigs)}
	}
	return out
}

// merge adds o's packets that c lacks.
func (c *cert) merge(o *cert) {
	c.direct = unionPackets(c.direct, o.direct)
	c.uids = mergeSegs(c.uids, o.uids)
	c.subkeys = mergeSegs(c.subkeys, o.subkeys)
}

func mergeSegs(a, b []segment) []segment {
	for _, s := range b {
		found := false
		for i := range a {
			if bytes.Equal(a[i].head.body, s.head.body) {
				a[i].sigs = unionPackets(a[i].sigs, s.sigs)
				found = true
				break
			}
		}
		if !found {
			a = append(a, segment{head: s.head, sigs: slices.Clone(s.sigs)})
		}
	}
	return a
}

func unionPackets(a, b []rawPacket) []rawPacket {
	for _, p := range b {
		if !slices.ContainsFunc(a, func(q rawPacket) bool { return bytes.Equal(q.whole, p.whole) }) {
			a = append(a, p)
		}
	}
	return a
}

func (c *cert) bytes(uids, subkeys []segment) []byte {
	var b bytes.Buffer
	b.Write(c.primary.whole)
	for _, p := range newest(c.direct) {
		b.Write(p.whole)
	}
	for _, s := range append(slices.Clip(uids), subkeys...) {
		b.Write(s.head.whole)
		for _, p := range newest(s.sigs) {
			b.Write(p.whole)
		}
	}
	return b.Bytes()
}

// build turns the packets into a go-crypto entity. Where the whole does not
// parse, each user id and subkey is tried on its own and the ones without a
// valid binding are dropped, as GnuPG does.
func (c *cert) build() (*Key, error) {
	raw := c.bytes(c.uids, c.subkeys)
	e, err := readEntity(raw)
	dropped := slices.Clone(c.dropped)
	if err != nil {
		// The trials leave out the direct signatures, and try each subkey
		// with one user id carrying one self-signature, so their work stays
		// linear in the size of the key: with everything in every trial, a
		// key of n user ids, n revocations and one bad subkey took n²
		// signature checks (a 150 KiB key, six seconds).
		trial := &cert{primary: c.primary}
		var uids, subs []segment
		for _, u := range c.uids {
			if _, err := readEntity(trial.bytes([]segment{u}, nil)); err == nil {
				uids = append(uids, u)
			} else {
				dropped = append(dropped, fmt.Sprintf("user id %q: %v", u.head.body, err))
			}
		}
		if len(uids) == 0 {
			fp := "?"
			if pk, perr := parsePrimary(c.primary); perr == nil {
				fp = fingerprintString(pk.Fingerprint)
			}
			return nil, fmt.Errorf("key %s has no user id with a valid self-signature: %w", fp, err)
		}
		bind := uids[0]
		for _, p := range uids[0].sigs {
			one := segment{head: uids[0].head, sigs: []rawPacket{p}}
			if _, err := readEntity(trial.bytes([]segment{one}, nil)); err == nil {
				bind = one
				break
			}
		}
		for _, s := range c.subkeys {
			if _, err := readEntity(trial.bytes([]segment{bind}, []segment{s})); err == nil {
				subs = append(subs, s)
			} else {
				dropped = append(dropped, fmt.Sprintf("a subkey: %v", err))
			}
		}
		raw = c.bytes(uids, subs)
		if e, err = readEntity(raw); err != nil {
			return nil, fmt.Errorf("read key: %w", err)
		}
		c = &cert{primary: c.primary, direct: c.direct, uids: uids, subkeys: subs, secret: c.secret}
	}
	k := &Key{
		Fingerprint: fingerprintString(e.PrimaryKey.Fingerprint),
		entity:      e,
		cert:        c,
		raw:         raw,
		Dropped:     dropped,
	}
	return k, nil
}

func readEntity(raw []byte) (*openpgp.Entity, error) {
	r := packet.NewReader(bytes.NewReader(raw))
	e, err := openpgp.ReadEntity(r)
	if err != nil {
		return nil, err
	}
	if len(e.Identities) == 0 {
		return nil, errors.New("no user id with a valid self-signature")
	}
	return e, nil
}

// sortKeys orders keys by fingerprint, the order every listing uses.
func sortKeys(ks []*Key) {
	sort.Slice(ks, func(i, j int) bool { return ks[i].Fingerprint < ks[j].Fingerprint })
}
