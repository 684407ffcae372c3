package attest

import (
	"slices"
	"sort"
	"time"
)

// The states of a builder's answer to the judged request.
const (
	AnswerAttested = "attested" // signed an attestation of the requested commit
	AnswerFailed   = "failed"   // signed a build failure for it
	AnswerSilent   = "silent"   // neither, so far
	// AnswerDifferentCommit: it signed only documents of another commit
	// (or a manifest, which names none), listed in DifferentCommit.
	AnswerDifferentCommit = "different_commit"
)

// RequestReport is the build request a report judges, and who answered
// it. Its JSON form is part of docs/json.md's contract.
type RequestReport struct {
	Document    string    `json:"document"`
	GitCommit   string    `json:"git_commit"`
	Requester   Builder   `json:"requester"`
	RequestedAt time.Time `json:"requested_at"`
	Note        string    `json:"note"`
	// Answers has one entry per trusted builder but the requester (which
	// is listed only once it has answered), sorted by name.
	Answers []Answer `json:"answers"`
	// Superseded lists the earlier trusted requests for the release.
	Superseded []DocRef `json:"superseded"`
	// DifferentCommit lists trusted documents that do not attest the
	// requested commit: they are not counted while this request stands.
	DifferentCommit []DocRef `json:"different_commit"`
}

// Answer is one trusted builder's answer to the judged request.
type Answer struct {
	Builder
	State   string         `json:"state"`
	Failure *FailureReport `json:"failure,omitempty"`
}

// FailureReport is a build failure, as status shows it.
type FailureReport struct {
	Document string    `json:"document"`
	Stage    string    `json:"stage"`
	ExitCode int       `json:"exit_code"`
	Error    string    `json:"error"`
	LogTail  []string  `json:"log_tail"`
	FailedAt time.Time `json:"failed_at"`
}

