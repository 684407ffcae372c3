package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/builder"
	"github.com/rbnode/rbnode/node"
)

// Releases judges the node's releases: all of them (the CLI's list), one
// page of them newest first with the total count, or one in full. Errors
// wrap node.ErrUnknownRelease for a release nobody attested and
// node.ErrUsage for a malformed name.
type Releases interface {
	Releases(project string, quorum int) ([]node.ReleaseSummary, error)
	NewestReleases(project string, quorum, offset, limit int) ([]node.ReleaseSummary, int, error)
	Status(project, version string, quorum int) (*attest.Report, error)
}

// Documents reads one stored document by id; an unknown id is an error.
type Documents interface {
	Document(id attest.ID) (*attest.Document, error)
}

// Builds lists this node's build records, oldest first.
type Builds interface {
	Builds() ([]builder.Record, error)
}

// Peers lists the connected peers.
type Peers interface {
	Peers() []node.Peer
}

// Health reports nil when the store and gossip are up, else what is wrong.
type Health interface {
	Healthy() error
}

// Config is what the web server reads. Releases, Documents and Builds are
// required; a nil Peers shows no peers, a nil Health is always healthy and
// a nil Metrics serves no /metrics.
type Config struct {
	Releases  Releases
	Documents Documents
	Builds    Builds
	Peers     Peers
	Health    Health
	Metrics   prometheus.Gatherer
	Log       zerolog.Logger
}

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"short": func(s string) string { return s[:min(len(s), 16)] },
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"duration": func(d time.Duration) string { return d.Round(time.Second).String() },
	"label":    attest.ColumnLabel,
}).ParseFS(templateFS, "templates/*.html"))

// New returns the web server's handler.
func New(cfg Config) http.Handler {
	s := &server{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.releases)
	mux.HandleFunc("GET /release/{project}/{version}", s.release)
	mux.HandleFunc("GET /peers", s.peers)
	mux.HandleFunc("GET /builds", s.builds)
	mux.HandleFunc("GET /builds/{n}/log/{stage}", s.buildLog)
	mux.HandleFunc("GET /doc/{id}", s.document)
	mux.HandleFunc("GET /doc/{id}/signature", s.document)
	mux.HandleFunc("GET /healthz", s.healthz)
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{}))
	}
	return headers(mux)
}

// headers forbids scripts, framing and content sniffing on every answer:
// the pages need none, and a log or a document must never run as a page.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// ListenAddr completes a listen address: a bare port or ":port" listens
// on 127.0.0.1 only.
func ListenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// "8080": a port alone.
		if _, perr := net.LookupPort("tcp", addr); perr == nil && addr != "" {
			return net.JoinHostPort("127.0.0.1", addr), nil
		}
		return "", fmt.Errorf("http address %q: want HOST:PORT or PORT: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Listen opens the web server's socket on addr (see ListenAddr).
func Listen(addr string) (net.Listener, error) {
	a, err := ListenAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", a)
	if err != nil {
		return nil, fmt.Errorf("listen for the web page on %s: %w", a, err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx ends, then stops within stopTimeout.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, stopTimeout time.Duration) error {
	srv := &http.Server{
		Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("web page: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}
