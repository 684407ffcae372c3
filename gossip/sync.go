package gossip

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/errgroup"
)

// SyncStats reports one catch-up sync session with one peer.
type SyncStats struct {
	Peer         peer.ID
	Rounds       int   // reconcile requests sent
	Buckets      int   // bucket summaries sent in them
	SummaryBytes int64 // bytes sent and received while reconciling
	FetchBytes   int64 // bytes sent and received while fetching
	Missing      int   // IDs the peer holds that this node lacked
	Skipped      int   // of those, recently Ignored ones not fetched again
	Fetched      int   // messages received and given to the Handler
	Accepted     int
	Ignored      int
	Rejected     int
	Duration     time.Duration
	Sessions     int           // sync streams opened (CatchUp opens several)
	Refused      int           // sessions the peer refused or cut short for its budget
	Waited       time.Duration // time spent waiting for the peer's retry-after
	// More is set when a session stopped at a per-session cap with
	// buckets left to reconcile: another session goes on from there.
	More bool
	// Err is why syncing with the peer failed (CatchUp), nil if it did not.
	Err error
}

// SyncError is the answer of a peer that refused or cut short a session
// (busy, over a limit, or our request was malformed).
type SyncError struct {
	Code byte
	Text string
	// RetryAfter is how long the peer asked this node to wait before
	// its next session (its work budget for this node is spent); 0 when
	// it did not say.
	RetryAfter time.Duration
}

func (e *SyncError) Error() string {
	return fmt.Sprintf("peer refused sync (code %d): %s", e.Code, e.Text)
}

// bucketScan is one pass over a bucket of the inventory.
type bucketScan struct {
	sum      summary
	children [fanout]summary
	ids      [][idLen]byte // the first keep IDs
}

// scanBucket ranges over the IDs under p once, computing its summary, its
// children's summaries and its first keep IDs. visits counts the IDs the
// inventory yielded; scanning stops with errBudget once it passes budget.
func scanBucket(inv Inventory, p prefix, keep int, visits *int, budget int) (bucketScan, error) {
	var (
		s      bucketScan
		all    = sha256.New()
		ch     hash.Hash
		cur    = -1
		depth  = int(p.depth)
		over   bool
		closeC = func() {
			if cur >= 0 {
				copy(s.children[cur].fp[:], ch.Sum(nil))
			}
		}
	)
	err := rangeBucket(inv, p, func(id [idLen]byte) bool {
		*visits++
		if *visits > budget {
			over = true
			return false
		}
		s.sum.count++
		all.Write(id[:])
		if depth < maxDepth {
			c := int(nibble(&id, depth))
			if c != cur {
				closeC()
				cur, ch = c, sha256.New()
			}
			ch.Write(id[:])
			s.children[c].count++
		}
		if len(s.ids) < keep {
			s.ids = append(s.ids, id)
		}
		return true
	})
	if err != nil {
		return s, fmt.Errorf("range inventory %s: %w", p, err)
	}
	if over {
		return s, errBudget
	}
	closeC()
	if s.sum.count > 0 {
		copy(s.sum.fp[:], all.Sum(nil))
	}
	return s, nil
}

// rangeBucket calls fn for each ID of the inventory in bucket p, in
// ascending order, until fn returns false. At an odd depth it ranges
// each of the 16 whole-byte prefixes under p in turn, so that it never
// passes over IDs outside the bucket: one Range over the whole byte would
// visit, for the 16 buckets of a depth, 8.5 times the IDs they hold.
func rangeBucket(inv Inventory, p prefix, fn func(id [idLen]byte) bool) error {
	if p.depth%2 == 0 {
		return inv.Range(p.bytePrefix(), fn)
	}
	whole := int(p.depth / 2)
	pre := make([]byte, whole+1)
	copy(pre, p.b[:whole])
	stopped := false
	for lo := range byte(fanout) {
		pre[whole] = p.b[whole]&0xf0 | lo
		err := inv.Range(pre, func(id [idLen]byte) bool {
			if !fn(id) {
				stopped = true
			}
			return !stopped
		})
		if err != nil || stopped {
			return err
		}
	}
	return nil
}

var errBudget = errors.New("sync work budget exhausted")

// errSessionFull ends a client session at its request cap: the work left
// goes on in a new session.
var errSessionFull = errors.New("sync session request cap reached")

// errCap is a session past a cap no honest session reaches.
var errCap = errors.New("sync session cap reached")

// ErrStalled is returned by a sync session whose peer did not answer a
// request within the idle timeout (DefaultIdleTimeout).
var ErrStalled = errors.New("sync peer stalled")

// countingRW counts the bytes through a stream.
type countingRW struct {
	rw io.ReadWriter
	n  atomic.Int64
	br *bufio.Reader
}

