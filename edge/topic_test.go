package edge

import "testing"

func TestStripShare(t *testing.T) {
	tests := []struct{ in, want string }{
		{"$share/g/a/b", "a/b"},
		{"$SHARE/g/#", "#"},
		{"$share/g", "$share/g"},
		{"a/b", "a/b"},
		{"$sharex/g/a", "$sharex/g/a"},
	}
	for _, tt := range tests {
		if got := stripShare(tt.in); got != tt.want {
			t.Errorf("stripShare(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
