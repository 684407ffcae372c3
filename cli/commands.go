package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	ucli "github.com/urfave/cli/v2"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func initCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "init",
		Usage: "create rbnode's home directory, its config file and store",
		Action: func(c *ucli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			was, err := node.PrepareHome(cfg.Home)
			if err != nil {
				return err
			}
			if was != 0 {
				fmt.Fprintf(c.App.ErrWriter, "rbnode: %s was mode %04o, writable by others: made it 0700\n", cfg.Home, was)
			}
			path := filepath.Join(cfg.Home, node.ConfigFile)
			wrote := false
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				if err := os.WriteFile(path, []byte(defaultConfigText()), 0o600); err != nil {
					return err
				}
				wrote = true
			}
			return withNode(c, func(n *node.Node) error {
				w := c.App.Writer
				fmt.Fprintf(w, "home: %s\n", cfg.Home)
				if wrote {
					fmt.Fprintf(w, "wrote %s\n", path)
				} else {
					fmt.Fprintf(w, "kept %s\n", path)
				}
				if _, err := n.BuilderKey(); errors.Is(err, node.ErrNoBuilderKey) {
					fmt.Fprintln(w, "next: rbnode key generate --name NAME --email EMAIL   (to sign as a builder)")
				}
				fmt.Fprintln(w, "next: rbnode trust add KEYFILE...                      (builders you trust)")
				fmt.Fprintln(w, "next: rbnode import PATH                               (a guix.sigs or contrib/guix/sigs tree)")
				return nil
			})
		},
	}
}

func keyCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "key",
		Usage: "manage this node's builder key and the known public keys",
		Subcommands: []*ucli.Command{
			{
				Name:  "generate",
				Usage: "make a new Ed25519 builder key",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "name", Usage: "your builder name", Required: true},
					&ucli.StringFlag{Name: "email", Usage: "your e-mail address"},
				},
				Action: func(c *ucli.Context) error {
					return withNode(c, func(n *node.Node) error {
						sk, err := n.GenerateBuilderKey(c.String("name"), c.String("email"))
						if err != nil {
							return err
						}
						pub := sk.Public()
						fmt.Fprintf(c.App.Writer, "generated %s key %s for %s\n", pub.Algorithm(), pub.Fingerprint, pub.UserID())
						fmt.Fprintln(c.App.Writer, "share the public key with `rbnode key export`; others add it with `rbnode trust add`")
						return nil
					})
				},
			},
			{
				Name:      "import",
				Usage:     "import a secret key (from gpg --export-secret-keys --armor) as the builder key, or public keys into the keyring",
				ArgsUsage: "FILE",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "passphrase-file", Usage: "file holding the secret key's passphrase (or set RBNODE_PASSPHRASE)"},
				},
				Action: func(c *ucli.Context) error {
					if c.NArg() != 1 {
						return usagef("key import takes one FILE")
					}
					b, err := readInput(c, c.Args().First())
					if err != nil {
						return err
					}
					pass := []byte(os.Getenv("RBNODE_PASSPHRASE"))
					if f := c.String("passphrase-file"); f != "" {
						p, err := os.ReadFile(f)
						if err != nil {
							return usagef("read passphrase: %w", err)
						}
						pass = []byte(strings.TrimRight(string(p), "\r\n"))
					}
					return withNode(c, func(n *node.Node) error {
						res, err := n.ImportKey(b, pass)
						if err != nil {
							if errors.Is(err, attest.ErrPassphrase) {
								return &usageError{err: err, hint: "give the passphrase with --passphrase-file FILE or RBNODE_PASSPHRASE"}
							}
							return err
						}
						if res.Secret != nil {
							fmt.Fprintf(c.App.Writer, "builder key is now %s (%s)\n", res.Secret.Public().Fingerprint, res.Secret.Public().UserID())
							fmt.Fprintln(c.App.Writer, "note: rbnode keeps it unprotected in its home (mode 0600)")
						}
						for _, k := range res.Public {
							fmt.Fprintf(c.App.Writer, "known key %s (%s), not trusted; trust it with `rbnode trust add %s`\n", k.Fingerprint, k.UserID(), k.Fingerprint)
						}
						return nil
					})
				},
			},
			{
				Name:  "export",
				Usage: "print the builder key (public; --secret for the secret key)",
				Flags: []ucli.Flag{&ucli.BoolFlag{Name: "secret", Usage: "export the secret key (keep it private)"}},
				Action: func(c *ucli.Context) error {
					return withNode(c, func(n *node.Node) error {
						b, err := n.ExportKey(c.Bool("secret"))
						if err != nil {
							return err
						}
						_, err = c.App.Writer.Write(b)
						return err
					})
				},
			},
			{
				Name:  "list",
				Usage: "list the known public keys",
				Flags: []ucli.Flag{wideFlag(), jsonFlag()},
				Action: func(c *ucli.Context) error {
					return withBackend(c, true, func(n backend) error {
						keys, err := n.Keys(c.Context)
						if err != nil {
							return err
						}
						return printKeys(c, keys)
					})
				},
			},
		},
	}
}

