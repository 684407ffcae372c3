package attest_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/rbnode/rbnode/attest"
)

// sampleManifest is a document in the form builders sign.
var sampleManifest = []byte("" +
	"b69aba17bf0f274707b83a2e59030d17d70a8ed716a0b6d59e970cbc3b06cbd9  bitcoin-29.2-aarch64-linux-gnu-debug.tar.gz\n" +
	"f88f72a3c5bf526581aae573be8c1f62133eaecfe3d34646c9ffca7b79dfdc7a  bitcoin-29.2-aarch64-linux-gnu.tar.gz\n" +
	"f63588a2e9084ead8f3622e3ce3d51bf473b01ee36d2004b74264586c54b2336  bitcoin-29.2-arm-linux-gnueabihf-debug.tar.gz\n")

// dearmorSig turns an armoured signature into the binary packet gpg writes
// without --armor.
func dearmorSig(t testing.TB, sig []byte) []byte {
	t.Helper()
	blk, err := armor.Decode(bytes.NewReader(sig))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(blk.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGPGSignaturesVerify: keys and detached signatures made by GnuPG, in
// armoured and binary form, verify in rbnode with the primary fingerprint,
// and a document with one changed byte fails in both.
func TestGPGSignaturesVerify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		algo     string // primary key
		subAlgo  string // signing subkey; "" for a primary key that signs
		textmode bool   // gpg --textmode: a canonical-text signature
		// signed, if set, is when gpg signs (the key is made a day
		// before); 0x650a0a0a puts '\n' bytes in the signature trailer.
		signed time.Time
	}{
		{name: "rsa3072", algo: "rsa3072"},
		{name: "rsa4096", algo: "rsa4096"},
		{name: "ed25519", algo: "ed25519"},
		{name: "ed25519 textmode", algo: "ed25519", textmode: true, signed: time.Unix(0x650a0a0a, 0)},
		{name: "rsa3072 textmode", algo: "rsa3072", textmode: true, signed: time.Unix(0x650a0a0a, 0)},
		{name: "ed25519 signing subkey", algo: "ed25519", subAlgo: "ed25519"},
		{name: "rsa3072 signing subkey", algo: "rsa3072", subAlgo: "rsa3072"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGPG(t)
			var made, opts []string
			if !tc.signed.IsZero() {
				made, opts = at(tc.signed.Add(-24*time.Hour)), at(tc.signed)
			}
			fpr, signWith := "", ""
			if tc.subAlgo == "" {
				fpr = g.genKey("Builder <b@example.org>", tc.algo, "sign", "never", "", made...)
				signWith = fpr + "!"
			} else {
				fpr = g.genKey("Builder <b@example.org>", tc.algo, "cert", "never", "", made...)
				signWith = g.addKey(fpr, tc.subAlgo, "sign", "never", "", made...) + "!"
			}
			if tc.textmode {
				opts = append(opts, "--textmode")
			}
			keys := map[string][]byte{
				"armoured key": g.must(nil, "--armor", "--export", fpr),
				"binary key":   g.must(nil, "--export", fpr),
			}
			sigs := map[string][]byte{
				"armoured signature": g.sign(signWith, sampleManifest, append(opts, "--armor")...),
				"binary signature":   g.sign(signWith, sampleManifest, opts...),
			}
			tampered := flipByte(sampleManifest, len(sampleManifest)/2)
			for kn, kb := range keys {
				key := readKey(t, kb)
				if key.Fingerprint != fpr {
					t.Fatalf("%s: fingerprint %s, gpg says %s", kn, key.Fingerprint, fpr)
				}
				for sn, sb := range sigs {
					v := verify(t, sampleManifest, sb, time.Now(), key)
					wantStatus(t, v, attest.StatusGood, fpr)
					if want := strings.TrimSuffix(signWith, "!"); !strings.HasSuffix(want, v.KeyID) {
						t.Errorf("%s, %s: issuer key id %s, want the one of %s", kn, sn, v.KeyID, want)
					}
					bad := verify(t, tampered, sb, time.Now(), key)
					wantStatus(t, bad, attest.StatusBadSignature, fpr)
				}
			}
			for sn, sb := range sigs {
				if v := g.verify(sb, sampleManifest); !v.ok || !v.has("GOODSIG") || v.validFPR != fpr {
					t.Errorf("gpg rejects its own %s: %+v", sn, v)
				}
				if v := g.verify(sb, tampered); v.ok || !v.has("BADSIG") {
					t.Errorf("gpg accepts its %s over a changed document: %+v", sn, v)
				}
			}
		})
	}
}

