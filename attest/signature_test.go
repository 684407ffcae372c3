package attest_test

import (
	"bytes"
	"crypto"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/rbnode/rbnode/attest"
)

// TestTextSignatures: a canonical-text signature (gpg --textmode, class
// 0x01) verifies whatever bytes its hashed trailer holds. Regression: the
// trailer went through the line-ending canonicaliser with the document, so
// a trailer holding a 0x0a byte (here, in the creation time) failed about
// one signature in seven.
func TestTextSignatures(t *testing.T) {
	t.Parallel()
	body := []byte("line one\nline two\r\nline three\n")
	created := day(2020, time.January, 1)
	ed := pgpEntity(t, created, 0)
	rsaCfg := pgpConfig(created, 0)
	rsaCfg.Algorithm, rsaCfg.RSABits = packet.PubKeyAlgoRSA, 2048
	rsaKey, err := openpgp.NewEntity("RSA Text", "", "rsa@example.org", rsaCfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []*openpgp.Entity{ed, rsaKey} {
		pub := publicKey(t, e)
		for _, when := range []time.Time{
			time.Unix(0x5f0a0a0a, 0), // a '\n' in every byte but the first
			time.Unix(0x5f0b0c0d, 0), // no '\n' or '\r'
			time.Unix(0x5f0d0a0d, 0), // "\r\n\r"
		} {
			t.Run(pub.Algorithm()+" "+when.UTC().Format(time.RFC3339), func(t *testing.T) {
				t.Parallel()
				var sig bytes.Buffer
				cfg := &packet.Config{DefaultHash: crypto.SHA256, Time: func() time.Time { return when }}
				if err := openpgp.ArmoredDetachSignText(&sig, e, bytes.NewReader(body), cfg); err != nil {
					t.Fatal(err)
				}
				wantStatus(t, verify(t, body, sig.Bytes(), testNow, pub), attest.StatusGood, pub.Fingerprint)
				// Canonical text hashes "\n" as "\r\n": the CRLF form of
				// the document carries the same signature.
				crlf := bytes.ReplaceAll(bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
				wantStatus(t, verify(t, crlf, sig.Bytes(), testNow, pub), attest.StatusGood, pub.Fingerprint)
				wantStatus(t, verify(t, flipByte(body, 3), sig.Bytes(), testNow, pub), attest.StatusBadSignature, pub.Fingerprint)
			})
		}
	}
}