func printKeys(c *ucli.Context, keys []node.KeyInfo) error {
	if keys == nil {
		keys = []node.KeyInfo{}
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, keys)
	}
	if len(keys) == 0 {
		fmt.Fprintln(c.App.Writer, "no keys")
		return nil
	}
	wide := c.Bool("wide")
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	if wide {
		fmt.Fprintln(tw, "FINGERPRINT\tTRUST\tALGO\tEXPIRES\tUSER ID")
	} else {
		fmt.Fprintln(tw, "KEY ID\tTRUST\tEXPIRES\tUSER ID")
	}
	for _, k := range keys {
		trust := "-"
		switch {
		case k.Own:
			trust = "own"
		case k.Trusted:
			trust = "trusted"
		}
		exp := "never"
		if k.Expires != nil {
			exp = k.Expires.Format("2006-01-02")
			if k.Expires.Before(time.Now()) {
				exp += " (expired)"
			}
		}
		if k.Revoked != "" {
			exp = "revoked: " + k.Revoked
		}
		uid := k.UserID
		if k.TrustName != "" && k.TrustName != uid {
			uid = fmt.Sprintf("%s [%s]", uid, k.TrustName)
		}
		if wide {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Fingerprint, trust, k.Algorithm, exp, uid)
			continue
		}
		// The long key id, as gpg shows it, and the name first, so that
		// shortening keeps it; --wide shows everything.
		if k.TrustName != "" && !strings.HasPrefix(k.UserID, k.TrustName) {
			uid = fmt.Sprintf("[%s] %s", k.TrustName, k.UserID)
		} else {
			uid = k.UserID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Fingerprint[max(len(k.Fingerprint)-16, 0):], trust, truncate(exp, 20), truncate(uid, 30))
	}
	return tw.Flush()
}

// readInput reads a file argument, "-" meaning stdin.
func readInput(c *ucli.Context, path string) ([]byte, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(c.App.Reader, attest.MaxKeyFileSize+1))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, usagef("read %s: %w", path, err)
	}
	return b, nil
}

func trustCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "trust",
		Usage: "choose the builders whose attestations count",
		Subcommands: []*ucli.Command{
			{
				Name:      "add",
				Usage:     "trust the keys in key files (as gpg --export writes them), or known keys by fingerprint",
				ArgsUsage: "FILE|FINGERPRINT...",
				Flags:     []ucli.Flag{&ucli.StringFlag{Name: "name", Usage: "name to show for the builder (default: the key file's name, else its user id)"}},
				Action: func(c *ucli.Context) error {
					if c.NArg() == 0 {
						return usagef("trust add needs at least one key FILE or FINGERPRINT")
					}
					var req node.TrustRequest
					req.Name = c.String("name")
					for _, arg := range c.Args().Slice() {
						if _, err := os.Stat(arg); err != nil && arg != "-" {
							if _, ferr := attest.NormalizeFingerprint(arg); ferr != nil {
								return usagef("%s is neither a readable key file nor a fingerprint: %w", arg, err)
							}
							req.Fingerprints = append(req.Fingerprints, arg)
							continue
						}
						b, err := readInput(c, arg)
						if err != nil {
							return err
						}
						name := ""
						if arg != "-" {
							name = strings.TrimSuffix(filepath.Base(arg), filepath.Ext(arg))
						}
						req.Keys = append(req.Keys, b)
						req.Names = append(req.Names, name)
					}
					return withBackend(c, false, func(n backend) error {
						keys, err := n.Trust(c.Context, req)
						if err != nil {
							return err
						}
						for _, k := range keys {
							fmt.Fprintf(c.App.Writer, "trusted %s (%s)\n", k.Fingerprint, k.UserID)
						}
						return nil
					})
				},
			},
			{
				Name:      "remove",
				Usage:     "stop trusting a key",
				ArgsUsage: "FINGERPRINT",
				Action: func(c *ucli.Context) error {
					if c.NArg() != 1 {
						return usagef("trust remove takes one FINGERPRINT")
					}
					return withBackend(c, false, func(n backend) error {
						if err := n.Untrust(c.Context, c.Args().First()); err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "no longer trusted: %s\n", c.Args().First())
						return nil
					})
				},
			},
			{
				Name:  "list",
				Usage: "list the trusted keys",
				Flags: []ucli.Flag{wideFlag(), jsonFlag()},
				Action: func(c *ucli.Context) error {
					return withBackend(c, true, func(n backend) error {
						keys, err := n.TrustList(c.Context)
						if err != nil {
							return err
						}
						return printKeys(c, keys)
					})
				},
			},
		},
	}
}

func importCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "import",
		Usage:     "verify and store a guix.sigs tree, a contrib/guix/sigs tree, or one document with its .asc",
		ArgsUsage: "PATH",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "version", Usage: "version of a lone SHA256SUMS file (default: its grandparent directory)"},
			&ucli.StringFlag{Name: "signer", Usage: "signer of a lone SHA256SUMS file (default: its parent directory)"},
			jsonFlag(),
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usagef("import takes one PATH")
			}
			path, err := filepath.Abs(c.Args().First())
			if err != nil {
				return usagef("%w", err)
			}
			boundImportMemory()
			return withBackend(c, false, func(n backend) error {
				sum, err := n.Import(c.Context, node.ImportRequest{Path: path, Version: c.String("version"), Signer: c.String("signer")})
				if sum != nil && !c.Bool("json") {
					printImportSummary(c.App.Writer, sum)
				}
				if err == nil && sum != nil && sum.Stored+sum.Duplicate+sum.Rejected+sum.Keys == 0 {
					fmt.Fprintf(c.App.ErrWriter, "rbnode: warning: %s holds no documents or keys that rbnode reads (SHA256SUMS + .asc, attestation.json + .asc, builder-keys/*.gpg)\n", c.Args().First())
				}
				if err != nil {
					return err
				}
				if c.Bool("json") {
					if err := printJSON(c.App.Writer, sum); err != nil {
						return err
					}
				}
				if fi, err := os.Stat(path); err == nil && !fi.IsDir() && sum.Rejected > 0 && sum.Stored+sum.Duplicate == 0 {
					// One document, and it was refused: a definite negative.
					return &exitError{code: ExitNegative, msg: "the document was rejected: " + rejectionReasons(sum)}
				}
				return nil
			})
		},
	}
}

func rejectionReasons(s *node.ImportSummary) string {
	return strings.Join(sortedKeys(s.ByReason), ", ")
}

