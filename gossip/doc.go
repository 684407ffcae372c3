// Package gossip owns rbnode's peer-to-peer layer: the libp2p host and its
// options, the gossipsub topic, peer discovery and the catch-up sync
// protocol. It deals in bytes and peer IDs only: what a message means, and
// whether it may be relayed or stored, is decided by a validator and a store
// the node injects. It must not import node, builder or cli.
package gossip
