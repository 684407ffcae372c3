package attest_test

import (
	"bytes"
	"crypto"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/rbnode/rbnode/attest"
)

const year = 365 * 24 * time.Hour

// TestGPGExpiryKeepsHistory: signatures GnuPG made while its key was valid
// still count after the key expired; a copy of the key whose newer
// self-signature extended the expiry covers signatures made in the
// extension, and an older copy does not.
func TestGPGExpiryKeepsHistory(t *testing.T) {
	t.Parallel()
	g := newGPG(t)
	t0 := day(2020, time.January, 1)
	fpr := g.genKey("Expiring <x@example.org>", "ed25519", "sign", "1y", "", at(t0)...)
	early := g.sign(fpr, sampleManifest, append(at(t0.Add(150*24*time.Hour)), "--armor")...)
	oldCopy := readKey(t, g.must(nil, "--export", fpr))
	if exp, ok := oldCopy.Expires(); !ok || exp.Year() != 2020 {
		t.Fatalf("key expires %v (%v), want in 2020", exp, ok)
	}

	g.must(nil, append(at(day(2020, time.December, 1)), "--quick-set-expire", fpr, "2022-01-01")...)
	extended := g.sign(fpr, sampleManifest, append(at(day(2021, time.June, 1)), "--armor")...)
	newCopy := readKey(t, g.must(nil, "--export", fpr))
	if exp, ok := newCopy.Expires(); !ok || exp.Year() != 2022 {
		t.Fatalf("extended key expires %v (%v), want in 2022", exp, ok)
	}

	// gpg itself calls both good signatures of an expired key.
	for _, sig := range [][]byte{early, extended} {
		if v := g.verify(sig, sampleManifest); !v.ok || !v.has("EXPKEYSIG") {
			t.Fatalf("gpg: %+v, want EXPKEYSIG", v)
		}
	}
	// The same with a signing subkey whose own expiry is extended.
	pfpr := g.genKey("Subkey Expiring <s@example.org>", "ed25519", "cert", "never", "", at(t0)...)
	sub := g.addKey(pfpr, "ed25519", "sign", "1y", "", at(t0)...)
	subEarly := g.sign(sub+"!", sampleManifest, append(at(t0.Add(150*24*time.Hour)), "--armor")...)
	subOld := readKey(t, g.must(nil, "--export", pfpr))
	g.must(nil, append(at(day(2020, time.December, 1)), "--quick-set-expire", pfpr, "2022-01-01", sub)...)
	subExtended := g.sign(sub+"!", sampleManifest, append(at(day(2021, time.June, 1)), "--armor")...)
	subNew := readKey(t, g.must(nil, "--export", pfpr))

	merged := bytes.Join([][]byte{oldCopy.Bytes(), newCopy.Bytes()}, nil)
	cases := []struct {
		name string
		sig  []byte
		keys []*attest.Key
		want attest.Status
	}{
		{"signed while valid, old copy", early, []*attest.Key{oldCopy}, attest.StatusGood},
		{"signed while valid, extended copy", early, []*attest.Key{newCopy}, attest.StatusGood},
		{"signed in the extension, extended copy", extended, []*attest.Key{newCopy}, attest.StatusGood},
		{"signed in the extension, old copy", extended, []*attest.Key{oldCopy}, attest.StatusExpiredKey},
		{"signed in the extension, keyring merges both copies", extended, []*attest.Key{oldCopy, newCopy}, attest.StatusGood},
		{"signed in the extension, both copies in one file", extended, []*attest.Key{readKey(t, merged)}, attest.StatusGood},
		{"subkey: signed while valid, old copy", subEarly, []*attest.Key{subOld}, attest.StatusGood},
		{"subkey: signed in the extension, extended copy", subExtended, []*attest.Key{subNew}, attest.StatusGood},
		{"subkey: signed in the extension, old copy", subExtended, []*attest.Key{subOld}, attest.StatusExpiredKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := fpr
			if strings.HasPrefix(tc.name, "subkey") {
				want = pfpr
			}
			wantStatus(t, verify(t, sampleManifest, tc.sig, testNow, tc.keys...), tc.want, want)
		})
	}
}

