package kafka

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseListeners(t *testing.T) {
	custom := map[string]SecurityProtocol{"client": SASLSSL, "INTERNAL": Plaintext, "EDGE": SSL}
	tests := []struct {
		in      string
		pm      map[string]SecurityProtocol
		want    string // Name/Protocol/Addr, space-separated; "" for an error
		wantErr string
	}{
		{in: "PLAINTEXT://127.0.0.1:9092", want: "PLAINTEXT/PLAINTEXT/127.0.0.1:9092"},
		{in: "PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093", want: "PLAINTEXT/PLAINTEXT/127.0.0.1:9092 SASL_SSL/SASL_SSL/0.0.0.0:9093"},
		{in: "ssl://:9094, sasl_plaintext://[::1]:9095", want: "SSL/SSL/:9094 SASL_PLAINTEXT/SASL_PLAINTEXT/[::1]:9095"},
		{in: "CLIENT://broker-1.example:9093,INTERNAL://10.0.0.1:9094", pm: custom, want: "CLIENT/SASL_SSL/broker-1.example:9093 INTERNAL/PLAINTEXT/10.0.0.1:9094"},
		{in: "PLAINTEXT://:0,SSL://:0", want: "PLAINTEXT/PLAINTEXT/:0 SSL/SSL/:0"},
		{in: "", wantErr: "empty"},
		{in: "CLIENT://:9093", wantErr: "no security protocol"},
		{in: "PLAINTEXT://:9092", pm: custom, wantErr: "no security protocol"},
		{in: "PLAINTEXT://:9092,plaintext://:9093", wantErr: "named twice"},
		{in: "PLAINTEXT://:9092,SSL://:9092", wantErr: "both use port"},
		{in: "PLAINTEXT//:9092", wantErr: "not NAME://host:port"},
		{in: "://:9092", wantErr: "not NAME://host:port"},
		{in: "PLAINTEXT://localhost", wantErr: "bad host:port"},
		{in: "PLAINTEXT://localhost:http", wantErr: "bad port"},
		{in: "PLAINTEXT://localhost:70000", wantErr: "bad port"},
		{in: "PLAINTEXT://localhost:-1", wantErr: "bad port"},
		{in: "PLAINTEXT://::1:9092", wantErr: "bad host:port"},
		{in: "PLAINTEXT://a b:9092", wantErr: "bad host"},
		{in: "PLAINTEXT://:9092,", wantErr: "not NAME://host:port"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseListeners(tc.in, tc.pm)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseListeners(%q): got %v, %v, want an error with %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseListeners(%q): got error %v, want nil", tc.in, err)
			}
			if s := formatListeners(got); s != tc.want {
				t.Fatalf("ParseListeners(%q): got %s, want %s", tc.in, s, tc.want)
			}
		})
	}
}

func formatListeners(ls []ListenerAddr) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s/%s/%s", l.Name, l.Protocol, l.Addr))
	}
	return strings.Join(parts, " ")
}

func TestSecurityProtocolNames(t *testing.T) {
	for p := Plaintext; p <= SASLSSL; p++ {
		got, err := ParseSecurityProtocol(strings.ToLower(p.String()))
		if err != nil || got != p {
			t.Fatalf("ParseSecurityProtocol(%q): got %v, %v, want %v", strings.ToLower(p.String()), got, err, p)
		}
	}
	if _, err := ParseSecurityProtocol("TLS"); err == nil {
		t.Fatalf("ParseSecurityProtocol(TLS): got nil error, want one")
	}
	for a := ClientAuthNone; a <= ClientAuthRequired; a++ {
		if got, err := ParseClientAuth(a.String()); err != nil || got != a {
			t.Fatalf("ParseClientAuth(%q): got %v, %v, want %v", a, got, err, a)
		}
	}
	if _, err := ParseClientAuth("optional"); err == nil {
		t.Fatalf("ParseClientAuth(optional): got nil error, want one")
	}
}

// FuzzParseListeners checks that ParseListeners never panics, and that
// what it accepts has unique names, a known protocol and a host:port that
// parses, and parses again to the same listeners when joined back.
func FuzzParseListeners(f *testing.F) {
	for _, s := range []string{
		"PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093",
		"ssl://:9094, sasl_plaintext://[::1]:9095",
		"PLAINTEXT://:9092,PLAINTEXT://:9093",
		"PLAINTEXT://a:1,SSL://a:1",
		"://", "", ",", "SSL://[::1:9]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := ParseListeners(s)
		if err != nil {
			return
		}
		names := map[string]bool{}
		var parts []string
		for _, l := range ls {
			if names[l.Name] {
				t.Fatalf("ParseListeners(%q): got %s twice, want unique names", s, l.Name)
			}
			names[l.Name] = true
			if _, err := ParseSecurityProtocol(l.Protocol.String()); err != nil {
				t.Fatalf("ParseListeners(%q): got protocol %v, want a known one", s, l.Protocol)
			}
			if _, _, err := splitListenerHostPort(l.Addr); err != nil {
				t.Fatalf("ParseListeners(%q): got address %q (%v), want host:port", s, l.Addr, err)
			}
			parts = append(parts, l.Name+"://"+l.Addr)
		}
		again, err := ParseListeners(strings.Join(parts, ","))
		if err != nil || formatListeners(again) != formatListeners(ls) {
			t.Fatalf("ParseListeners(%q) joined back: got %v, %v, want %v", s, again, err, ls)
		}
	})
}
