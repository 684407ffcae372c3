package gossip

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/multiformats/go-multiaddr"
	"golang.org/x/sync/errgroup"
)

// ErrBanned is returned for an operation on a banned peer.
var ErrBanned = errors.New("peer is banned")

// Peer score thresholds (gossipsub) and the penalties sync adds to a peer's
// application-specific score. Two invalid gossip messages, three rejected
// synced messages or one malformed sync frame take a peer under the
// graylist threshold, where it is disconnected and banned.
const (
	gossipThreshold   = -100
	publishThreshold  = -200
	graylistThreshold = -300

	invalidMessageWeight = -100 // P4, squared count: 1 → -100, 2 → -400
	penaltyReject        = 100  // a synced message the Handler rejected
	penaltyMalformed     = 1000 // a malformed sync frame
	penaltyExcess        = 20   // a message over the sender's volume budget (Throttle)
	penaltyStall         = 100  // a sync stream that stalled or dragged past its idle deadline
	penaltyHeavy         = 100  // a sync session that exhausted its work budget
	penaltyHalfLife      = 10 * time.Minute
	minPeers             = 8 // fewer connected peers than this: dial more
	maxDials             = 8 // dials at once
	maxKnown             = 256
)

// banList is the set of banned peers with the time each ban ends. The
// connection gater reads it from libp2p's goroutines, hence the mutex.
type banList struct {
	mu sync.Mutex
	m  map[peer.ID]time.Time
}

// add bans p until the given time; it reports whether p was not banned.
func (b *banList) add(p peer.ID, until time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[peer.ID]time.Time)
	}
	old, ok := b.m[p]
	b.m[p] = until
	return !ok || time.Now().After(old)
}

func (b *banList) has(p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	until, ok := b.m[p]
	if ok && time.Now().After(until) {
		delete(b.m, p)
		return false
	}
	return ok
}

// gater refuses connections to and from banned peers.
type gater struct{ bans *banList }

func (g gater) InterceptPeerDial(p peer.ID) bool                                { return !g.bans.has(p) }
func (g gater) InterceptAddrDial(p peer.ID, _ multiaddr.Multiaddr) bool         { return !g.bans.has(p) }
func (g gater) InterceptAccept(network.ConnMultiaddrs) bool                     { return true }
func (g gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
func (g gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.bans.has(p)
}

// penalties is the decaying application-specific penalty of each peer,
// fed by sync and read by gossipsub's scoring (AppSpecificScore).
type penalties struct {
	mu sync.Mutex
	m  map[peer.ID]penalty
}

type penalty struct {
	v  float64
	at time.Time
}

func (p penalty) now(t time.Time) float64 {
	return p.v * math.Exp2(-float64(t.Sub(p.at))/float64(penaltyHalfLife))
}

// add adds v to p's penalty and returns the total.
func (ps *penalties) add(p peer.ID, v float64) float64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.m == nil {
		ps.m = make(map[peer.ID]penalty)
	}
	t := time.Now()
	total := ps.m[p].now(t) + v
	ps.m[p] = penalty{v: total, at: t}
	return total
}

func (ps *penalties) value(p peer.ID) float64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pen, ok := ps.m[p]
	if !ok {
		return 0
	}
	v := pen.now(time.Now())
	if v < 1 {
		delete(ps.m, p)
		return 0
	}
	return v
}

// penalise adds to p's penalty and bans it once the penalty alone takes it
// under the graylist threshold; gossipsub sees the penalty in its score.
func (n *Network) penalise(p peer.ID, v float64, reason string) {
	total := n.pen.add(p, v)
	n.log.Debug().Str("peer", p.String()).Float64("penalty", total).Str("reason", reason).Msg("peer penalised")
	if -total < graylistThreshold {
		n.ban(p, reason)
	}
}

// ban disconnects p and refuses it for the ban duration.
func (n *Network) ban(p peer.ID, reason string) {
	if p == n.host.ID() {
		return
	}
	if !n.bans.add(p, time.Now().Add(n.cfg.BanDuration)) {
		return
	}
	n.log.Warn().Str("peer", p.String()).Str("reason", reason).Dur("for", n.cfg.BanDuration).Msg("peer banned")
	_ = n.host.Network().ClosePeer(p)
}