// TestGPGRevocationReasons: a key GnuPG revoked (gpg --gen-revoke) as
// compromised or with no reason voids even what it signed before; retired
// or superseded keeps what came before the revocation. gpg signs before the
// revocation; go-crypto signs after it with the same secret key, since gpg
// refuses.
func TestGPGRevocationReasons(t *testing.T) {
	t.Parallel()
	t0 := day(2020, time.January, 1)
	revokedAt := t0.Add(year)
	cases := []struct {
		reason        int
		name          string
		before, after attest.Status
	}{
		{0, "no reason given", attest.StatusRevokedKey, attest.StatusRevokedKey},
		{1, "compromised", attest.StatusRevokedKey, attest.StatusRevokedKey},
		{2, "superseded", attest.StatusGood, attest.StatusRevokedKey},
		{3, "retired", attest.StatusGood, attest.StatusRevokedKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGPG(t)
			fpr := g.genKey("Revoked <r@example.org>", "ed25519", "sign", "never", "", at(t0)...)
			before := g.sign(fpr, sampleManifest, append(at(revokedAt.Add(-30*24*time.Hour)), "--armor")...)
			g.revoke(fpr, tc.reason, revokedAt)
			e := g.secretEntity(fpr)
			after := signAt(t, e.PrivateKey, sampleManifest, revokedAt.Add(30*24*time.Hour), crypto.SHA256)
			key := readKey(t, g.must(nil, "--export", fpr))
			reason, when, ok := key.Revocation()
			if !ok || reason != tc.name || !when.Equal(revokedAt) {
				t.Errorf("Revocation() = %q, %v, %v; want %q at %v", reason, when, ok, tc.name, revokedAt)
			}
			v := verify(t, sampleManifest, before, testNow, key)
			wantStatus(t, v, tc.before, fpr)
			if tc.before == attest.StatusRevokedKey && !strings.Contains(v.Detail, tc.name) {
				t.Errorf("detail %q does not give the reason %q", v.Detail, tc.name)
			}
			wantStatus(t, verify(t, sampleManifest, after, testNow, key), tc.after, fpr)
			if gv := g.verify(before, sampleManifest); !gv.has("REVKEYSIG") {
				t.Errorf("gpg does not see the revocation: %+v", gv)
			}
		})
	}
}

// revocation reasons as go-crypto writes them; nil writes no reason
// subpacket at all.
func reasonPtr(r packet.ReasonForRevocation) *packet.ReasonForRevocation { return &r }

// TestRevocationRule: the revocation rule for primary keys and signing
// subkeys alike, with the reasons gpg cannot write: none at all, and one
// rbnode does not know.
func TestRevocationRule(t *testing.T) {
	t.Parallel()
	t0 := day(2021, time.March, 1)
	revokedAt := t0.Add(year)
	reasons := []struct {
		name          string
		reason        *packet.ReasonForRevocation
		before, after attest.Status
	}{
		{"no reason subpacket", nil, attest.StatusRevokedKey, attest.StatusRevokedKey},
		{"no reason", reasonPtr(packet.NoReason), attest.StatusRevokedKey, attest.StatusRevokedKey},
		{"compromised", reasonPtr(packet.KeyCompromised), attest.StatusRevokedKey, attest.StatusRevokedKey},
		{"superseded", reasonPtr(packet.KeySuperseded), attest.StatusGood, attest.StatusRevokedKey},
		{"retired", reasonPtr(packet.KeyRetired), attest.StatusGood, attest.StatusRevokedKey},
		{"unknown reason 100", reasonPtr(100), attest.StatusRevokedKey, attest.StatusRevokedKey},
	}
	for _, subkey := range []bool{false, true} {
		for _, tc := range reasons {
			name := "primary " + tc.name
			if subkey {
				name = "subkey " + tc.name
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := pgpEntity(t, t0, 0)
				signer := e.PrivateKey
				cfg := pgpConfig(revokedAt, 0)
				if subkey {
					if err := e.AddSigningSubkey(pgpConfig(t0, 0)); err != nil {
						t.Fatal(err)
					}
					sk := &e.Subkeys[len(e.Subkeys)-1]
					signer = sk.PrivateKey
					sk.Revocations = append(sk.Revocations, revocation(t, e, sk.PublicKey, tc.reason, cfg))
				} else {
					e.Revocations = append(e.Revocations, revocation(t, e, nil, tc.reason, cfg))
				}
				key := publicKey(t, e)
				for _, s := range []struct {
					when time.Time
					want attest.Status
				}{
					{t0.Add(24 * time.Hour), tc.before},
					{revokedAt.Add(-time.Second), tc.before},
					{revokedAt, tc.after},
					{revokedAt.Add(24 * time.Hour), tc.after},
				} {
					v := verify(t, sampleManifest, signAt(t, signer, sampleManifest, s.when, crypto.SHA256), testNow, key)
					if v.Status != s.want {
						t.Errorf("signed %v: %q (%s), want %q", s.when, v.Status, v.Detail, s.want)
					}
					if v.Fingerprint != key.Fingerprint {
						t.Errorf("signed %v: fingerprint %s, want the primary %s", s.when, v.Fingerprint, key.Fingerprint)
					}
				}
			})
		}
	}
}

