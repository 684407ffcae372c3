package gossip

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// CatchUp fetches what the given peers hold and this node lacks, with
// all of them at once, each bucket of the ID space (the root's 16
// children) from one of them: a peer's sessions take the next bucket
// no session is working on, so a faster peer serves more. It opens as
// many sessions as it needs, one after another per peer: a session ends
// at its request cap or after half the session deadline, and a peer that
// refuses for its work budget is asked again after the wait it names,
// the work going on where it stopped (the IDs found missing and not yet
// fetched are kept, not reconciled again). A peer that fails otherwise
// (stalls, breaks the protocol, goes away) is dropped and its bucket
// taken up by the others.
//
// Each bucket is reconciled with one peer only: peers that hold
// different sets are brought together by a SyncWith with each of them
// afterwards (cheap once the sets are equal). CatchUp returns one
// SyncStats per peer, in order, and an error when some bucket could not
// be finished or some peer failed.
func (n *Network) CatchUp(ctx context.Context, peers []peer.AddrInfo) ([]SyncStats, error) {
	pl := newPlan()
	stats := make([]SyncStats, len(peers))
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() { stats[i], errs[i] = n.catchUpWith(ctx, p, pl) })
	}
	wg.Wait()
	err := errors.Join(errs...)
	if left := pl.left(); left > 0 {
		return stats, fmt.Errorf("catch-up incomplete: %d buckets not fetched: %w", left, err)
	}
	return stats, err
}

// maxRefusals is how many sessions in a row a peer may refuse (budget or
// busy) without this node getting anything from it before CatchUp gives
// up on that peer.
const maxRefusals = 6

// visitLevels bounds the levels of the prefix tree a bucket's reconcile
// descends: buckets of up to 32·16⁵ (33 million) IDs.
const visitLevels = 6

// requestReserve is the requests a catch-up session keeps in hand when it
// takes a bucket: one bucket rarely needs more, and a bucket cut short
// goes on in the next session anyway.
const requestReserve = 600

// catchUpWith runs catch-up sessions with p until no bucket is left for
// it, or it fails.
func (n *Network) catchUpWith(ctx context.Context, p peer.AddrInfo, pl *plan) (st SyncStats, err error) {
	start := time.Now()
	st.Peer = p.ID
	defer func() {
		st.Duration = time.Since(start)
		st.Err = err
		if n.cfg.SyncDone != nil {
			n.cfg.SyncDone(st, err)
		}
	}()
	if err := n.connectFor(ctx, p); err != nil {
		return st, err
	}
	refusals := 0
	for {
		if more, err := pl.wait(ctx); err != nil || !more {
			return st, err
		}
		fetched := st.Fetched
		err := n.catchUpSession(ctx, p.ID, pl, &st)
		if st.Fetched > fetched {
			refusals = 0
		}
		if err == nil {
			continue
		}
		var se *SyncError
		if ctx.Err() != nil || !errors.As(err, &se) || (se.Code != errCodeLimit && se.Code != errCodeBusy) {
			return st, err
		}
		if refusals++; refusals > maxRefusals {
			return st, fmt.Errorf("%w (%d refusals in a row)", err, refusals)
		}
		wait := se.RetryAfter
		if wait == 0 {
			wait = time.Second << refusals // busy, or a server that does not say
		}
		// The server's clock started first: a little more, so as not to
		// come back a hair early (which is penalised).
		wait += wait/50 + 50*time.Millisecond
		st.Waited += wait
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return st, ctx.Err()
		}
	}
}

// connectFor connects to p for a sync, unless it is this node or banned.
func (n *Network) connectFor(ctx context.Context, p peer.AddrInfo) error {
	if p.ID == n.host.ID() {
		return errors.New("sync with self")
	}
	if n.bans.has(p.ID) {
		return fmt.Errorf("sync with %s: %w", p.ID, ErrBanned)
	}
	if len(p.Addrs) > 0 || n.host.Network().Connectedness(p.ID) != network.Connected {
		if err := n.host.Connect(ctx, p); err != nil {
			return fmt.Errorf("connect to %s: %w", p.ID, err)
		}
	}
	return nil
}

