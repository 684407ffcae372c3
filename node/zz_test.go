package node

import (
	"github.com/rs/zerolog"
	"testing"
	"time"
)

func TestZZImport(t *testing.T) {
	for i := 0; i < 5; i++ {
		cfg := DefaultConfig()
		cfg.Home = t.TempDir()
		t0 := time.Now()
		n, err := Open(cfg, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		s, err := n.Import(t.Context(), "/work/shared/testdata/guix.sigs", ImportOptions{})
		t2 := time.Now()
		n.Close()
		t3 := time.Now()
		t.Logf("open %v import %v (%d) close %v", t1.Sub(t0), t2.Sub(t1), s.Stored, t3.Sub(t2))
	}
}
