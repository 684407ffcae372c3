package gossip

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
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
}

// SyncError is the answer of a peer that refused or cut short a session
// (busy, over a limit, or our request was malformed).
type SyncError struct {
	Code byte
	Text string
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
	err := inv.Range(p.bytePrefix(), func(id [idLen]byte) bool {
		*visits++
		if *visits > budget {
			over = true
			return false
		}
		if !p.contains(&id) {
			// Odd depth: Range yields the whole byte; stop past our nibble.
			return nibble(&id, depth-1) < nibble(&p.b, depth-1)
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

var errBudget = errors.New("sync work budget exhausted")

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
	visits := 0 // work done in this session
	if n.work.Available(p, time.Now()) < minSessionWork {
		n.penalise(p, penaltyHeavy, "sync sessions over the work budget")
		_ = writeFrame(s, encode(&errorMsg{code: errCodeLimit, text: "work budget exhausted; try later"}))
		_ = s.Close()
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
			case guard.fired.Load() && !sess.evicted.Load():
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
		var resp any
		before := visits
		budget := min(maxVisits, visits+n.work.Available(p, time.Now()))
		switch m := m.(type) {
		case *reconcileReq:
			resp, err = n.answerReconcile(m, &asked, &visits, budget)
		case *getReq:
			visits += getCost * len(m.ids)
			resp = n.answerGet(m)
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
		n.work.Spend(p, visits-before, time.Now())
		if errors.Is(err, errBudget) || visits > budget {
			n.penalise(p, penaltyHeavy, "sync session over the work budget")
			_ = writeFrame(s, encode(&errorMsg{code: errCodeLimit, text: "work budget exhausted"}))
			_ = s.Close()
			return
		}
		if err != nil {
			log.Warn().Err(err).Msg("sync serve")
			_ = s.Reset()
			return
		}
		guard.arm(idle)
		err = writeFrame(s, encode(resp))
		guard.disarm()
		if err != nil {
			if guard.fired.Load() && !sess.evicted.Load() {
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
		return errBudget
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
		sc, err := scanBucket(n.inv, it.prefix, keep, visits, budget)
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

func (n *Network) answerGet(m *getReq) *getResp {
	resp := &getResp{}
	size := 0
	for _, id := range m.ids {
		data, err := n.inv.Get(id)
		if err != nil || len(data) == 0 || len(data) > n.cfg.MaxMessageSize {
			continue
		}
		if len(resp.items) > 0 && size+len(data) > respSoftBytes {
			break
		}
		size += len(data) + idLen + uvarintMaxLen
		resp.items = append(resp.items, getItem{id: id, data: data})
	}
	return resp
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
	if p.ID == n.host.ID() {
		return SyncStats{}, errors.New("sync with self")
	}
	if n.bans.has(p.ID) {
		return SyncStats{Peer: p.ID}, fmt.Errorf("sync with %s: %w", p.ID, ErrBanned)
	}
	if len(p.Addrs) > 0 || n.host.Network().Connectedness(p.ID) != network.Connected {
		if err := n.host.Connect(ctx, p); err != nil {
			return SyncStats{Peer: p.ID}, fmt.Errorf("connect to %s: %w", p.ID, err)
		}
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
	ctx, cancel := context.WithTimeout(ctx, n.cfg.tuning.sessionTimeout)
	defer cancel()
	s, err := n.host.NewStream(ctx, p, n.syncProto)
	if err != nil {
		return st, fmt.Errorf("open sync stream to %s: %w", p, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	c := &client{n: n, p: p, rw: &countingRW{rw: s}, st: &st, guard: newStallGuard(s)}
	defer c.guard.disarm()
	c.rw.br = bufio.NewReader(c.rw)
	err = c.run(ctx)
	if err != nil {
		_ = s.Reset()
		if c.guard.fired.Load() {
			n.penalise(p, penaltyStall, "sync answer stalled past the idle timeout")
			err = fmt.Errorf("%w (no answer within %v)", ErrStalled, n.cfg.tuning.idleTimeout)
		}
		if ctx.Err() != nil && !errors.Is(err, ErrBanned) {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return st, fmt.Errorf("sync with %s: %w", p, err)
	}
	_ = s.Close()
	return st, nil
}

// client is the asking side of one session.
type client struct {
	n  *Network
	p  peer.ID
	rw *countingRW
	st *SyncStats
	// requests sent so far
	requests int
	guard    *stallGuard
}

// roundTrip sends req and reads the answer, which must be of the wanted
// type; a protocol violation penalises the peer.
func (c *client) roundTrip(req any, want byte) (any, error) {
	if c.requests >= maxRequests {
		return nil, errors.New("session request limit reached")
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
			return nil, &SyncError{Code: e.code, Text: e.text}
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
	missing, err := c.reconcile(ctx)
	if err != nil {
		return err
	}
	return c.fetch(ctx, missing)
}

// reconcile walks the prefix tree with the peer, descending only into
// buckets whose summaries differ, and returns the IDs the peer holds that
// the inventory lacks.
func (c *client) reconcile(ctx context.Context) ([][idLen]byte, error) {
	before := c.rw.n.Load()
	defer func() { c.st.SummaryBytes += c.rw.n.Load() - before }()

	var missing [][idLen]byte
	queue := []prefix{{}}
	visits := 0
	for len(queue) > 0 && len(missing) < maxMissing {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		batch := queue[:min(len(queue), maxItems)]
		queue = queue[len(batch):]
		req := &reconcileReq{items: make([]reconcileItem, len(batch))}
		local := make([]bucketScan, len(batch))
		for i, p := range batch {
			sc, err := scanBucket(c.n.inv, p, 0, &visits, int(^uint(0)>>1))
			if err != nil {
				return nil, err
			}
			local[i] = sc
			req.items[i] = reconcileItem{prefix: p, sum: sc.sum}
		}
		m, err := c.roundTrip(req, msgReconcileResp)
		if err != nil {
			return nil, err
		}
		c.st.Rounds++
		c.st.Buckets += len(batch)
		resp := m.(*reconcileResp)
		if len(resp.answers) != len(batch) {
			return nil, c.fault(fmt.Errorf("%w: %d answers to %d buckets", ErrMalformed, len(resp.answers), len(batch)))
		}
		for i, a := range resp.answers {
			p := batch[i]
			switch a.kind {
			case answerIDs:
				for _, id := range a.ids {
					if !p.contains(&id) {
						return nil, c.fault(fmt.Errorf("%w: id %x outside bucket %s", ErrMalformed, id[:4], p))
					}
				}
				lack, err := c.lacking(p, a.ids)
				if err != nil {
					return nil, err
				}
				missing = append(missing, lack...)
			case answerSplit:
				if p.depth == maxDepth {
					return nil, c.fault(fmt.Errorf("%w: split of a full-length id", ErrMalformed))
				}
				for ch, s := range a.children {
					if s.count > 0 && s != local[i].children[ch] && len(queue) < maxQueue {
						queue = append(queue, p.child(byte(ch)))
					}
				}
			}
		}
	}
	return missing, nil
}

// lacking returns the ids, all under p, that the inventory does not hold.
func (c *client) lacking(p prefix, ids [][idLen]byte) ([][idLen]byte, error) {
	have := make(map[[idLen]byte]bool)
	err := c.n.inv.Range(p.bytePrefix(), func(id [idLen]byte) bool {
		if p.contains(&id) {
			have[id] = true
		}
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
// healed partition at gossip speed rather than one periodic sync per hop.
// Outside Run (a light client) there is no topic and nothing to do; a
// message the mesh has already seen is dropped by pubsub's seen cache.
func (n *Network) relay(ctx context.Context, data []byte) {
	if t := n.topic.Load(); t != nil {
		if err := t.Publish(ctx, data); err != nil {
			n.log.Debug().Err(err).Msg("relay a synced message")
		}
	}
}

// fetch asks the peer for the missing messages, a page at a time, and
// gives each to the Handler.
func (c *client) fetch(ctx context.Context, missing [][idLen]byte) error {
	before := c.rw.n.Load()
	defer func() { c.st.FetchBytes += c.rw.n.Load() - before }()
	c.st.Missing = len(missing)
	want := missing[:0]
	for _, id := range missing {
		if c.n.ignored.has(id) {
			c.st.Skipped++
			continue
		}
		want = append(want, id)
	}
	var accepted, ignored, rejected atomic.Int64
	defer func() {
		c.st.Accepted += int(accepted.Load())
		c.st.Ignored += int(ignored.Load())
		c.st.Rejected += int(rejected.Load())
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(handlerWorkers)
	for len(want) > 0 {
		page := want[:min(len(want), maxGetIDs)]
		m, err := c.roundTrip(&getReq{ids: page}, msgGetResp)
		if err != nil {
			_ = g.Wait()
			return err
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
				return c.fault(fmt.Errorf("%w: unrequested or repeated message %x", ErrMalformed, it.id[:4]))
			}
			if c.n.cfg.ContentID(it.data) != it.id {
				_ = g.Wait()
				return c.fault(fmt.Errorf("%w: message does not match its id %x", ErrMalformed, it.id[:4]))
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
		want = want[:0]
		for _, id := range page {
			if !got[id] {
				want = append(want, id)
			}
		}
		want = append(want, rest...)
		if c.n.bans.has(c.p) {
			_ = g.Wait()
			return ErrBanned
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if c.n.bans.has(c.p) {
		return ErrBanned
	}
	return nil
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
	peer    peer.ID
	stream  network.Stream
	waitAt  atomic.Int64 // unix nanoseconds since it waits for a request; 0 when working
	evicted atomic.Bool
	gone    bool // released or evicted; under servingSlots.mu
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
		victim.evicted.Store(true)
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
	mu        sync.Mutex
	m         map[peer.ID]*tokens
}

type tokens struct {
	n  float64
	at time.Time
}

// NewPeerBudget returns a budget of perMinute tokens a minute per peer.
func NewPeerBudget(perMinute int) *PeerBudget {
	return &PeerBudget{perMinute: float64(perMinute), m: make(map[peer.ID]*tokens)}
}

const maxBudgetPeers = 4096

// refill brings p's tokens up to now; b.mu must be held.
func (b *PeerBudget) refill(p peer.ID, now time.Time) *tokens {
	t := b.m[p]
	if t == nil {
		if len(b.m) >= maxBudgetPeers {
			for q, u := range b.m {
				if u.n+b.perMinute*now.Sub(u.at).Minutes() >= b.perMinute {
					delete(b.m, q)
				}
			}
		}
		t = &tokens{n: b.perMinute, at: now}
		b.m[p] = t
	}
	t.n = min(b.perMinute, t.n+b.perMinute*max(0, now.Sub(t.at).Minutes()))
	t.at = now
	return t
}

// Available returns p's whole tokens left at now.
func (b *PeerBudget) Available(p peer.ID, now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return int(max(0, b.refill(p, now).n))
}

// Spend takes n tokens from p (its balance may go negative: it then
// waits longer).
func (b *PeerBudget) Spend(p peer.ID, n int, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(p, now).n -= float64(n)
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

// Sync work units (the PeerBudget of Network.work).
const (
	workPerMinute  = 2 << 20 // IDs ranged over, and getCost per ID in a Get
	minSessionWork = 4096    // a session is not started with less
	getCost        = 16
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
