package main

import (
	"slices"
	"testing"
)

func TestInts(t *testing.T) {
	got, err := ints("1,10,100,1000")
	if want := []int{1, 10, 100, 1000}; err != nil || !slices.Equal(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	for _, s := range []string{"", "1,,2", "-1", "x"} {
		if _, err := ints(s); err == nil {
			t.Errorf("ints(%q): got no error, want one", s)
		}
	}
}

// FuzzInts: ints never panics, and what it accepts has no negative count.
func FuzzInts(f *testing.F) {
	for _, s := range []string{"1,10,100,1000", "", "-1", "1,,2", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ints(s)
		if err != nil {
			return
		}
		if len(v) == 0 || slices.Min(v) < 0 {
			t.Fatalf("ints(%q): got %v, want non-negative counts", s, v)
		}
	})
}
