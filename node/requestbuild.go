package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/builder"
)

// A builder daemon answers build requests signed by the keys of
// [auto_build] requests_from: it builds each one once, one build at a
// time, from its own repository at the requested commit, with its own
// configured pipeline, and publishes an attestation or a build failure.
// A request chooses only the version and the commit; nothing in it is run.

// queuedRequest is a request waiting for its build.
type queuedRequest struct {
	id  attest.ID
	req *attest.BuildRequest
	fp  string // the requester's fingerprint
}

// requestQueue holds the requests waiting for their build, bounded by
// auto_build.queue_limit; one worker takes them in arrival order. A
// request that finds it full is dropped and dropped is set: once the
// queue has drained, the worker looks in the store for unanswered
// requests again.
type requestQueue struct {
	ch      chan queuedRequest
	mu      sync.Mutex
	pending map[attest.ID]bool // queued or being built
	dropped bool               // under mu
}

func newRequestQueue(limit int) *requestQueue {
	return &requestQueue{ch: make(chan queuedRequest, limit), pending: map[attest.ID]bool{}}
}

// requestDoneKey is the store setting that marks a request answered (or
// set aside): the daemon never builds it again, restarts included.
func requestDoneKey(id attest.ID) string { return "request-done/" + id.String() }

// requestDone is what the store keeps of an answered request.
type requestDone struct {
	Outcome string    `json:"outcome"` // attested, failed, superseded, other_project
	At      time.Time `json:"at"`
}

func (n *Node) requestAnswered(id attest.ID) bool {
	_, err := n.store.GetSetting(requestDoneKey(id))
	return err == nil
}

func (n *Node) markRequest(id attest.ID, outcome string) error {
	b, _ := json.Marshal(requestDone{Outcome: outcome, At: n.now().UTC()})
	return n.store.PutSetting(requestDoneKey(id), b)
}

// offerRequest queues a stored request for a build when its good
// signature is by a listed key and it has not been answered. A full queue
// drops it (logged): memory stays bounded, and the worker finds it again
// in the store once the queue has drained.
func (d *Daemon) offerRequest(id attest.ID, st *attest.Statement, v attest.Verification) {
	q := d.requests
	if q == nil || st.Request == nil || !v.OK() || !d.n.cfg.AutoBuild.listsRequester(v.Fingerprint) {
		return
	}
	if d.n.requestAnswered(id) {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending[id] {
		return
	}
	select {
	case q.ch <- queuedRequest{id: id, req: st.Request, fp: v.Fingerprint}:
		q.pending[id] = true
		d.log.Info().Str("component", "auto_build").Str("request", id.Short()).Str("version", st.Request.Version).
			Str("commit", st.Request.GitCommit).Msg("build request queued")
	default:
		q.dropped = true
		d.log.Warn().Str("component", "auto_build").Str("request", id.Short()).Int("queue_limit", cap(q.ch)).
			Msg("build request queue is full: request set aside until the queue drains")
	}
}

// scanRequests offers every stored request by a listed key that has not
// been answered, and returns how many it found.
func (d *Daemon) scanRequests() (int, error) {
	rels, err := d.n.store.Releases()
	if err != nil {
		return 0, err
	}
	found := 0
	for _, rel := range rels {
		docs, err := d.n.store.Release(rel.Project, rel.Version)
		if err != nil {
			return found, err
		}
		for _, doc := range docs {
			v := doc.Meta.Verification
			if doc.Record.Kind != attest.KindRequest || !v.OK() || !d.n.cfg.AutoBuild.listsRequester(v.Fingerprint) ||
				d.n.requestAnswered(doc.Record.ID) {
				continue
			}
			st, err := doc.Record.Document().Statement()
			if err != nil {
				continue
			}
			found++
			d.offerRequest(doc.Record.ID, st, v)
		}
	}
	return found, nil
}

// requestBuilds is the one worker that builds queued requests.
func (d *Daemon) requestBuilds(ctx context.Context) error {
	if _, err := d.scanRequests(); err != nil {
		d.log.Warn().Err(err).Msg("read the stored build requests")
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case it := <-d.requests.ch:
			err := d.answerRequest(ctx, it)
			if ctx.Err() != nil {
				return nil // interrupted: not marked, built after the restart
			}
			if err != nil {
				d.log.Warn().Err(err).Str("request", it.id.Short()).Msg("answer a build request")
			}
			d.requestDone(it)
		}
	}
}

