package gossip

import (
	"slices"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/rs/zerolog"
	"go.uber.org/zap/zapcore"
)

// RouteLibp2pLogs sends the logs of go-libp2p (its slog loggers) and of
// go-libp2p-kad-dht (go-log, zap) to l. Both are process-wide, and
// go-libp2p's switch takes effect only for loggers that have not logged
// yet, so the CLI calls it once at start, before New. Pubsub's logs always
// go to Config.Logger, per Network. go-log's per-subsystem levels
// (GOLOG_LOG_LEVEL, errors only by default) still filter first.
func RouteLibp2pLogs(l zerolog.Logger) {
	l = l.With().Str("component", "libp2p").Logger()
	gologshim.SetDefaultHandler(zerolog.NewSlogHandler(l))
	golog.SetPrimaryCore(zapCore{l: l})
}

// zapCore is a zapcore.Core writing to a zerolog.Logger.
type zapCore struct {
	l      zerolog.Logger
	fields []zapcore.Field
}

func (c zapCore) Enabled(zapcore.Level) bool { return true }

func (c zapCore) With(fs []zapcore.Field) zapcore.Core {
	return zapCore{l: c.l, fields: append(slices.Clone(c.fields), fs...)}
}

func (c zapCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, c)
}

func (c zapCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fs {
		f.AddTo(enc)
	}
	lvl := zerolog.DebugLevel
	switch {
	case e.Level >= zapcore.ErrorLevel:
		lvl = zerolog.ErrorLevel
	case e.Level == zapcore.WarnLevel:
		lvl = zerolog.WarnLevel
	case e.Level == zapcore.InfoLevel:
		lvl = zerolog.InfoLevel
	}
	c.l.WithLevel(lvl).Str("logger", e.LoggerName).Fields(enc.Fields).Msg(e.Message)
	return nil
}

func (c zapCore) Sync() error { return nil }
