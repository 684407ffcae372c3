package cli

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"
	ucli "github.com/urfave/cli/v2"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/builder"
	"github.com/rbnode/rbnode/node"
	"github.com/rbnode/rbnode/node/store"
)

// backend is what commands need of a node: the node itself when no daemon
// runs, or the daemon's local API when one holds the store.
type backend interface {
	Status(ctx context.Context, project, version string, quorum int) (*attest.Report, error)
	Releases(ctx context.Context, project string, quorum int) ([]node.ReleaseSummary, error)
	ReleaseDocuments(ctx context.Context, project, version string) ([]node.ExportDoc, error)
	VerifyHashes(ctx context.Context, files []node.FileHash, project, version string, quorum int) ([]node.FileResult, error)
	Import(ctx context.Context, req node.ImportRequest) (*node.ImportSummary, error)
	Trust(ctx context.Context, req node.TrustRequest) ([]node.KeyInfo, error)
	Untrust(ctx context.Context, fp string) error
	TrustList(ctx context.Context) ([]node.KeyInfo, error)
	Keys(ctx context.Context) ([]node.KeyInfo, error)
	AddBuild(ctx context.Context, r *builder.Record) error
	Builds(ctx context.Context) ([]builder.Record, error)
	Request(ctx context.Context, req node.RequestOptions) (*node.RequestSummary, error)
}

var (
	_ backend = (*node.Client)(nil)
	_ backend = local{}
)

// local adapts an open node to backend.
type local struct {
	n        *node.Node
	progress func(node.ImportProgress)
}

func (l local) Status(_ context.Context, project, version string, quorum int) (*attest.Report, error) {
	return l.n.Status(project, version, quorum)
}

func (l local) Releases(_ context.Context, project string, quorum int) ([]node.ReleaseSummary, error) {
	return l.n.Releases(project, quorum)
}

func (l local) ReleaseDocuments(_ context.Context, project, version string) ([]node.ExportDoc, error) {
	return l.n.ReleaseDocuments(project, version)
}

func (l local) VerifyHashes(_ context.Context, files []node.FileHash, project, version string, quorum int) ([]node.FileResult, error) {
	return l.n.VerifyHashes(files, project, version, quorum)
}

func (l local) Import(ctx context.Context, req node.ImportRequest) (*node.ImportSummary, error) {
	return l.n.Import(ctx, req.Path, node.ImportOptions{Version: req.Version, Signer: req.Signer, Progress: l.progress})
}

func (l local) Trust(_ context.Context, req node.TrustRequest) ([]node.KeyInfo, error) {
	return l.n.ApplyTrust(req)
}

func (l local) Untrust(_ context.Context, fp string) error { return l.n.Untrust(fp) }

func (l local) TrustList(context.Context) ([]node.KeyInfo, error) { return l.n.TrustList() }

func (l local) Keys(context.Context) ([]node.KeyInfo, error) { return l.n.Keys() }

func (l local) AddBuild(_ context.Context, r *builder.Record) error { return l.n.AddBuild(r) }

func (l local) Builds(context.Context) ([]builder.Record, error) { return l.n.Builds() }

func (l local) Request(ctx context.Context, req node.RequestOptions) (*node.RequestSummary, error) {
	sum, _, err := l.n.Request(ctx, req)
	return sum, err
}

// closing counts the read-only stores withBackend is closing in the
// background. openNode waits for them: in one process (tests run many
// commands so) the next command must never find the store still held; a
// real process exits before it opens another.
var closing sync.WaitGroup

// openNode opens the home's node, once the stores closing in the
// background are closed. Every command opens its node through it.
func openNode(cfg node.Config, log zerolog.Logger, opts ...node.Option) (*node.Node, error) {
	closing.Wait()
	return node.Open(cfg, log, opts...)
}

// withBackend runs fn against the daemon if one answers on the home's
// socket, else against the store opened directly (read-only when
// readOnly). A stale socket left by a crashed daemon is not a daemon.
func withBackend(c *ucli.Context, readOnly bool, fn func(backend) error) error {
	if readOnly {
		boundReadMemory()
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	if cl, err := node.Dial(cfg.Home); err == nil {
		return fn(cl)
	} else if !errors.Is(err, node.ErrNoDaemon) {
		return err
	}
	var opts []node.Option
	if readOnly {
		opts = append(opts, node.ReadOnly())
	}
	n, err := openNode(cfg, newLogger(c, cfg), opts...)
	// A daemon that is starting holds the store before its socket
	// answers, and another command may hold it for a moment: wait for
	// the socket or the store.
	for deadline := time.Now().Add(5 * time.Second); errors.Is(err, store.ErrLocked) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		if cl, derr := node.Dial(cfg.Home); derr == nil {
			return fn(cl)
		}
		n, err = openNode(cfg, newLogger(c, cfg), opts...)
	}
	if err != nil {
		return err
	}
	if n.Store().ReadOnly() {
		// A read-only store has nothing to write back, yet Badger's Close
		// fsyncs its directory twice, which on a busy disk costs from a
		// millisecond to tens of them after the answer is out: close it in
		// the background. A process that exits first leaves it to the
		// kernel, which drops the shared lock and the mappings with it. A
		// store opened writable (new, or to recover) is closed in full.
		closing.Add(1)
		defer func() {
			go func() {
				defer closing.Done()
				n.Close()
			}()
		}()
	} else {
		defer n.Close()
	}
	prog := newProgress(c.App.ErrWriter)
	defer prog.done()
	return fn(local{n: n, progress: prog.update})
}
