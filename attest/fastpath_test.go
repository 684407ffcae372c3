package attest

// Differential tests, fuzz targets and benchmarks of the fast verification
// paths (rsa.go, secp256k1.go) against the implementations they replace.
// They use unexported functions, hence package attest.

import (
	"bytes"
	"crypto"
	_ "crypto/md5" // crypto.MD5, a hash verifyRSA must refuse
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// rsaHashes are the hashes verifyRSA supports.
var rsaHashes = []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512}

var (
	rsaKeysOnce sync.Once
	rsaKeys     map[int]*rsa.PrivateKey
)

// testRSAKeys generates one key per size, once per test binary.
func testRSAKeys(tb testing.TB) map[int]*rsa.PrivateKey {
	tb.Helper()
	rsaKeysOnce.Do(func() {
		sizes := []int{1024, 1025, 1536, 2048, 3072, 4096}
		keys := make([]*rsa.PrivateKey, len(sizes))
		var wg sync.WaitGroup
		for i, bits := range sizes {
			wg.Go(func() {
				k, err := rsa.GenerateKey(rand.Reader, bits)
				if err != nil {
					panic(err)
				}
				keys[i] = k
			})
		}
		wg.Wait()
		rsaKeys = map[int]*rsa.PrivateKey{}
		for i, bits := range sizes {
			rsaKeys[bits] = keys[i]
		}
	})
	return rsaKeys
}

// stdlibRSA is the answer go-crypto's own path gives: crypto/rsa, with the
// signature MPI left-padded to the modulus size (an MPI drops leading
// zero bytes).
func stdlibRSA(pub *rsa.PublicKey, h crypto.Hash, digest, sig []byte) error {
	if k := (pub.N.BitLen() + 7) / 8; len(sig) < k {
		sig = append(make([]byte, k-len(sig)), sig...)
	}
	return rsa.VerifyPKCS1v15(pub, h, digest, sig)
}

// checkRSAAgrees fails if verifyRSA and crypto/rsa disagree. For hashes
// verifyRSA does not support it must refuse.
func checkRSAAgrees(t testing.TB, pub *rsa.PublicKey, h crypto.Hash, digest, sig []byte) (ok bool) {
	t.Helper()
	fast := verifyRSA(pub, h, digest, sig)
	if _, supported := digestInfoPrefix[h]; !supported {
		if fast == nil {
			t.Errorf("verifyRSA accepts a signature with unsupported hash %v", h)
		}
		return false
	}
	slow := stdlibRSA(pub, h, digest, sig)
	if (fast == nil) != (slow == nil) {
		t.Errorf("%d-bit key, %v, %d-byte signature: verifyRSA says %v, crypto/rsa says %v", pub.N.BitLen(), h, len(sig), fast, slow)
	}
	return fast == nil
}

func hashOf(h crypto.Hash, msg []byte) []byte {
	hh := h.New()
	hh.Write(msg)
	return hh.Sum(nil)
}

