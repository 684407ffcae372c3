package node

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node/store"
)

// DefaultRequestProject is the project a build request names when neither
// the command nor the configuration names one.
const DefaultRequestProject = "cuprated"

// RequestOptions is what `rbnode request` asks for.
type RequestOptions struct {
	Project string `json:"project"` // default: the configured project, else auto_build.project, else cuprated
	Version string `json:"version"`
	Commit  string `json:"commit"` // 40 hex digits
	Note    string `json:"note"`
}

// RequestSummary is a signed and stored build request, as `rbnode request
// --json` prints it (docs/json.md).
type RequestSummary struct {
	Document    string    `json:"document"`
	Project     string    `json:"project"`
	Version     string    `json:"version"`
	GitCommit   string    `json:"git_commit"`
	Requester   string    `json:"requester"`
	Fingerprint string    `json:"fingerprint"`
	RequestedAt time.Time `json:"requested_at"`
	Note        string    `json:"note"`
	// Supersedes lists the earlier requests for the release, by keys this
	// node trusts, that this one replaces.
	Supersedes []string `json:"supersedes"`
	// Published is 1 when a daemon gossiped the request, 0 when it was
	// only stored (a daemon started later shares it by sync).
	Published int `json:"published"`
}

// Request signs a build request with the node's builder key and stores
// it. A request is dated at least a second after every stored request
// for the release by a trusted key, so that it is the one judged.
func (n *Node) Request(ctx context.Context, o RequestOptions) (*RequestSummary, *attest.Document, error) {
	if err := attest.CheckName("version", o.Version); err != nil {
		return nil, nil, usageErr(err)
	}
	commit := strings.ToLower(o.Commit)
	if !isHex(commit) || len(commit) != 40 {
		return nil, nil, usagef("--commit %q is not a full commit hash (40 hex digits)", o.Commit)
	}
	project := o.Project
	for _, p := range []string{n.settings().Project, n.cfg.AutoBuild.Project, DefaultRequestProject} {
		if project == "" {
			project = p
		}
	}
	if err := attest.CheckName("project", project); err != nil {
		return nil, nil, usageErr(err)
	}
	if len(o.Note) > attest.MaxNote || attest.CleanText(o.Note, attest.MaxNote) != o.Note {
		return nil, nil, usagef("--note must be at most %d bytes of text without control characters", attest.MaxNote)
	}
	sk, err := n.BuilderKey()
	if err != nil {
		return nil, nil, err
	}
	requester, err := attest.SanitizeBuilderID(sk.Public().Name())
	if err != nil {
		return nil, nil, fmt.Errorf("the builder key's name cannot name a requester: %w", err)
	}
	ts, err := n.TrustSet()
	if err != nil {
		return nil, nil, err
	}
	at := n.now().UTC().Truncate(time.Second)
	var claims []attest.Claim
	if docs, err := n.store.Release(project, o.Version); err == nil {
		claims, err = storedClaims(docs)
		if err != nil {
			return nil, nil, err
		}
	} else {
		return nil, nil, fmt.Errorf("read release %s %s: %w", project, o.Version, err)
	}
	var older []string
	if cur, rest := attest.CurrentRequest(claims, ts); cur != nil {
		if last := cur.Statement.Request.RequestedAt; !at.After(last) {
			at = last.Add(time.Second)
		}
		for _, c := range append([]attest.Claim{*cur}, rest...) {
			older = append(older, c.Doc.String())
		}
	}
	req := &attest.BuildRequest{Project: project, Version: o.Version, GitCommit: commit, Requester: requester, RequestedAt: at, Note: o.Note}
	doc, err := n.signOwn(ctx, attest.KindRequest, attest.RequestName, req.Encode(), at)
	if err != nil {
		return nil, nil, err
	}
	id, err := doc.ID()
	if err != nil {
		return nil, nil, err
	}
	return &RequestSummary{
		Document: id.String(), Project: project, Version: o.Version, GitCommit: commit, Requester: requester,
		Fingerprint: sk.Public().Fingerprint, RequestedAt: at, Note: o.Note, Supersedes: append([]string{}, older...),
	}, doc, nil
}

// storedClaims makes the claims of stored documents.
func storedClaims(docs []store.StoredDoc) ([]attest.Claim, error) {
	claims := make([]attest.Claim, 0, len(docs))
	for _, d := range docs {
		st, err := d.Record.Document().Statement()
		if err != nil {
			return nil, fmt.Errorf("re-read stored document %s: %w", d.Record.ID.Short(), err)
		}
		claims = append(claims, attest.Claim{
			Doc: d.Record.ID, Signer: d.Record.Signer, File: d.Record.Name,
			Statement: *st, Verification: d.Meta.Verification,
		})
	}
	return claims, nil
}

// Request signs and stores a build request (Node.Request), then gossips it.
func (d *Daemon) Request(ctx context.Context, o RequestOptions) (*RequestSummary, error) {
	sum, doc, err := d.n.Request(ctx, o)
	if err != nil {
		return nil, err
	}
	d.metrics.stored.WithLabelValues("import").Inc()
	d.changed()
	id, _ := doc.ID()
	// A node that lists its own key in requests_from builds its own
	// requests too.
	if st, err := doc.Statement(); err == nil {
		d.offerRequest(id, st, attest.Verification{Status: attest.StatusGood, Fingerprint: sum.Fingerprint})
	}
	pub, err := d.publishIDs(ctx, []attest.ID{id})
	sum.Published = pub.Published
	return sum, err
}
