package gossip

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// TestStrangerCannotFillTheValidationQueue: a peer publishing large
// messages faster than the node verifies them gets no more than its share
// of the validation queue held in the node's memory; the excess is refused
// and scores it down, and nothing stays counted once the flood is over.
func TestStrangerCannotFillTheValidationQueue(t *testing.T) {
	const size = 60 << 10
	// The flooder ends up throttled or graylisted by its score, and pubsub
	// then drops RPCs the inspector admitted: those it says nothing of
	// are forgotten after the expiry, here short.
	small := func(c *Config, _ *testHandler) {
		c.MaxMessageSize, c.QueueShare, c.queueExpiry = 64<<10, 2<<20, 3*time.Second
	}
	_, nodes := mockNetwork(t, 2, small, acceptAll())
	victim, attacker := nodes[0], nodes[1]
	// The victim verifies slower than the attacker publishes.
	victim.h.acceptAll, victim.h.work = false, 20*time.Millisecond
	waitMesh(t, nodes)

	share := victim.cfg.QueueShare
	for i := 0; i < 600; i++ {
		data := append(valid(fmt.Sprint(i)), bytes.Repeat([]byte{'x'}, size)...)
		if err := attacker.Publish(t.Context(), data); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	waitFor(t, 30*time.Second, "the victim to penalise the flooder", func() bool {
		return victim.Penalty(attacker.ID()) > 0 || victim.Banned(attacker.ID())
	})
	waitFor(t, 60*time.Second, "the validation queue to drain", func() bool {
		now, _ := victim.Queued()
		return now == 0
	})
	_, peak := victim.Queued()
	if peak > share {
		t.Errorf("%d KiB of one peer's messages waited for validation at once, its share is %d KiB", peak>>10, share>>10)
	}
	if peak == 0 {
		t.Error("nothing was ever counted as waiting: the share is not measured")
	}
	if got := victim.store.len(); got == 0 || got >= 600 {
		t.Errorf("the victim stored %d of 600 messages: want some verified and the excess refused", got)
	}
	t.Logf("stored %d of 600, peak waiting %d KiB of a %d KiB share", victim.store.len(), peak>>10, share>>10)
}

// TestWaitingReleasesWhatPubsubDropsSilently: pubsub drops an admitted
// RPC whole when its router throttles the sender (saying ThrottlePeer)
// or graylists it (saying nothing); neither may leave bytes counted
// against the sender, even if it never sends again.
func TestWaitingReleasesWhatPubsubDropsSilently(t *testing.T) {
	const topic = "t"
	rpc := func(n int) *pubsub.RPC {
		r := &pubsub.RPC{}
		for i := range n {
			r.Publish = append(r.Publish, &pb.Message{Topic: proto.String(topic), Data: bytes.Repeat([]byte{byte(i)}, 1000)})
		}
		return r
	}
	w := newWaiting(topic, 1<<20, 200*time.Millisecond, func(peer.ID) {})
	a, b := peer.ID("a"), peer.ID("b")

	// Throttled: b's queued message stays, a's dropped RPC is released.
	kept := rpc(1)
	if err := w.inspect(b, kept); err != nil {
		t.Fatal(err)
	}
	if err := w.inspect(a, rpc(3)); err != nil {
		t.Fatal(err)
	}
	w.ThrottlePeer(a)
	if now, _ := w.stats(); now != 1000 {
		t.Fatalf("after a's RPC was throttled %d bytes wait, want b's 1000", now)
	}
	// An RPC with nothing on the topic is what a ThrottlePeer then
	// speaks of: a's earlier, queued message stays counted.
	if err := w.inspect(a, rpc(2)); err != nil {
		t.Fatal(err)
	}
	if err := w.inspect(a, &pubsub.RPC{}); err != nil {
		t.Fatal(err)
	}
	w.ThrottlePeer(a)
	if now, _ := w.stats(); now != 3000 {
		t.Fatalf("a throttled on an empty RPC: %d bytes wait, want 3000", now)
	}
	w.ValidateMessage(&pubsub.Message{Message: kept.Publish[0]})

	// Graylisted (no event) and silent from then on: the timer forgets it.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go w.sweepEvery(ctx)
	waitFor(t, 10*time.Second, "the unreleased messages to expire", func() bool {
		now, _ := w.stats()
		return now == 0
	})
}
