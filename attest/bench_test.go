package attest_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// BenchmarkVerifyGuixSigs verifies every signature of the guix.sigs tree,
// as a node re-verifying its store does: "verify" with signatures already
// parsed, "parse+verify" from the received bytes (Document.Parse, which
// also checks the manifest and its context, then Keyring.Verify).
func BenchmarkVerifyGuixSigs(b *testing.B) {
	tr := loadGuix(b)
	kr := tr.keyring(b)
	now := time.Now()
	sigs := make([]*attest.Signature, len(tr.sigs))
	for i, s := range tr.sigs {
		var err error
		if sigs[i], err = attest.ParseSignature(s.sig); err != nil {
			b.Fatal(err)
		}
	}
	perSig := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tr.sigs)), "ns/signature")
		b.ReportMetric(0, "ns/op")
	}
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			for i, s := range tr.sigs {
				kr.Verify(s.body, sigs[i], now)
			}
		}
		perSig(b)
	})
	b.Run("parse+verify", func(b *testing.B) {
		for b.Loop() {
			for _, s := range tr.sigs {
				d := attest.Document{Kind: attest.KindManifest, Version: s.version, Signer: s.signer, Name: s.name, Body: s.body, Signature: s.sig}
				p, err := d.Parse()
				if err != nil {
					b.Fatal(err)
				}
				kr.Verify(s.body, p.Sig, now)
			}
		}
		perSig(b)
	})
}

// BenchmarkReadKeys reads every builder key file of the guix.sigs tree.
func BenchmarkReadKeys(b *testing.B) {
	tr := loadGuix(b)
	names := slices.Sorted(maps.Keys(tr.keys))
	size := 0
	for _, n := range names {
		size += len(tr.keys[n])
	}
	b.SetBytes(int64(size))
	for b.Loop() {
		for _, n := range names {
			if _, err := attest.ReadKeys(tr.keys[n]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(names)), "ns/keyfile")
}