// knownPeer is what the peer book keeps of a peer.
type knownPeer struct {
	addrs    []multiaddr.Multiaddr
	seen     time.Time // last identified as speaking our sync protocol
	ours     bool      // speaks our sync protocol
	failures int
	nextDial time.Time
}

// peerBook remembers peers to reconnect to and to hand back to the node.
type peerBook struct {
	mu sync.Mutex
	m  map[peer.ID]*knownPeer
}

func (b *peerBook) entry(p peer.ID) *knownPeer {
	if b.m == nil {
		b.m = make(map[peer.ID]*knownPeer)
	}
	k, ok := b.m[p]
	if !ok {
		if len(b.m) >= maxKnown {
			b.evict()
		}
		k = &knownPeer{}
		b.m[p] = k
	}
	return k
}

// evict forgets the peer seen longest ago.
func (b *peerBook) evict() {
	var oldest peer.ID
	var at time.Time
	for p, k := range b.m {
		if oldest == "" || k.seen.Before(at) {
			oldest, at = p, k.seen
		}
	}
	delete(b.m, oldest)
}

// learn records addresses of a peer from bootstrap or discovery.
func (b *peerBook) learn(ai peer.AddrInfo) {
	if len(ai.Addrs) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.entry(ai.ID)
	k.addrs = mergeAddrs(k.addrs, ai.Addrs)
}

// identified records a peer that speaks our protocol.
func (b *peerBook) identified(p peer.ID, addrs []multiaddr.Multiaddr) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.entry(p)
	if len(addrs) > 0 {
		k.addrs = slices.Clone(addrs)
	}
	k.seen, k.ours, k.failures, k.nextDial = time.Now(), true, 0, time.Time{}
}

// dialed records the outcome of a dial.
func (b *peerBook) dialed(p peer.ID, err error, backoff time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k, ok := b.m[p]
	if !ok {
		return
	}
	if err == nil {
		k.failures, k.nextDial = 0, time.Time{}
		return
	}
	k.failures++
	d := min(backoff<<min(k.failures-1, 6), time.Hour)
	k.nextDial = time.Now().Add(d/2 + rand.N(d/2+1))
}

// undo makes a candidate that was not dialled eligible again.
func (b *peerBook) undo(p peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if k, ok := b.m[p]; ok && k.failures == 0 {
		k.nextDial = time.Time{}
	}
}

// candidates returns up to max peers worth dialling now, most recently
// seen first.
func (b *peerBook) candidates(max int, skip func(peer.ID) bool) []peer.AddrInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	var out []peer.AddrInfo
	for _, p := range b.sorted() {
		k := b.m[p]
		if len(out) == max {
			break
		}
		if len(k.addrs) == 0 || now.Before(k.nextDial) || skip(p) {
			continue
		}
		k.nextDial = now.Add(time.Minute) // until dialed reports
		out = append(out, peer.AddrInfo{ID: p, Addrs: slices.Clone(k.addrs)})
	}
	return out
}

// sorted returns the peers, most recently seen first. Call with mu held.
func (b *peerBook) sorted() []peer.ID {
	ps := make([]peer.ID, 0, len(b.m))
	for p := range b.m {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(x, y peer.ID) int {
		if c := b.m[y].seen.Compare(b.m[x].seen); c != 0 {
			return c
		}
		return cmpID(x, y)
	})
	return ps
}

func cmpID(x, y peer.ID) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// known returns the peers that spoke our protocol, most recent first.
func (b *peerBook) known(skip func(peer.ID) bool) []peer.AddrInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []peer.AddrInfo
	for _, p := range b.sorted() {
		k := b.m[p]
		if k.ours && len(k.addrs) > 0 && !skip(p) {
			out = append(out, peer.AddrInfo{ID: p, Addrs: slices.Clone(k.addrs)})
		}
	}
	return out
}

