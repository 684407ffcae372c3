package attest

import (
	"bytes"
	"errors"

	pgpecdsa "github.com/ProtonMail/go-crypto/openpgp/ecdsa"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	decred "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// verifySecp256k1 checks an ECDSA signature on secp256k1 with decred's
// implementation. go-crypto runs this curve through a generic big.Int curve
// that takes about 1 ms a signature; decred's field arithmetic takes about
// 0.1 ms. FuzzVerifySecp256k1 holds it to go-crypto's answers.
func verifySecp256k1(pub *pgpecdsa.PublicKey, digest, r, s []byte) error {
	// MPIs may carry leading zero bytes (GnuPG bug 1853); go-crypto reads
	// them as numbers and accepts them, so we do too.
	r, s = bytes.TrimLeft(r, "\x00"), bytes.TrimLeft(s, "\x00")
	if len(r) > 32 || len(s) > 32 {
		return errors.New("ecdsa: signature value too long")
	}
	var rs, ss secp256k1.ModNScalar
	if rs.SetByteSlice(r) || ss.SetByteSlice(s) {
		return errors.New("ecdsa: signature value not below the group order")
	}
	if rs.IsZero() || ss.IsZero() {
		return errors.New("ecdsa: zero signature value")
	}
	var x, y secp256k1.FieldVal
	if len(pub.X.Bytes()) > 32 || len(pub.Y.Bytes()) > 32 || x.SetByteSlice(pub.X.Bytes()) || y.SetByteSlice(pub.Y.Bytes()) {
		return errors.New("ecdsa: public key out of range")
	}
	key := secp256k1.NewPublicKey(&x, &y)
	if !key.IsOnCurve() {
		return errors.New("ecdsa: public key not on the curve")
	}
	if !decred.NewSignature(&rs, &ss).Verify(digest, key) {
		return errors.New("ecdsa: verification failure")
	}
	return nil
}

// isSecp256k1 reports whether pub is an ECDSA key on secp256k1.
func isSecp256k1(pub any) (*pgpecdsa.PublicKey, bool) {
	k, ok := pub.(*pgpecdsa.PublicKey)
	if !ok || k.GetCurve().GetCurveName() != "secp256k1" {
		return nil, false
	}
	return k, true
}
