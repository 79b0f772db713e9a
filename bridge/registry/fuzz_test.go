package registry

import (
	"encoding/json"
	"testing"
)

// FuzzReplyID: ReplyID never panics, and an id it finds is one the
// payload's JSON carries.
func FuzzReplyID(f *testing.F) {
	for _, s := range []string{`{"id":"cmd-1"}`, `{"command_id":"c","id":"d"}`, `{"id":42}`, `{"id":""}`, `[1]`, `{"id":{"x":1}}`, ``, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, ok := ReplyID(b)
		if !ok {
			if id != "" {
				t.Fatalf("got id %q with ok false, want none", id)
			}
			return
		}
		if id == "" || !json.Valid(b) {
			t.Fatalf("got id %q from %q, want a non-empty id from valid JSON", id, b)
		}
	})
}
