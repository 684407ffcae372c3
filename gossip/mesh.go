package gossip

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// meshTracer follows a node's gossipsub mesh from pubsub's tracer events:
// the peers a message accepted here is forwarded to (a node's own
// publications go to every topic peer). Pubsub grafts the mesh at its
// heartbeats, so a peer can be a topic peer for a while before it is in
// the mesh.
type meshTracer struct {
	mu sync.Mutex
	m  map[peer.ID]bool
}

// peers returns the mesh peers, in no order.
func (m *meshTracer) peers() []peer.ID {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := make([]peer.ID, 0, len(m.m))
	for p := range m.m {
		ps = append(ps, p)
	}
	return ps
}

func (m *meshTracer) Graft(p peer.ID, _ string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[peer.ID]bool)
	}
	m.m[p] = true
}

func (m *meshTracer) Prune(p peer.ID, _ string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, p)
}

// OnClosedOutboundStream: pubsub drops a peer from the mesh when its
// stream closes (a disconnection), without a Prune event.
func (m *meshTracer) OnClosedOutboundStream(p peer.ID) { m.Prune(p, "") }

func (*meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (*meshTracer) Join(string)                                          {}
func (*meshTracer) Leave(string)                                         {}
func (*meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (*meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (*meshTracer) RejectMessage(*pubsub.Message, string)                {}
func (*meshTracer) DuplicateMessage(*pubsub.Message)                     {}
func (*meshTracer) ThrottlePeer(peer.ID)                                 {}
func (*meshTracer) RecvRPC(*pubsub.RPC)                                  {}
func (*meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (*meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*meshTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (*meshTracer) UndeliverableMessage(*pubsub.Message)                 {}
