package attest

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"errors"
	"math/big"
)

// verifyRSA checks an RSASSA-PKCS1-v1_5 signature (RFC 8017 section 8.2.2)
// by encoding the expected message and comparing it byte for byte with
// sig^e mod n; nothing of the decrypted block is parsed.
//
// It exists for speed: crypto/rsa's constant-time arithmetic rebuilds its
// modulus on every call and takes about 0.2 ms for RSA-4096 here, math/big
// about 0.08 ms, and most guix.sigs keys are RSA. Every input is public, so
// variable-time arithmetic leaks nothing. TestVerifyRSAMatchesStdlib and
// FuzzVerifyRSA hold it to crypto/rsa's answers.
func verifyRSA(pub *rsa.PublicKey, h crypto.Hash, digest, sig []byte) error {
	prefix, ok := digestInfoPrefix[h]
	if !ok || len(digest) != h.Size() {
		return errors.New("rsa: unsupported hash")
	}
	if pub.N == nil || pub.N.Sign() <= 0 || pub.N.BitLen() < 1024 {
		return errors.New("rsa: key smaller than 1024 bits")
	}
	// crypto/rsa refuses an even modulus (no RSA key has one, and one built
	// as s^e - EM "verifies" s) and exponents beyond 31 bits; so must we.
	if pub.N.Bit(0) == 0 {
		return errors.New("rsa: modulus is even")
	}
	if pub.E < 3 || pub.E&1 == 0 || pub.E > 1<<31-1 {
		return errors.New("rsa: bad public exponent")
	}
	k := (pub.N.BitLen() + 7) / 8
	if len(sig) > k {
		return errors.New("rsa: signature longer than the modulus")
	}
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(pub.N) >= 0 {
		return errors.New("rsa: signature out of range")
	}
	tLen := len(prefix) + len(digest)
	if k < tLen+11 {
		return errors.New("rsa: modulus too short for the hash")
	}
	m := new(big.Int).Exp(s, big.NewInt(int64(pub.E)), pub.N)
	em := m.FillBytes(make([]byte, k))
	want := make([]byte, k)
	want[1] = 1
	for i := 2; i < k-tLen-1; i++ {
		want[i] = 0xff
	}
	copy(want[k-tLen:], prefix)
	copy(want[k-len(digest):], digest)
	if !bytes.Equal(em, want) {
		return errors.New("rsa: verification error")
	}
	return nil
}

// digestInfoPrefix holds the DER DigestInfo headers of RFC 8017 section 9.2.
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA224: {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c},
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}
