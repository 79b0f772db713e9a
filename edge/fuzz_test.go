package edge

import (
	"bytes"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/mochi-mqtt/server/v2/packets"
)

// FuzzParseUsers parses arbitrary users files. Invariant: it never panics,
// and every user it accepts can be looked up by name.
func FuzzParseUsers(f *testing.F) {
	f.Add([]byte("users:\n  - username: s-1\n    password: $2a$10$abcdefghijklmnopqrstuu\n    acl:\n      publish: [\"+/%u/#\"]\n"))
	f.Add([]byte("users: []\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := ParseUsers(data)
		if err != nil {
			return
		}
		for name := range u.byName {
			if _, ok := u.Lookup(name); !ok {
				t.Fatalf("user %q accepted but not found", name)
			}
		}
	})
}

// FuzzDecodeProperties decodes arbitrary property sections with mochi's
// decoder (the patched copy in third_party: validity bit sets, user
// properties in one allocation), for any packet type. Invariant: it
// never panics, and the user properties of a section it accepts for a
// PUBLISH, encoded again alone, decode to the same list in the same
// order.
func FuzzDecodeProperties(f *testing.F) {
	user := func(kvs ...string) []byte {
		var b []byte
		for i := 0; i+1 < len(kvs); i += 2 {
			b = append(b, 0x26)
			b = append(b, str(kvs[i])...)
			b = append(b, str(kvs[i+1])...)
		}
		return append([]byte{byte(len(b))}, b...)
	}
	f.Add(packets.Publish, user("unit", "celsius", "schema", "v2", "trace-id", "4bf92f3577b34da6", "site", "north-7", "fw", "1.4.2"))
	f.Add(packets.Publish, user("a", "", "a", "b"))
	f.Add(packets.Publish, []byte{5, 0x01, 0x01, 0x02, 0, 0})      // payload format, then a truncated expiry
	f.Add(packets.WillProperties, []byte{3, 0x18, 0, 0})           // will delay interval, short
	f.Add(byte(200), []byte{2, 0x26, 0})                           // no such packet type
	f.Add(packets.Puback, []byte{7, 0x1f, 0, 4, 'w', 'h', 'y', 0}) // reason string
	f.Fuzz(func(t *testing.T, pkt byte, b []byte) {
		var p packets.Properties
		if _, err := p.Decode(pkt, bytes.NewBuffer(b)); err != nil || pkt != packets.Publish {
			return
		}
		only := packets.Properties{User: p.User}
		var buf bytes.Buffer
		only.Encode(packets.Publish, packets.Mods{}, &buf, 0)
		var q packets.Properties
		if _, err := q.Decode(packets.Publish, bytes.NewBuffer(buf.Bytes())); err != nil {
			t.Fatalf("user properties %q encoded again: %v", p.User, err)
		}
		if !slices.Equal(q.User, p.User) {
			t.Fatalf("got %q, want %q", q.User, p.User)
		}
	})
}

// FuzzDecodeUTF8 checks mochi's UTF-8 check of strings (patched with an
// ASCII fast path) through the property decoder: a user property decodes
// if and only if its key and value are valid UTF-8 without U+0000 (MQTT
// 5 §1.5.4), and then reads back as sent.
func FuzzDecodeUTF8(f *testing.F) {
	for _, s := range [][2]string{
		{"unit", "celsius"}, {"trace-id", "4bf92f3577b34da6"}, {"", ""}, {"ü", "€uro"}, {"a\x00b", "c"},
		{"abcdefgh\x00", "x"}, {"abcdefgh", "ijklmnop\xff"}, {"\xed\xa0\x80", "surrogate"}, {"12345678901234567", "\x7f"},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, k, v []byte) {
		if len(k) > 100 || len(v) > 100 {
			return // a one-byte property length
		}
		b := append([]byte{0x26}, str(string(k))...)
		b = append(b, str(string(v))...)
		b = append([]byte{byte(len(b))}, b...)
		var p packets.Properties
		_, err := p.Decode(packets.Publish, bytes.NewBuffer(b))
		valid := func(s []byte) bool { return utf8.Valid(s) && bytes.IndexByte(s, 0) < 0 }
		if want := valid(k) && valid(v); (err == nil) != want {
			t.Fatalf("key %q, value %q: got error %v, want valid %v", k, v, err, want)
		}
		if err == nil && (len(p.User) != 1 || p.User[0].Key != string(k) || p.User[0].Val != string(v)) {
			t.Fatalf("key %q, value %q: got %q", k, v, p.User)
		}
	})
}
