package gossip

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// withBudget gives a node's sync server a small work budget, no pacing
// and a short retry-after, so that tests reach the budget quickly.
func withBudget(perMinute, burst, resume int64) nodeOpt {
	return func(c *Config, _ *testHandler) {
		c.SyncWorkPerMinute, c.SyncWorkBurst = perMinute, burst
		c.tuning.pace, c.tuning.resumeWork = -1, resume
	}
}

// TestCatchUpSplitsAcrossPeers: an empty node catching up from four
// peers that hold the same 6,000 messages fetches each message once,
// from more than one of them, and asks the handler once per message.
func TestCatchUpSplitsAcrossPeers(t *testing.T) {
	const items = 6000
	var srvs []peer.AddrInfo
	for range 4 {
		s := newStore()
		fill(s, 0, items, 200)
		srvs = append(srvs, newNode(t, nil, s).addrInfo())
	}
	cli := newNode(t, nil, nil)
	stats, err := cli.CatchUp(context.Background(), srvs)
	if err != nil {
		t.Fatal(err)
	}
	fetched, serving := 0, 0
	for _, st := range stats {
		t.Logf("%s: %d sessions, %d fetched, %d rounds", st.Peer.ShortString(), st.Sessions, st.Fetched, st.Rounds)
		fetched += st.Fetched
		if st.Fetched > 0 {
			serving++
		}
	}
	if cli.store.len() != items || fetched != items || int(cli.h.calls.Load()) != items {
		t.Fatalf("holds %d, fetched %d, handler called %d times; want %d each", cli.store.len(), fetched, cli.h.calls.Load(), items)
	}
	if serving < 2 {
		t.Errorf("only %d of 4 peers served: the work was not split", serving)
	}
	// Nothing left: a catch-up with the same peers fetches nothing.
	stats, err = cli.CatchUp(context.Background(), srvs)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stats {
		if st.Fetched != 0 || st.Missing != 0 {
			t.Errorf("second catch-up: %+v", st)
		}
	}
}

// TestCatchUpResumesAfterRefusal: a peer whose budget for this node runs
// out refuses it mid-catch-up; the node waits the retry-after the peer
// named and goes on where it stopped: every message is fetched once, the
// missing IDs are found once, and the honest asker is not penalised.
func TestCatchUpResumesAfterRefusal(t *testing.T) {
	const items, size = 120, 1000
	s := newStore()
	fill(s, 0, items, size)
	// 60 KB at once, then 120 KB a second; told to come back for 50 KB.
	srv := newNode(t, nil, s, withBudget(120<<10*60, 60<<10, 50<<10))
	cli := newNode(t, nil, nil)
	stats, err := cli.CatchUp(context.Background(), []peer.AddrInfo{srv.addrInfo()})
	if err != nil {
		t.Fatal(err)
	}
	st := stats[0]
	t.Logf("%+v", st)
	if st.Refused < 2 || st.Sessions < 3 {
		t.Errorf("refused %d times in %d sessions; the budget should have refused at least twice", st.Refused, st.Sessions)
	}
	if cli.store.len() != items || st.Fetched != items || int(cli.h.calls.Load()) != items {
		t.Errorf("holds %d, fetched %d, handler called %d times; want %d each", cli.store.len(), st.Fetched, cli.h.calls.Load(), items)
	}
	if st.Missing != items {
		t.Errorf("found %d missing over the sessions, want %d: a resumed session reconciled again", st.Missing, items)
	}
	if p := srv.Penalty(cli.ID()); p != 0 {
		t.Errorf("the server penalised the honest asker: %v", p)
	}
}

