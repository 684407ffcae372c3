package attest_test

import (
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// TestRevokedPublic: a compromised key voids everything it signed; a
// retired one voids only what it signed after retiring. The secret key is
// left as it was.
func TestRevokedPublic(t *testing.T) {
	t.Parallel()
	sk := testKey(t, "Revoked Later")
	signed := testNow.Add(-48 * time.Hour)
	sig, err := attest.ParseSignature(mustSign(t, sk, sampleManifest, signed))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		compromised bool
		want        attest.Status
	}{{true, attest.StatusRevokedKey}, {false, attest.StatusGood}} {
		k, err := sk.RevokedPublic(c.compromised, "test", testNow.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok := k.Revocation(); !ok {
			t.Fatalf("compromised=%v: the key carries no revocation", c.compromised)
		}
		if v := attest.NewKeyring(k).Verify(sampleManifest, sig, testNow); v.Status != c.want {
			t.Errorf("compromised=%v: %s (%s), want %s", c.compromised, v.Status, v.Detail, c.want)
		}
		merged := attest.NewKeyring(sk.Public())
		merged.Add(k)
		if v := merged.Verify(sampleManifest, sig, testNow); v.Status != c.want {
			t.Errorf("compromised=%v, merged with the old copy: %s, want %s", c.compromised, v.Status, c.want)
		}
	}
	if _, _, ok := sk.Public().Revocation(); ok {
		t.Fatal("revoking changed the secret key's public half")
	}
}
