package gossip

import (
	"context"
	"errors"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// errQueueFull refuses an RPC whose messages would take its sender over
// its share of the validation queue.
var errQueueFull = errors.New("over its share of the validation queue")

// waitExpiry forgets a message that no event released: pubsub drops a
// graylisted peer's RPCs after the inspector admitted them, and says
// nothing. It is longer than any honest wait (the validator's timeout is
// a minute).
const waitExpiry = 2 * time.Minute

// waiting bounds the bytes each peer has waiting for validation. Pubsub
// has one queue for all peers (deep, so that an honest bulk relay is not
// dropped); without a share per peer, one stranger could fill it with
// large messages and hold their bytes in memory. An RPC that would take
// its sender over the share is refused whole before pubsub queues it.
//
// A message is counted when the RPC inspector admits it and released by
// the tracer events that end its wait: validation starting, a duplicate,
// or a rejection before validation. Messages are known by their pointer,
// which pubsub keeps from the RPC to the events, so copies count apart.
type waiting struct {
	topic  string
	limit  int // bytes per peer
	expiry time.Duration
	over   func(peer.ID)

	mu    sync.Mutex
	peers map[peer.ID]*peerWait
	msgs  map[*pb.Message]peer.ID
	bytes int // waiting now, all peers
	peak  int // the most ever waiting at once
	// last is the messages admitted from lastFrom's RPC, the one inspected
	// last: pubsub handles an RPC whole right after inspecting it, and
	// when its router throttles the sender it drops them, saying only
	// ThrottlePeer.
	last     []*pb.Message
	lastFrom peer.ID
}

type peerWait struct {
	bytes int
	since map[*pb.Message]time.Time
}

func newWaiting(topic string, limit int, expiry time.Duration, over func(peer.ID)) *waiting {
	return &waiting{topic: topic, limit: limit, expiry: expiry, over: over, peers: map[peer.ID]*peerWait{}, msgs: map[*pb.Message]peer.ID{}}
}

// inspect is the pubsub RPC inspector: it admits the RPC's messages on
// the topic, or refuses the RPC when they do not fit the sender's share.
func (w *waiting) inspect(from peer.ID, rpc *pubsub.RPC) error {
	size := 0
	for _, m := range rpc.GetPublish() {
		if m.GetTopic() == w.topic {
			size += len(m.GetData())
		}
	}
	w.mu.Lock()
	w.last, w.lastFrom = w.last[:0], from // a ThrottlePeer now is about this RPC
	if size == 0 {
		w.mu.Unlock()
		return nil
	}
	pw := w.peers[from]
	if pw == nil {
		pw = &peerWait{since: map[*pb.Message]time.Time{}}
		w.peers[from] = pw
	}
	if pw.bytes+size > w.limit {
		w.mu.Unlock()
		w.over(from)
		return errQueueFull
	}
	now := time.Now()
	for _, m := range rpc.GetPublish() {
		if m.GetTopic() == w.topic {
			pw.since[m] = now
			w.msgs[m] = from
			w.last = append(w.last, m)
		}
	}
	pw.bytes += size
	w.bytes += size
	w.peak = max(w.peak, w.bytes)
	w.mu.Unlock()
	return nil
}

// release ends m's wait, if it was counted.
func (w *waiting) release(m *pubsub.Message) {
	if m == nil || m.Message == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	from, ok := w.msgs[m.Message]
	if !ok {
		return
	}
	w.drop(from, m.Message)
}

func (w *waiting) drop(from peer.ID, m *pb.Message) {
	delete(w.msgs, m)
	pw := w.peers[from]
	delete(pw.since, m)
	pw.bytes -= len(m.GetData())
	w.bytes -= len(m.GetData())
	if len(pw.since) == 0 {
		delete(w.peers, from)
	}
}

// sweep forgets the messages waiting longer than the expiry.
func (w *waiting) sweep(now time.Time) {
	for from, pw := range w.peers {
		for m, at := range pw.since {
			if now.Sub(at) > w.expiry {
				w.drop(from, m)
			}
		}
	}
}

// sweepEvery sweeps every half expiry until ctx ends.
func (w *waiting) sweepEvery(ctx context.Context) {
	t := time.NewTicker(w.expiry / 2)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			w.mu.Lock()
			w.sweep(now)
			w.mu.Unlock()
		case <-ctx.Done():
			return
		}
	}
}

// throttled releases the messages of p's RPC that pubsub just dropped.
func (w *waiting) throttled(p peer.ID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lastFrom != p {
		return
	}
	for _, m := range w.last {
		if w.msgs[m] == p {
			w.drop(p, m)
		}
	}
	w.last = w.last[:0]
}

// stats returns the bytes waiting now and the most ever waiting at once.
func (w *waiting) stats() (now, peak int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bytes, w.peak
}

// The tracer side: pubsub.RawTracer, releasing on the events that end a
// wait and ignoring the others.

func (w *waiting) ValidateMessage(m *pubsub.Message)  { w.release(m) }
func (w *waiting) DuplicateMessage(m *pubsub.Message) { w.release(m) }
func (w *waiting) RejectMessage(m *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationQueueFull, pubsub.RejectBlacklstedPeer, pubsub.RejectBlacklistedSource,
		pubsub.RejectMissingSignature, pubsub.RejectUnexpectedSignature, pubsub.RejectUnexpectedAuthInfo,
		pubsub.RejectInvalidSignature, pubsub.RejectSelfOrigin:
		// Rejected before validation started: it waits no more.
		w.release(m)
	}
}
func (w *waiting) ThrottlePeer(p peer.ID)                               { w.throttled(p) }
func (w *waiting) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (w *waiting) OnClosedOutboundStream(peer.ID)                       {}
func (w *waiting) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (w *waiting) Join(string)                                          {}
func (w *waiting) Leave(string)                                         {}
func (w *waiting) Graft(peer.ID, string)                                {}
func (w *waiting) Prune(peer.ID, string)                                {}
func (w *waiting) DeliverMessage(*pubsub.Message)                       {}
func (w *waiting) RecvRPC(*pubsub.RPC)                                  {}
func (w *waiting) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (w *waiting) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (w *waiting) UndeliverableMessage(*pubsub.Message)                 {}
