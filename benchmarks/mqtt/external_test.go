package main

import (
	"slices"
	"testing"
)

func TestPeerFlag(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"nats=/tmp/natsmqtt", true}, {"a=b=c", true}, {"nats", false}, {"=x", false}, {"x=", false},
		{"mochi=/bin/x", false}, {"edge-never=/bin/x", false},
	} {
		p := peerFlag{}
		err := p.Set(c.in)
		if got := err == nil; got != c.ok {
			t.Errorf("Set(%q): got ok=%v (%v), want ok=%v", c.in, got, err, c.ok)
		}
	}
}

// FuzzPeerFlag: Set never panics, adds exactly one peer with a non-empty
// name and path when it accepts a value, and none when it refuses it.
func FuzzPeerFlag(f *testing.F) {
	for _, s := range []string{"nats=/tmp/natsmqtt", "=", "a=", "mochi=x", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := peerFlag{}
		err := p.Set(s)
		want := 0
		if err == nil {
			want = 1
		}
		if len(p) != want {
			t.Fatalf("Set(%q) = %v: got %d peers, want %d", s, err, len(p), want)
		}
		for k, v := range p {
			if k == "" || v == "" {
				t.Fatalf("Set(%q): got name %q path %q, want both non-empty", s, k, v)
			}
		}
	})
}

// FuzzParseIdle: parseIdleConns never panics, and what it accepts is a
// non-empty list of ascending counts, none negative.
func FuzzParseIdle(f *testing.F) {
	for _, s := range []string{"0,1000,5000,10000,19000", "5,1", "-1", "", "1,,2", "3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var o options
		if err := o.parseIdleConns(s); err != nil {
			return
		}
		if len(o.idleConns) == 0 || !slices.IsSorted(o.idleConns) || o.idleConns[0] < 0 {
			t.Fatalf("parseIdleConns(%q): got %v, want ascending counts from 0 up", s, o.idleConns)
		}
	})
}
