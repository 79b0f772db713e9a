package edge

import "testing"

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
