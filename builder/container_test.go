package builder

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// isolations are the fake guix's ways of modelling a container that this
// machine can run: "check" always, "namespace" as root where unshare works.
func isolations(t *testing.T) []string {
	t.Helper()
	modes := []string{"check"}
	if os.Geteuid() == 0 && exec.Command("unshare", "-m", "true").Run() == nil {
		modes = append(modes, "namespace")
	} else {
		t.Log("no mount namespace here (not root, or unshare refused): only the check isolation is tested")
	}
	return modes
}

// TestContainerVisibility: under `guix shell --container` the stand-in
// pipeline sees only its checkout. A git worktree's .git points into the
// repository it came from, and a --shared clone borrows that repository's
// objects, so the first script fails there as it does under real Guix; a
// --no-local clone, what Build makes, is self-contained and builds.
func TestContainerVisibility(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	repo, _ := standin(t, filepath.Join(base, "cuprate"))
	for _, mode := range isolations(t) {
		t.Run(mode, func(t *testing.T) {
			env := buildEnv("FAKEGUIX_ISOLATION=" + mode)
			dir := t.TempDir()
			for _, c := range []struct {
				name string
				make []string
				code int
				msg  string
			}{
				{"worktree", []string{"git", "-C", repo, "worktree", "add", "--detach", "--quiet", "DIR", "cuprated-0.0.9"}, 128,
					"fatal: not a git repository: " + filepath.Join(repo, ".git", "worktrees", "worktree")},
				{"shared clone", []string{"git", "clone", "--quiet", "--shared", repo, "DIR"}, 128, "unable to normalize alternate object path: " + filepath.Join(repo, ".git", "objects")},
				{"no-local clone", []string{"git", "clone", "--quiet", "--no-local", repo, "DIR"}, 0, ""},
			} {
				src := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
				if c.name == "worktree" {
					src = filepath.Join(dir, "worktree")
				}
				argv := append([]string(nil), c.make...)
				for i, a := range argv {
					if a == "DIR" {
						argv[i] = src
					}
				}
				if _, stderr, code := script(t, dir, env, argv...); code != 0 {
					t.Fatalf("%s: %s", c.name, stderr)
				}
				if c.name != "worktree" {
					if _, stderr, code := script(t, src, env, "git", "checkout", "--quiet", "--detach", "cuprated-0.0.9"); code != 0 {
						t.Fatalf("%s: %s", c.name, stderr)
					}
				}
				stdout, stderr, code := script(t, src, env, filepath.Join(src, "contrib", "guix", "guix-mk-distsrc"))
				if code != c.code || !strings.Contains(stderr, c.msg) {
					t.Errorf("%s: guix-mk-distsrc exited %d, want %d with %q; stderr:\n%s", c.name, code, c.code, c.msg, stderr)
				}
				if c.code == 0 && !strings.HasSuffix(strings.TrimSpace(stdout), "-src.tar.gz") {
					t.Errorf("%s: stdout %q", c.name, stdout)
				}
			}
		})
	}
}

// TestContainerMounts: in a mount namespace, a file outside the current
// directory is invisible, --expose shows a directory read-only and
// --share read-write, at another path if asked; /tmp is the container's own.
func TestContainerMounts(t *testing.T) {
	t.Parallel()
	if !slices.Contains(isolations(t), "namespace") {
		t.Skip("needs root and a working unshare")
	}
	cwd, other := t.TempDir(), t.TempDir()
	secret := filepath.Join(other, "secret")
	if err := os.WriteFile(secret, []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := buildEnv("FAKEGUIX_ISOLATION=namespace")
	shell := func(opts []string, cmd string) (string, int) {
		t.Helper()
		argv := append(append([]string{filepath.Join(fakeGuix, "guix"), "shell", "--container"}, opts...), "--", "sh", "-c", cmd)
		stdout, stderr, code := script(t, cwd, env, argv...)
		return stdout + stderr, code
	}
	if out, code := shell(nil, "cat "+secret); code == 0 || !strings.Contains(out, "No such file or directory") {
		t.Errorf("a file outside the container was readable: exit %d, %q", code, out)
	}
	if out, code := shell(nil, "echo in >"+filepath.Join(cwd, "f")+" && test ! -e "+other+" && touch /tmp/"+filepath.Base(cwd)+"-x"); code != 0 {
		t.Errorf("writing the current directory and /tmp, not seeing another one: exit %d, %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), filepath.Base(cwd)+"-x")); err == nil {
		t.Error("the container wrote the host's /tmp")
	}
	if b, err := os.ReadFile(filepath.Join(cwd, "f")); err != nil || string(b) != "in\n" {
		t.Errorf("the container's write to its directory: %q, %v", b, err)
	}
	if out, code := shell([]string{"--expose=" + other}, "cat "+secret+" && echo x >"+secret); code == 0 || !strings.Contains(out, "host") || !strings.Contains(out, "Read-only file system") {
		t.Errorf("--expose: exit %d, %q", code, out)
	}
	if out, code := shell([]string{"--share=" + other + "=/data"}, "echo shared >/data/secret"); code != 0 {
		t.Errorf("--share: exit %d, %q", code, out)
	}
	if b, _ := os.ReadFile(secret); string(b) != "shared\n" {
		t.Errorf("--share wrote %q", b)
	}
}
