package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/builder"
	"github.com/rbnode/rbnode/node"
	"github.com/rbnode/rbnode/node/store"
)

type server struct{ cfg Config }

// wantJSON reports whether the JSON twin of a page is asked for.
func wantJSON(r *http.Request) bool { return r.URL.Query().Get("format") == "json" }

// quorumParam is ?quorum=N, or 0 (the node's configured quorum).
func quorumParam(r *http.Request) int {
	q, err := strconv.Atoi(r.URL.Query().Get("quorum"))
	if err != nil || q < 0 {
		return 0
	}
	return q
}

// writeJSON writes v as the CLI's --json does (two-space indent).
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// page is what every template gets.
type page struct {
	Title string
	Nav   string // which tab is current
	JSON  string // the JSON twin's URL
	Data  any
}

func (s *server) render(w http.ResponseWriter, r *http.Request, name string, p page) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, p); err != nil {
		s.cfg.Log.Error().Err(err).Str("page", r.URL.Path).Msg("render web page")
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// fail answers an error as a page (or JSON), with a status that fits it.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, node.ErrUnknownRelease), errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, node.ErrUsage):
		status = http.StatusBadRequest
	default:
		s.cfg.Log.Warn().Err(err).Str("page", r.URL.Path).Msg("web page")
	}
	w.WriteHeader(status)
	if wantJSON(r) {
		writeJSON(w, map[string]string{"error": err.Error()})
		return
	}
	var buf bytes.Buffer
	pages.ExecuteTemplate(&buf, "error.html", page{Title: http.StatusText(status), Data: err.Error()})
	w.Write(buf.Bytes())
}

func jsonURL(r *http.Request) string {
	q := r.URL.Query()
	q.Set("format", "json")
	return r.URL.Path + "?" + q.Encode()
}

// releasesPerPage bounds the release list's page: each release on it is
// judged when the page is asked for.
const releasesPerPage = 100

type releasesView struct {
	List            []node.ReleaseSummary
	From, To, Total int
	Prev, Next      string
}

func (s *server) releases(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	project := q.Get("project")
	if wantJSON(r) {
		// The CLI's `status --json`: every release.
		list, err := s.cfg.Releases.Releases(project, quorumParam(r))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if list == nil {
			list = []node.ReleaseSummary{}
		}
		writeJSON(w, list)
		return
	}
	pg, err := strconv.Atoi(q.Get("page"))
	if err != nil || pg < 1 {
		pg = 1
	}
	list, total, err := s.cfg.Releases.NewestReleases(project, quorumParam(r), (pg-1)*releasesPerPage, releasesPerPage)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v := releasesView{List: list, Total: total, From: (pg-1)*releasesPerPage + 1}
	v.To = v.From + len(list) - 1
	link := func(p int) string {
		l := url.Values{}
		for k, vs := range q {
			l[k] = vs
		}
		l.Set("page", strconv.Itoa(p))
		return "/?" + l.Encode()
	}
	if pg > 1 {
		v.Prev = link(pg - 1)
	}
	if v.To < total {
		v.Next = link(pg + 1)
	}
	s.render(w, r, "releases.html", page{Title: "Releases", Nav: "releases", JSON: jsonURL(r), Data: v})
}

// matrixRow is one artifact of the release matrix.
type matrixRow struct {
	Name    string
	Verdict attest.Verdict
	Marks   []string
}

// diagnosis explains one divergent artifact.
type diagnosis struct {
	Name    string
	Groups  []diagGroup
	Differs []diagField
}

type diagGroup struct {
	Mark     string
	SHA256   string
	Builders []attest.Builder
}

type diagField struct {
	Field  string
	Values []diagValue
}

type diagValue struct {
	Mark   string
	Values string
}

type releaseView struct {
	R         *attest.Report
	Rows      []matrixRow
	Diagnoses []diagnosis
	Pending   int
}

