package gossip

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestStrangerCannotFillTheValidationQueue: a peer publishing large
// messages faster than the node verifies them gets no more than its share
// of the validation queue held in the node's memory; the excess is refused
// and scores it down, and nothing stays counted once the flood is over.
func TestStrangerCannotFillTheValidationQueue(t *testing.T) {
	const size = 60 << 10
	small := func(c *Config, _ *testHandler) { c.MaxMessageSize, c.QueueShare = 64<<10, 2<<20 }
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
