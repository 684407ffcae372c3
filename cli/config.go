package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"
	ucli "github.com/urfave/cli/v2"

	"github.com/rbnode/rbnode/node"
	"github.com/rbnode/rbnode/node/store"
)

func globalFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "home", Usage: "rbnode's directory: store, keys, config.toml", EnvVars: []string{"RBNODE_HOME"}, Value: node.DefaultHome()},
		&ucli.StringFlag{Name: "config", Usage: "config file (default HOME/config.toml)", EnvVars: []string{"RBNODE_CONFIG"}},
		&ucli.StringFlag{Name: "log-level", Usage: "trace, debug, info, warn, error or disabled", EnvVars: []string{"RBNODE_LOG_LEVEL"}},
		&ucli.StringFlag{Name: "log-format", Usage: "console or json (both with RFC 3339 times)", EnvVars: []string{"RBNODE_LOG_FORMAT"}},
	}
}

// Flags shared by several commands. Each is made afresh for every app:
// urfave/cli keeps state in a flag (HasBeenSet, set when its variable is
// found in the environment, never cleared), so one flag value shared by
// two runs of Main in a process would carry the first run's variable
// into the second.

func quorumFlag() ucli.Flag {
	return &ucli.IntFlag{Name: "quorum", Usage: "how many trusted builders must agree", DefaultText: "3, or quorum in config", EnvVars: []string{"RBNODE_QUORUM"}}
}

func projectFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "project", Usage: "the project, when a version exists in several", EnvVars: []string{"RBNODE_PROJECT"}}
}

func jsonFlag() ucli.Flag {
	return &ucli.BoolFlag{Name: "json", Usage: "print JSON for scripts (see docs/json.md)"}
}

func wideFlag() ucli.Flag {
	return &ucli.BoolFlag{Name: "wide", Usage: "show whole values: do not shorten to fit 80 columns"}
}

// loadConfig builds the configuration: defaults, then the config file,
// then RBNODE_* variables and flags (urfave resolves flag over variable).
func loadConfig(c *ucli.Context) (node.Config, error) {
	cfg := node.DefaultConfig()
	cfg.Home = c.String("home")
	path := c.String("config")
	explicit := path != ""
	if !explicit {
		path = filepath.Join(cfg.Home, node.ConfigFile)
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !explicit:
	case err != nil:
		return cfg, usagef("read config: %w", err)
	default:
		md, err := toml.Decode(string(b), &cfg)
		if err != nil {
			return cfg, usagef("config %s: %w", path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			var keys []string
			for _, k := range und {
				keys = append(keys, k.String())
			}
			return cfg, usagef("config %s: unknown key %s (docs/config.md lists the keys)", path, strings.Join(keys, ", "))
		}
		// A bad value in the file is named with the file: flags and
		// variables are checked below, after they are laid over it.
		if err := cfg.Validate(); err != nil {
			return cfg, &usageError{err: fmt.Errorf("config %s: %w", path, err), hint: "docs/config.md describes every key"}
		}
	}
	if c.IsSet("log-level") {
		cfg.LogLevel = c.String("log-level")
	}
	if c.IsSet("log-format") {
		cfg.LogFormat = c.String("log-format")
	}
	if isSet(c, "quorum") {
		cfg.Quorum = c.Int("quorum")
	}
	if isSet(c, "project") {
		cfg.Project = c.String("project")
	}
	if err := cfg.Validate(); err != nil {
		return cfg, &usageError{err: err}
	}
	return cfg, nil
}

// isSet reports whether a command flag was given (on the command line or in
// the environment).
func isSet(c *ucli.Context, name string) bool {
	for _, cc := range c.Lineage() {
		if cc.IsSet(name) {
			return true
		}
	}
	return false
}

// newLogger writes logs to stderr at the configured level and format:
// human-readable lines or JSON objects, both with RFC 3339 times.
func newLogger(c *ucli.Context, cfg node.Config) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		lvl = zerolog.WarnLevel
	}
	var w io.Writer = c.App.ErrWriter
	if cfg.LogFormat != "json" {
		w = zerolog.ConsoleWriter{Out: c.App.ErrWriter, TimeFormat: time.RFC3339, NoColor: !isTerminal(c.App.ErrWriter)}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// withNode runs fn with the home's node open and closes it afterwards.
func withNode(c *ucli.Context, fn func(*node.Node) error) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	n, err := openNode(cfg, newLogger(c, cfg))
	if errors.Is(err, store.ErrLocked) {
		if _, derr := node.Dial(cfg.Home); derr == nil {
			return usagef("a daemon is running for %s and holds its store; stop it to run %q", cfg.Home, c.Command.HelpName)
		}
	}
	if err != nil {
		return err
	}
	defer n.Close()
	return fn(n)
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// defaultConfigText is what rbnode init writes: every key, commented out
// at its default.
func defaultConfigText() string {
	d := node.DefaultConfig()
	return fmt.Sprintf(`# rbnode configuration. Every key is documented in docs/config.md.
# Precedence: command-line flag > RBNODE_* environment variable > this file > default.

# How many trusted builders must agree for consensus.
# quorum = %d

# The project a bare VERSION refers to when several projects have it.
# project = "cuprated"

# Log level: trace, debug, info, warn, error, disabled.
# log_level = %q

# Budgets against hostile peers (docs/config.md).
# max_document_size = "%dKiB"
# disk_reserve = "%dMiB"
# untrusted_per_minute = %d
`, d.Quorum, d.LogLevel, d.MaxDocumentSize>>10, d.DiskReserve>>20, d.UntrustedPerMinute)
}
