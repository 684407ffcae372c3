package cli_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/rbnode/rbnode/cli"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"rbnode": func() { os.Exit(cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs cli/testdata/script/*.txt: whole command sessions with
// their output and exit codes.
func TestScripts(t *testing.T) {
	guixSigs, err := filepath.Abs("../testdata/guix.sigs")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("RBNODE_HOME", filepath.Join(env.WorkDir, "home"))
			env.Setenv("GUIXSIGS", guixSigs)
			env.Setenv("HOME", env.WorkDir)
			return nil
		},
	})
}