// revocation makes a key revocation (sub nil) or a subkey revocation
// signature by e's primary key, with reason (nil: no reason subpacket).
func revocation(t testing.TB, e *openpgp.Entity, sub *packet.PublicKey, reason *packet.ReasonForRevocation, cfg *packet.Config) *packet.Signature {
	t.Helper()
	sig := &packet.Signature{
		Version: 4, PubKeyAlgo: e.PrimaryKey.PubKeyAlgo, Hash: crypto.SHA256,
		CreationTime: cfg.Now(), IssuerKeyId: &e.PrimaryKey.KeyId, RevocationReason: reason,
	}
	var err error
	if sub == nil {
		sig.SigType = packet.SigTypeKeyRevocation
		err = sig.RevokeKey(e.PrimaryKey, e.PrivateKey, cfg)
	} else {
		sig.SigType = packet.SigTypeSubkeyRevocation
		err = sig.RevokeSubkey(sub, e.PrivateKey, cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestSignatureTimes: a key's lifetime, its signing subkey's lifetime and
// the clock are all judged at the signature's own creation time.
func TestSignatureTimes(t *testing.T) {
	t.Parallel()
	t0 := day(2019, time.May, 5)
	expiring := pgpEntity(t, t0, year)
	withSub := pgpEntity(t, t0, 0)
	if err := withSub.AddSigningSubkey(pgpConfig(t0.Add(24*time.Hour), year)); err != nil {
		t.Fatal(err)
	}
	forever := pgpEntity(t, t0, 0)
	sub := withSub.Subkeys[len(withSub.Subkeys)-1]
	cases := []struct {
		name string
		e    *openpgp.Entity
		priv *packet.PrivateKey
		when time.Time
		hash crypto.Hash
		want attest.Status
	}{
		{"while valid, key expired since", expiring, expiring.PrivateKey, t0.Add(30 * 24 * time.Hour), crypto.SHA256, attest.StatusGood},
		{"last second before expiry", expiring, expiring.PrivateKey, t0.Add(year - time.Second), crypto.SHA256, attest.StatusGood},
		{"at expiry", expiring, expiring.PrivateKey, t0.Add(year), crypto.SHA256, attest.StatusExpiredKey},
		{"after expiry", expiring, expiring.PrivateKey, t0.Add(2 * year), crypto.SHA256, attest.StatusExpiredKey},
		{"before the key was made", expiring, expiring.PrivateKey, t0.Add(-time.Hour), crypto.SHA256, attest.StatusInvalidKey},
		{"subkey while valid", withSub, sub.PrivateKey, t0.Add(60 * 24 * time.Hour), crypto.SHA256, attest.StatusGood},
		{"subkey after its expiry", withSub, sub.PrivateKey, t0.Add(2 * year), crypto.SHA256, attest.StatusExpiredKey},
		{"subkey before it was made", withSub, sub.PrivateKey, t0.Add(time.Hour), crypto.SHA256, attest.StatusInvalidKey},
		{"dated within the clock skew", forever, forever.PrivateKey, testNow.Add(attest.ClockSkew), crypto.SHA256, attest.StatusGood},
		{"dated beyond the clock skew", forever, forever.PrivateKey, testNow.Add(attest.ClockSkew + time.Second), crypto.SHA256, attest.StatusFuture},
		{"dated a year ahead", forever, forever.PrivateKey, testNow.Add(year), crypto.SHA256, attest.StatusFuture},
		{"SHA-1", forever, forever.PrivateKey, t0.Add(time.Hour), crypto.SHA1, attest.StatusWeakHash},
		{"SHA-512", forever, forever.PrivateKey, t0.Add(time.Hour), crypto.SHA512, attest.StatusGood},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key := publicKey(t, tc.e)
			v := verify(t, sampleManifest, signAt(t, tc.priv, sampleManifest, tc.when, tc.hash), testNow, key)
			wantStatus(t, v, tc.want, key.Fingerprint)
			if !v.SignedAt.Equal(tc.when) {
				t.Errorf("SignedAt %v, want %v", v.SignedAt, tc.when)
			}
		})
	}
}

// TestGPGSHA1Refused: a document signature gpg makes with SHA-1 verifies
// mathematically but does not count.
func TestGPGSHA1Refused(t *testing.T) {
	t.Parallel()
	g := newGPG(t)
	for _, algo := range []string{"rsa3072", "ed25519"} {
		fpr := g.genKey(algo+" <sha1@example.org>", algo, "sign", "never", "")
		key := readKey(t, g.must(nil, "--export", fpr))
		sig := g.sign(fpr+"!", sampleManifest, "--digest-algo", "SHA1", "--armor")
		v := verify(t, sampleManifest, sig, time.Now(), key)
		wantStatus(t, v, attest.StatusWeakHash, fpr)
		if !strings.Contains(v.Detail, "SHA-1") {
			t.Errorf("%s: detail %q does not name SHA-1", algo, v.Detail)
		}
		wantStatus(t, verify(t, sampleManifest, g.sign(fpr+"!", sampleManifest, "--digest-algo", "SHA256"), time.Now(), key), attest.StatusGood, fpr)
	}
}

// TestKeyUsage: a key or subkey not marked for signing does not count,
// though the mathematics holds.
func TestKeyUsage(t *testing.T) {
	t.Parallel()
	t0 := day(2022, time.April, 1)
	// A primary key whose self-signature says certify only.
	certOnly := pgpEntity(t, t0, 0)
	for _, id := range certOnly.Identities {
		id.SelfSignature.FlagSign = false
		if err := id.SelfSignature.SignUserId(id.UserId.Id, certOnly.PrimaryKey, certOnly.PrivateKey, pgpConfig(t0, 0)); err != nil {
			t.Fatal(err)
		}
		id.Signatures = []*packet.Signature{id.SelfSignature}
	}
	// go-crypto's RSA key comes with an RSA encryption subkey, which can
	// sign mathematically but is not bound for it.
	cfg := pgpConfig(t0, 0)
	cfg.Algorithm, cfg.RSABits = packet.PubKeyAlgoRSA, 2048
	withEnc, err := openpgp.NewEntity("Encryption Subkey", "", "enc@example.org", cfg)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		e    *openpgp.Entity
		priv *packet.PrivateKey
		want attest.Status
	}{
		{"primary marked certify only", certOnly, certOnly.PrivateKey, attest.StatusInvalidKey},
		{"encryption subkey", withEnc, withEnc.Subkeys[0].PrivateKey, attest.StatusInvalidKey},
		{"the same key's primary", withEnc, withEnc.PrivateKey, attest.StatusGood},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key := publicKey(t, tc.e)
			v := verify(t, sampleManifest, signAt(t, tc.priv, sampleManifest, t0.Add(time.Hour), crypto.SHA256), testNow, key)
			wantStatus(t, v, tc.want, key.Fingerprint)
			if tc.want != attest.StatusGood && !strings.Contains(v.Detail, "not marked for signing") {
				t.Errorf("detail %q does not say why", v.Detail)
			}
		})
	}
}
