package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node/store"
)

// ErrNoBuilderKey is returned when an operation needs the node's signing
// key and there is none.
var ErrNoBuilderKey = errors.New("this node has no builder key")

// ErrUsage marks errors the user fixes by changing the call (unknown
// fingerprint, ambiguous version, unreadable input file).
var ErrUsage = errors.New("usage")

// usageError is an error the user fixes by changing the call: it reads as
// its message and matches ErrUsage.
type usageError struct{ err error }

func (e usageError) Error() string   { return e.err.Error() }
func (e usageError) Unwrap() []error { return []error{ErrUsage, e.err} }

func usageErr(err error) error { return usageError{err} }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// ErrDiskFull is returned when a write would leave less free disk space
// than the configured disk_reserve (or when a writable open finds the disk
// full): nothing is written.
var ErrDiskFull = store.ErrDiskFull

// room returns ErrDiskFull (wrapped, with the figures) unless size more
// bytes leave the configured reserve free on the store's file system.
func (n *Node) room(size int) error {
	if err := n.store.Room(int64(size), int64(n.cfg.DiskReserve)); err != nil {
		return fmt.Errorf("disk_reserve is %d MiB: %w", n.cfg.DiskReserve>>20, err)
	}
	return nil
}

// Node is an rbnode home opened for use: its store, keyring and trust set.
type Node struct {
	cfg   Config
	log   zerolog.Logger
	store *store.Store
	now   func() time.Time
	ro    bool

	// keyring is replaced, never changed in place, so verifiers read it
	// without locks; mu serialises the writers.
	mu      sync.Mutex
	keyring atomic.Pointer[attest.Keyring]
	closeMu sync.Once

	// live holds the settings a reload changes (quorum, project); nil
	// until the first Reload.
	live atomic.Pointer[liveSettings]
}

// Option adjusts Open.
type Option func(*Node)

// WithClock makes the node read time from now (tests).
func WithClock(now func() time.Time) Option { return func(n *Node) { n.now = now } }

// ReadOnly opens the store shared and read-only, for commands that only
// read (status, verify, listings): much faster to open, and several may
// run at once. Writing through such a node fails.
func ReadOnly() Option { return func(n *Node) { n.ro = true } }

// PrepareHome creates the home (mode 0700) if needed. A home that others
// may write to (group or world writable), where another user could swap
// the config, the keys or the API socket, is made 0700: the returned mode
// is what it was then, 0 when nothing was changed. A home owned by
// another user is refused.
func PrepareHome(home string) (os.FileMode, error) {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return 0, fmt.Errorf("create home %s: %w", home, err)
	}
	fi, err := os.Stat(home)
	if err != nil {
		return 0, fmt.Errorf("create home %s: %w", home, err)
	}
	if !fi.IsDir() {
		return 0, usagef("home %s is not a directory", home)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return 0, usagef("home %s belongs to uid %d, not to this user (uid %d); give a home of your own with --home", home, st.Uid, os.Geteuid())
	}
	mode := fi.Mode().Perm()
	if mode&0o022 == 0 {
		return 0, nil
	}
	if err := os.Chmod(home, 0o700); err != nil {
		return 0, fmt.Errorf("home %s is writable by others (mode %04o) and cannot be fixed: %w", home, mode, err)
	}
	return mode, nil
}

// Open validates cfg, creates the home if needed and opens the store.
func Open(cfg Config, log zerolog.Logger, opts ...Option) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, usageErr(err)
	}
	if err := os.MkdirAll(cfg.Home, 0o700); err != nil {
		return nil, fmt.Errorf("create home %s: %w", cfg.Home, err)
	}
	n := &Node{cfg: cfg, log: log, now: time.Now}
	for _, o := range opts {
		o(n)
	}
	st, err := store.Open(store.Options{Dir: filepath.Join(cfg.Home, StoreDir), Logger: log, ReadOnly: n.ro})
	if err != nil {
		return nil, err
	}
	n.store = st
	return n, nil
}

// Close closes the store. It is safe to call more than once.
func (n *Node) Close() error {
	var err error
	n.closeMu.Do(func() { err = n.store.Close() })
	return err
}

// Config returns the node's configuration.
func (n *Node) Config() Config { return n.cfg }

// Store returns the node's store.
func (n *Node) Store() *store.Store { return n.store }

