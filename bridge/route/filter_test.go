package route

import "testing"

func TestMatchFilter(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b/c", "a/b/c", true},
		{"a/b/c", "a/b", false},
		{"a/b", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a//c", true},
		{"a/+/c", "a/b/d", false},
		{"a/+", "a/b/c", false},
		{"+", "a", true},
		{"+", "", true},
		{"+", "a/b", false},
		{"+/+", "/a", true},
		{"#", "a", true},
		{"#", "a/b/c", true},
		{"#", "/", true},
		{"a/#", "a", true},
		{"a/#", "a/b", true},
		{"a/#", "a/b/c", true},
		{"a/#", "b/a", false},
		{"a/b/#", "a", false},
		{"+/+/alarm/#", "fleet/dev-1/alarm", true},
		{"+/+/alarm/#", "fleet/dev-1/alarm/fire/3", true},
		{"+/+/alarm/#", "fleet/dev-1/temp", false},
		{"+/+/alarm/#", "dev-1/alarm", false},
		// $-topics are not matched by a wildcard first level.
		{"#", "$SYS/broker", false},
		{"+/broker", "$SYS/broker", false},
		{"$SYS/#", "$SYS/broker", true},
		{"$SYS/+", "$SYS/broker", true},
		{"a/#", "a/$b", true},
		{"a/+", "a/$b", true},
		// case matters
		{"A/b", "a/b", false},
	}
	for _, tt := range tests {
		if got := MatchFilter(tt.filter, tt.topic); got != tt.want {
			t.Errorf("MatchFilter(%q, %q): got %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestFilterCovers(t *testing.T) {
	tests := []struct {
		acl, sub string
		want     bool
	}{
		{"a/b", "a/b", true},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/+", "a", false},
		{"a/#", "a", true},
		{"a/#", "a/#", true},
		{"a/#", "a/+/c", true},
		{"a/#", "#", false},
		{"a/b", "a/+", false},
		{"a/b", "a/#", false},
		{"#", "#", true},
		{"#", "a/+/#", true},
		{"+/+/cmd/#", "fleet/dev/cmd/#", true},
		{"+/+/cmd/#", "+/dev/cmd/reboot", true},
		{"+/+/cmd/#", "fleet/dev/#", false},
		{"#", "$SYS/#", false},
		{"+/#", "$SYS/x", false},
		{"$SYS/#", "$SYS/+", true},
	}
	for _, tt := range tests {
		if got := Covers(tt.acl, tt.sub); got != tt.want {
			t.Errorf("Covers(%q, %q): got %v, want %v", tt.acl, tt.sub, got, tt.want)
		}
	}
}

func TestValidFilter(t *testing.T) {
	tests := []struct {
		f    string
		want bool
	}{
		{"a", true},
		{"a/b", true},
		{"/", true},
		{"+", true},
		{"#", true},
		{"a/+/b", true},
		{"a/#", true},
		{"", false},
		{"a/#/b", false},
		{"a#", false},
		{"a/b+", false},
		{"#/a", false},
	}
	for _, tt := range tests {
		if got := ValidFilter(tt.f); got != tt.want {
			t.Errorf("ValidFilter(%q): got %v, want %v", tt.f, got, tt.want)
		}
	}
}