func mergeAddrs(a, b []multiaddr.Multiaddr) []multiaddr.Multiaddr {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.ContainsFunc(out, x.Equal) {
			out = append(out, x)
		}
	}
	return out
}

// managePeers owns peer upkeep while Run runs: it bans peers whose score
// falls under the graylist threshold, records identified peers and asks
// for a sync with each, and dials known peers while there are too few.
func (n *Network) managePeers(ctx context.Context, scores <-chan map[peer.ID]float64, found <-chan peer.AddrInfo, syncReq chan<- peer.ID) error {
	sub, err := n.host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return err
	}
	defer sub.Close()

	dials, dctx := errgroup.WithContext(ctx)
	dials.SetLimit(maxDials)
	defer func() { _ = dials.Wait() }()
	dial := func(ai peer.AddrInfo) {
		started := dials.TryGo(func() error {
			n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
			dctxT, cancel := context.WithTimeout(dctx, 30*time.Second)
			defer cancel()
			err := n.host.Connect(dctxT, peer.AddrInfo{ID: ai.ID})
			n.book.dialed(ai.ID, err, n.cfg.tuning.dialBackoff)
			if err != nil {
				n.log.Debug().Err(err).Str("peer", ai.ID.String()).Msg("dial")
			}
			return nil
		})
		if !started {
			n.book.undo(ai.ID) // all dial slots busy: try again at the next upkeep
		}
	}
	skip := func(p peer.ID) bool {
		return p == n.host.ID() || n.bans.has(p) || n.host.Network().Connectedness(p) == network.Connected
	}
	upkeep := func() {
		have := 0
		for _, p := range n.host.Network().Peers() {
			if ok, _ := n.host.Peerstore().SupportsProtocols(p, n.syncProto); len(ok) > 0 {
				have++
			}
		}
		if have < minPeers {
			for _, ai := range n.book.candidates(minPeers-have, skip) {
				dial(ai)
			}
		}
	}

	upkeep()
	tick := time.NewTicker(n.cfg.tuning.reconnect)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-scores:
			n.scores.Store(&s)
			for p, v := range s {
				if v < graylistThreshold && !n.bans.has(p) {
					n.ban(p, "peer score under the graylist threshold")
				}
			}
		case ev := <-sub.Out():
			e := ev.(event.EvtPeerIdentificationCompleted)
			if !slices.Contains(e.Protocols, n.syncProto) || n.bans.has(e.Peer) {
				continue
			}
			n.book.identified(e.Peer, e.ListenAddrs)
			select {
			case syncReq <- e.Peer:
			case <-ctx.Done():
				return nil
			}
		case ai := <-found:
			if ai.ID == n.host.ID() || n.bans.has(ai.ID) {
				continue
			}
			n.book.learn(ai)
			if !skip(ai.ID) {
				dial(ai)
			}
		case <-tick.C:
			upkeep()
		}
	}
}