// requestDone forgets it as pending and, when the queue has drained
// after dropping requests, queues the store's unanswered ones again.
func (d *Daemon) requestDone(it queuedRequest) {
	q := d.requests
	q.mu.Lock()
	delete(q.pending, it.id)
	rescan := q.dropped && len(q.ch) == 0
	if rescan {
		q.dropped = false
	}
	q.mu.Unlock()
	if rescan {
		if _, err := d.scanRequests(); err != nil {
			d.log.Warn().Err(err).Msg("read the stored build requests")
		}
	}
}

// answerRequest builds one request, unless a later request by a listed
// key replaced it or it names another project, and publishes the signed
// outcome.
func (d *Daemon) answerRequest(ctx context.Context, it queuedRequest) error {
	c := d.n.cfg.AutoBuild
	log := d.log.With().Str("component", "auto_build").Str("request", it.id.Short()).
		Str("version", it.req.Version).Str("commit", it.req.GitCommit).Logger()
	if d.n.requestAnswered(it.id) {
		return nil
	}
	project := c.Project
	if project == "" {
		project = DefaultRequestProject
	}
	if it.req.Project != project {
		log.Info().Str("project", it.req.Project).Msg("build request for another project: not built")
		return d.n.markRequest(it.id, "other_project")
	}
	if cur, err := d.currentListedRequest(it.req.Project, it.req.Version); err != nil {
		return err
	} else if cur != nil && cur.Doc != it.id && laterRequest(cur, it) {
		log.Info().Str("by", cur.Doc.Short()).Msg("build request superseded before its build: not built")
		return d.n.markRequest(it.id, "superseded")
	}

	d.buildMu.Lock()
	defer d.buildMu.Unlock()
	log.Info().Msg("building a requested commit")
	var res *builder.Result
	err := d.fetchCommit(ctx, it.req.GitCommit)
	if err == nil {
		res, err = RunBuild(ctx, d.n.cfg.Home, BuildRequest{
			Repo: c.Repo, Version: it.req.Version, Commit: it.req.GitCommit, Pipeline: c.Pipeline, Project: c.Project,
			BuilderID: c.BuilderID, Heartbeat: d.logHeartbeat,
		}, d.n.now)
		if ctx.Err() != nil {
			return nil
		}
		if Recordable(res, err) {
			if rerr := d.n.AddBuild(&res.Record); rerr != nil {
				return rerr
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err == nil {
		sum, err := d.Publish(ctx, res.Signed.Path, ImportOptions{})
		if err != nil {
			return err
		}
		log.Info().Int("published", sum.Published).Msg("built the requested commit and published the attestation")
		return d.n.markRequest(it.id, "attested")
	}
	log.Warn().Err(err).Str("hint", builder.Hint(err)).Msg("requested build failed: publishing a build failure")
	f, ferr := d.failureFor(it, err)
	if ferr != nil {
		return ferr
	}
	if err := d.signAndPublish(ctx, attest.KindBuildFailure, attest.FailureName, f.Encode()); err != nil {
		return err
	}
	return d.n.markRequest(it.id, "failed")
}

// currentListedRequest is the request the daemon answers for a release:
// the latest by a listed key.
func (d *Daemon) currentListedRequest(project, version string) (*attest.Claim, error) {
	docs, err := d.n.store.Release(project, version)
	if err != nil {
		return nil, err
	}
	claims, err := storedClaims(docs)
	if err != nil {
		return nil, err
	}
	listed := attest.TrustSet{}
	for _, c := range claims {
		if c.Statement.Request != nil && d.n.cfg.AutoBuild.listsRequester(c.Verification.Fingerprint) {
			listed[c.Verification.Fingerprint] = ""
		}
	}
	cur, _ := attest.CurrentRequest(claims, listed)
	return cur, nil
}

// laterRequest reports whether cur is judged before it (CurrentRequest's
// order): a request the store does not hold yet is never superseded.
func laterRequest(cur *attest.Claim, it queuedRequest) bool {
	a, b := cur.Statement.Request.RequestedAt, it.req.RequestedAt
	return a.After(b) || a.Equal(b) && cur.Doc.String() < it.id.String()
}

// fetchCommit makes the requested commit present in the repository:
// fetched from auto_build.remote (by hash, else every branch), never
// run. Its error is a *builder.StageError of stage source.
func (d *Daemon) fetchCommit(ctx context.Context, commit string) error {
	c := d.n.cfg.AutoBuild
	git := func(args ...string) ([]byte, error) {
		gctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		return exec.CommandContext(gctx, "git", append([]string{"-C", c.Repo}, args...)...).CombinedOutput()
	}
	has := func() bool { _, err := git("cat-file", "-e", commit+"^{commit}"); return err == nil }
	if has() {
		return nil
	}
	var out []byte
	var err error
	if c.Remote != "" {
		out, err = git("fetch", "--quiet", "--no-tags", c.Remote, commit)
		if err != nil || !has() {
			out, err = git("fetch", "--quiet", "--no-tags", c.Remote)
		}
	}
	if has() {
		return nil
	}
	code := -1
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	msg := fmt.Sprintf("commit %s is not in %s", commit, c.Repo)
	if c.Remote != "" {
		msg += " nor in its remote " + c.Remote
	}
	return &builder.StageError{Stage: builder.StageSource, ExitCode: code, LastLine: lastLine(out), Err: errors.New(msg + ": " + strings.TrimSpace(string(out)))}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// failureFor describes a failed build as a build-failure document: the
// stage, its exit code, the error and the last lines of its log.
func (d *Daemon) failureFor(it queuedRequest, err error) (*attest.BuildFailure, error) {
	sk, kerr := d.n.BuilderKey()
	if kerr != nil {
		return nil, kerr
	}
	id := d.n.cfg.AutoBuild.BuilderID
	if id == "" {
		id = sk.Public().Name()
	}
	stage, code := "setup", -1
	var tail []string
	var se *builder.StageError
	var ce *builder.CheckError
	switch {
	case errors.As(err, &se):
		stage, code = string(se.Stage), se.ExitCode
		if se.Log != "" {
			tail, _, _ = lastLines(se.Log, attest.MaxLogLines)
		} else if se.Err != nil {
			tail = strings.Split(strings.TrimSpace(se.Err.Error()), "\n")
		}
	case errors.As(err, &ce):
		stage = string(builder.StageCheck)
		tail = []string{ce.Error()}
	case errors.Is(err, builder.ErrUnknownRelease), errors.Is(err, builder.ErrNoPipeline):
		stage = string(builder.StageSource)
	}
	return &attest.BuildFailure{
		Project: it.req.Project, Version: it.req.Version, GitCommit: it.req.GitCommit, Request: it.id,
		BuilderID: attest.CleanText(id, attest.MaxNameLen), Stage: stage, ExitCode: code,
		Error: attest.CleanText(err.Error(), attest.MaxFailureError), LogTail: attest.LogTail(tail),
		FailedAt: d.n.now().UTC().Truncate(time.Second),
	}, nil
}

// signAndPublish signs body as a document of kind with the builder key,
// stores it and gossips it.
func (d *Daemon) signAndPublish(ctx context.Context, kind attest.Kind, name string, body []byte) error {
	doc, err := d.n.signOwn(ctx, kind, name, body, d.n.now().UTC())
	if err != nil {
		return err
	}
	d.changed()
	id, _ := doc.ID()
	_, err = d.publishIDs(ctx, []attest.ID{id})
	return err
}

// signOwn signs body with the builder key and stores it as a document.
func (n *Node) signOwn(ctx context.Context, kind attest.Kind, name string, body []byte, at time.Time) (*attest.Document, error) {
	sk, err := n.BuilderKey()
	if err != nil {
		return nil, err
	}
	sig, err := sk.Sign(body, at)
	if err != nil {
		return nil, fmt.Errorf("sign the %s: %w", kind, err)
	}
	doc := &attest.Document{Kind: kind, Name: name, Body: body, Signature: sig}
	sum, err := n.Ingest(ctx, []*attest.Document{doc}, "local")
	if err != nil {
		return nil, err
	}
	if sum.Rejected > 0 {
		return nil, fmt.Errorf("the new %s was refused: %s", kind, sum.Rejections[0].Detail)
	}
	return doc, nil
}
