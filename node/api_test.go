package node

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestAPIBadRequests: unknown paths and bad parameters get the documented
// JSON error and status, never a silent default or the mux's plain text.
func TestAPIBadRequests(t *testing.T) {
	d := &Daemon{n: openTestNode(t)}
	h := d.apiHandler()
	for _, c := range []struct {
		method, path string
		status       int
		kind         string
	}{
		{"GET", "/v1/status/24.0?quorum=abc", http.StatusBadRequest, "usage"},
		{"GET", "/v1/status/24.0?quorum=-1", http.StatusBadRequest, "usage"},
		{"GET", "/v1/status/24.0?quorum=0", http.StatusBadRequest, "usage"},
		{"GET", "/v1/releases?quorum=x", http.StatusBadRequest, "usage"},
		{"GET", "/v1/status/24.0?quorum=3", http.StatusNotFound, "unknown_release"},
		{"GET", "/v1/nope", http.StatusNotFound, "not_found"},
		{"GET", "/", http.StatusNotFound, "not_found"},
		{"POST", "/v1/id", http.StatusNotFound, "not_found"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		var e apiError
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || rec.Code != c.status || e.Kind != c.kind || e.Error == "" {
			t.Errorf("%s %s: %d %q (%v); want %d with kind %q", c.method, c.path, rec.Code, rec.Body.String(), err, c.status, c.kind)
		}
	}
}
