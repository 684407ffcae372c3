// Package gossip owns rbnode's peer-to-peer layer: the libp2p host and its
// options, the gossipsub topic, peer discovery and the catch-up sync
// protocol. It deals in bytes and peer IDs only: what a message means, and
// whether it may be relayed or stored, is decided by a validator and a store
// the node injects. It must not import node, builder, cli or attest.
//
// # Use
//
// The node builds a Network from a Config, a Handler and an Inventory:
//
//	cfg := gossip.DefaultConfig()   // TCP+QUIC on 4731, mDNS and DHT on
//	cfg.Identity = key              // persisted by the node
//	cfg.Bootstrap = remembered      // flags plus last run's KnownPeers
//	cfg.Logger = log
//	n, err := gossip.New(cfg, handle, store)
//	...
//	go n.Run(ctx)                   // under the node's errgroup
//	err = n.Publish(ctx, envelope)  // runs handle locally, then gossips
//	...
//	save(n.KnownPeers())
//	n.Close()
//
// The Handler judges every message, from gossip (it is the gossipsub topic
// validator, so nothing is relayed before it says Accept) and from sync
// alike: Accept (stored; relay, and a message first learnt by sync is
// published on), Ignore (drop quietly, e.g. quarantine), Throttle (the
// sender keeps going past its volume budget: drop and penalise it a little)
// or Reject (invalid: the sender is penalised). The Inventory lets sync
// range over the IDs the node holds and read a message back. Sync serving
// is bounded per peer (sessions, an idle timeout per frame, a work budget:
// PeerBudget) so that no peer, nor a crowd of throwaway identities, can
// deny it to others.
//
// # Lifecycle
//
// New validates the config and starts the host, which listens and serves
// sync; SyncWith works from then on (a light client needs nothing else).
// Run starts gossipsub (on a context it cancels when it returns, since
// pubsub has no Close), peer upkeep, discovery and sync scheduling under an
// errgroup, and returns nil on cancellation. Close is idempotent: it stops
// Run, waits for served sync streams and closes the host.
//
// # Protecting the network
//
// Gossipsub scores peers; a message the Handler rejects counts against
// the peer that sent it (two take it under the graylist threshold). Sync
// adds its own penalties: a rejected synced message, a malformed frame.
// A peer under the graylist threshold is disconnected and refused by the
// connection gater for Config.BanDuration. Sizes are capped before the
// Handler sees anything; every sync frame is length-prefixed and bounded,
// and every session is limited in requests, work and time.
//
// docs/protocol.md (gossip section) specifies the wire names, the sync
// messages and the limits.
package gossip