// TestCatchUpPastBurstReusesTheRoot: every session starts with the root,
// the whole inventory. Past the burst, a server that ranged over all of
// it for each session spent most of a resumed session's budget on that
// (here; at a million documents, 64 MB of the 64 MiB a refused asker waits
// for). It ranges once while the inventory stays the same, and again
// once it changes.
func TestCatchUpPastBurstReusesTheRoot(t *testing.T) {
	const items = 4000
	s := newStore()
	fill(s, 0, items, 40)
	// The root costs 4,000 · 64 = 256 KB; 400 KB at once, then 3 MB a
	// second; told to come back for 300 KB.
	srv := newNode(t, nil, s, withBudget(180<<20, 400<<10, 300<<10))
	cli := newNode(t, nil, nil)
	stats, err := cli.CatchUp(context.Background(), []peer.AddrInfo{srv.addrInfo()})
	if err != nil {
		t.Fatal(err)
	}
	st := stats[0]
	t.Logf("%d sessions, %d refused, %d fetched, waited %v", st.Sessions, st.Refused, st.Fetched, st.Waited)
	if cli.store.len() != items || st.Fetched != items {
		t.Fatalf("holds %d, fetched %d; want %d", cli.store.len(), st.Fetched, items)
	}
	if st.Refused == 0 {
		t.Fatal("the budget never refused: the test does not reach past the burst")
	}
	// About 530 documents a resumed session; ranging the root each time
	// left about 80.
	if roots := s.roots.Load(); roots != 1 || st.Sessions > 15 {
		t.Errorf("the server ranged over its whole inventory %d times in %d sessions, want once", roots, st.Sessions)
	}
	// 50 more: the next asker (with a budget of its own) gets them.
	fill(s, items, 50, 40)
	had := newStore()
	fill(had, 0, items, 40)
	cli2 := newNode(t, nil, had)
	stats, err = cli2.CatchUp(context.Background(), []peer.AddrInfo{srv.addrInfo()})
	if err != nil {
		t.Fatal(err)
	}
	if st2 := stats[0]; st2.Fetched != 50 || had.len() != items+50 || s.roots.Load() != 2 {
		t.Errorf("after 50 more: fetched %d, holds %d, root ranged %d times; want 50, %d, 2", st2.Fetched, had.len(), s.roots.Load(), items+50)
	}
}

// TestFetchedOutlivesTheSessionDeadline: what a session fetched is judged
// and stored even when judging it takes past the session's deadline. A
// catch-up from four peers on two cores lost a thousand documents when
// the deadline cancelled the handlers still queued.
func TestFetchedOutlivesTheSessionDeadline(t *testing.T) {
	const items = 2
	s := newStore()
	fill(s, 0, items, 100)
	srv := newNode(t, nil, s)
	// The session has a second for its two round trips; judging each
	// message takes one and a half.
	cli := newNode(t, nil, nil, func(c *Config, h *testHandler) {
		c.tuning.sessionTimeout = time.Second
		h.work, h.honourCtx = 1500*time.Millisecond, true
	})
	if _, err := cli.SyncWith(context.Background(), srv.addrInfo()); err != nil {
		t.Fatal(err)
	}
	if cli.store.len() != items {
		t.Fatalf("holds %d of %d: judging past the session deadline dropped them", cli.store.len(), items)
	}
}

// TestSyncBudgetAbuse: a peer that comes back for more before the
// retry-after it was given is refused each time, penalised, and banned;
// the server then refuses it at once.
func TestSyncBudgetAbuse(t *testing.T) {
	s := newStore()
	fill(s, 0, 200, 1000)
	srv := newNode(t, nil, s, withBudget(1<<10, 100<<10, 50<<10)) // about nothing a minute
	abuser := newNode(t, nil, nil)
	refused := 0
	for try := 0; try < 20 && !srv.Banned(abuser.ID()); try++ {
		abuser.store.forget() // ask for everything again
		_, err := abuser.SyncWith(context.Background(), srv.addrInfo())
		var se *SyncError
		if errors.As(err, &se) && se.Code == errCodeLimit {
			refused++
			if se.RetryAfter <= 0 {
				t.Fatalf("refusal without a retry-after: %q", se.Text)
			}
		}
	}
	if refused == 0 || !srv.Banned(abuser.ID()) {
		t.Fatalf("refused %d times, banned %v, penalty %v", refused, srv.Banned(abuser.ID()), srv.Penalty(abuser.ID()))
	}
	if _, err := abuser.SyncWith(context.Background(), srv.addrInfo()); err == nil {
		t.Fatal("a banned abuser was served")
	}
	t.Logf("refused %d times, then banned", refused)
}

