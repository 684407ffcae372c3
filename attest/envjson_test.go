package attest_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/rbnode/rbnode/attest"
)

// TestHashGroupJSON: source_date_epoch is a number in a report's JSON, as
// in the attestation, other fields stay strings, and the JSON reads back
// to the same group (the CLI reads reports from the daemon this way).
func TestHashGroupJSON(t *testing.T) {
	t.Parallel()
	g := attest.HashGroup{
		SHA256: "aa", SHA256Set: []string{"aa"}, Builders: []attest.Builder{{Fingerprint: "F", Name: "alice"}},
		Environment: map[string][]string{"source_date_epoch": {"1747000000"}, "rustc_version": {"rustc 1.88.0"}},
	}
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"source_date_epoch":[1747000000]`) || !strings.Contains(string(b), `"rustc_version":["rustc 1.88.0"]`) {
		t.Errorf("JSON %s", b)
	}
	var back attest.HashGroup
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, g) {
		t.Errorf("read back %+v, %v; want %+v", back, err, g)
	}
}
