package main

import "testing"

func TestSeedTopicFlag(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"telemetry:3", true}, {"a.b-c_d:1", true}, {"t", false}, {":3", false},
		{"t:0", false}, {"t:-1", false}, {"t:x", false}, {"t:", false}, {"t:2147483648", false},
	}
	for _, tt := range tests {
		var ts topics
		err := ts.Set(tt.in)
		if got := err == nil; got != tt.ok {
			t.Errorf("Set(%q): got ok=%v (%v), want ok=%v", tt.in, got, err, tt.ok)
		}
	}
}

// FuzzSeedTopicFlag: Set never panics, and adds exactly one topic when it
// accepts a value and none when it refuses it.
func FuzzSeedTopicFlag(f *testing.F) {
	for _, s := range []string{"telemetry:3", "t", ":1", "t:0", "a:b:c", "t:99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var ts topics
		err := ts.Set(s)
		if want := map[bool]int{true: 1, false: 0}[err == nil]; len(ts) != want {
			t.Fatalf("Set(%q) = %v: got %d topics, want %d", s, err, len(ts), want)
		}
	})
}