// TestRBNodeSignaturesVerifyInGPG: what rbnode signs, with a key it made or
// one exported from GnuPG, verifies with gpg --verify, and a changed byte
// fails in both.
func TestRBNodeSignaturesVerifyInGPG(t *testing.T) {
	t.Parallel()
	t.Run("generated key", func(t *testing.T) {
		t.Parallel()
		now := time.Now()
		sk, err := attest.GenerateKey("Builder One", "one@example.org", now.Add(-time.Minute), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		fpr := sk.Public().Fingerprint
		if got := sk.Public().Algorithm(); got != "ed25519" {
			t.Errorf("GenerateKey made a %s key, want ed25519", got)
		}
		sig, err := sk.Sign(sampleManifest, now)
		if err != nil {
			t.Fatal(err)
		}
		for name, pub := range map[string][]byte{"armoured": sk.Public().Armored(), "binary": sk.Public().Bytes()} {
			t.Run(name, func(t *testing.T) {
				g := newGPG(t)
				g.importKey(pub)
				checkRBNodeSig(t, g, sk.Public(), sig, fpr, fpr)
			})
		}

		// The secret key rbnode exports imports into gpg, which can then
		// sign with it for rbnode.
		armored, err := sk.Armored()
		if err != nil {
			t.Fatal(err)
		}
		g := newGPG(t)
		g.importKey(armored)
		if recs := g.colons("--list-secret-keys", fpr); len(recs) == 0 || recs[0][0] != "sec" {
			t.Fatalf("gpg lists no secret key %s after importing SecretKey.Armored()", fpr)
		}
		gsig := g.sign(fpr, sampleManifest, "--armor")
		wantStatus(t, verify(t, sampleManifest, gsig, time.Now(), sk.Public()), attest.StatusGood, fpr)
	})

	cases := []struct {
		name    string
		algo    string
		subAlgo string
		armor   bool
	}{
		{name: "ed25519 armoured", algo: "ed25519", armor: true},
		{name: "ed25519 binary", algo: "ed25519"},
		{name: "rsa3072 armoured", algo: "rsa3072", armor: true},
		{name: "ed25519 with signing subkey", algo: "ed25519", subAlgo: "ed25519", armor: true},
		{name: "rsa3072 with signing subkey binary", algo: "rsa3072", subAlgo: "rsa3072"},
	}
	for _, tc := range cases {
		t.Run("gpg exported "+tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGPG(t)
			fpr, signer := "", ""
			if tc.subAlgo == "" {
				fpr = g.genKey("Exported <e@example.org>", tc.algo, "sign", "never", "")
				signer = fpr
			} else {
				fpr = g.genKey("Exported <e@example.org>", tc.algo, "cert", "never", "")
				signer = g.addKey(fpr, tc.subAlgo, "sign", "never", "")
			}
			args := []string{"--pinentry-mode", "loopback", "--passphrase", "", "--export-secret-keys", fpr}
			if tc.armor {
				args = append([]string{"--armor"}, args...)
			}
			sk, err := attest.ReadSecretKey(g.must(nil, args...), nil)
			if err != nil {
				t.Fatalf("ReadSecretKey: %v", err)
			}
			if sk.Public().Fingerprint != fpr {
				t.Fatalf("secret key fingerprint %s, gpg says %s", sk.Public().Fingerprint, fpr)
			}
			sig, err := sk.Sign(sampleManifest, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			checkRBNodeSig(t, g, sk.Public(), sig, fpr, signer)
		})
	}

	// A builder who keeps the primary key offline exports only the subkeys
	// (gpg --export-secret-subkeys: the primary is a gnu-dummy stub).
	for _, pass := range []string{"", "subkey passphrase"} {
		t.Run("secret subkeys only, passphrase "+strconv.Quote(pass), func(t *testing.T) {
			t.Parallel()
			g := newGPG(t)
			fpr := g.genKey("Offline <o@example.org>", "ed25519", "cert", "never", pass)
			sub := g.addKey(fpr, "ed25519", "sign", "never", pass)
			exported := g.must(nil, "--armor", "--pinentry-mode", "loopback", "--passphrase", pass, "--export-secret-subkeys", fpr)
			if pass != "" {
				if _, err := attest.ReadSecretKey(exported, nil); !errors.Is(err, attest.ErrPassphrase) {
					t.Errorf("without the passphrase: %v, want ErrPassphrase", err)
				}
			}
			sk, err := attest.ReadSecretKey(exported, []byte(pass))
			if err != nil {
				t.Fatalf("ReadSecretKey: %v", err)
			}
			sig, err := sk.Sign(sampleManifest, time.Now())
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			checkRBNodeSig(t, g, sk.Public(), sig, fpr, sub)
		})
	}

	t.Run("passphrase", func(t *testing.T) {
		t.Parallel()
		const pass = "correct horse battery staple"
		g := newGPG(t)
		fpr := g.genKey("Locked <l@example.org>", "ed25519", "sign", "never", pass)
		exported := g.must(nil, "--armor", "--pinentry-mode", "loopback", "--passphrase", pass, "--export-secret-keys", fpr)
		for _, wrong := range [][]byte{nil, {}, []byte("Tr0ub4dor&3")} {
			_, err := attest.ReadSecretKey(exported, wrong)
			if !errors.Is(err, attest.ErrPassphrase) {
				t.Errorf("ReadSecretKey with passphrase %q: %v, want ErrPassphrase", wrong, err)
			}
			if len(wrong) > 0 && !strings.Contains(err.Error(), "wrong passphrase") {
				t.Errorf("ReadSecretKey with a wrong passphrase says %q, want it to say \"wrong passphrase\"", err)
			}
		}
		sk, err := attest.ReadSecretKey(exported, []byte(pass))
		if err != nil {
			t.Fatalf("ReadSecretKey with the passphrase: %v", err)
		}
		sig, err := sk.Sign(sampleManifest, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		checkRBNodeSig(t, g, sk.Public(), sig, fpr, fpr)
	})
}

// checkRBNodeSig checks an rbnode signature (armoured) in gpg g, which
// holds the public key, in armoured and binary form: gpg reports a good
// signature by signer for primary key fpr, and rejects it over a document
// with one changed byte, as rbnode does.
func checkRBNodeSig(t *testing.T, g *gpgHome, pub *attest.Key, sig []byte, fpr, signer string) {
	t.Helper()
	tampered := flipByte(sampleManifest, 7)
	for name, s := range map[string][]byte{"armoured": sig, "binary": dearmorSig(t, sig)} {
		v := g.verify(s, sampleManifest)
		if !v.ok || !v.has("GOODSIG") || v.validFPR != fpr || v.signer != signer {
			t.Errorf("gpg --verify of rbnode's %s signature: %+v, want GOODSIG by %s (primary %s)", name, v, signer, fpr)
		}
		if v := g.verify(s, tampered); v.ok || !v.has("BADSIG") {
			t.Errorf("gpg accepts rbnode's %s signature over a changed document: %+v", name, v)
		}
		wantStatus(t, verify(t, sampleManifest, s, time.Now(), pub), attest.StatusGood, fpr)
		wantStatus(t, verify(t, tampered, s, time.Now(), pub), attest.StatusBadSignature, fpr)
	}
}
