package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rs/zerolog"
	ucli "github.com/urfave/cli/v2"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/gossip"
	"github.com/rbnode/rbnode/node"
	"github.com/rbnode/rbnode/node/store"
	"github.com/rbnode/rbnode/node/web"
)

func listenFlag() ucli.Flag {
	return &ucli.StringSliceFlag{Name: "listen", Usage: "listen `MULTIADDR` (repeatable; default TCP and QUIC port 4731 on all interfaces)", EnvVars: []string{"RBNODE_LISTEN"}}
}

func networkFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "network", Usage: "network name: nodes of different networks never mix (default cuprated)", EnvVars: []string{"RBNODE_NETWORK"}},
		listenFlag(),
		&ucli.StringSliceFlag{Name: "bootstrap", Usage: "peer `MULTIADDR` with /p2p/<id> to dial at start (repeatable)", EnvVars: []string{"RBNODE_BOOTSTRAP"}},
		&ucli.BoolFlag{Name: "no-mdns", Usage: "do not look for peers on the local network"},
		&ucli.BoolFlag{Name: "no-dht", Usage: "do not look for peers through the DHT"},
		&ucli.DurationFlag{Name: "sync-interval", Usage: "period of catch-up sync with a random peer (default 5m)", EnvVars: []string{"RBNODE_SYNC_INTERVAL"}},
		&ucli.DurationFlag{Name: "stop-timeout", Value: 10 * time.Second, Usage: "how long a graceful stop may take"},
	}
}

func httpFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "http", Usage: "serve the status web page, /metrics and /healthz on `ADDR` (HOST:PORT; a bare PORT or :PORT is 127.0.0.1 only)", EnvVars: []string{"RBNODE_HTTP"}}
}

// applyNetworkFlags lays the daemon's flags over the configuration.
func applyNetworkFlags(c *ucli.Context, cfg *node.Config) error {
	if isSet(c, "network") {
		cfg.Network = c.String("network")
	}
	if isSet(c, "listen") {
		cfg.Listen = c.StringSlice("listen")
	}
	if isSet(c, "bootstrap") {
		cfg.Bootstrap = append(cfg.Bootstrap, c.StringSlice("bootstrap")...)
	}
	if c.Bool("no-mdns") {
		cfg.MDNS = false
	}
	if c.Bool("no-dht") {
		cfg.DHT = false
	}
	if isSet(c, "sync-interval") {
		cfg.SyncInterval = node.Duration{Duration: c.Duration("sync-interval")}
	}
	if err := cfg.Validate(); err != nil {
		return &usageError{err: err}
	}
	return nil
}

func daemonCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "daemon",
		Usage: "run the node: gossip with peers, catch up, serve the local API (first interrupt stops gracefully, second at once)",
		Flags: append(networkFlags(), httpFlag()),
		Action: func(c *ucli.Context) error {
			cfg, err := daemonConfig(c)
			if err != nil {
				return err
			}
			if _, err := node.Dial(cfg.Home); err == nil {
				return usagef("a daemon is already running for %s", cfg.Home)
			}
			log := newLogger(c, cfg)
			boundMemory(daemonMemoryLimit, 0)
			// A command that only reads may hold the store for a moment
			// (shared): wait for it rather than fail to start.
			n, err := openRetrying(c.Context, func() (*node.Node, error) { return openNode(cfg, log) })
			if err != nil {
				return err
			}
			defer n.Close()
			d, err := node.NewDaemon(n, node.DaemonOptions{StopTimeout: c.Duration("stop-timeout")})
			if err != nil {
				return err
			}
			defer d.Close()
			id := d.Identity()
			fmt.Fprintf(c.App.ErrWriter, "rbnode daemon: peer %s on network %s\n", id.PeerID, id.Network)
			for _, a := range id.Addrs {
				fmt.Fprintf(c.App.ErrWriter, "  listening on %s\n", a)
			}
			var ln net.Listener
			if cfg.HTTP != "" {
				if ln, err = web.Listen(cfg.HTTP); err != nil {
					return usagef("%w", err)
				}
				fmt.Fprintf(c.App.ErrWriter, "rbnode daemon: status page on http://%s/\n", ln.Addr())
			}
			ctx, cancel := context.WithCancel(c.Context)
			defer cancel()
			errc := make(chan error, 2)
			running := 1
			go func() { errc <- d.Run(ctx) }()
			if ln != nil {
				running++
				h := web.New(web.Config{
					Releases: n, Documents: n, Builds: n, Peers: d, Health: d, Metrics: d.Gatherer(),
					Log: log.With().Str("component", "web").Logger(),
				})
				go func() { errc <- web.Serve(ctx, ln, h, c.Duration("stop-timeout")) }()
			}
			go reloadOnHangup(ctx, c, d, log)
			var first error
			select {
			case first = <-errc:
				running--
			case <-c.Context.Done():
			}
			cancel()
			timeout := time.After(c.Duration("stop-timeout"))
			for ; running > 0; running-- {
				select {
				case err := <-errc:
					if first == nil {
						first = err
					}
				case <-timeout:
					return fmt.Errorf("daemon did not stop within %s", c.Duration("stop-timeout"))
				}
			}
			fmt.Fprintln(c.App.ErrWriter, "rbnode daemon: stopped")
			return first
		},
	}
}

// daemonConfig is the daemon's configuration: the config file, the
// environment and the flags, at log level info unless one is set.
func daemonConfig(c *ucli.Context) (node.Config, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return cfg, err
	}
	if cfg.LogLevel == node.DefaultConfig().LogLevel && !isSet(c, "log-level") {
		cfg.LogLevel = "info"
	}
	if isSet(c, "http") {
		cfg.HTTP = c.String("http")
	}
	if err := applyNetworkFlags(c, &cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// reloadOnHangup re-reads the configuration and the trust set on each
// SIGHUP until ctx ends. A config that does not load is logged and the
// running one kept.
func reloadOnHangup(ctx context.Context, c *ucli.Context, d *node.Daemon, log zerolog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := daemonConfig(c)
		if err == nil {
			_, _, err = d.Reload(ctx, cfg)
		}
		if err != nil {
			log.Error().Err(err).Msg("SIGHUP: reload failed; the running configuration is kept")
		}
	}
}

