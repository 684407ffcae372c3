package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/builder"
	"github.com/rbnode/rbnode/gossip"
)

// The local API: HTTP over a unix socket in the home (mode 0600), so that
// the CLI works while the daemon holds the store. docs/api.md describes it.

// ErrPermission is returned to a caller of the local API that may not do
// what it asked (another user changing the node).
var ErrPermission = errors.New("permission denied")

// apiError is the body of every failed API call.
type apiError struct {
	Error string `json:"error"`
	Kind  string `json:"kind"` // usage, permission, disk_full, unknown_release, no_builder_key, not_found, internal
}

// VerifyRequest asks the daemon to judge files the CLI hashed.
type VerifyRequest struct {
	Files   []FileHash `json:"files"`
	Project string     `json:"project,omitempty"`
	Version string     `json:"version,omitempty"`
	Quorum  int        `json:"quorum,omitempty"`
}

// ImportRequest names a path on the daemon's host to import or publish.
type ImportRequest struct {
	Path    string `json:"path"`
	Version string `json:"version,omitempty"`
	Signer  string `json:"signer,omitempty"`
}

// PublishSummary is what publish did: the import, then the gossip.
type PublishSummary struct {
	Import    *ImportSummary `json:"import"`
	Published int            `json:"published"`
	// Withheld counts documents not gossiped because this node does not
	// trust their signer (they stay in its store).
	Withheld int `json:"withheld"`
}

// TrustRequest adds keys (armoured or binary key files) or known
// fingerprints to the trust set.
type TrustRequest struct {
	Keys         [][]byte `json:"keys,omitempty"`
	Names        []string `json:"names,omitempty"` // one per key, may be empty
	Fingerprints []string `json:"fingerprints,omitempty"`
	Name         string   `json:"name,omitempty"`
}

// Identity is what rbnode id prints.
type Identity struct {
	PeerID  string   `json:"peer_id"`
	Addrs   []string `json:"addrs"`
	Network string   `json:"network"`
	Running bool     `json:"running"`
}

// Peer is one connected peer, as rbnode peers prints it.
type Peer struct {
	ID      string   `json:"id"`
	Addrs   []string `json:"addrs"`
	Score   float64  `json:"score"`
	Inbound bool     `json:"inbound"`
	Member  bool     `json:"member"`
	Agent   string   `json:"agent,omitempty"`
}

func (d *Daemon) serveAPI(ctx context.Context) error {
	path := d.opts.Socket
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("another daemon is answering on %s", path)
	}
	os.Remove(path) // a socket left by a daemon that died
	ln, err := listenPrivate(path)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: ownerOnly(d.apiHandler()), ReadHeaderTimeout: 10 * time.Second, ConnContext: withPeerCred}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), d.opts.StopTimeout)
	defer cancel()
	srv.Shutdown(sctx)
	os.Remove(path)
	return nil
}

// listenPrivate listens on a unix socket at path that no other user can
// ever connect to: it is bound in a fresh directory of mode 0700, made
// 0600, and only then renamed into place. (Binding at path and chmod-ing
// afterwards leaves a window in which the socket has the umask's mode.)
func listenPrivate(path string) (*net.UnixListener, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".socket-")
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, filepath.Base(path))
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // it is renamed; serveAPI removes it
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return ln, nil
}

type credKey struct{}

// withPeerCred records the connecting process's uid (SO_PEERCRED) in the
// connection's context.
func withPeerCred(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *syscall.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, _ = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if cred == nil {
		return ctx
	}
	return context.WithValue(ctx, credKey{}, cred.Uid)
}

