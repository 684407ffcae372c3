package attest_test

import (
	"bytes"
	"crypto/sha1"
	"fmt"
	mathbits "math/bits"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/rbnode/rbnode/attest"
)

// TestReadKeysFiles: key files hold one or several keys, armoured or not,
// with text around the blocks; copies of one key become one.
func TestReadKeysFiles(t *testing.T) {
	t.Parallel()
	a, b := testKey(t, "Anna").Public(), testKey(t, "Bert").Public()
	cases := []struct {
		name string
		in   []byte
		want []string // fingerprints, in file order
	}{
		{"binary", a.Bytes(), []string{a.Fingerprint}},
		{"armoured", a.Armored(), []string{a.Fingerprint}},
		{"two armour blocks", append(a.Armored(), b.Armored()...), []string{a.Fingerprint, b.Fingerprint}},
		{"two binary keys", append(bytes.Clone(b.Bytes()), a.Bytes()...), []string{b.Fingerprint, a.Fingerprint}},
		{"a key twice", append(a.Armored(), a.Armored()...), []string{a.Fingerprint}},
		{"text around the blocks", []byte("Anna's key:\n" + string(a.Armored()) + "\nand Bert's:\n" + string(b.Armored()) + "-- \nsig\n"), []string{a.Fingerprint, b.Fingerprint}},
		{"CRLF armour", bytes.ReplaceAll(a.Armored(), []byte("\n"), []byte("\r\n")), []string{a.Fingerprint}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ks, err := attest.ReadKeys(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range ks {
				got = append(got, k.Fingerprint)
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("keys %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := attest.MergeKeys(a, b); err == nil || !strings.Contains(err.Error(), "different keys") {
		t.Errorf("MergeKeys of two keys: %v", err)
	}
	kr := attest.NewKeyring(a, b, a)
	if kr.Len() != 2 || kr.Get(a.Fingerprint) == nil || kr.Keys()[0].Fingerprint > kr.Keys()[1].Fingerprint {
		t.Errorf("keyring of a, b, a: %d keys", kr.Len())
	}
}

// TestKeyFacts: what Key reports about a key, for display.
func TestKeyFacts(t *testing.T) {
	t.Parallel()
	sk := testKey(t, "Facts")
	k := sk.Public()
	if k.UserID() != "Facts <facts@example.org>" || k.Name() != "Facts" || k.Algorithm() != "ed25519" {
		t.Errorf("user id %q, name %q, algorithm %q", k.UserID(), k.Name(), k.Algorithm())
	}
	if !k.Created().Equal(day(2024, 1, 1)) {
		t.Errorf("created %v", k.Created())
	}
	if _, ok := k.Expires(); ok {
		t.Error("a key made without expiry expires")
	}
	if _, _, ok := k.Revocation(); ok {
		t.Error("a fresh key is revoked")
	}
	if ids := k.KeyIDs(); len(ids) != 2 || ids[0] != k.KeyID() || !strings.HasSuffix(k.Fingerprint, k.KeyID()) {
		t.Errorf("key ids %v, key id %s, fingerprint %s", ids, k.KeyID(), k.Fingerprint)
	}
	for in, want := range map[string]string{
		strings.ToLower(k.Fingerprint): k.Fingerprint,
		"0x" + k.Fingerprint:           k.Fingerprint,
		spaced(k.Fingerprint):          k.Fingerprint,
		k.Fingerprint[:39]:             "",
		k.Fingerprint[:39] + "G":       "",
		"0x" + k.Fingerprint + "00":    "",
	} {
		got, err := attest.NormalizeFingerprint(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("NormalizeFingerprint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// spaced writes a fingerprint as gpg prints it, in groups of four.
func spaced(fp string) string {
	var parts []string
	for i := 0; i < len(fp); i += 4 {
		parts = append(parts, fp[i:i+4])
	}
	return strings.Join(parts, " ")
}

// TestReadKeysLinear: a key with one bad subkey binding is read by trying
// its parts one by one; that must stay linear in the size of the key. A
// key of 800 user ids, 800 revocations and a bad subkey (300 KiB, which
// fits in a gossiped envelope) took 800² signature checks, about 25 s of
// CPU; now it takes well under a second.
func TestReadKeysLinear(t *testing.T) {
	t.Parallel()
	const n = 800
	e := pgpEntity(t, day(2024, 1, 1), 0)
	cfg := pgpConfig(day(2024, 1, 2), 0)
	for i := range n {
		if err := e.AddUserId(fmt.Sprintf("uid %d", i), "", "", cfg); err != nil {
			t.Fatal(err)
		}
		if err := e.RevokeKey(packet.KeySuperseded, "", cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.AddSigningSubkey(cfg); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	b[len(b)-3] ^= 1 // in the last packet: the signing subkey's binding
	start := time.Now()
	ks, err := attest.ReadKeys(b)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks[0].KeyIDs()) != 2 || len(ks[0].Dropped) != 1 || !strings.Contains(ks[0].Dropped[0], "subkey") {
		t.Errorf("key ids %v, dropped %q: want the bad signing subkey dropped and the rest kept", ks[0].KeyIDs(), ks[0].Dropped)
	}
	if _, _, revoked := ks[0].Revocation(); !revoked {
		t.Error("the revocations were lost")
	}
	// Linear work is about 2n signature checks (~0.1 s); quadratic is n².
	if elapsed > 5*time.Second {
		t.Errorf("ReadKeys took %v for a %d-byte key", elapsed, len(b))
	}
}

// TestReadKeysRefusesHugeDSA: checking a DSA signature costs two
// exponentiations modulo p with exponents as long as q, both chosen by the
// key's author: with 64 Kibit parameters one check takes minutes. Such a
// key (here 8 Kibit, so the test stays quick either way) is refused before
// any signature of it is checked.
func TestReadKeysRefusesHugeDSA(t *testing.T) {
	t.Parallel()
	rnd := func(bits int) []byte {
		b := make([]byte, bits/8)
		for i := range b {
			b[i] = byte(i*131 + 7)
		}
		b[0] |= 0x80
		b[len(b)-1] |= 1
		return b
	}
	mpi := func(b []byte) []byte {
		bits := 8*(len(b)-1) + mathbits.Len8(b[0])
		return append([]byte{byte(bits >> 8), byte(bits)}, b...)
	}
	frame := func(tag byte, body []byte) []byte {
		return append([]byte{0xc0 | tag, 0xff, byte(len(body) >> 24), byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	}
	key := []byte{4, 0x65, 0, 0, 0, 17}                  // v4, created 2023-11, DSA
	for _, bits := range []int{8192, 8192, 8184, 8184} { // p, q, g, y
		key = append(key, mpi(rnd(bits))...)
	}
	fp := sha1.Sum(append([]byte{0x99, byte(len(key) >> 8), byte(len(key))}, key...))
	uid := []byte("Huge DSA <dsa@example.org>")
	sig := []byte{4, 0x13, 17, 8, 0, 6, 5, 2, 0x65, 0, 0, 1, 0, 10, 9, 16}
	sig = append(sig, fp[12:]...)
	sig = append(sig, 0xab, 0xcd)
	sig = append(append(sig, mpi(rnd(4096))...), mpi(rnd(4000))...)
	in := bytes.Join([][]byte{frame(6, key), frame(13, uid), frame(2, sig)}, nil)

	start := time.Now()
	_, err := attest.ReadKeys(in)
	wantErr(t, err, nil, "DSA", "8192")
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("refusing took %v: a signature was checked", d)
	}

	// As a signing subkey of a good key, it is dropped with its binding.
	good := testKey(t, "DSA Subkey Host").Public()
	sub := bytes.Clone(key)
	binding := bytes.Clone(sig)
	binding[1] = 0x18            // subkey binding
	binding[2] = good.Bytes()[5] // the primary's algorithm
	ks, err := attest.ReadKeys(bytes.Join([][]byte{good.Bytes(), frame(14, sub), frame(2, binding)}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(ks[0].KeyIDs()) != len(good.KeyIDs()) || len(ks[0].Dropped) != 1 || !strings.Contains(ks[0].Dropped[0], "DSA") {
		t.Errorf("key ids %v, dropped %q", ks[0].KeyIDs(), ks[0].Dropped)
	}
}

// TestKeyAlgorithm: keys are named as GnuPG lists them (TestGuixSigsOracle
// compares every real builder key with gpg itself).
func TestKeyAlgorithm(t *testing.T) {
	t.Parallel()
	for curve, want := range map[packet.Curve]string{
		packet.CurveNistP256: "nistp256", packet.CurveNistP384: "nistp384",
		packet.CurveNistP521: "nistp521", packet.CurveSecP256k1: "secp256k1",
	} {
		t.Run(want, func(t *testing.T) {
			t.Parallel()
			cfg := pgpConfig(day(2024, 1, 1), 0)
			cfg.Algorithm, cfg.Curve = packet.PubKeyAlgoECDSA, curve
			e, err := openpgp.NewEntity("ECDSA", "", "ecdsa@example.org", cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := publicKey(t, e).Algorithm(); got != want {
				t.Errorf("Algorithm() = %q, want %q", got, want)
			}
		})
	}
}
