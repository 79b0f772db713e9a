package registry

import (
	"bytes"
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

// FuzzDecodeDevice: decodeDevice never panics, and a record it accepts
// re-encodes to a record that decodes to the same device and encodes to
// the same bytes again (the binary form is stable).
func FuzzDecodeDevice(f *testing.F) {
	f.Add(appendEntry(nil, newEntry(fullDevice())))
	f.Add(appendEntry(nil, newEntry(Device{ID: "d", Fleet: "f"})))
	f.Add([]byte{storedV1, 0})
	f.Add([]byte(`{"id":"x","fleet":"f","messages":{"telemetry":1}}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		d, err := decodeDevice("x", v)
		if err != nil {
			return
		}
		v2 := appendEntry(nil, newEntry(d))
		d2, err := decodeDevice("x", v2)
		if err != nil {
			t.Fatalf("re-encoded record %x: %v", v2, err)
		}
		if v3 := appendEntry(nil, newEntry(d2)); !bytes.Equal(v2, v3) {
			t.Fatalf("encoding not stable: %x then %x", v2, v3)
		}
	})
}