func printImportSummary(w io.Writer, s *node.ImportSummary) {
	if s.Keys > 0 {
		fmt.Fprintf(w, "keys: %d known (not trusted by this; see rbnode trust add)\n", s.Keys)
	}
	var st []string
	for _, k := range sortedKeys(s.ByStatus) {
		st = append(st, fmt.Sprintf("%d %s", s.ByStatus[attest.Status(k)], strings.ReplaceAll(k, "_", " ")))
	}
	line := fmt.Sprintf("stored %d", s.Stored)
	if len(st) > 0 {
		line += " (" + strings.Join(st, ", ") + ")"
	}
	fmt.Fprintf(w, "%s, duplicate %d, rejected %d, in %.2fs\n", line, s.Duplicate, s.Rejected, s.Elapsed.Seconds())
	if s.Rejected > 0 {
		for _, k := range sortedKeys(s.ByReason) {
			fmt.Fprintf(w, "  rejected %-18s %d\n", k, s.ByReason[k])
		}
		for _, r := range s.Rejections {
			fmt.Fprintf(w, "  %s: %s: %s\n", r.Source, r.Reason, r.Detail)
		}
		if s.Rejected > len(s.Rejections) {
			fmt.Fprintf(w, "  ... and %d more (all are listed by rbnode status VERSION)\n", s.Rejected-len(s.Rejections))
		}
	}
}

func sortedKeys[K ~string, V any](m map[K]V) []string {
	var out []string
	for k := range m {
		out = append(out, string(k))
	}
	sort.Strings(out)
	return out
}

func signCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "sign",
		Usage:     "write FILE.asc, a detached armoured signature by the builder key",
		ArgsUsage: "FILE",
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usagef("sign takes one FILE")
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			out, err := node.SignFile(cfg.Home, c.Args().First(), time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote %s\n", out)
			return nil
		},
	}
}

// importMemoryLimit is the soft limit of an import's Go heap (and a
// sync's, whose live set is bounded the same way). What an
// import keeps alive is bounded (its own buffers, Badger's memtables and
// compaction buffers, about 50 MB); without a limit the garbage between
// collections grows with the tree, to 150 MB for 96,000 documents. With it
// the heap stays near the live set, at no cost for trees that never reach
// it. GOMEMLIMIT, when set, wins.
//
// Under the limit the collector may let the heap grow to five times the
// live set (GOGC=400) instead of twice: the guix.sigs import collects 4
// times instead of 8, and each stop-the-world phase waits for every
// thread, which on a crowded machine took up to 108 ms. GOGC, when set,
// wins.
const (
	importMemoryLimit = 64 << 20
	importGCPercent   = 400
)

// daemonMemoryLimit is the soft limit of a daemon's Go heap. A daemon
// holds little between requests (about 25 MB on a million documents), but
// serving a full catch-up of a million documents builds a reconciliation
// of every id; with no limit the collector let the heap grow to 196 MB
// while it ran, and the daemon's peak resident set (its file pages
// included, see store.MaxResident) reached 254 to 282 MB. With it:
// 104 MB and 195 MB, at the same sync speed. GOMEMLIMIT, when set, wins.
const daemonMemoryLimit = 128 << 20

// readMemoryLimit bounds the Go heap of a command that only reads, which
// otherwise runs without collecting: such a command lives for
// milliseconds and keeps little (the release list of 10,000 releases is a
// few MB), and the collections it started cost `rbnode status` a quarter
// of its time on the shared machine (median of 21: 23 to 30 ms with, 19
// without, on 10,000 releases). Past the limit the collector runs as
// usual. GOGC or GOMEMLIMIT, when set, win.
const readMemoryLimit = 128 << 20

func boundImportMemory() { boundMemory(importMemoryLimit, importGCPercent) }

func boundReadMemory() {
	if os.Getenv("GOMEMLIMIT") == "" && os.Getenv("GOGC") == "" {
		debug.SetMemoryLimit(readMemoryLimit)
		debug.SetGCPercent(-1)
	}
}

// boundMemory sets the Go heap's soft limit and, when gcPercent is not 0,
// GOGC, unless the environment sets them.
func boundMemory(limit int64, gcPercent int) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
		if gcPercent != 0 && os.Getenv("GOGC") == "" {
			debug.SetGCPercent(gcPercent)
		}
	}
}

// truncate shortens s to at most n runes, marking the cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
