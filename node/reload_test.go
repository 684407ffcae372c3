package node

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReloadBootstrapAndQuorum: a reloaded configuration applies its
// quorum at once and dials a new bootstrap peer, whose documents arrive;
// keys that need a restart are named, not applied.
func TestReloadBootstrapAndQuorum(t *testing.T) {
	alice := newBuilder(t, "alice")
	a := startDaemon(t, t.TempDir(), nil, nil, alice)
	id := publishDoc(t, a, alice, "0.0.9", sha('a'))
	b := startDaemon(t, t.TempDir(), nil, nil, alice)
	if len(b.d.Peers()) != 0 {
		t.Fatal("b has peers before it was told of any")
	}
	cfg := b.n.Config()
	cfg.Bootstrap = []string{a.addr(t)}
	cfg.Quorum = 1
	cfg.Network = "elsewhere"
	applied, restart, err := b.d.Reload(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(applied)
	if !slices.Equal(applied, []string{"bootstrap", "quorum"}) || !slices.Equal(restart, []string{"network"}) {
		t.Errorf("applied %v, restart %v", applied, restart)
	}
	waitFor(t, 20*time.Second, "alice's document at b", func() bool { return b.has(id) })
	if r, err := b.n.Status("", "0.0.9", 0); err != nil || r.Verdict != "consensus" || r.Quorum != 1 {
		t.Errorf("status at the reloaded quorum: %v %+v", err, r)
	}
	cfg.Quorum = 0
	if _, _, err := b.d.Reload(t.Context(), cfg); err == nil {
		t.Error("a reload with quorum 0 was accepted")
	}
	if r, _ := b.n.Status("", "0.0.9", 0); r == nil || r.Quorum != 1 {
		t.Errorf("a rejected reload changed the quorum: %+v", r)
	}
}

// TestReloadRequestsFrom: requests_from and queue_limit are [auto_build]
// keys: a change is named as needing a restart, a bad fingerprint or
// limit is refused.
func TestReloadRequestsFrom(t *testing.T) {
	n := openTestNode(t)
	cfg := n.Config()
	cfg.AutoBuild.RequestsFrom = []string{strings.Repeat("AB", 20)}
	_, restart, err := n.Reload(cfg)
	if err != nil || !slices.Equal(restart, []string{"auto_build"}) {
		t.Errorf("restart %v, err %v: want auto_build named", restart, err)
	}
	for name, ab := range map[string]AutoBuildConfig{
		"short fingerprint": {RequestsFrom: []string{"ABCDEF"}, QueueLimit: 1},
		"queue_limit 0":     {QueueLimit: 0},
	} {
		c := n.Config()
		c.AutoBuild = ab
		if _, _, err := n.Reload(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