// TestVerifyRSAMatchesStdlib: verifyRSA accepts exactly what crypto/rsa
// accepts, for valid signatures and for every kind of damage.
func TestVerifyRSAMatchesStdlib(t *testing.T) {
	t.Parallel()
	for bits, priv := range testRSAKeys(t) {
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			t.Parallel()
			pub := &priv.PublicKey
			k := (bits + 7) / 8
			other := testRSAKeys(t)[2048]
			if bits == 2048 {
				other = testRSAKeys(t)[3072]
			}
			for _, h := range rsaHashes {
				digest := hashOf(h, []byte("document "+h.String()))
				sig, err := rsa.SignPKCS1v15(nil, priv, h, digest)
				if err != nil {
					t.Fatal(err)
				}
				if !checkRSAAgrees(t, pub, h, digest, sig) {
					t.Errorf("%v: a valid signature is refused", h)
				}
				cases := map[string][]byte{
					"sig = 0":     {0},
					"sig = 1":     {1},
					"sig = N":     pub.N.Bytes(),
					"sig = N+1":   new(big.Int).Add(pub.N, big.NewInt(1)).Bytes(),
					"sig = N-1":   new(big.Int).Sub(pub.N, big.NewInt(1)).Bytes(),
					"sig + N":     new(big.Int).Add(new(big.Int).SetBytes(sig), pub.N).Bytes(),
					"all 0xff":    bytes.Repeat([]byte{0xff}, k),
					"short":       sig[:len(sig)-1],
					"long, zero":  append([]byte{0}, sig...),
					"long, tail":  append(bytes.Clone(sig), 0),
					"empty":       nil,
					"other key's": mustSignRSA(t, other, h, digest),
				}
				for i := 0; i < len(sig)*8; i += 8*len(sig)/7 + 1 {
					b := bytes.Clone(sig)
					b[i/8] ^= 1 << (i % 8)
					cases[fmt.Sprintf("bit %d flipped", i)] = b
				}
				for name, s := range cases {
					if checkRSAAgrees(t, pub, h, digest, s) && name != "long, zero" {
						t.Errorf("%v, %s: accepted", h, name)
					}
				}
				// Right signature, wrong digest or wrong hash.
				checkRSAAgrees(t, pub, h, flipBit(digest, 3), sig)
				for _, wrong := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA512, crypto.SHA512_256, crypto.SHA3_256, crypto.MD5} {
					if wrong != h && checkRSAAgrees(t, pub, wrong, hashOf(wrong, []byte("document "+h.String())), sig) {
						t.Errorf("%v signature accepted as %v", h, wrong)
					}
					if wrong != h && wrong.Size() == h.Size() && checkRSAAgrees(t, pub, wrong, digest, sig) {
						t.Errorf("%v signature accepted as %v over the same digest", h, wrong)
					}
				}
			}
		})
	}
}

func mustSignRSA(t testing.TB, priv *rsa.PrivateKey, h crypto.Hash, digest []byte) []byte {
	t.Helper()
	sig, err := rsa.SignPKCS1v15(nil, priv, h, digest)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func flipBit(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i/8] ^= 1 << (i % 8)
	return c
}

// TestVerifyRSALeadingZero: a signature whose value has a leading zero byte
// is shorter than the modulus as an OpenPGP MPI; both paths accept it, and
// both accept it padded.
func TestVerifyRSALeadingZero(t *testing.T) {
	t.Parallel()
	priv := testRSAKeys(t)[1024]
	for i := 0; ; i++ {
		digest := hashOf(crypto.SHA256, []byte(fmt.Sprint("message ", i)))
		sig := mustSignRSA(t, priv, crypto.SHA256, digest)
		if sig[0] != 0 {
			continue
		}
		if !checkRSAAgrees(t, &priv.PublicKey, crypto.SHA256, digest, bytes.TrimLeft(sig, "\x00")) ||
			!checkRSAAgrees(t, &priv.PublicKey, crypto.SHA256, digest, sig) {
			t.Error("a valid signature with a leading zero byte is refused")
		}
		return
	}
}