func (s *server) release(w http.ResponseWriter, r *http.Request) {
	rep, err := s.cfg.Releases.Status(r.PathValue("project"), r.PathValue("version"), quorumParam(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if wantJSON(r) {
		writeJSON(w, rep)
		return
	}
	v := releaseView{R: rep}
	for _, a := range rep.Artifacts {
		v.Rows = append(v.Rows, matrixRow{Name: a.Name, Verdict: a.Verdict, Marks: rep.Marks(a)})
		if a.Verdict == attest.Pending {
			v.Pending++
		}
		if a.Verdict != attest.Divergence {
			continue
		}
		d := diagnosis{Name: a.Name}
		for gi, g := range a.Hashes {
			d.Groups = append(d.Groups, diagGroup{Mark: a.GroupMark(gi), SHA256: g.SHA256, Builders: g.Builders})
		}
		for _, f := range a.Differs {
			df := diagField{Field: f}
			for gi, g := range a.Hashes {
				df.Values = append(df.Values, diagValue{Mark: a.GroupMark(gi), Values: strings.Join(g.Environment[f], " | ")})
			}
			d.Differs = append(d.Differs, df)
		}
		v.Diagnoses = append(v.Diagnoses, d)
	}
	s.render(w, r, "release.html", page{Title: rep.Project + " " + rep.Version, Nav: "releases", JSON: jsonURL(r), Data: v})
}

func (s *server) peers(w http.ResponseWriter, r *http.Request) {
	list := []node.Peer{}
	if s.cfg.Peers != nil {
		list = s.cfg.Peers.Peers()
	}
	if wantJSON(r) {
		writeJSON(w, list)
		return
	}
	s.render(w, r, "peers.html", page{Title: "Peers", Nav: "peers", JSON: jsonURL(r), Data: list})
}

type buildView struct {
	N int
	builder.Record
}

func (s *server) builds(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Builds.Builds()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if wantJSON(r) {
		writeJSON(w, list)
		return
	}
	var shown []buildView
	for i := len(list) - 1; i >= 0; i-- { // newest first
		shown = append(shown, buildView{N: i, Record: list[i]})
	}
	s.render(w, r, "builds.html", page{Title: "Builds", Nav: "builds", JSON: jsonURL(r), Data: shown})
}

// buildLog serves the log of one stage of a recorded build, as plain
// text. Only a log inside the build's work directory is served.
func (s *server) buildLog(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Builds.Builds()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n >= len(list) {
		http.NotFound(w, r)
		return
	}
	rec := list[n]
	for _, st := range rec.Stages {
		if string(st.Stage) != r.PathValue("stage") || st.Log == "" {
			continue
		}
		rel, err := filepath.Rel(rec.WorkDir, st.Log)
		if err != nil || rec.WorkDir == "" || !filepath.IsLocal(rel) {
			http.Error(w, "this log is outside the build's work directory", http.StatusForbidden)
			return
		}
		root, err := os.OpenRoot(rec.WorkDir)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		defer root.Close()
		f, err := root.Open(rel)
		if err != nil {
			http.Error(w, "the log is gone: "+err.Error(), http.StatusNotFound)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		http.ServeContent(w, r, "", fi.ModTime(), f)
		return
	}
	http.NotFound(w, r)
}

// document serves a stored document's exact bytes, or its signature, as
// a download.
func (s *server) document(w http.ResponseWriter, r *http.Request) {
	id, err := attest.ParseID(r.PathValue("id"))
	if err != nil {
		http.Error(w, "a document id is 64 hex digits", http.StatusBadRequest)
		return
	}
	d, err := s.cfg.Documents.Document(id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	name, body := d.Name, d.Body
	if strings.HasSuffix(r.URL.Path, "/signature") {
		name, body = d.Name+".asc", d.Signature
	}
	// The file name is a stranger's: keep only safe bytes.
	safe := strings.Map(func(c rune) rune {
		if c < 0x80 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._+-", c)) {
			return c
		}
		return '_'
	}, name)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+id.Short()+"-"+safe+`"`)
	w.Write(body)
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.cfg.Health != nil {
		if err := s.cfg.Health.Healthy(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("unhealthy: " + err.Error() + "\n"))
			return
		}
	}
	w.Write([]byte("ok\n"))
}
