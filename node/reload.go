package node

import (
	"context"
	"slices"
)

// liveSettings are the configuration keys a running node takes from a
// reloaded config file.
type liveSettings struct {
	Quorum  int
	Project string
}

// settings returns the current reloadable settings.
func (n *Node) settings() liveSettings {
	if l := n.live.Load(); l != nil {
		return *l
	}
	return liveSettings{Quorum: n.cfg.Quorum, Project: n.cfg.Project}
}

// Reload takes the settings of cfg that apply without a restart (quorum,
// project) and returns the keys that changed: those it applied, and those
// that only a restart applies.
func (n *Node) Reload(cfg Config) (applied, restart []string, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, usageErr(err)
	}
	old := n.settings()
	if cfg.Quorum != old.Quorum {
		applied = append(applied, "quorum")
	}
	if cfg.Project != old.Project {
		applied = append(applied, "project")
	}
	n.live.Store(&liveSettings{Quorum: cfg.Quorum, Project: cfg.Project})
	c := n.cfg
	for _, k := range []struct {
		name string
		same bool
	}{
		{"log_level", cfg.LogLevel == c.LogLevel},
		{"log_format", cfg.LogFormat == c.LogFormat},
		{"network", cfg.Network == c.Network},
		{"listen", slices.Equal(cfg.Listen, c.Listen)},
		{"mdns", cfg.MDNS == c.MDNS},
		{"dht", cfg.DHT == c.DHT},
		{"sync_interval", cfg.SyncInterval == c.SyncInterval},
		{"http", cfg.HTTP == c.HTTP},
		{"auto_build", cfg.AutoBuild.equal(c.AutoBuild)},
	} {
		if !k.same {
			restart = append(restart, k.name)
		}
	}
	return applied, restart, nil
}

// Reload applies a reloaded configuration to the node (Node.Reload), dials
// the bootstrap peers and syncs with them if the list changed, then
// re-reads the trust set from the store, taking out of quarantine the
// documents of newly trusted signers; judgements made before are dropped.
func (d *Daemon) Reload(ctx context.Context, cfg Config) (applied, restart []string, err error) {
	applied, restart, err = d.n.Reload(cfg)
	if err != nil {
		return nil, nil, err
	}
	// New bootstrap peers are dialled (and synced with) now.
	if !slices.Equal(cfg.Bootstrap, d.n.cfg.Bootstrap) {
		peers, err := ParsePeers(cfg.Bootstrap)
		if err != nil {
			return applied, restart, err
		}
		applied = append(applied, "bootstrap")
		for _, p := range peers {
			if _, err := d.net.SyncWith(ctx, p); err != nil {
				d.log.Warn().Err(err).Str("peer", p.ID.String()).Msg("reload: dial a bootstrap peer")
			}
		}
	}
	if err := d.trustChanged(); err != nil {
		return applied, restart, err
	}
	d.changed()
	d.log.Info().Strs("applied", applied).Strs("needs_restart", restart).Msg("reloaded the configuration and the trust set")
	return applied, restart, nil
}
