package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// The rejection log. Entries are in two classes, each bounded on its own,
// so that what peers send can never push out what this node's own user
// did: protected entries (from local imports and builds, or documents
// whose good signature is by a trusted key) and network entries (everything
// else a peer sent), which are also bounded per peer.
const (
	// MaxRejections bounds each class; the oldest entry of the class goes
	// first.
	MaxRejections = 10000
	// MaxPeerRejections bounds the network entries of one peer; its oldest
	// goes first.
	MaxPeerRejections = 100
)

var (
	pReject     = []byte("1/x/") // <seq> → the rejection (JSON)
	pRejectV    = []byte("1/y/") // <version>\0<seq>: the index of layout 1 before projects; read, no longer written
	pRejectRel  = []byte("1/w/") // <project>\0<version>\0<seq>
	pRejectCls  = []byte("1/c/") // <class>/<seq>: the order of each class
	pRejectPeer = []byte("1/p/") // <peer>\0<seq>: a peer's network entries
)

// Rejection is one piece of input that was refused, and why.
type Rejection struct {
	Time    time.Time `json:"time"`
	Source  string    `json:"source"`
	Project string    `json:"project,omitempty"`
	Version string    `json:"version,omitempty"`
	Signer  string    `json:"signer,omitempty"`
	File    string    `json:"file,omitempty"`
	KeyID   string    `json:"key_id,omitempty"`
	Reason  string    `json:"reason"`
	Detail  string    `json:"detail"`
	// Peer is the peer that sent the document; empty for local input.
	Peer string `json:"peer,omitempty"`
	// Trusted is set when the document's signature is good and by a
	// trusted key (then only that key's holder could have made it).
	Trusted bool `json:"trusted,omitempty"`
}

func (r *Rejection) class() []byte {
	if r.Peer == "" || r.Trusted {
		return []byte("l/") // protected
	}
	return []byte("n/")
}

func (r *Rejection) dedupeKey() []byte {
	return key(pSetting, []byte("rejected/"), []byte(r.Source+"\x00"+r.Reason+"\x00"+r.Detail))
}

// AddRejections appends to the rejection log. A rejection already logged
// with the same source, reason and detail is not logged again, so
// re-importing a tree does not grow the log. Past its bounds, the oldest
// entries of the same class (and, for a peer's, of the same peer) go.
func (s *Store) AddRejections(rs []Rejection) error {
	if len(rs) == 0 {
		return nil
	}
	return s.db.Update(func(txn *badger.Txn) error {
		_, next, err := counters(txn, "reject-first", "reject-next")
		if err != nil {
			return err
		}
		local, network, err := counters(txn, "reject-count-l/", "reject-count-n/")
		if err != nil {
			return err
		}
		counts := map[string]uint64{"l/": local, "n/": network}
		for _, r := range rs {
			dk := r.dedupeKey()
			if _, err := txn.Get(dk); err == nil {
				continue
			}
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			seq := seqKey(next)
			next++
			cls := r.class()
			for _, kv := range [][2][]byte{
				{key(pReject, seq), b},
				{dk, seq},
				{key(pRejectRel, []byte(r.Project), sep, []byte(r.Version), sep, seq), nil},
				{key(pRejectCls, cls, seq), nil},
			} {
				if err := txn.Set(kv[0], kv[1]); err != nil {
					return err
				}
			}
			if err := markChanged(txn.Set, r.Project, r.Version); err != nil {
				return err
			}
			counts[string(cls)]++
			if string(cls) == "n/" {
				pp := key(pRejectPeer, []byte(r.Peer), sep)
				if err := txn.Set(key(pp, seq), nil); err != nil {
					return err
				}
				if n := countUnder(txn, pp, MaxPeerRejections+2); n > MaxPeerRejections {
					if err := dropOldest(txn, pp, n-MaxPeerRejections, counts); err != nil {
						return err
					}
				}
			}
			if c := counts[string(cls)]; c > MaxRejections {
				if err := dropOldest(txn, key(pRejectCls, cls), int(c-MaxRejections), counts); err != nil {
					return err
				}
			}
		}
		for c, n := range counts {
			if err := txn.Set(key(pSetting, []byte("reject-count-"+c)), seqKey(n)); err != nil {
				return err
			}
		}
		return txn.Set(key(pSetting, []byte("reject-next")), seqKey(next))
	})
}

// dropOldest drops the n oldest entries indexed under prefix (keys
// ending in a sequence number).
func dropOldest(txn *badger.Txn, prefix []byte, n int, counts map[string]uint64) error {
	var seqs [][]byte
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	for it.Rewind(); it.Valid() && len(seqs) < n; it.Next() {
		seqs = append(seqs, it.Item().KeyCopy(nil)[len(prefix):])
	}
	it.Close()
	for _, seq := range seqs {
		if err := dropRejection(txn, seq, counts); err != nil {
			return err
		}
	}
	return nil
}

// countUnder counts the keys under prefix, up to limit.
func countUnder(txn *badger.Txn, prefix []byte, limit int) int {
	n := 0
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid() && n < limit; it.Next() {
		n++
	}
	return n
}

func dropRejection(txn *badger.Txn, seq []byte, counts map[string]uint64) error {
	var r Rejection
	k := key(pReject, seq)
	if err := getJSON(txn, k, &r); err != nil {
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		return err
	}
	cls := r.class()
	for _, d := range [][]byte{
		k,
		key(pRejectV, []byte(r.Version), sep, seq),
		key(pRejectRel, []byte(r.Project), sep, []byte(r.Version), sep, seq),
		key(pRejectCls, cls, seq),
		key(pRejectPeer, []byte(r.Peer), sep, seq),
		r.dedupeKey(),
	} {
		if err := txn.Delete(d); err != nil {
			return err
		}
	}
	if err := markChanged(txn.Set, r.Project, r.Version); err != nil {
		return err
	}
	if counts[string(cls)] > 0 {
		counts[string(cls)]--
	}
	return nil
}

func seqKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// Rejections returns the logged rejections of a release (all of them when
// version is empty), oldest first. Entries logged before rejections
// carried a project are listed under every project with that version.
func (s *Store) Rejections(project, version string) ([]Rejection, error) {
	var out []Rejection
	err := s.db.View(func(txn *badger.Txn) error {
		if version == "" {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: pReject, PrefetchValues: true})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				var r Rejection
				if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &r) }); err != nil {
					return err
				}
				out = append(out, r)
			}
			return nil
		}
		prefixes := [][]byte{
			key(pRejectRel, sep, []byte(version), sep), // no project known (a malformed document)
			key(pRejectV, []byte(version), sep),
		}
		if project != "" {
			prefixes = append(prefixes, key(pRejectRel, []byte(project), sep, []byte(version), sep))
		}
		var seqs [][]byte
		for _, prefix := range prefixes {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			for it.Rewind(); it.Valid(); it.Next() {
				seqs = append(seqs, it.Item().KeyCopy(nil)[len(prefix):])
			}
			it.Close()
		}
		slices.SortFunc(seqs, bytes.Compare)
		for _, seq := range seqs {
			var r Rejection
			if err := getJSON(txn, key(pReject, seq), &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