// catchUpSession is one session of a catch-up: the root first (the
// server wants every session to start there), then buckets taken from pl
// until none is waiting, the request reserve or half the deadline is
// reached, or a bucket needs a new session. A nil error means the
// session ended cleanly.
func (n *Network) catchUpSession(ctx context.Context, p peer.ID, pl *plan, st *SyncStats) error {
	timeout := n.cfg.tuning.sessionTimeout
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := n.openSession(sctx, ctx, p, st)
	if err != nil {
		return err
	}
	start := time.Now()
	err = func() error {
		root, local, err := c.ask([]prefix{{}})
		if err != nil {
			return err
		}
		// The IDs the server ranges over in this session, bounded by
		// maxVisits: the root's, then at most visitLevels times a
		// bucket's for each job (reconciling it ranges each level once).
		visits := uint64(0)
		for _, ch := range root.answers[0].children {
			visits += ch.count
		}
		visits += uint64(len(root.answers[0].ids))
		for jobs := 0; c.requests < maxRequests-requestReserve && time.Since(start) < timeout/2; jobs++ {
			j := pl.take()
			if j == nil {
				return nil
			}
			if j.p.depth == 1 && !j.reconciled && root.answers[0].kind == answerSplit {
				cost := visitLevels * root.answers[0].children[nibble(&j.p.b, 0)].count
				if jobs > 0 && visits+cost > maxVisits {
					pl.put(j, false) // first in the next session
					return nil
				}
				visits += cost
			}
			done, err := c.work(sctx, j, pl, &root.answers[0], &local[0])
			pl.put(j, done)
			if err != nil || !done {
				return err
			}
		}
		return nil
	}()
	if errors.Is(err, errSessionFull) || (sctx.Err() != nil && ctx.Err() == nil) {
		err = nil // the work left goes on in the next session
	}
	err = c.finish(sctx, err)
	var se *SyncError
	if errors.As(err, &se) && se.Code == errCodeLimit {
		st.Refused++
	}
	return err
}

// work does one job with the session, given the session's root answer
// and this node's root scan; done means the bucket needs nothing more.
func (c *client) work(ctx context.Context, j *job, pl *plan, root *answer, local *bucketScan) (done bool, err error) {
	if len(j.left) > 0 {
		if j.left, err = c.fetch(j.left); err != nil {
			return false, err
		}
	}
	if j.reconciled {
		return true, nil
	}
	var (
		missing  [][idLen]byte
		complete = true
	)
	switch {
	case root.kind == answerEqual:
		return true, nil
	case root.kind == answerIDs:
		var ids [][idLen]byte
		for _, id := range root.ids {
			if j.p.contains(&id) {
				ids = append(ids, id)
			}
		}
		if missing, err = c.lacking(j.p, ids); err != nil {
			return false, err
		}
	case j.p.depth == 0: // the root job, answered Split: one job a child
		var jobs []*job
		for ch, s := range root.children {
			if s.count > 0 && s != local.children[ch] {
				jobs = append(jobs, &job{p: prefix{}.child(byte(ch))})
			}
		}
		pl.add(jobs)
		return true, nil
	default:
		ch := nibble(&j.p.b, 0)
		if s := root.children[ch]; s.count == 0 || s == local.children[ch] {
			return true, nil
		}
		if missing, complete, err = c.reconcile(ctx, []prefix{j.p}); err != nil {
			return false, err
		}
	}
	j.left, j.reconciled = c.wanted(missing), complete
	if j.left, err = c.fetch(j.left); err != nil {
		return false, err
	}
	if !complete {
		c.st.More = true
		j.reconciled = false // reconciled again in a new session
		// A bucket whose missing IDs are all ignored comes back the
		// same each pass: it is given up after maxPasses.
		j.passes++
		return j.passes >= maxPasses, nil
	}
	return true, nil
}

// job is a bucket of a catch-up: the root at first, then the root's
// children that differ.
type job struct {
	p          prefix
	left       [][idLen]byte // found missing, not fetched yet
	reconciled bool          // left is all the bucket lacks
	passes     int           // reconciles cut short at maxMissing
}

// maxPasses bounds the reconciles of one bucket in a catch-up: each
// fetches up to maxMissing IDs, so a bucket of up to 8 million missing
// documents is caught up in one run.
const maxPasses = 64

// plan is the jobs of one catch-up, shared by its peers' sessions.
type plan struct {
	mu      sync.Mutex
	jobs    []*job // waiting, the ones cut short first
	busy    int    // taken by a session
	changed chan struct{}
}

func newPlan() *plan {
	return &plan{jobs: []*job{{}}, changed: make(chan struct{})}
}

// notify wakes the waiters; pl.mu must be held.
func (pl *plan) notify() {
	close(pl.changed)
	pl.changed = make(chan struct{})
}

// take returns a waiting job, or nil.
func (pl *plan) take() *job {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if len(pl.jobs) == 0 {
		return nil
	}
	j := pl.jobs[0]
	pl.jobs = pl.jobs[1:]
	pl.busy++
	return j
}

// put returns a taken job: finished when done, else waiting again (first
// in line, so that it goes on where it stopped).
func (pl *plan) put(j *job, done bool) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.busy--
	if !done {
		pl.jobs = append([]*job{j}, pl.jobs...)
	}
	pl.notify()
}

// add queues new jobs.
func (pl *plan) add(jobs []*job) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.jobs = append(pl.jobs, jobs...)
	pl.notify()
}

// wait blocks until a job is waiting (true) or none is left anywhere
// (false).
func (pl *plan) wait(ctx context.Context) (bool, error) {
	for {
		pl.mu.Lock()
		waiting, busy, ch := len(pl.jobs), pl.busy, pl.changed
		pl.mu.Unlock()
		if waiting > 0 {
			return true, nil
		}
		if busy == 0 {
			return false, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// left returns the jobs not finished.
func (pl *plan) left() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return len(pl.jobs) + pl.busy
}