// Keyring returns every known public key, loading them from the store on
// first use.
func (n *Node) Keyring() (*attest.Keyring, error) {
	if kr := n.keyring.Load(); kr != nil {
		return kr, nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.loadKeyring()
}

// loadKeyring returns the keyring, reading it from the store the first
// time. n.mu must be held.
func (n *Node) loadKeyring() (*attest.Keyring, error) {
	if kr := n.keyring.Load(); kr != nil {
		return kr, nil
	}
	keys, err := n.store.Keys()
	if err != nil {
		return nil, fmt.Errorf("load keys: %w", err)
	}
	kr := attest.NewKeyring(keys...)
	n.keyring.Store(kr)
	return kr, nil
}

// TrustSet returns the trusted fingerprints and their names.
func (n *Node) TrustSet() (attest.TrustSet, error) {
	entries, err := n.store.Trusted()
	if err != nil {
		return nil, fmt.Errorf("load trust set: %w", err)
	}
	ts := attest.TrustSet{}
	for _, e := range entries {
		ts[e.Fingerprint] = e.Name
	}
	return ts, nil
}

// AddKeys stores public keys (merging them with copies already known) and
// re-verifies the documents they signed, which may have been waiting for
// the key or may be voided by a revocation it now carries. It returns the
// keys as now held.
func (n *Node) AddKeys(keys []*attest.Key) ([]*attest.Key, error) {
	n.mu.Lock()
	old, err := n.loadKeyring()
	if err != nil {
		n.mu.Unlock()
		return nil, err
	}
	kr := old.Clone()
	var held, changed []*attest.Key
	for _, k := range keys {
		prev := kr.Get(k.Fingerprint)
		h := kr.Add(k)
		held = append(held, h)
		if h == prev {
			continue // the same certificate again: nothing to store or re-check
		}
		if err := n.store.PutKey(h); err != nil {
			n.mu.Unlock()
			return nil, fmt.Errorf("store key %s: %w", h.Fingerprint, err)
		}
		changed = append(changed, h)
	}
	n.keyring.Store(kr)
	n.mu.Unlock()
	if _, err := n.reverify(changed); err != nil {
		return nil, err
	}
	return held, nil
}

// reverify recomputes the verification of every document signed by one of
// keys' key ids. It returns how many changed.
func (n *Node) reverify(keys []*attest.Key) (int, error) {
	kr, err := n.Keyring()
	if err != nil {
		return 0, err
	}
	changed := 0
	for _, k := range keys {
		for _, kid := range k.KeyIDs() {
			ids, err := n.store.DocsByKeyID(kid)
			if err != nil {
				return changed, err
			}
			for _, id := range ids {
				rec, meta, err := n.store.Get(id)
				if errors.Is(err, store.ErrNotFound) {
					continue // an untrusted document dropped meanwhile
				}
				if err != nil {
					return changed, err
				}
				p, err := rec.Document().Parse()
				if err != nil {
					return changed, fmt.Errorf("re-read stored document %s: %w", id.Short(), err)
				}
				v := kr.Verify(rec.Body, p.Sig, n.now())
				if v == meta.Verification {
					continue
				}
				if err := n.store.SetVerification(id, v); errors.Is(err, store.ErrNotFound) {
					continue
				} else if err != nil {
					return changed, err
				}
				changed++
			}
		}
	}
	return changed, nil
}

// Trust adds keys to the trust set under name (empty: the key's own name).
func (n *Node) Trust(keys []*attest.Key, name string) error {
	for _, k := range keys {
		nm := name
		if nm == "" {
			nm = k.Name()
		}
		if err := n.store.Trust(store.TrustEntry{Fingerprint: k.Fingerprint, Name: nm, AddedAt: n.now().UTC()}); err != nil {
			return fmt.Errorf("trust %s: %w", k.Fingerprint, err)
		}
	}
	return nil
}

// ApplyTrust adds key files and known fingerprints to the trust set. A key
// file holding one key is named by req.Names (else by req.Name, else by the
// key's own name). It returns the keys now trusted.
func (n *Node) ApplyTrust(req TrustRequest) ([]KeyInfo, error) {
	var done []*attest.Key
	for i, b := range req.Keys {
		keys, err := attest.ReadKeys(b)
		if err != nil {
			return nil, usagef("key file %d: %w", i+1, err)
		}
		held, err := n.AddKeys(keys)
		if err != nil {
			return nil, err
		}
		name := req.Name
		if name == "" && i < len(req.Names) && len(held) == 1 {
			name = req.Names[i]
		}
		if err := n.Trust(held, name); err != nil {
			return nil, err
		}
		done = append(done, held...)
	}
	for _, fp := range req.Fingerprints {
		k, err := n.TrustFingerprint(fp, req.Name)
		if err != nil {
			return nil, err
		}
		done = append(done, k)
	}
	n.refreshSummaries()
	ts, err := n.TrustSet()
	if err != nil {
		return nil, err
	}
	out := []KeyInfo{}
	for _, k := range done {
		out = append(out, keyInfo(k, ts, ""))
	}
	return out, nil
}

// TrustFingerprint trusts a key the node already knows.
func (n *Node) TrustFingerprint(fp, name string) (*attest.Key, error) {
	fp, err := attest.NormalizeFingerprint(fp)
	if err != nil {
		return nil, usageErr(err)
	}
	kr, err := n.Keyring()
	if err != nil {
		return nil, err
	}
	k := kr.Get(fp)
	if k == nil {
		return nil, usagef("no known key has fingerprint %s; give its key file instead", fp)
	}
	return k, n.Trust([]*attest.Key{k}, name)
}

// Untrust removes a fingerprint from the trust set.
func (n *Node) Untrust(fp string) error {
	fp, err := attest.NormalizeFingerprint(fp)
	if err != nil {
		return usageErr(err)
	}
	found, err := n.store.Untrust(fp)
	if err != nil {
		return err
	}
	if !found {
		return usagef("%s is not trusted (see rbnode trust list)", fp)
	}
	n.refreshSummaries()
	return nil
}

// KeyInfo describes a known key for listings.
type KeyInfo struct {
	Fingerprint string     `json:"fingerprint"`
	UserID      string     `json:"user_id"`
	Algorithm   string     `json:"algorithm"`
	Created     time.Time  `json:"created"`
	Expires     *time.Time `json:"expires,omitempty"`
	Revoked     string     `json:"revoked,omitempty"`
	Trusted     bool       `json:"trusted"`
	TrustName   string     `json:"trust_name,omitempty"`
	Own         bool       `json:"own"`
}

// Keys lists every known key with its trust.
func (n *Node) Keys() ([]KeyInfo, error) {
	kr, err := n.Keyring()
	if err != nil {
		return nil, err
	}
	ts, err := n.TrustSet()
	if err != nil {
		return nil, err
	}
	own := ""
	if sk, err := n.BuilderKey(); err == nil {
		own = sk.Public().Fingerprint
	}
	var out []KeyInfo
	for _, k := range kr.Keys() {
		out = append(out, keyInfo(k, ts, own))
	}
	return out, nil
}

// TrustList lists the trusted keys. A trusted fingerprint whose key is not
// known is listed with its name only.
func (n *Node) TrustList() ([]KeyInfo, error) {
	kr, err := n.Keyring()
	if err != nil {
		return nil, err
	}
	entries, err := n.store.Trusted()
	if err != nil {
		return nil, err
	}
	ts, _ := n.TrustSet()
	own := ""
	if sk, err := n.BuilderKey(); err == nil {
		own = sk.Public().Fingerprint
	}
	var out []KeyInfo
	for _, e := range entries {
		if k := kr.Get(e.Fingerprint); k != nil {
			out = append(out, keyInfo(k, ts, own))
		} else {
			out = append(out, KeyInfo{Fingerprint: e.Fingerprint, Trusted: true, TrustName: e.Name})
		}
	}
	return out, nil
}

func keyInfo(k *attest.Key, ts attest.TrustSet, own string) KeyInfo {
	name, trusted := ts[k.Fingerprint]
	ki := KeyInfo{
		Fingerprint: k.Fingerprint, UserID: k.UserID(), Algorithm: k.Algorithm(),
		Created: k.Created().UTC(), Trusted: trusted, TrustName: name, Own: k.Fingerprint == own,
	}
	if exp, ok := k.Expires(); ok {
		exp = exp.UTC()
		ki.Expires = &exp
	}
	if reason, at, ok := k.Revocation(); ok {
		ki.Revoked = fmt.Sprintf("%s on %s", reason, at.UTC().Format("2006-01-02"))
	}
	return ki
}
