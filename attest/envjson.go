package attest

import (
	"encoding/json"
	"strconv"
)

// numericEnv names the build-environment fields that are numbers in the
// attestation, and so in a report's JSON.
var numericEnv = map[string]bool{"source_date_epoch": true}

// hashGroupJSON is HashGroup as JSON, its environment values typed.
type hashGroupJSON struct {
	SHA256      string                       `json:"sha256"`
	SHA256Set   []string                     `json:"sha256_set"`
	Builders    []Builder                    `json:"builders"`
	Environment map[string][]json.RawMessage `json:"environment,omitempty"`
}

// MarshalJSON writes the group with numeric environment fields
// (source_date_epoch) as JSON numbers, as the attestation has them.
func (g HashGroup) MarshalJSON() ([]byte, error) {
	out := hashGroupJSON{SHA256: g.SHA256, SHA256Set: g.SHA256Set, Builders: g.Builders}
	if g.Environment != nil {
		out.Environment = make(map[string][]json.RawMessage, len(g.Environment))
		for k, vs := range g.Environment {
			raws := make([]json.RawMessage, 0, len(vs))
			for _, v := range vs {
				var raw json.RawMessage
				if _, err := strconv.ParseInt(v, 10, 64); err == nil && numericEnv[k] {
					raw = json.RawMessage(v)
				} else {
					raw, _ = json.Marshal(v)
				}
				raws = append(raws, raw)
			}
			out.Environment[k] = raws
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes (numbers back to strings).
func (g *HashGroup) UnmarshalJSON(b []byte) error {
	var in hashGroupJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*g = HashGroup{SHA256: in.SHA256, SHA256Set: in.SHA256Set, Builders: in.Builders}
	if in.Environment != nil {
		g.Environment = make(map[string][]string, len(in.Environment))
		for k, raws := range in.Environment {
			for _, raw := range raws {
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					var n json.Number
					if err := json.Unmarshal(raw, &n); err != nil {
						return err
					}
					s = n.String()
				}
				g.Environment[k] = append(g.Environment[k], s)
			}
		}
	}
	return nil
}
