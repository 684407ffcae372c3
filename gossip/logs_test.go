package gossip

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"go.uber.org/zap"
)

func TestZapCore(t *testing.T) {
	var buf bytes.Buffer
	l := zap.New(zapCore{l: zerolog.New(&buf)}).Named("dht").With(zap.String("peer", "p1"))
	l.Warn("routing table empty", zap.Int("peers", 0))
	got := buf.String()
	for _, want := range []string{`"level":"warn"`, `"logger":"dht"`, `"peer":"p1"`, `"peers":0`, `"message":"routing table empty"`} {
		if !strings.Contains(got, want) {
			t.Errorf("log line %s lacks %s", got, want)
		}
	}
}