// CurrentRequest picks the request a release is judged against: among
// requests with a good signature by a trusted key, the one requested
// latest, ties broken by the smaller document id. It depends only on the
// set of claims and the trust set, never on their order. It returns nil
// when there is none, and the other trusted requests (superseded).
func CurrentRequest(claims []Claim, trusted TrustSet) (*Claim, []Claim) {
	var reqs []Claim
	for _, c := range claims {
		if c.Statement.Request == nil || !c.Verification.OK() {
			continue
		}
		if _, ok := trusted[c.Verification.Fingerprint]; ok {
			reqs = append(reqs, c)
		}
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	sort.Slice(reqs, func(i, j int) bool {
		a, b := reqs[i].Statement.Request.RequestedAt, reqs[j].Statement.Request.RequestedAt
		if !a.Equal(b) {
			return a.After(b)
		}
		return reqs[i].Doc.String() < reqs[j].Doc.String()
	})
	cur := reqs[0]
	return &cur, reqs[1:]
}

// splitRequests takes the request loop's documents out of claims. When a
// trusted request stands, trusted attestations of another commit (and
// manifests, which name none) are set aside in its report. It returns the
// claims left for the tally and the report (nil without a request).
func splitRequests(claims []Claim, trusted TrustSet, r *Report) ([]Claim, *RequestReport, []Claim) {
	var rest, loop []Claim
	for _, c := range claims {
		if c.Statement.Request != nil || c.Statement.Failure != nil {
			loop = append(loop, c)
		} else {
			rest = append(rest, c)
		}
	}
	for _, c := range loop {
		v := c.Verification
		ref := claimRef(c)
		switch _, ok := trusted[v.Fingerprint]; {
		case !v.OK():
			ref.Reason, ref.Detail = string(v.Status), v.Detail
			r.Rejected = append(r.Rejected, ref)
		case !ok:
			ref.Reason, ref.Detail = "untrusted_key", "signed by a key this node does not trust"
			r.Untrusted = append(r.Untrusted, ref)
		}
	}
	cur, older := CurrentRequest(loop, trusted)
	if cur == nil {
		return rest, nil, loop
	}
	req := cur.Statement.Request
	rr := &RequestReport{
		Document: cur.Doc.String(), GitCommit: req.GitCommit, RequestedAt: req.RequestedAt, Note: req.Note,
		Requester: Builder{Fingerprint: cur.Verification.Fingerprint, Name: req.Requester},
		Answers:   []Answer{}, Superseded: []DocRef{}, DifferentCommit: []DocRef{},
	}
	for _, o := range older {
		ref := claimRef(o)
		ref.Reason, ref.Detail = "superseded", "requested commit "+o.Statement.Request.GitCommit+" at "+o.Statement.Request.RequestedAt.Format(time.RFC3339)
		rr.Superseded = append(rr.Superseded, ref)
	}
	kept := rest[:0:0]
	for _, c := range rest {
		_, ok := trusted[c.Verification.Fingerprint]
		if ok && c.Verification.OK() && c.Statement.GitCommit != req.GitCommit {
			ref := claimRef(c)
			ref.Reason = "different_commit"
			if c.Statement.GitCommit == "" {
				ref.Detail = "names no commit (a manifest); the request is for " + req.GitCommit
			} else {
				ref.Detail = "built " + c.Statement.GitCommit + "; the request is for " + req.GitCommit
			}
			rr.DifferentCommit = append(rr.DifferentCommit, ref)
			continue
		}
		kept = append(kept, c)
	}
	return kept, rr, loop
}

// answer fills the request's answers once the tally has named the
// builders: attested (counted for the requested commit), failed (the
// newest failure it signed for that commit), different_commit (it
// attested only another commit), else silent.
func (rr *RequestReport) answer(r *Report, loop []Claim, trusted TrustSet) {
	attested := map[string]string{}
	for _, b := range r.Builders {
		attested[b.Fingerprint] = b.Name
	}
	other := map[string]bool{}
	for _, d := range rr.DifferentCommit {
		other[d.Fingerprint] = true
	}
	failed := map[string]Claim{}
	for _, c := range loop {
		f := c.Statement.Failure
		if f == nil || !c.Verification.OK() || f.GitCommit != rr.GitCommit {
			continue
		}
		fp := c.Verification.Fingerprint
		if _, ok := trusted[fp]; !ok {
			continue
		}
		if old, ok := failed[fp]; !ok || f.FailedAt.After(old.Statement.Failure.FailedAt) ||
			f.FailedAt.Equal(old.Statement.Failure.FailedAt) && c.Doc.String() < old.Doc.String() {
			failed[fp] = c
		}
	}
	for _, fp := range sortedKeys(trusted) {
		a := Answer{Builder: Builder{Fingerprint: fp, Name: trusted[fp]}, State: AnswerSilent}
		if name, ok := attested[fp]; ok {
			a.State, a.Name = AnswerAttested, name
		} else if c, ok := failed[fp]; ok {
			f := c.Statement.Failure
			a.State, a.Name = AnswerFailed, f.BuilderID
			a.Failure = &FailureReport{Document: c.Doc.String(), Stage: f.Stage, ExitCode: f.ExitCode, Error: f.Error,
				LogTail: slices.Clone(f.LogTail), FailedAt: f.FailedAt}
		} else if other[fp] {
			a.State = AnswerDifferentCommit
		} else if fp == rr.Requester.Fingerprint {
			continue
		}
		if a.Name == "" {
			a.Name = trusted[fp]
		}
		rr.Answers = append(rr.Answers, a)
	}
	sort.Slice(rr.Answers, func(i, j int) bool {
		if rr.Answers[i].Name != rr.Answers[j].Name {
			return rr.Answers[i].Name < rr.Answers[j].Name
		}
		return rr.Answers[i].Fingerprint < rr.Answers[j].Fingerprint
	})
}

// Silent counts the builders that have not answered the request yet.
func (rr *RequestReport) Silent() int {
	n := 0
	for _, a := range rr.Answers {
		if a.State == AnswerSilent {
			n++
		}
	}
	return n
}

func claimRef(c Claim) DocRef {
	v := c.Verification
	return DocRef{Document: c.Doc.String(), File: c.File, Signer: c.Signer, Fingerprint: v.Fingerprint, KeyID: v.KeyID, SignedAt: v.SignedAt}
}