func TestParseRetry(t *testing.T) {
	for _, tc := range []struct {
		text string
		want time.Duration
	}{
		{retryText(1500 * time.Millisecond), 1500 * time.Millisecond},
		{retryText(0), 0},
		{"work budget exhausted", 0},
		{"retry after -5 ms", 0},
		{"retry after 99999999999 ms", maxRetryAfter},
		{"retry after x ms", 0},
	} {
		if got := parseRetry(tc.text); got != tc.want {
			t.Errorf("parseRetry(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

// FuzzParseRetry: any error text gives a wait between 0 and
// maxRetryAfter, and a refusal's own text gives back its wait.
func FuzzParseRetry(f *testing.F) {
	f.Add(retryText(1500 * time.Millisecond))
	f.Add("retry after 5 ms; retry after 7 ms")
	f.Add("retry after 18446744073709551615 ms")
	f.Fuzz(func(t *testing.T, text string) {
		if d := parseRetry(text); d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetry(%q) = %v", text, d)
		}
		if len(text) >= 8 {
			ms := time.Duration(text[0])*time.Second + time.Duration(text[1])*time.Millisecond
			if got := parseRetry(retryText(ms)); got != ms {
				t.Fatalf("parseRetry(retryText(%v)) = %v", ms, got)
			}
		}
	})
}

// TestSyncOnConnectResumesAfterRefusal: a running node whose sync on
// connecting is refused for the peer's work budget comes back when the
// peer said (not sooner: it is not penalised) and gets everything, with no
// periodic sync to fall back on.
func TestSyncOnConnectResumesAfterRefusal(t *testing.T) {
	const items, size = 120, 1000
	srv := newNode(t, nil, nil, withBudget(120<<10*60, 60<<10, 50<<10))
	msgs := fill(srv.store, 0, items, size)
	cli := newNode(t, nil, nil)
	var refused atomic.Int32
	cli.cfg.SyncDone = func(_ SyncStats, err error) {
		if se := (*SyncError)(nil); errors.As(err, &se) && se.RetryAfter > 0 {
			refused.Add(1)
		}
	}
	srv.run(t)
	cli.run(t)
	if err := cli.host.Connect(context.Background(), srv.addrInfo()); err != nil {
		t.Fatal(err)
	}
	assertEverywhere(t, []*node{cli}, 20*time.Second, msgs...)
	if refused.Load() == 0 {
		t.Error("no session was refused: the budget did not bite")
	}
	if p := srv.Penalty(cli.ID()); p != 0 {
		t.Errorf("the server penalised the resuming node: %v", p)
	}
	t.Logf("%d sessions refused before the node held all %d messages", refused.Load(), items)
}

// TestScanOddDepthVisitsOnlyTheBucket: scanning the 16 buckets of depth 1
// ranges over each ID once, not over the whole first byte for each (8.5
// times the IDs, which put a catch-up of a million documents past a
// session's cap of IDs ranged).
func TestScanOddDepthVisitsOnlyTheBucket(t *testing.T) {
	s := newStore()
	fill(s, 0, 1600, 10)
	visits := 0
	held := uint64(0)
	for c := range byte(fanout) {
		sc, err := scanBucket(s, prefix{}.child(c), 0, &visits, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		held += sc.sum.count
		sub := prefix{}.child(c).child(3) // and an odd depth further down
		if _, err := scanBucket(s, sub.child(7), 0, new(int), 1<<30); err != nil {
			t.Fatal(err)
		}
	}
	if held != 1600 || visits != 1600 {
		t.Fatalf("the 16 buckets hold %d of 1600 IDs; scanning them visited %d", held, visits)
	}
}