// TestVerifyRSABadKeys: keys crypto/rsa refuses are refused. With an even
// modulus and e = 3, s^3 - EM is a "modulus" for which s is a perfect
// "signature"; crypto/rsa refuses the key, and so must verifyRSA.
func TestVerifyRSABadKeys(t *testing.T) {
	t.Parallel()
	digest := hashOf(crypto.SHA256, []byte("forged"))
	const k = 128
	em := make([]byte, k)
	em[1] = 1
	prefix := digestInfoPrefix[crypto.SHA256]
	for i := 2; i < k-len(prefix)-len(digest)-1; i++ {
		em[i] = 0xff
	}
	copy(em[k-len(prefix)-len(digest):], prefix)
	copy(em[k-len(digest):], digest)
	emInt := new(big.Int).SetBytes(em)
	for _, parity := range []uint{0, 1} {
		// s close to the cube root of 2^1023.5, with s^3 - EM of the
		// wanted parity.
		s := new(big.Int).Lsh(big.NewInt(1), 341)
		s.Add(s, new(big.Int).Lsh(big.NewInt(1), 339))
		for {
			n := new(big.Int).Sub(new(big.Int).Exp(s, big.NewInt(3), nil), emInt)
			if n.Bit(0) == parity && n.BitLen() == 8*k {
				pub := &rsa.PublicKey{N: n, E: 3}
				fast := verifyRSA(pub, crypto.SHA256, digest, s.Bytes())
				slow := stdlibRSA(pub, crypto.SHA256, digest, s.Bytes())
				if (fast == nil) != (slow == nil) {
					t.Errorf("modulus with parity %d: verifyRSA says %v, crypto/rsa says %v", parity, fast, slow)
				}
				if parity == 1 && fast != nil {
					t.Errorf("the constructed signature should verify under an odd modulus: %v", fast)
				}
				break
			}
			s.Add(s, big.NewInt(1))
		}
	}
	pub := &testRSAKeys(t)[1024].PublicKey
	for name, bad := range map[string]*rsa.PublicKey{
		"e = 1":      {N: pub.N, E: 1},
		"e = 2":      {N: pub.N, E: 2},
		"e even":     {N: pub.N, E: 65538},
		"e too big":  {N: pub.N, E: 1 << 32},
		"no modulus": {N: nil, E: 3},
		"512 bits":   {N: new(big.Int).Rsh(pub.N, 512), E: 65537},
	} {
		if err := verifyRSA(bad, crypto.SHA256, digest, pub.N.Bytes()[:10]); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// secp256k1Key makes a go-crypto ECDSA key on secp256k1.
func secp256k1Key(tb testing.TB) *openpgp.Entity {
	tb.Helper()
	e, err := openpgp.NewEntity("secp256k1", "", "k1@example.org", &packet.Config{
		Algorithm: packet.PubKeyAlgoECDSA, Curve: packet.CurveSecP256k1, DefaultHash: crypto.SHA256,
		Time: func() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// k1Sig is a parsed secp256k1 signature packet and the document it signs.
type k1Sig struct {
	body []byte
	sig  *packet.Signature
	raw  []byte // the serialized packet
}

func signK1(tb testing.TB, e *openpgp.Entity, body []byte, h crypto.Hash) k1Sig {
	tb.Helper()
	var buf bytes.Buffer
	noSalt := false
	cfg := &packet.Config{DefaultHash: h, Time: func() time.Time { return time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC) }, NonDeterministicSignaturesViaNotation: &noSalt}
	if err := openpgp.DetachSign(&buf, e, bytes.NewReader(body), cfg); err != nil {
		tb.Fatal(err)
	}
	p, err := packet.Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		tb.Fatal(err)
	}
	return k1Sig{body: body, sig: p.(*packet.Signature), raw: buf.Bytes()}
}

// withValues returns the signature packet raw with its two ECDSA MPIs
// replaced by r and s, each encoded with its bytes as given (leading zeros
// and all): GnuPG once wrote such MPIs.
func (k k1Sig) withValues(tb testing.TB, r, s []byte) []byte {
	tb.Helper()
	body := packetBody(tb, k.raw)
	tail := len(k.sig.ECDSASigR.EncodedBytes()) + len(k.sig.ECDSASigS.EncodedBytes())
	nb := bytes.Clone(body[:len(body)-tail])
	for _, v := range [][]byte{r, s} {
		bits := 8 * len(v)
		if len(v) > 0 && v[0] != 0 {
			bits = 8*(len(v)-1) + new(big.Int).SetBytes(v[:1]).BitLen()
		}
		nb = binary.BigEndian.AppendUint16(nb, uint16(bits))
		nb = append(nb, v...)
	}
	return framePacket(tagSignature, nb)
}

// packetBody strips a packet's header.
func packetBody(tb testing.TB, raw []byte) []byte {
	tb.Helper()
	pkts, err := splitPackets(raw)
	if err != nil || len(pkts) != 1 {
		tb.Fatalf("split %d packets: %v", len(pkts), err)
	}
	return pkts[0].body
}

// framePacket writes a new-format packet with a four-octet length.
func framePacket(tag int, body []byte) []byte {
	out := []byte{0xc0 | byte(tag), 255}
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
	return append(out, body...)
}

// checkK1Agrees verifies the signature packet raw over body with key pub by
// go-crypto's own path and by verifySecp256k1, and fails if they disagree.
// It reports whether the packet parsed as a v4 ECDSA signature, and the
// answer.
func checkK1Agrees(t testing.TB, pub *packet.PublicKey, body, raw []byte) (parsed, ok bool) {
	t.Helper()
	p, err := packet.Read(bytes.NewReader(raw))
	if err != nil {
		return false, false
	}
	sig, isSig := p.(*packet.Signature)
	k, isK1 := isSecp256k1(pub.PublicKey)
	if !isSig || !isK1 || sig.Version != 4 || sig.PubKeyAlgo != packet.PubKeyAlgoECDSA || sig.ECDSASigR == nil {
		return false, false
	}
	h, err := sig.PrepareVerify()
	if err != nil {
		return false, false
	}
	h.Write(body)
	slowErr := pub.VerifySignature(h, sig) // writes the trailer itself
	h2, _ := sig.PrepareVerify()
	h2.Write(body)
	h2.Write(sig.HashSuffix)
	fastErr := verifySecp256k1(k, h2.Sum(nil), sig.ECDSASigR.Bytes(), sig.ECDSASigS.Bytes())
	if (fastErr == nil) != (slowErr == nil) {
		t.Errorf("verifySecp256k1 says %v, go-crypto says %v (r %x, s %x, %v)", fastErr, slowErr, sig.ECDSASigR.Bytes(), sig.ECDSASigS.Bytes(), sig.Hash)
	}
	return true, fastErr == nil
}

// secp256k1N is the order of the group.
var secp256k1N, _ = new(big.Int).SetString("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16)

// TestVerifySecp256k1MatchesGoCrypto: decred's verification accepts
// exactly what go-crypto's generic curve accepts.
func TestVerifySecp256k1MatchesGoCrypto(t *testing.T) {
	t.Parallel()
	e, other := secp256k1Key(t), secp256k1Key(t)
	pub := e.PrimaryKey
	if _, ok := isSecp256k1(pub.PublicKey); !ok {
		t.Fatal("go-crypto did not make a secp256k1 key")
	}
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA224, crypto.SHA384, crypto.SHA512} {
		t.Run(h.String(), func(t *testing.T) {
			t.Parallel()
			body := []byte("secp256k1 document " + h.String())
			k := signK1(t, e, body, h)
			r, s := k.sig.ECDSASigR.Bytes(), k.sig.ECDSASigS.Bytes()
			if _, ok := checkK1Agrees(t, pub, body, k.raw); !ok {
				t.Fatal("a valid signature is refused")
			}
			num := func(b []byte) *big.Int { return new(big.Int).SetBytes(b) }
			add := func(b []byte, d int64) []byte { return new(big.Int).Add(num(b), big.NewInt(d)).Bytes() }
			pad := func(b []byte, n int) []byte { return append(make([]byte, n), b...) }
			cases := []struct {
				name  string
				raw   []byte
				body  []byte
				valid bool
			}{
				{"same values re-encoded", k.withValues(t, r, s), body, true},
				{"r with a leading zero byte", k.withValues(t, pad(r, 1), s), body, true},
				{"s with two leading zero bytes", k.withValues(t, r, pad(s, 2)), body, true},
				{"high s (N - s)", k.withValues(t, r, new(big.Int).Sub(secp256k1N, num(s)).Bytes()), body, true},
				{"r + 1", k.withValues(t, add(r, 1), s), body, false},
				{"s + 1", k.withValues(t, r, add(s, 1)), body, false},
				{"r = 0", k.withValues(t, nil, s), body, false},
				{"s = 0", k.withValues(t, r, nil), body, false},
				{"r = N", k.withValues(t, secp256k1N.Bytes(), s), body, false},
				{"s = N", k.withValues(t, r, secp256k1N.Bytes()), body, false},
				{"s + N", k.withValues(t, r, new(big.Int).Add(secp256k1N, num(s)).Bytes()), body, false},
				{"r + N", k.withValues(t, new(big.Int).Add(secp256k1N, num(r)).Bytes(), s), body, false},
				{"33-byte r", k.withValues(t, append([]byte{1}, r...), s), body, false},
				{"changed document", k.raw, flipBit(body, 5), false},
				{"other key's signature", signK1(t, other, body, h).raw, body, false},
			}
			for _, tc := range cases {
				if parsed, ok := checkK1Agrees(t, pub, tc.body, tc.raw); !parsed || ok != tc.valid {
					t.Errorf("%s: parsed %v, valid %v, want %v", tc.name, parsed, ok, tc.valid)
				}
			}
		})
	}
}

// TestSecp256k1Keyring: a secp256k1 key verifies through Keyring.Verify,
// the way documents reach the fast path.
func TestSecp256k1Keyring(t *testing.T) {
	t.Parallel()
	e := secp256k1Key(t)
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	ks, err := ReadKeys(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("k1 via the keyring\n")
	k := signK1(t, e, body, crypto.SHA256)
	sig, err := ParseSignature(k.raw)
	if err != nil {
		t.Fatal(err)
	}
	kr := NewKeyring(ks...)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if v := kr.Verify(body, sig, now); v.Status != StatusGood {
		t.Errorf("status %s (%s)", v.Status, v.Detail)
	}
	if v := kr.Verify(flipBit(body, 1), sig, now); v.Status != StatusBadSignature {
		t.Errorf("changed document: status %s", v.Status)
	}
	lead, err := ParseSignature(k.withValues(t, append([]byte{0}, k.sig.ECDSASigR.Bytes()...), k.sig.ECDSASigS.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if v := kr.Verify(body, lead, now); v.Status != StatusGood {
		t.Errorf("r with a leading zero byte (GnuPG bug 1853): status %s (%s)", v.Status, v.Detail)
	}
}

// FuzzVerifyRSA holds verifyRSA to crypto/rsa for fuzzed signatures,
// digests and hashes under real keys.
func FuzzVerifyRSA(f *testing.F) {
	keys := testRSAKeys(f)
	sizes := []int{1024, 1025, 1536, 2048, 3072, 4096}
	for i, h := range rsaHashes {
		bits := sizes[i%len(sizes)]
		digest := hashOf(h, []byte{byte(i)})
		f.Add(uint8(i), uint8(i), digest, mustSignRSA(f, keys[bits], h, digest))
	}
	f.Add(uint8(0), uint8(2), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, keyIdx, hashIdx uint8, digest, sig []byte) {
		pub := &keys[sizes[int(keyIdx)%len(sizes)]].PublicKey
		hashes := append(rsaHashes, crypto.MD5, crypto.SHA512_256, crypto.SHA3_256, crypto.Hash(0))
		h := hashes[int(hashIdx)%len(hashes)]
		if h == 0 {
			// Signed directly: crypto/rsa's raw mode has no DigestInfo,
			// verifyRSA refuses it.
			if verifyRSA(pub, h, digest, sig) == nil {
				t.Error("verifyRSA accepts hash 0")
			}
			return
		}
		if len(digest) != h.Size() {
			if verifyRSA(pub, h, digest, sig) == nil {
				t.Errorf("verifyRSA accepts a %d-byte digest for %v", len(digest), h)
			}
			return
		}
		checkRSAAgrees(t, pub, h, digest, sig)
	})
}

// FuzzVerifySecp256k1 holds verifySecp256k1 to go-crypto's generic curve
// for fuzzed signature packets and documents.
func FuzzVerifySecp256k1(f *testing.F) {
	e := secp256k1Key(f)
	for i, h := range []crypto.Hash{crypto.SHA256, crypto.SHA512, crypto.SHA224} {
		body := []byte(fmt.Sprint("fuzz ", i))
		f.Add(body, signK1(f, e, body, h).raw)
	}
	f.Fuzz(func(t *testing.T, body, raw []byte) {
		checkK1Agrees(t, e.PrimaryKey, body, raw)
	})
}

// BenchmarkVerifyRSA4096 compares the fast path with crypto/rsa.
func BenchmarkVerifyRSA4096(b *testing.B) {
	priv := testRSAKeys(b)[4096]
	digest := sha256.Sum256([]byte("benchmark"))
	sig := mustSignRSA(b, priv, crypto.SHA256, digest[:])
	b.Run("verifyRSA", func(b *testing.B) {
		for b.Loop() {
			if err := verifyRSA(&priv.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("crypto-rsa", func(b *testing.B) {
		for b.Loop() {
			if err := rsa.VerifyPKCS1v15(&priv.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}
