package cli_test

import (
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestJSONDocExamples holds docs/json.md to the code: every example
// parses, and every field an example shows is in the real output of its
// command, at the same place (lists compared element-wise where the real
// output has elements).
func TestJSONDocExamples(t *testing.T) {
	b, err := os.ReadFile("../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	examples := map[string]any{} // section heading -> example
	section := ""
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatchIndex(string(b), -1)
	for _, m := range blocks {
		before := string(b[:m[0]])
		if i := strings.LastIndex(before, "\n## "); i >= 0 {
			section, _, _ = strings.Cut(before[i+4:], "\n")
		}
		text := strings.ReplaceAll(string(b[m[2]:m[3]]), "[...]", "[]")
		var v any
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			t.Errorf("docs/json.md, %s: the example is not JSON: %v", section, err)
			continue
		}
		examples[section] = v
	}
	if len(examples) < 3 {
		t.Fatalf("found %d JSON examples: %v", len(examples), examples)
	}

	home := guixSigsHome(t, "fanquake", "achow101", "hebasto", "TheCharlatan", "guggero")
	// A release manager's home: its own request for 0.2.0, superseded by
	// a second one, with a guix.sigs builder trusted (and silent).
	rm := guixSigsHome(t, "fanquake")
	run(t, rm, "key", "generate", "--name", "rm")
	run(t, rm, "request", "0.2.0", "--commit", strings.Repeat("01", 20))
	real := map[string][]string{
		"Errors":                         {"status", "9.9", "--json"},
		"`rbnode status VERSION --json`": {"status", "26.0rc1", "--json"},
		"The `request` object of `rbnode status VERSION --json`": {"--home", rm, "status", "0.2.0", "--json"},
		"`rbnode request VERSION --json`":                        {"--home", rm, "request", "0.2.0", "--commit", strings.Repeat("02", 20), "--note", "rc2", "--json"},
	}
	for _, section := range slices.Sorted(maps.Keys(real)) {
		args := real[section]
		ex, ok := examples[section]
		if !ok {
			t.Errorf("docs/json.md has no example under %q", section)
			continue
		}
		_, out, _ := run(t, home, args...)
		var got any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("rbnode %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		var missing []string
		missingKeys(ex, got, "", &missing)
		sort.Strings(missing)
		for _, k := range missing {
			if conditional[k] {
				continue
			}
			t.Errorf("docs/json.md, %s: the example shows %s, which rbnode %s does not print", section, k, strings.Join(args, " "))
		}
	}
}

// conditional are fields docs/json.md shows but says are present only
// sometimes, and that the guix.sigs data used here (manifests, not
// attestations) does not have.
var conditional = map[string]bool{
	".artifacts[].hashes[].environment": true, // attestations only
	".request.answers[].failure":        true, // failed answers only
}

// missingKeys lists the object keys of doc that got lacks, by path.
func missingKeys(doc, got any, path string, out *[]string) {
	switch d := doc.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			*out = append(*out, path+" (an object)")
			return
		}
		for k, v := range d {
			gv, ok := g[k]
			if !ok {
				*out = append(*out, path+"."+k)
				continue
			}
			missingKeys(v, gv, path+"."+k, out)
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			*out = append(*out, path+" (a list)")
			return
		}
		if len(d) == 0 || len(g) == 0 {
			return
		}
		// Each documented element's keys must appear in some real element.
		for _, de := range d {
			best := []string(nil)
			for _, ge := range g {
				var m []string
				missingKeys(de, ge, path+"[]", &m)
				if best == nil || len(m) < len(best) {
					best = m
				}
				if len(m) == 0 {
					break
				}
			}
			*out = append(*out, best...)
		}
	}
}
