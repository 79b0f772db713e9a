package logadapt

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// lines decodes the JSON log lines written to buf.
func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("got %q, want JSON log lines: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}