// openRetrying calls open until it stops failing with store.ErrLocked, for
// up to five seconds.
func openRetrying(ctx context.Context, open func() (*node.Node, error)) (*node.Node, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := open()
		if !errors.Is(err, store.ErrLocked) || time.Now().After(deadline) {
			return n, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func syncCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "sync",
		Usage: "fetch and verify what peers have and this node lacks, once, without a daemon (a light client)",
		Flags: []ucli.Flag{
			&ucli.StringSliceFlag{Name: "peer", Usage: "peer `MULTIADDR` with /p2p/<id> (repeatable; default: the configured bootstrap peers)"},
			&ucli.StringFlag{Name: "network", Usage: "network name (default cuprated)", EnvVars: []string{"RBNODE_NETWORK"}},
			jsonFlag(),
		},
		Action: func(c *ucli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			if isSet(c, "network") {
				cfg.Network = c.String("network")
			}
			addrs := c.StringSlice("peer")
			if len(addrs) == 0 {
				addrs = cfg.Bootstrap
			}
			if len(addrs) == 0 {
				return usagef("sync needs a --peer MULTIADDR (rbnode id on the other node prints one) or bootstrap peers in the config")
			}
			peers, err := node.ParsePeers(addrs)
			if err != nil {
				return err
			}
			if _, err := node.Dial(cfg.Home); err == nil {
				return usagef("a daemon is running for %s: it syncs with its peers by itself", cfg.Home)
			}
			boundImportMemory()
			n, err := openNode(cfg, newLogger(c, cfg))
			if err != nil {
				return err
			}
			defer n.Close()
			// Progress on stderr, counted as documents become durable (a
			// catch-up of a large store takes minutes).
			prog, stored := newProgress(c.App.ErrWriter), 0
			d, err := node.NewDaemon(n, node.DaemonOptions{Socket: "-", LightClient: true, Stored: func(attest.ID) {
				stored++ // the daemon's single writer calls this
				prog.show(func(took time.Duration) string {
					return fmt.Sprintf("syncing: stored %d (%.1fs)", stored, took.Seconds())
				})
			}})
			if err != nil {
				return err
			}
			defer d.Close()
			stats, err := d.SyncWith(c.Context, peers)
			prog.done()
			// Every peer is reported, one that failed with its error and
			// what it gave before (a catch-up that stops halfway has still
			// stored half, and a second run goes on from there).
			if c.Bool("json") {
				out := syncReport{Peers: []syncPeerJSON{}}
				for _, st := range stats {
					out.Peers = append(out.Peers, newSyncPeerJSON(st))
				}
				if err != nil {
					out.Error = err.Error()
				}
				if jerr := printJSON(c.App.Writer, out); jerr != nil {
					return jerr
				}
			} else {
				for _, st := range stats {
					verb := "synced with"
					if st.Err != nil {
						verb = "stopped syncing with"
					}
					fmt.Fprintf(c.App.Writer, "%s %s: %d missing, %d fetched (%d stored, %d untrusted, %d rejected) in %s\n",
						verb, st.Peer, st.Missing, st.Fetched, st.Accepted, st.Ignored, st.Rejected, st.Duration.Round(time.Millisecond))
				}
			}
			if err != nil {
				return &exitError{code: ExitInconclusive, msg: "error: " + err.Error()}
			}
			return nil
		},
	}
}

// syncReport is `rbnode sync --json` (docs/json.md).
type syncReport struct {
	Peers []syncPeerJSON `json:"peers"`
	Error string         `json:"error,omitempty"`
}

type syncPeerJSON struct {
	Peer         string `json:"peer"`
	Rounds       int    `json:"rounds"`
	Buckets      int    `json:"buckets"`
	SummaryBytes int64  `json:"summary_bytes"`
	FetchBytes   int64  `json:"fetch_bytes"`
	Missing      int    `json:"missing"`
	Skipped      int    `json:"skipped"`
	Fetched      int    `json:"fetched"`
	Stored       int    `json:"stored"`
	Untrusted    int    `json:"untrusted"`
	Rejected     int    `json:"rejected"`
	DurationMS   int64  `json:"duration_ms"`
	Sessions     int    `json:"sessions"`
	Refused      int    `json:"refused"`
	WaitedMS     int64  `json:"waited_ms"`
	Error        string `json:"error,omitempty"`
}

func newSyncPeerJSON(st gossip.SyncStats) syncPeerJSON {
	var e string
	if st.Err != nil {
		e = st.Err.Error()
	}
	return syncPeerJSON{Error: e,
		Peer: st.Peer.String(), Rounds: st.Rounds, Buckets: st.Buckets, SummaryBytes: st.SummaryBytes, FetchBytes: st.FetchBytes,
		Missing: st.Missing, Skipped: st.Skipped, Fetched: st.Fetched, Stored: st.Accepted, Untrusted: st.Ignored, Rejected: st.Rejected,
		DurationMS: st.Duration.Milliseconds(), Sessions: st.Sessions, Refused: st.Refused, WaitedMS: st.Waited.Milliseconds(),
	}
}

func publishCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "publish",
		Usage:     "store signed documents (one, or a tree as import takes) and gossip them through the running daemon",
		ArgsUsage: "PATH",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "version", Usage: "version of a lone SHA256SUMS file"},
			&ucli.StringFlag{Name: "signer", Usage: "signer of a lone SHA256SUMS file"},
			jsonFlag(),
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usagef("publish takes one PATH")
			}
			path, err := filepath.Abs(c.Args().First())
			if err != nil {
				return usagef("%w", err)
			}
			req := node.ImportRequest{Path: path, Version: c.String("version"), Signer: c.String("signer")}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			cl, err := node.Dial(cfg.Home)
			if errors.Is(err, node.ErrNoDaemon) {
				// Store them now; a daemon offers them to peers when it runs.
				err := withBackend(c, false, func(n backend) error {
					sum, err := n.Import(c.Context, req)
					if sum != nil && err == nil && c.Bool("json") {
						return printJSON(c.App.Writer, node.PublishSummary{Import: sum})
					}
					if sum != nil {
						printImportSummary(c.App.Writer, sum)
					}
					return err
				})
				if err != nil {
					return err
				}
				return &exitError{code: ExitInconclusive, msg: "stored, but no daemon is running, so nothing was gossiped yet: start `rbnode daemon` (it offers stored documents to peers when they sync)"}
			}
			sum, err := cl.Publish(c.Context, req)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, sum)
			}
			printImportSummary(c.App.Writer, sum.Import)
			fmt.Fprintf(c.App.Writer, "published %d", sum.Published)
			if sum.Withheld > 0 {
				fmt.Fprintf(c.App.Writer, ", withheld %d (signers this node does not trust, or keys it lacks)", sum.Withheld)
			}
			fmt.Fprintln(c.App.Writer)
			return nil
		},
	}
}

func idCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "id",
		Usage: "this node's peer ID and full listen multiaddrs, usable as another node's --bootstrap",
		Flags: []ucli.Flag{listenFlag(), jsonFlag()},
		Action: func(c *ucli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			if isSet(c, "listen") {
				cfg.Listen = c.StringSlice("listen")
				if err := cfg.Validate(); err != nil {
					return &usageError{err: err}
				}
			}
			var id *node.Identity
			if cl, err := node.Dial(cfg.Home); err == nil {
				if id, err = cl.Identity(c.Context); err != nil {
					return err
				}
			} else {
				key, err := node.LoadIdentity(cfg.Home)
				if err != nil {
					return err
				}
				pid, err := peer.IDFromPrivateKey(key)
				if err != nil {
					return err
				}
				id = &node.Identity{PeerID: pid.String(), Network: cfg.Network, Addrs: []string{}}
				for _, a := range cfg.Listen {
					id.Addrs = append(id.Addrs, a+"/p2p/"+pid.String())
				}
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, id)
			}
			fmt.Fprintf(c.App.Writer, "peer id: %s\nnetwork: %s\n", id.PeerID, id.Network)
			if !id.Running {
				fmt.Fprintln(c.App.Writer, "(no daemon is running: these are the configured addresses)")
			}
			for _, a := range id.Addrs {
				fmt.Fprintln(c.App.Writer, a)
			}
			return nil
		},
	}
}

func peersCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "peers",
		Usage: "the daemon's connected peers, with addresses and scores",
		Flags: []ucli.Flag{wideFlag(), jsonFlag()},
		Action: func(c *ucli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			cl, err := node.Dial(cfg.Home)
			if err != nil {
				return err
			}
			peers, err := cl.Peers(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, peers)
			}
			if len(peers) == 0 {
				fmt.Fprintln(c.App.Writer, "no peers connected")
				return nil
			}
			var out io.Writer = c.App.Writer
			if !c.Bool("wide") {
				lw := &lineLimit{w: c.App.Writer, width: tableWidth}
				defer lw.flush()
				out = lw
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PEER\tSCORE\tDIRECTION\tRBNODE\tADDRESSES")
			for _, p := range peers {
				dir := "out"
				if p.Inbound {
					dir = "in"
				}
				fmt.Fprintf(tw, "%s\t%.2f\t%s\t%v\t%s\n", p.ID, p.Score, dir, p.Member, strings.Join(p.Addrs, " "))
			}
			return tw.Flush()
		},
	}
}
