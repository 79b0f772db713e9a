package kafka

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/xdg-go/scram"
)

func TestParsePlain(t *testing.T) {
	tests := []struct {
		msg                 string
		authzid, user, pass string
		wantErr             bool
	}{
		{msg: "\x00alice\x00secret", user: "alice", pass: "secret"},
		{msg: "alice\x00alice\x00secret", authzid: "alice", user: "alice", pass: "secret"},
		{msg: "\x00alice\x00pass with spaces", user: "alice", pass: "pass with spaces"},
		{msg: "bob\x00alice\x00secret", wantErr: true},
		{msg: "\x00\x00secret", wantErr: true},
		{msg: "\x00alice\x00", wantErr: true},
		{msg: "\x00alice", wantErr: true},
		{msg: "\x00alice\x00se\x00cret", wantErr: true},
		{msg: "", wantErr: true},
	}
	for _, tc := range tests {
		authzid, user, pass, err := parsePlain([]byte(tc.msg))
		if tc.wantErr {
			if err == nil {
				t.Fatalf("parsePlain(%q): got nil error, want one", tc.msg)
			}
			continue
		}
		if err != nil || authzid != tc.authzid || user != tc.user || pass != tc.pass {
			t.Fatalf("parsePlain(%q): got %q %q %q %v, want %q %q %q nil", tc.msg, authzid, user, pass, err, tc.authzid, tc.user, tc.pass)
		}
	}
}

func TestVerifyPlain(t *testing.T) {
	u := newUsers(t, "alice", "alice-secret")
	only256 := users{"alice": {MechanismScramSHA256: u["alice"][MechanismScramSHA256]}}
	tests := []struct {
		name       string
		creds      users
		user, pass string
		want       bool
	}{
		{"right password", u, "alice", "alice-secret", true},
		{"SHA-256 credentials only", only256, "alice", "alice-secret", true},
		{"wrong password", u, "alice", "alice-secreT", false},
		{"unknown user", u, "bob", "alice-secret", false},
	}
	for _, tc := range tests {
		if got := verifyPlain(tc.creds, tc.user, tc.pass); got != tc.want {
			t.Fatalf("%s: verifyPlain: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestScramUnknownUser(t *testing.T) {
	creds := newUsers(t, "alice", "alice-secret")
	s := &scramSession{conv: newScramServer(scram.SHA512, MechanismScramSHA512, creds).NewConversation()}
	if _, _, err := s.step([]byte("n,,n=mallory,r=abc")); !errors.Is(err, errBadCredentials) {
		t.Fatalf("unknown user: got %v, want bad credentials", err)
	}
	s = &scramSession{conv: newScramServer(scram.SHA512, MechanismScramSHA512, creds).NewConversation()}
	if _, _, err := s.step([]byte("n,,n=alice")); err == nil || errors.Is(err, errBadCredentials) {
		t.Fatalf("malformed first message: got %v, want a parse error", err)
	}
}

func TestConfigValidateSASL(t *testing.T) {
	creds := newUsers(t, "alice", "x")
	tests := []struct {
		mechs   []string
		creds   Credentials
		wantErr bool
	}{
		{nil, nil, false},
		{[]string{MechanismPlain, MechanismScramSHA512}, creds, false},
		{[]string{"GSSAPI"}, creds, true},
		{[]string{"plain"}, creds, true},
		{[]string{MechanismPlain, MechanismPlain}, creds, true},
		{[]string{MechanismScramSHA256}, nil, true},
	}
	for _, tc := range tests {
		cfg := DefaultConfig()
		cfg.SASLMechanisms, cfg.Credentials = tc.mechs, tc.creds
		if err := cfg.Validate(); (err != nil) != tc.wantErr {
			t.Fatalf("Validate with %v: got %v, want error %v", tc.mechs, err, tc.wantErr)
		}
	}
}

// FuzzParsePlain checks that parsePlain never panics and that what it
// accepts has a non-empty user and password without NUL, an
// authorization id that is empty or the user, and re-encodes to msg.
func FuzzParsePlain(f *testing.F) {
	for _, s := range []string{"\x00alice\x00secret", "alice\x00alice\x00secret", "bob\x00alice\x00x", "\x00\x00", "", "\x00a\x00b\x00c"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		authzid, user, pass, err := parsePlain(msg)
		if err != nil {
			return
		}
		if user == "" || pass == "" || strings.ContainsRune(user+pass+authzid, 0) || (authzid != "" && authzid != user) {
			t.Fatalf("parsePlain(%q): got %q %q %q, want a valid triple", msg, authzid, user, pass)
		}
		if re := []byte(authzid + "\x00" + user + "\x00" + pass); !bytes.Equal(re, msg) {
			t.Fatalf("parsePlain(%q): re-encoded to %q, want the input", msg, re)
		}
	})
}

// FuzzScramFirstMessage feeds arbitrary client-first messages (then the
// same bytes as client-final) to a SCRAM-SHA-256 exchange over one user.
// It checks that nothing panics, that the exchange never succeeds, that
// and that a first message it answers gets "r=<the client's
// nonce>...,s=...,i=".
func FuzzScramFirstMessage(f *testing.F) {
	for _, s := range []string{
		"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL",
		"n,,n=mallory,r=abc",
		"y,,n=alice,r=abc",
		"p=tls-unique,,n=alice,r=abc",
		"n,a=alice,n=alice,r=abc",
		"n,,n=al=2Cice,r=abc",
		"n,,n=alice,r=abc,m=ext",
		"n,,n=alice",
		"", ",,", "n,,",
	} {
		f.Add([]byte(s))
	}
	creds := newUsers(f, "alice", "alice-secret")
	f.Fuzz(func(t *testing.T, msg []byte) {
		s := &scramSession{conv: newScramServer(scram.SHA256, MechanismScramSHA256, creds).NewConversation()}
		reply, done, err := s.step(msg)
		if done {
			t.Fatalf("first message %q: got done, want more steps", msg)
		}
		if err != nil {
			return
		}
		if !bytes.HasPrefix(reply, []byte("r=")) || !bytes.Contains(reply, []byte(",s=")) || !bytes.Contains(reply, []byte(",i=4096")) {
			t.Fatalf("first message %q: got reply %q, want r=...,s=...,i=4096", msg, reply)
		}
		_, i, _ := bytes.Cut(msg, []byte(",r="))
		nonce, _, _ := bytes.Cut(i, []byte(","))
		if !bytes.HasPrefix(reply[2:], nonce) {
			t.Fatalf("first message %q: got reply %q, want the client nonce %q first", msg, reply, nonce)
		}
		if _, done, _ := s.step(msg); done {
			t.Fatalf("first message %q sent again as final: got done, want a failure", msg)
		}
	})
}