// scheduleSync owns the sync sessions Run starts: one per newly identified
// peer and one with a random peer every SyncInterval, at most a few at a
// time and never two with the same peer.
func (n *Network) scheduleSync(ctx context.Context, reqs <-chan peer.ID) error {
	const maxSessions = 4
	type result struct {
		p      peer.ID
		failed bool
		more   bool          // the session stopped at a cap with work left
		wait   time.Duration // do not sync with p again before this
	}
	var (
		wg       sync.WaitGroup
		done     = make(chan result)
		inflight = make(map[peer.ID]bool)
		last     = make(map[peer.ID]time.Time)
		queue    []peer.ID
		again    = make(map[peer.ID]bool) // synced again when the session ends
	)
	defer wg.Wait()
	start := func() {
		for len(queue) > 0 && len(inflight) < maxSessions {
			p := queue[0]
			queue = queue[1:]
			if inflight[p] || n.bans.has(p) || n.host.Network().Connectedness(p) != network.Connected {
				continue
			}
			inflight[p] = true
			wg.Go(func() {
				st, err := n.syncPeer(ctx, p)
				ev := n.log.Debug()
				if err != nil && ctx.Err() == nil {
					ev = n.log.Info().Err(err)
				} else if st.Fetched > 0 {
					ev = n.log.Info()
				}
				ev.Str("peer", p.String()).Int("missing", st.Missing).Int("accepted", st.Accepted).
					Int("ignored", st.Ignored).Int("rejected", st.Rejected).Int64("summary_bytes", st.SummaryBytes).
					Dur("took", st.Duration).Msg("sync")
				r := result{p: p, failed: err != nil && ctx.Err() == nil, more: err == nil && st.More}
				var se *SyncError
				if errors.As(err, &se) && se.Code == errCodeLimit {
					// Its budget for us is spent: come back when it said
					// (a minute if it did not), and go on from there.
					r.wait = se.RetryAfter
					if r.wait == 0 {
						r.wait = time.Minute
					}
					r.wait += r.wait/50 + 50*time.Millisecond
				}
				select {
				case done <- r:
				case <-ctx.Done():
				}
			})
		}
	}
	enqueue := func(p peer.ID, force bool) {
		if inflight[p] || slices.Contains(queue, p) {
			return
		}
		if !force && time.Since(last[p]) < n.cfg.tuning.syncSpacing {
			return
		}
		queue = append(queue, p)
		start()
	}
	syncAll := func() {
		for _, p := range n.host.Network().Peers() {
			if ok, _ := n.host.Peerstore().SupportsProtocols(p, n.syncProto); len(ok) == 0 {
				continue
			}
			if inflight[p] {
				again[p] = true // its session may be past reconciling
				continue
			}
			enqueue(p, true)
		}
	}
	// A peer is synced again once the gossip mesh has settled after it
	// connected: gossipsub forwards a message only to the mesh peers it
	// has when the message arrives, so a document that arrived while the
	// new peer was not yet grafted reaches it by this second sync.
	settle := make(map[peer.ID]time.Time)
	settleTick := time.NewTicker(time.Second)
	defer settleTick.Stop()
	var tick <-chan time.Time
	if n.cfg.SyncInterval > 0 {
		t := time.NewTicker(n.cfg.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-reqs:
			if _, ok := last[p]; !ok && len(settle) < maxKnown {
				settle[p] = time.Now().Add(n.cfg.tuning.settle)
			}
			enqueue(p, false)
		case now := <-settleTick.C:
			for p, at := range settle {
				if now.After(at) {
					delete(settle, p)
					enqueue(p, true)
				}
			}
		case <-n.resync:
			syncAll()
		case r := <-done:
			p := r.p
			delete(inflight, p)
			last[p] = time.Now().Add(r.wait)
			if again[p] || r.more {
				delete(again, p)
				queue = append(queue, p)
			}
			if r.wait > 0 && len(settle) < maxKnown {
				settle[p] = time.Now().Add(r.wait) // resumed then
			}
			if r.failed {
				// A peer that stalled or refused must not delay catch-up:
				// try another one now.
				var ps []peer.ID
				for _, q := range n.host.Network().Peers() {
					if ok, _ := n.host.Peerstore().SupportsProtocols(q, n.syncProto); len(ok) > 0 && q != p && !inflight[q] && !n.bans.has(q) && time.Since(last[q]) > n.cfg.tuning.syncSpacing {
						ps = append(ps, q)
					}
				}
				if len(ps) > 0 {
					enqueue(ps[rand.N(len(ps))], true)
				}
			}
			if len(last) > 4*maxKnown {
				for q, at := range last {
					if time.Since(at) > n.cfg.tuning.syncSpacing {
						delete(last, q)
					}
				}
			}
			start()
		case <-tick:
			var ps []peer.ID
			for _, p := range n.host.Network().Peers() {
				if ok, _ := n.host.Peerstore().SupportsProtocols(p, n.syncProto); len(ok) > 0 && !inflight[p] {
					ps = append(ps, p)
				}
			}
			if len(ps) > 0 {
				enqueue(ps[rand.N(len(ps))], true)
			}
		}
	}
}