// ownerOnly refuses calls that change the node (anything but a read, and
// verify, which only reads) unless the caller runs as the daemon's user
// or as root: the socket's mode should already keep others out, and this
// holds even if the home or the socket is opened up by mistake.
func ownerOnly(h http.Handler) http.Handler {
	owner := uint32(os.Geteuid())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.URL.Path != "/v1/verify" {
			uid, ok := r.Context().Value(credKey{}).(uint32)
			if !ok || (uid != owner && uid != 0) {
				who := "an unknown user"
				if ok {
					who = "uid " + strconv.FormatUint(uint64(uid), 10)
				}
				reply(w, nil, fmt.Errorf("%s %s: %s may not change this node, which runs as uid %d: %w", r.Method, r.URL.Path, who, owner, ErrPermission))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (d *Daemon) apiHandler() http.Handler {
	mux := http.NewServeMux()
	n := d.n
	mux.HandleFunc("GET /v1/id", func(w http.ResponseWriter, r *http.Request) {
		reply(w, d.Identity(), nil)
	})
	mux.HandleFunc("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) {
		reply(w, d.Peers(), nil)
	})
	mux.HandleFunc("GET /v1/status/{version}", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		quorum, err := quorumParam(q)
		if err != nil {
			reply(w, nil, err)
			return
		}
		rep, err := n.Status(q.Get("project"), r.PathValue("version"), quorum)
		reply(w, rep, err)
	})
	mux.HandleFunc("GET /v1/documents/{version}", func(w http.ResponseWriter, r *http.Request) {
		docs, err := n.ReleaseDocuments(r.URL.Query().Get("project"), r.PathValue("version"))
		reply(w, docs, err)
	})
	mux.HandleFunc("GET /v1/releases", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		quorum, err := quorumParam(q)
		if err != nil {
			reply(w, nil, err)
			return
		}
		list, err := n.Releases(q.Get("project"), quorum)
		reply(w, list, err)
	})
	// Everything else: a JSON 404, never the mux's plain-text answer.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(apiError{Error: fmt.Sprintf("no API endpoint %s %s (docs/api.md lists them)", r.Method, r.URL.Path), Kind: "not_found"})
	})
	mux.HandleFunc("POST /v1/verify", func(w http.ResponseWriter, r *http.Request) {
		var req VerifyRequest
		if !decode(w, r, &req) {
			return
		}
		res, err := n.VerifyHashes(req.Files, req.Project, req.Version, req.Quorum)
		reply(w, res, err)
	})
	mux.HandleFunc("POST /v1/import", func(w http.ResponseWriter, r *http.Request) {
		var req ImportRequest
		if !decode(w, r, &req) {
			return
		}
		// A running node shares what it stores: import through the daemon
		// also offers the new documents to peers.
		sum, err := d.Publish(r.Context(), req.Path, ImportOptions{Version: req.Version, Signer: req.Signer})
		if err == nil {
			d.log.Info().Int("stored", sum.Import.Stored).Int("published", sum.Published).Str("path", req.Path).Msg("imported")
		}
		reply(w, sum.Import, err)
	})
	mux.HandleFunc("POST /v1/publish", func(w http.ResponseWriter, r *http.Request) {
		var req ImportRequest
		if !decode(w, r, &req) {
			return
		}
		sum, err := d.Publish(r.Context(), req.Path, ImportOptions{Version: req.Version, Signer: req.Signer})
		reply(w, sum, err)
	})
	mux.HandleFunc("POST /v1/request", func(w http.ResponseWriter, r *http.Request) {
		var req RequestOptions
		if !decode(w, r, &req) {
			return
		}
		sum, err := d.Request(r.Context(), req)
		if err == nil {
			d.log.Info().Str("version", sum.Version).Str("commit", sum.GitCommit).Int("published", sum.Published).Msg("build requested")
		}
		reply(w, sum, err)
	})
	mux.HandleFunc("GET /v1/builds", func(w http.ResponseWriter, r *http.Request) {
		list, err := n.Builds()
		reply(w, list, err)
	})
	mux.HandleFunc("POST /v1/builds", func(w http.ResponseWriter, r *http.Request) {
		var rec builder.Record
		if !decode(w, r, &rec) {
			return
		}
		reply(w, struct{}{}, n.AddBuild(&rec))
	})
	mux.HandleFunc("GET /v1/trust", func(w http.ResponseWriter, r *http.Request) {
		list, err := n.TrustList()
		reply(w, list, err)
	})
	mux.HandleFunc("GET /v1/keys", func(w http.ResponseWriter, r *http.Request) {
		list, err := n.Keys()
		reply(w, list, err)
	})
	mux.HandleFunc("POST /v1/trust", func(w http.ResponseWriter, r *http.Request) {
		var req TrustRequest
		if !decode(w, r, &req) {
			return
		}
		keys, err := n.ApplyTrust(req)
		// Even a request that failed half way may have trusted some keys.
		if terr := d.trustChanged(); err == nil {
			err = terr
		}
		reply(w, keys, err)
	})
	mux.HandleFunc("DELETE /v1/trust/{fingerprint}", func(w http.ResponseWriter, r *http.Request) {
		err := n.Untrust(r.PathValue("fingerprint"))
		if err == nil {
			err = d.trustChanged()
		}
		reply(w, struct{}{}, err)
	})
	return mux
}

