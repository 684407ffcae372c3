package attest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// in-toto Statement v1 and its DSSE envelope, for `rbnode export intoto`
// (docs/formats.md).

// The type URIs of the exported statement.
const (
	InTotoStatementType = "https://in-toto.io/Statement/v1"
	// ConsensusPredicateType names rbnode's predicate: the verdict of a
	// node over one release and the builders that agree.
	ConsensusPredicateType = "https://github.com/rbnode/rbnode/blob/main/docs/formats.md#consensus-predicate-v1"
	// InTotoPayloadType is the DSSE payload type of an in-toto statement.
	InTotoPayloadType = "application/vnd.in-toto+json"
)

// InTotoStatement is an in-toto Statement v1 whose subjects are the
// consensus artifacts of a release.
type InTotoStatement struct {
	Type          string             `json:"_type"`
	Subject       []InTotoSubject    `json:"subject"`
	PredicateType string             `json:"predicateType"`
	Predicate     ConsensusPredicate `json:"predicate"`
}

// InTotoSubject is one artifact and its digest.
type InTotoSubject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// ConsensusPredicate records how the node judged the release.
type ConsensusPredicate struct {
	Project  string    `json:"project"`
	Version  string    `json:"version"`
	Verdict  Verdict   `json:"verdict"`
	Quorum   int       `json:"quorum"`
	Trusted  int       `json:"trusted_builders"`
	Agreeing []Builder `json:"agreeing_builders"`
	// Commits are the source commits the agreeing builders built.
	Commits []string `json:"git_commits"`
}

// NewInTotoStatement describes a report: one subject per artifact in
// consensus (none when no artifact reached it), and as agreeing builders
// those who attested every one of them with the consensus hash.
func NewInTotoStatement(r *Report) *InTotoStatement {
	s := &InTotoStatement{
		Type: InTotoStatementType, Subject: []InTotoSubject{}, PredicateType: ConsensusPredicateType,
		Predicate: ConsensusPredicate{
			Project: r.Project, Version: r.Version, Verdict: r.Verdict, Quorum: r.Quorum,
			Trusted: len(r.Builders), Agreeing: []Builder{}, Commits: []string{},
		},
	}
	count := map[string]int{}
	for _, a := range r.Artifacts {
		if a.Verdict != Consensus {
			continue
		}
		s.Subject = append(s.Subject, InTotoSubject{Name: a.Name, Digest: map[string]string{"sha256": a.Hashes[0].SHA256}})
		for _, b := range a.Hashes[0].Builders {
			count[b.Fingerprint]++
		}
	}
	agreeing := map[string]bool{}
	for _, b := range r.Builders {
		if len(s.Subject) > 0 && count[b.Fingerprint] == len(s.Subject) {
			s.Predicate.Agreeing = append(s.Predicate.Agreeing, b)
			agreeing[b.Fingerprint] = true
		}
	}
	for _, c := range r.Commits {
		for _, b := range c.Builders {
			if agreeing[b.Fingerprint] {
				s.Predicate.Commits = append(s.Predicate.Commits, c.GitCommit)
				break
			}
		}
	}
	return s
}

// DSSEEnvelope is a Dead Simple Signing Envelope.
type DSSEEnvelope struct {
	PayloadType string          `json:"payloadType"`
	Payload     string          `json:"payload"` // standard base64
	Signatures  []DSSESignature `json:"signatures"`
}

// DSSESignature is one signature of an envelope: an OpenPGP binary
// detached signature over the PAE, keyid the signer's fingerprint.
type DSSESignature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"` // standard base64
}

// PAE is DSSE's pre-authentication encoding of a payload and its type:
// the bytes that are signed.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// SignDSSE wraps payload in a DSSE envelope signed by sk at now.
func (sk *SecretKey) SignDSSE(payloadType string, payload []byte, now time.Time) (*DSSEEnvelope, error) {
	armored, err := sk.Sign(PAE(payloadType, payload), now)
	if err != nil {
		return nil, err
	}
	blk, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		return nil, fmt.Errorf("dearmor signature: %w", err)
	}
	var sig bytes.Buffer
	if _, err := sig.ReadFrom(blk.Body); err != nil {
		return nil, fmt.Errorf("dearmor signature: %w", err)
	}
	return &DSSEEnvelope{
		PayloadType: payloadType,
		Payload:     base64.StdEncoding.EncodeToString(payload),
		Signatures:  []DSSESignature{{KeyID: sk.Public().Fingerprint, Sig: base64.StdEncoding.EncodeToString(sig.Bytes())}},
	}, nil
}

// Encode returns the statement as indented JSON with a final newline.
func (s *InTotoStatement) Encode() []byte {
	b, _ := json.MarshalIndent(s, "", "  ")
	return append(b, '\n')
}