func (c *countingRW) Read(p []byte) (int, error) {
	n, err := c.rw.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingRW) Write(p []byte) (int, error) {
	n, err := c.rw.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// serveSync answers one peer's sync session: reconcile and get requests
// until it closes the stream or breaks a limit. Each request must arrive,
// and each answer be taken, within the idle timeout; the work of the
// session comes out of the peer's budget.
func (n *Network) serveSync(s network.Stream) {
	p := s.Conn().RemotePeer()
	if !n.enter() {
		_ = s.Reset()
		return
	}
	defer n.bg.Done()
	if n.bans.has(p) {
		_ = s.Reset()
		return
	}
	sess, ok := n.serving.acquire(p, s)
	if !ok {
		_ = writeFrame(s, encode(&errorMsg{code: errCodeBusy, text: "too many sync sessions"}))
		_ = s.Close()
		return
	}
	defer n.serving.release(sess)
	stop := context.AfterFunc(n.ctx, func() { _ = s.Reset() })
	defer stop()
	_ = s.SetDeadline(time.Now().Add(n.cfg.tuning.sessionTimeout))
	guard := newStallGuard(s)
	defer guard.disarm()
	idle := n.cfg.tuning.idleTimeout

	log := n.log.With().Str("peer", p.String()).Logger()
	visits := 0 // IDs ranged over in this session
	if n.work.Available(p, time.Now()) < min(minSessionWork, n.cfg.SyncWorkBurst/16) {
		// Refused, and told when to come back; coming back earlier than
		// it was last told is held against it.
		if n.refuseBudget(s, p) {
			n.penalise(p, penaltyHeavy, "sync session started before the retry-after it was given")
		}
		return
	}
	br := bufio.NewReader(s)
	var asked askLog
	for req := 0; ; req++ {
		sess.waiting(true)
		guard.arm(idle)
		body, err := readFrame(br)
		guard.disarm()
		sess.waiting(false)
		if errors.Is(err, io.EOF) {
			_ = s.Close()
			return
		}
		var m any
		if err == nil {
			m, err = decode(body, n.cfg.MaxMessageSize)
		}
		if err != nil {
			switch {
			case errors.Is(err, ErrMalformed):
				n.penalise(p, penaltyMalformed, "malformed sync request: "+err.Error())
				_ = writeFrame(s, encode(&errorMsg{code: errCodeMalformed, text: "malformed request"}))
			case guard.fired.Load():
				// Waited past the idle timeout: a stall, even if a
				// newcomer took its slot in the same instant.
				n.penalise(p, penaltyStall, "sync request stalled past the idle timeout")
			}
			log.Debug().Err(err).Msg("sync serve: read request")
			_ = s.Reset()
			return
		}
		if req >= maxRequests {
			_ = writeFrame(s, encode(&errorMsg{code: errCodeLimit, text: "too many requests"}))
			_ = s.Close()
			return
		}
		var (
			resp any
			cost int64
			// What the request may cost: the peer's balance and a
			// second's refill, which it then waits for (pacing).
			avail = n.work.Available(p, time.Now()) + n.work.gain(n.cfg.tuning.pace)
		)
		switch m := m.(type) {
		case *reconcileReq:
			before := visits
			// Ranging stops at the session's cap or the peer's budget,
			// whichever comes first.
			budget := min(maxVisits, visits+int(min(avail/rangeCost, maxVisits)))
			resp, err = n.answerReconcile(m, &asked, &visits, budget)
			cost = int64(visits-before) * rangeCost
		case *getReq:
			g, c, short := n.answerGet(m, avail)
			if short && len(g.items) == 0 {
				err = errBudget
			}
			resp, cost = g, c
		default:
			n.penalise(p, penaltyMalformed, fmt.Sprintf("sync request of type %T", m))
			_ = s.Reset()
			return
		}
		if errors.Is(err, ErrMalformed) {
			n.penalise(p, penaltyMalformed, "sync request: "+err.Error())
			_ = writeFrame(s, encode(&errorMsg{code: errCodeMalformed, text: "malformed request"}))
			_ = s.Reset()
			return
		}
		n.work.Spend(p, cost, time.Now())
		if errors.Is(err, errCap) || errors.Is(err, errBudget) && visits > maxVisits {
			// One session ranged over as much as any honest one needs.
			n.penalise(p, penaltyHeavy, "sync session over its work cap")
			_ = writeFrame(s, encode(&errorMsg{code: errCodeLimit, text: "session work cap reached"}))
			_ = s.Close()
			return
		}
		if errors.Is(err, errBudget) {
			// Not held against the peer: an honest catch-up of a large
			// store gets here. It is told when to come back.
			log.Debug().Int64("cost", cost).Msg("sync serve: work budget spent")
			_ = n.refuseBudget(s, p)
			return
		}
		if err != nil {
			log.Warn().Err(err).Msg("sync serve")
			_ = s.Reset()
			return
		}
		if wait := n.work.Until(p, 0, time.Now()); wait > 0 {
			if wait > n.cfg.tuning.pace {
				// Overdrawn past pacing (the peer's other session spent
				// meanwhile): refused, not left waiting into a stall.
				_ = n.refuseBudget(s, p)
				return
			}
			// Paced: the answer leaves when the peer's balance is back
			// to zero (at most about a second).
			select {
			case <-time.After(wait):
			case <-n.ctx.Done():
				_ = s.Reset()
				return
			}
		}
		guard.arm(idle)
		err = writeFrame(s, encode(resp))
		guard.disarm()
		if err != nil {
			if guard.fired.Load() {
				n.penalise(p, penaltyStall, "sync answer not read within the idle timeout")
			}
			log.Debug().Err(err).Msg("sync serve: write response")
			_ = s.Reset()
			return
		}
	}
}

// stallGuard resets a stream when one frame, read or written, takes
// longer than the idle timeout. A timer rather than stream deadlines: it
// works on every transport, mocknet included.
type stallGuard struct {
	t     *time.Timer
	fired atomic.Bool
}

func newStallGuard(s network.Stream) *stallGuard {
	g := &stallGuard{}
	g.t = time.AfterFunc(time.Hour, func() { g.fired.Store(true); _ = s.Reset() })
	g.t.Stop()
	return g
}

func (g *stallGuard) arm(d time.Duration) { g.t.Reset(d) }
func (g *stallGuard) disarm()             { g.t.Stop() }

// askLog is what one served session has asked: an honest asker starts at
// the root and asks only children of buckets answered with Split, each
// once, so the work of a session is bounded by the inventory's size
// times the tree's depth however the requests are crafted.
type askLog struct {
	split, asked map[prefix]struct{}
}

// errAsk is a request for a bucket the session may not ask.
var errAsk = fmt.Errorf("%w: bucket asked twice, or not under a split answer", ErrMalformed)

// maxAsked bounds the buckets one session may ask.
const maxAsked = 1 << 17

func (l *askLog) ask(p prefix) error {
	if l.asked == nil {
		l.split, l.asked = make(map[prefix]struct{}), make(map[prefix]struct{})
	}
	if _, again := l.asked[p]; again {
		return errAsk
	}
	if p.depth > 0 {
		if _, ok := l.split[p.parent()]; !ok {
			return errAsk
		}
	}
	if len(l.asked) >= maxAsked {
		return errCap
	}
	l.asked[p] = struct{}{}
	return nil
}

func (n *Network) answerReconcile(m *reconcileReq, log *askLog, visits *int, budget int) (*reconcileResp, error) {
	resp := &reconcileResp{answers: make([]answer, len(m.items))}
	big := maxBigListIDs // IDs left for long lists to askers with empty buckets
	for _, it := range m.items {
		if err := log.ask(it.prefix); err != nil {
			return nil, err
		}
	}
	for i, it := range m.items {
		keep := listThreshold
		if it.sum.count == 0 && big > listThreshold {
			keep = min(maxListIDs, big)
		}
		sc, err := n.scan(it.prefix, keep, visits, budget)
		if err != nil {
			return nil, err
		}
		a := &resp.answers[i]
		switch {
		case sc.sum == it.sum:
			a.kind = answerEqual
		case sc.sum.count <= uint64(keep) || it.prefix.depth == maxDepth:
			a.kind, a.ids = answerIDs, sc.ids
			if len(sc.ids) > listThreshold {
				big -= len(sc.ids)
			}
		default:
			a.kind, a.children = answerSplit, sc.children
			log.split[it.prefix] = struct{}{}
		}
	}
	return resp, nil
}

// rootCache is the last scan of the whole inventory, made at an inventory
// version, with the first maxListIDs IDs (as many as any answer lists).
type rootCache struct {
	mu      sync.Mutex
	ok      bool
	version uint64
	scan    bucketScan
}

// scan is scanBucket of this node's inventory, except that a scan of the
// root is reused while a VersionedInventory has not moved: both sides of
// every session start there. A reused scan counts fanout visits (its
// answer's summaries), not the IDs it once ranged over.
func (n *Network) scan(p prefix, keep int, visits *int, budget int) (bucketScan, error) {
	vi, ok := n.inv.(VersionedInventory)
	if !ok || p.depth > 0 {
		return scanBucket(n.inv, p, keep, visits, budget)
	}
	// Read before scanning: a change made visible during the scan moves
	// the version past v, so this scan is never taken for a later one.
	v := vi.Version()
	c := &n.root
	// One scan at a time: sessions that start together wait for it and
	// take it, rather than each ranging over everything.
	c.mu.Lock()
	defer c.mu.Unlock()
	var sc bucketScan
	if c.ok && c.version == v {
		sc = c.scan
		if *visits += fanout; *visits > budget {
			return sc, errBudget
		}
	} else {
		var err error
		if sc, err = scanBucket(n.inv, prefix{}, max(keep, maxListIDs), visits, budget); err != nil {
			return sc, err
		}
		c.ok, c.version, c.scan = true, v, sc
	}
	// An answer lists the IDs only when they number keep or fewer, and
	// then it holds them all; the cached list is never appended to.
	k := min(len(sc.ids), keep)
	sc.ids = sc.ids[:k:k]
	return sc, nil
}

// answerGet looks up the asked IDs in order and answers with the messages
// found, stopping past respSoftBytes or when the next one would take the
// cost past avail (short). It returns the answer and its cost:
// lookupCost per ID looked up plus the bytes served.
func (n *Network) answerGet(m *getReq, avail int64) (resp *getResp, cost int64, short bool) {
	resp = &getResp{}
	size := 0
	for _, id := range m.ids {
		if cost+lookupCost > avail {
			return resp, cost, true
		}
		cost += lookupCost
		data, err := n.inv.Get(id)
		if err != nil || len(data) == 0 || len(data) > n.cfg.MaxMessageSize {
			continue
		}
		if len(resp.items) > 0 && size+len(data) > respSoftBytes {
			break
		}
		if cost+int64(len(data)) > avail {
			return resp, cost, true
		}
		cost += int64(len(data))
		size += len(data) + idLen + uvarintMaxLen
		resp.items = append(resp.items, getItem{id: id, data: data})
	}
	return resp, cost, false
}

// refuseBudget tells p that its work budget is spent and when to come
// back (retryText), then closes the session. early reports that p came
// back before it was last told to.
func (n *Network) refuseBudget(s network.Stream, p peer.ID) (early bool) {
	now := time.Now()
	wait := n.work.Until(p, n.resumeWork(), now)
	early = n.work.Refuse(p, wait, now)
	_ = writeFrame(s, encode(&errorMsg{code: errCodeLimit, text: retryText(wait)}))
	_ = s.Close()
	return early
}

// resumeWork is the balance a refused asker is told to wait for: enough
// for a good part of a session, at most a quarter of the budget's burst.
func (n *Network) resumeWork() int64 {
	return min(n.cfg.tuning.resumeWork, n.cfg.SyncWorkBurst/4)
}

// retryText is the text of a budget refusal: the asker parses the wait
// (SyncError.RetryAfter); older askers wait a minute.
func retryText(wait time.Duration) string {
	return fmt.Sprintf("work budget exhausted; retry after %d ms", wait.Milliseconds())
}

// parseRetry returns the wait a budget refusal asks for, or 0.
func parseRetry(text string) time.Duration {
	i := strings.LastIndex(text, "retry after ")
	if i < 0 {
		return 0
	}
	var ms int64
	if _, err := fmt.Sscanf(text[i:], "retry after %d ms", &ms); err != nil || ms < 0 {
		return 0
	}
	if ms > maxRetryAfter.Milliseconds() {
		return maxRetryAfter // and no overflow
	}
	return time.Duration(ms) * time.Millisecond
}

// Resync starts a sync session with every connected peer at once
// (following any session in progress with it), fetching again the
// messages the Handler lately ignored: the node's judgement changed (its
// trust set did) and what it declined may now be wanted. Run must be
// running for the sessions to start; Resync itself never blocks.
func (n *Network) Resync() {
	n.ignored.clear()
	select {
	case n.resync <- struct{}{}:
	default: // one is already due
	}
}

// SyncWith connects to p if needed and runs one catch-up session: it finds
// the messages p holds that the Inventory lacks and gives each to the
// Handler. It works without Run (a light client). A peer that breaks the
// protocol or serves messages the Handler rejects is penalised and may be
// banned.
func (n *Network) SyncWith(ctx context.Context, p peer.AddrInfo) (SyncStats, error) {
	if err := n.connectFor(ctx, p); err != nil {
		return SyncStats{Peer: p.ID}, err
	}
	return n.syncPeer(ctx, p.ID)
}

// syncPeer runs one client session with a connected peer.
func (n *Network) syncPeer(ctx context.Context, p peer.ID) (st SyncStats, err error) {
	start := time.Now()
	st.Peer = p
	defer func() {
		st.Duration = time.Since(start)
		if n.cfg.SyncDone != nil {
			n.cfg.SyncDone(st, err)
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, n.cfg.tuning.sessionTimeout)
	defer cancel()
	c, err := n.openSession(sctx, ctx, p, &st)
	if err != nil {
		return st, err
	}
	return st, c.finish(sctx, c.run(sctx))
}

// openSession opens a sync stream to p for one session bounded by ctx;
// the session's figures are added to st. finish ends it. The Handler is
// given base, not ctx: what a session fetched is judged and stored even
// if its deadline passes meanwhile (a catch-up from four peers lost a
// thousand documents that way, each then skipped as ignored).
func (n *Network) openSession(ctx, base context.Context, p peer.ID, st *SyncStats) (*client, error) {
	s, err := n.host.NewStream(ctx, p, n.syncProto)
	if err != nil {
		return nil, fmt.Errorf("open sync stream to %s: %w", p, err)
	}
	st.Sessions++
	c := &client{n: n, p: p, s: s, rw: &countingRW{rw: s}, st: st, guard: newStallGuard(s), base: base}
	c.stop = context.AfterFunc(ctx, func() { _ = s.Reset() })
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	c.rw.br = bufio.NewReader(c.rw)
	return c, nil
}

// finish ends the session whose work ended with err (nil: done, the
// stream is closed) and returns err as the session's outcome: a stall
// is penalised and reported as ErrStalled.
func (c *client) finish(ctx context.Context, err error) error {
	c.guard.disarm()
	c.stop()
	if err == nil {
		_ = c.s.Close()
		return nil
	}
	_ = c.s.Reset()
	if c.guard.fired.Load() {
		c.n.penalise(c.p, penaltyStall, "sync answer stalled past the idle timeout")
		err = fmt.Errorf("%w (no answer within %v)", ErrStalled, c.n.cfg.tuning.idleTimeout)
	}
	if ctx.Err() != nil && !errors.Is(err, ErrBanned) {
		err = fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return fmt.Errorf("sync with %s: %w", c.p, err)
}

// client is the asking side of one session.
type client struct {
	n    *Network
	p    peer.ID
	s    network.Stream
	stop func() bool // stops resetting s when the session's ctx ends
	rw   *countingRW
	st   *SyncStats
	// requests sent so far
	requests int
	guard    *stallGuard
	// base bounds the Handler's work: the caller's context, without the
	// session's deadline.
	base context.Context
}

// roundTrip sends req and reads the answer, which must be of the wanted
// type; a protocol violation penalises the peer.
func (c *client) roundTrip(req any, want byte) (any, error) {
	if c.requests >= maxRequests {
		return nil, errSessionFull
	}
	c.requests++
	c.guard.arm(c.n.cfg.tuning.idleTimeout)
	defer c.guard.disarm()
	if err := writeFrame(c.rw, encode(req)); err != nil {
		return nil, err
	}
	body, err := readFrame(c.rw.br)
	var m any
	if err == nil {
		m, err = decode(body, c.n.cfg.MaxMessageSize)
	}
	if err == nil {
		if e, ok := m.(*errorMsg); ok {
			return nil, &SyncError{Code: e.code, Text: e.text, RetryAfter: parseRetry(e.text)}
		}
		if body[0] != want {
			err = fmt.Errorf("%w: answer of type %d to a request of type %d", ErrMalformed, body[0], want-1)
		}
	}
	if err != nil {
		return nil, c.fault(err)
	}
	return m, nil
}

// fault penalises the peer for a malformed answer and returns err.
func (c *client) fault(err error) error {
	if errors.Is(err, ErrMalformed) {
		c.n.penalise(c.p, penaltyMalformed, "malformed sync answer: "+err.Error())
	}
	return err
}

func (c *client) run(ctx context.Context) error {
	missing, complete, err := c.reconcile(ctx, []prefix{{}})
	if err != nil {
		return err
	}
	c.st.More = c.st.More || !complete
	_, err = c.fetch(c.wanted(missing))
	return err
}

// reconcile walks the prefix tree with the peer from the buckets of
// queue, descending only into buckets whose summaries differ, and returns
// the IDs the peer holds that the inventory lacks; complete is false when
// it stopped at maxMissing or maxQueue with buckets left unvisited.
func (c *client) reconcile(ctx context.Context, queue []prefix) (missing [][idLen]byte, complete bool, err error) {
	complete = true
	for len(queue) > 0 {
		if len(missing) >= maxMissing {
			return missing, false, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		batch := queue[:min(len(queue), maxItems)]
		queue = queue[len(batch):]
		resp, local, err := c.ask(batch)
		if err != nil {
			return nil, false, err
		}
		for i, a := range resp.answers {
			p := batch[i]
			switch a.kind {
			case answerIDs:
				lack, err := c.lacking(p, a.ids)
				if err != nil {
					return nil, false, err
				}
				missing = append(missing, lack...)
			case answerSplit:
				for ch, s := range a.children {
					if s.count == 0 || s == local[i].children[ch] {
						continue
					}
					if len(queue) >= maxQueue {
						complete = false
						continue
					}
					queue = append(queue, p.child(byte(ch)))
				}
			}
		}
	}
	return missing, complete, nil
}

// ask sends one reconcile request for batch, with this node's summaries,
// and returns the checked answer and this node's scans of the buckets.
func (c *client) ask(batch []prefix) (*reconcileResp, []bucketScan, error) {
	req := &reconcileReq{items: make([]reconcileItem, len(batch))}
	local := make([]bucketScan, len(batch))
	visits := 0
	for i, p := range batch {
		sc, err := c.n.scan(p, 0, &visits, math.MaxInt)
		if err != nil {
			return nil, nil, err
		}
		local[i] = sc
		req.items[i] = reconcileItem{prefix: p, sum: sc.sum}
	}
	before := c.rw.n.Load()
	m, err := c.roundTrip(req, msgReconcileResp)
	c.st.SummaryBytes += c.rw.n.Load() - before
	if err != nil {
		return nil, nil, err
	}
	c.st.Rounds++
	c.st.Buckets += len(batch)
	resp := m.(*reconcileResp)
	if len(resp.answers) != len(batch) {
		return nil, nil, c.fault(fmt.Errorf("%w: %d answers to %d buckets", ErrMalformed, len(resp.answers), len(batch)))
	}
	for i, a := range resp.answers {
		p := batch[i]
		switch a.kind {
		case answerIDs:
			for _, id := range a.ids {
				if !p.contains(&id) {
					return nil, nil, c.fault(fmt.Errorf("%w: id %x outside bucket %s", ErrMalformed, id[:4], p))
				}
			}
		case answerSplit:
			if p.depth == maxDepth {
				return nil, nil, c.fault(fmt.Errorf("%w: split of a full-length id", ErrMalformed))
			}
		}
	}
	return resp, local, nil
}

// lacking returns the ids, all under p, that the inventory does not hold.
func (c *client) lacking(p prefix, ids [][idLen]byte) ([][idLen]byte, error) {
	have := make(map[[idLen]byte]bool)
	err := rangeBucket(c.n.inv, p, func(id [idLen]byte) bool {
		have[id] = true
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("range inventory %s: %w", p, err)
	}
	var out [][idLen]byte
	for _, id := range ids {
		if !have[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// maxQueue bounds the buckets a client keeps waiting to be reconciled;
// an honest peer never makes it descend into more.
const maxQueue = 1 << 16

// handlerWorkers bounds the Handler calls one session runs at once.
const handlerWorkers = 4

// relay gossips a message first learnt through sync, so that it crosses a
// healed partition at gossip speed rather than one periodic sync per hop,
// unless Config.RelaySynced declines it. Outside Run (a light client)
// there is no topic and nothing to do; a message the mesh has already
// seen is dropped by pubsub's seen cache.
func (n *Network) relay(ctx context.Context, data []byte) {
	// The topic first: RelaySynced decodes the message again, which was
	// 6% of a light client's CPU in a catch-up, for nothing.
	t := n.topic.Load()
	if t == nil || n.cfg.RelaySynced != nil && !n.cfg.RelaySynced(data) {
		return
	}
	if err := t.Publish(ctx, data); err != nil {
		n.log.Debug().Err(err).Msg("relay a synced message")
	}
}

// wanted returns the missing IDs worth fetching: those the Handler did
// not lately ignore. It counts both in the stats.
func (c *client) wanted(missing [][idLen]byte) [][idLen]byte {
	c.st.Missing += len(missing)
	want := missing[:0]
	for _, id := range missing {
		if c.n.ignored.has(id) {
			c.st.Skipped++
			continue
		}
		want = append(want, id)
	}
	return want
}

// fetch asks the peer for the wanted messages, a page at a time, and
// gives each to the Handler. It returns the IDs it did not get to (all
// of them fetched when err is nil), so that a later session can go on
// from there.
func (c *client) fetch(want [][idLen]byte) (left [][idLen]byte, err error) {
	before := c.rw.n.Load()
	defer func() { c.st.FetchBytes += c.rw.n.Load() - before }()
	var accepted, ignored, rejected atomic.Int64
	defer func() {
		c.st.Accepted += int(accepted.Load())
		c.st.Ignored += int(ignored.Load())
		c.st.Rejected += int(rejected.Load())
	}()
	g, gctx := errgroup.WithContext(c.base)
	g.SetLimit(handlerWorkers)
	want = slices.Clone(want)
	for len(want) > 0 {
		page := want[:min(len(want), maxGetIDs)]
		m, err := c.roundTrip(&getReq{ids: page}, msgGetResp)
		if err != nil {
			_ = g.Wait()
			return want, err
		}
		resp := m.(*getResp)
		if len(resp.items) == 0 {
			// The peer no longer holds this page; skip it.
			want = want[len(page):]
			continue
		}
		got := make(map[[idLen]byte]bool, len(resp.items))
		for _, it := range resp.items {
			if !slices.Contains(page, it.id) || got[it.id] {
				_ = g.Wait()
				return want, c.fault(fmt.Errorf("%w: unrequested or repeated message %x", ErrMalformed, it.id[:4]))
			}
			if c.n.cfg.ContentID(it.data) != it.id {
				_ = g.Wait()
				return want, c.fault(fmt.Errorf("%w: message does not match its id %x", ErrMalformed, it.id[:4]))
			}
			got[it.id] = true
		}
		c.st.Fetched += len(resp.items)
		for _, it := range resp.items {
			g.Go(func() error {
				switch c.n.handler(gctx, c.p, it.data) {
				case Accept:
					accepted.Add(1)
					c.n.relay(gctx, it.data)
				case Ignore:
					ignored.Add(1)
					c.n.ignored.add(it.id)
				case Throttle:
					// The asker chose to fetch it: not the server's fault.
					ignored.Add(1)
					c.n.ignored.add(it.id)
				default:
					rejected.Add(1)
					c.n.penalise(c.p, penaltyReject, "synced a message the handler rejected")
				}
				return nil
			})
		}
		// Keep the page's undelivered IDs (the answer hit its size cap).
		rest := want[len(page):]
		kept := 0
		for _, id := range page {
			if !got[id] {
				page[kept] = id
				kept++
			}
		}
		want = append(page[:kept], rest...)
		if c.n.bans.has(c.p) {
			_ = g.Wait()
			return want, ErrBanned
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if c.n.bans.has(c.p) {
		return nil, ErrBanned
	}
	return nil, nil
}

// servingSlots bounds the sync sessions served at once, in total and per
// peer. When all are taken, a new session takes the slot of the one that
// has waited longest for its next request, if that is at least
// evictAfter: an honest asker sends its next request at once, so a
// session that waits is one that stalls (or is between long pauses).
type servingSlots struct {
	mu       sync.Mutex
	sessions map[*session]struct{}
	byPeer   map[peer.ID]int
}

// session is one served sync session.
type session struct {
	peer   peer.ID
	stream network.Stream
	waitAt atomic.Int64 // unix nanoseconds since it waits for a request; 0 when working
	gone   bool         // released or evicted; under servingSlots.mu
}

func (s *session) waiting(w bool) {
	if w {
		s.waitAt.Store(time.Now().UnixNano())
	} else {
		s.waitAt.Store(0)
	}
}

const (
	maxServed        = 16
	maxServedPerPeer = 2
	evictAfter       = 250 * time.Millisecond
)

func (s *servingSlots) acquire(p peer.ID, st network.Stream) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions == nil {
		s.sessions = make(map[*session]struct{})
		s.byPeer = make(map[peer.ID]int)
	}
	if s.byPeer[p] >= maxServedPerPeer {
		return nil, false
	}
	if len(s.sessions) >= maxServed {
		var victim *session
		oldest := time.Now().Add(-evictAfter).UnixNano()
		for x := range s.sessions {
			if w := x.waitAt.Load(); w != 0 && w <= oldest {
				victim, oldest = x, w
			}
		}
		if victim == nil {
			return nil, false
		}
		s.drop(victim)
		_ = victim.stream.Reset()
	}
	x := &session{peer: p, stream: st}
	s.sessions[x] = struct{}{}
	s.byPeer[p]++
	return x, true
}

// drop forgets x; s.mu must be held.
func (s *servingSlots) drop(x *session) {
	if x.gone {
		return
	}
	x.gone = true
	delete(s.sessions, x)
	if s.byPeer[x.peer]--; s.byPeer[x.peer] <= 0 {
		delete(s.byPeer, x.peer)
	}
}

func (s *servingSlots) release(x *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop(x)
}

// PeerBudget is a token bucket per peer: perMinute tokens a minute, as
// many at most; a new peer starts full. It bounds what one peer may make
// this node do (sync work here; documents by untrusted keys in the node).
// It tracks at most a few thousand peers, forgetting full buckets first.
// Safe for concurrent use.
type PeerBudget struct {
	perMinute float64
	burst     float64 // tokens a peer may hold: a new one starts with them
	mu        sync.Mutex
	m         map[peer.ID]*tokens
}

type tokens struct {
	n         float64
	at        time.Time
	notBefore time.Time // told to come back then (Refuse)
}

// NewPeerBudget returns a budget of perMinute tokens a minute per peer.
func NewPeerBudget(perMinute int) *PeerBudget {
	return NewBurstBudget(int64(perMinute), int64(perMinute))
}

// NewBurstBudget returns a budget of perMinute tokens a minute per peer,
// of which a peer may hold burst (a new peer starts with burst).
func NewBurstBudget(perMinute, burst int64) *PeerBudget {
	return &PeerBudget{perMinute: float64(perMinute), burst: float64(burst), m: make(map[peer.ID]*tokens)}
}

const maxBudgetPeers = 4096

// refill brings p's tokens up to now; b.mu must be held.
func (b *PeerBudget) refill(p peer.ID, now time.Time) *tokens {
	t := b.m[p]
	if t == nil {
		if len(b.m) >= maxBudgetPeers {
			for q, u := range b.m {
				if u.n+b.perMinute*now.Sub(u.at).Minutes() >= b.burst {
					delete(b.m, q)
				}
			}
		}
		t = &tokens{n: b.burst, at: now}
		b.m[p] = t
	}
	t.n = min(b.burst, t.n+b.perMinute*max(0, now.Sub(t.at).Minutes()))
	t.at = now
	return t
}

// Available returns p's whole tokens left at now.
func (b *PeerBudget) Available(p peer.ID, now time.Time) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return int64(max(0, b.refill(p, now).n))
}

// Spend takes n tokens from p (its balance may go negative: it then
// waits longer).
func (b *PeerBudget) Spend(p peer.ID, n int64, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(p, now).n -= float64(n)
}

// gain returns the tokens a peer gains in d (none for d < 0).
func (b *PeerBudget) gain(d time.Duration) int64 {
	return int64(b.perMinute * max(0, d.Minutes()))
}

// Until returns how long from now until p holds n tokens (or the most it
// may hold, if n is more), rounded up to a millisecond.
func (b *PeerBudget) Until(p peer.ID, n int64, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	lack := min(float64(n), b.burst) - b.refill(p, now).n
	switch {
	case lack <= 0:
		return 0
	case b.perMinute <= 0:
		return maxRetryAfter
	}
	return (time.Duration(lack/b.perMinute*float64(time.Minute)) + time.Millisecond).Truncate(time.Millisecond)
}

// Refuse records that p was told at now to wait for wait, and reports
// whether p came back before an earlier such time was up.
func (b *PeerBudget) Refuse(p peer.ID, wait time.Duration, now time.Time) (early bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.refill(p, now)
	early = now.Before(t.notBefore)
	t.notBefore = now.Add(wait)
	return early
}

// Draw spends one token of p's and returns the balance left: negative
// once p is over its budget, down to twice the budget in debt (from
// which it recovers at the budget's rate).
func (b *PeerBudget) Draw(p peer.ID, now time.Time) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.refill(p, now)
	t.n = max(t.n-1, -2*b.perMinute)
	return t.n
}

// Sync work (the PeerBudget of Network.work) is counted in bytes of
// what serving costs: each ID a reconcile ranges over counts rangeCost
// (a key read from the store and hashed twice), each ID a Get looks up
// lookupCost (a point read) plus the bytes of the message served. A peer
// may take workBurst at once, enough for an honest catch-up of a store
// of about 480,000 documents of 1.7 KB, then workPerMinute (a larger
// catch-up from one peer is paced to it; from several, each has its own).
const (
	rangeCost      = 64
	lookupCost     = 512
	workPerMinute  = 256 << 20
	workBurst      = 1 << 30
	minSessionWork = 1 << 20  // a session is not started with less (or a 16th of the burst)
	resumeWork     = 64 << 20 // a refused asker is told to wait until it has this
	maxRetryAfter  = 10 * time.Minute
)

// idCache remembers IDs the Handler ignored, so periodic sync does not
// fetch the same untrusted messages again and again (Resync clears it).
type idCache struct {
	mu  sync.Mutex
	m   map[[idLen]byte]time.Time
	ttl time.Duration
	cap int
}

func (c *idCache) add(id [idLen]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[[idLen]byte]time.Time)
	}
	if len(c.m) >= c.cap {
		// Forget about half, in map order: any entry is as good as another.
		i := 0
		for k := range c.m {
			if i%2 == 0 {
				delete(c.m, k)
			}
			i++
		}
	}
	c.m[id] = time.Now().Add(c.ttl)
}

func (c *idCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

func (c *idCache) has(id [idLen]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.m[id]
	if ok && time.Now().After(until) {
		delete(c.m, id)
		return false
	}
	return ok
}