// quorumParam reads the optional quorum parameter: absent is 0 (the
// configured quorum); anything but a positive integer is a bad request.
func quorumParam(q url.Values) (int, error) {
	if !q.Has("quorum") {
		return 0, nil
	}
	v, err := strconv.Atoi(q.Get("quorum"))
	if err != nil || v < 1 {
		return 0, usagef("quorum %q is not a positive integer", q.Get("quorum"))
	}
	return v, nil
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<20)
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		reply(w, nil, usagef("bad request: %w", err))
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		e := apiError{Error: err.Error(), Kind: "internal"}
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrPermission):
			e.Kind, status = "permission", http.StatusForbidden
		case errors.Is(err, ErrDiskFull):
			e.Kind, status = "disk_full", http.StatusInsufficientStorage
		case errors.Is(err, ErrUsage):
			e.Kind, status = "usage", http.StatusBadRequest
		case errors.Is(err, ErrUnknownRelease):
			e.Kind, status = "unknown_release", http.StatusNotFound
		case errors.Is(err, ErrNoBuilderKey):
			e.Kind, status = "no_builder_key", http.StatusConflict
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(e)
		return
	}
	json.NewEncoder(w).Encode(v)
}

// Identity returns the daemon's peer ID and listen addresses.
func (d *Daemon) Identity() Identity {
	id := Identity{PeerID: d.net.ID().String(), Network: d.n.cfg.Network, Running: true, Addrs: []string{}}
	for _, a := range d.net.Addrs() {
		id.Addrs = append(id.Addrs, a.String())
	}
	return id
}

// Peers lists the connected peers.
func (d *Daemon) Peers() []Peer {
	out := []Peer{}
	for _, p := range d.net.Peers() {
		q := Peer{ID: p.ID.String(), Score: p.Score, Inbound: p.Inbound, Member: p.Member, Agent: p.Agent}
		q.Addrs = []string{}
		for _, a := range p.Addrs {
			// Several connections to one address show it once.
			if s := a.String(); !slices.Contains(q.Addrs, s) {
				q.Addrs = append(q.Addrs, s)
			}
		}
		out = append(out, q)
	}
	return out
}

// Publish imports a path, then gossips every good document of it whose
// signer this node trusts.
func (d *Daemon) Publish(ctx context.Context, path string, opts ImportOptions) (*PublishSummary, error) {
	var ids []attest.ID
	also := opts.Document
	opts.Document = func(id attest.ID) {
		ids = append(ids, id)
		if also != nil {
			also(id)
		}
	}
	sum, err := d.n.Import(ctx, path, opts)
	out := &PublishSummary{Import: sum}
	if sum != nil && sum.Stored > 0 {
		d.metrics.stored.WithLabelValues("import").Add(float64(sum.Stored))
		d.changed()
	}
	if err != nil {
		return out, err
	}
	pub, err := d.publishIDs(ctx, ids)
	out.Published, out.Withheld = pub.Published, pub.Withheld
	return out, err
}

// publishIDs gossips the stored documents ids whose signer this node
// trusts; the others are withheld.
func (d *Daemon) publishIDs(ctx context.Context, ids []attest.ID) (PublishSummary, error) {
	var out PublishSummary
	if len(ids) > 0 {
		select { // a daemon just started may not have joined the topic yet
		case <-d.net.Ready():
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	for _, id := range ids {
		env, err := d.n.Envelope(id)
		if err != nil {
			out.Withheld++ // no good signature (its key is not known yet)
			continue
		}
		switch err := d.net.Publish(ctx, env); {
		case err == nil:
			out.Published++
		case errors.Is(err, gossip.ErrIgnored):
			out.Withheld++
		default:
			return out, fmt.Errorf("publish %s: %w", id.Short(), err)
		}
	}
	return out, nil
}

// trustChanged makes a trust change effective on the running daemon: the
// verdicts already follow the store's trust set; this reloads the copy
// that decides what is relayed, kept within the untrusted budget and
// shared by sync, and starts a sync round with every peer at once, for
// the documents of newly trusted keys this node dropped or never fetched.
func (d *Daemon) trustChanged() error {
	if err := d.reloadTrust(); err != nil {
		return err
	}
	d.net.Resync()
	return nil
}
