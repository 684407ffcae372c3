package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rbnode/rbnode/attest"
)

// Config is a node's configuration. The cli fills it from flags, RBNODE_*
// environment variables and the home's config.toml, in that order of
// precedence, over DefaultConfig. docs/config.md documents every key.
type Config struct {
	// Home is the node's directory: store, keys, configuration.
	Home string `toml:"-"`
	// Quorum is how many trusted builders must agree for consensus.
	Quorum int `toml:"quorum"`
	// Project is the project a bare VERSION refers to when several
	// projects have that version. Empty: the version must be unambiguous.
	Project string `toml:"project"`
	// LogLevel is zerolog's level name: trace, debug, info, warn, error.
	LogLevel string `toml:"log_level"`
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{Home: DefaultHome(), Quorum: attest.DefaultQuorum, LogLevel: "warn"}
}

// DefaultHome is ~/.rbnode, or .rbnode in the working directory when the
// user has no home directory.
func DefaultHome() string {
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".rbnode")
	}
	return ".rbnode"
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if c.Home == "" {
		return errors.New("home directory is not set")
	}
	if c.Quorum < 1 {
		return fmt.Errorf("quorum must be at least 1, got %d", c.Quorum)
	}
	if c.Project != "" {
		if err := attest.CheckName("project", c.Project); err != nil {
			return err
		}
	}
	switch c.LogLevel {
	case "trace", "debug", "info", "warn", "error", "disabled":
	default:
		return fmt.Errorf("log_level %q is not one of trace, debug, info, warn, error, disabled", c.LogLevel)
	}
	return nil
}

// Paths inside a home directory.
const (
	ConfigFile = "config.toml"
	StoreDir   = "store"
	KeyFile    = "builder-key.asc"
)
