package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rbnode/rbnode/attest"
)

// BuilderKey loads the node's own signing key from the home.
func (n *Node) BuilderKey() (*attest.SecretKey, error) { return LoadBuilderKey(n.cfg.Home) }

// GenerateBuilderKey makes a new Ed25519 builder key, saves it in the home
// (mode 0600), and adds its public half to the keyring and the trust set:
// a builder counts its own builds.
func (n *Node) GenerateBuilderKey(name, email string) (*attest.SecretKey, error) {
	if _, err := n.BuilderKey(); err == nil {
		return nil, usagef("this node already has a builder key (rbnode key list); remove %s first to replace it", filepath.Join(n.cfg.Home, KeyFile))
	}
	sk, err := attest.GenerateKey(name, email, n.now(), rand.Reader)
	if err != nil {
		return nil, usageErr(err)
	}
	return sk, n.installBuilderKey(sk)
}

// ImportedKeys says what ImportKey did.
type ImportedKeys struct {
	Secret *attest.SecretKey // set when the file was a secret key
	Public []*attest.Key     // public keys added to the keyring
}

// ImportKey reads a key file. A secret key (gpg --export-secret-keys)
// becomes the node's builder key; public keys join the keyring, untrusted.
func (n *Node) ImportKey(b, passphrase []byte) (*ImportedKeys, error) {
	sk, serr := attest.ReadSecretKey(b, passphrase)
	if serr == nil {
		if _, err := n.BuilderKey(); err == nil {
			return nil, usagef("this node already has a builder key; remove %s first to replace it", filepath.Join(n.cfg.Home, KeyFile))
		}
		return &ImportedKeys{Secret: sk}, n.installBuilderKey(sk)
	}
	if errors.Is(serr, attest.ErrPassphrase) {
		return nil, usageErr(serr)
	}
	keys, err := attest.ReadKeys(b)
	if err != nil {
		return nil, usagef("read key file: %w", err)
	}
	held, err := n.AddKeys(keys)
	if err != nil {
		return nil, err
	}
	return &ImportedKeys{Public: held}, nil
}

func (n *Node) installBuilderKey(sk *attest.SecretKey) error {
	armored, err := sk.Armored()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(n.cfg.Home, KeyFile), armored, 0o600); err != nil {
		return fmt.Errorf("save builder key: %w", err)
	}
	pub := []*attest.Key{sk.Public()}
	if _, err := n.AddKeys(pub); err != nil {
		return err
	}
	return n.Trust(pub, sk.Public().Name())
}

// ExportKey returns the builder key, armoured: the public key by default,
// the secret key when secret is true.
func (n *Node) ExportKey(secret bool) ([]byte, error) {
	sk, err := n.BuilderKey()
	if err != nil {
		return nil, err
	}
	if secret {
		return sk.Armored()
	}
	return sk.Public().Armored(), nil
}

// SignFile writes path.asc, a detached armoured signature of path by the
// builder key of home, and returns the signature's path. It does not open
// the store, so it works beside a running daemon.
func SignFile(home, path string, now time.Time) (string, error) {
	sk, err := LoadBuilderKey(home)
	if err != nil {
		return "", err
	}
	body, err := os.ReadFile(path)
	if err != nil {
		return "", usageErr(err)
	}
	sig, err := sk.Sign(body, now)
	if err != nil {
		return "", err
	}
	out := path + ".asc"
	if err := writeFileAtomic(out, sig, 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it
// and renames it into place, so readers see the old file or the new one,
// never a torn one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
