package route

import (
	"strings"
	"testing"
)

// FuzzParseRoute parses arbitrary --route values. Invariant: it never
// panics, and a route it accepts is valid and parses back from its own
// String form to the same route.
func FuzzParseRoute(f *testing.F) {
	f.Add("+/+/alarm/#=alarms,lane=alarm")
	f.Add("#=telemetry")
	f.Add("a/b=c,key=clientid,lane=telemetry")
	f.Add("=,,=")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRoute(s)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted an invalid route %q: %v", s, err)
		}
		back, err := ParseRoute(r.String())
		if err != nil || back != r {
			t.Fatalf("round trip of %q: got %+v %v, want %+v", s, back, err, r)
		}
	})
}

// splitCovers is covers as it was, on strings.Split: the reference
// FuzzMatchFilter checks the level walk against.
func splitCovers(filter, topic string, literal bool) bool {
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	dollar := len(t) > 0 && strings.HasPrefix(t[0], "$")
	for i, fl := range f {
		switch fl {
		case "#":
			return !(i == 0 && dollar)
		case "+":
			if i >= len(t) || (i == 0 && dollar) {
				return false
			}
			if !literal && t[i] == "#" {
				return false
			}
		default:
			if i >= len(t) || t[i] != fl {
				return false
			}
		}
	}
	return len(f) == len(t)
}

// FuzzMatchFilter matches arbitrary filters against arbitrary topics.
// Invariant: MatchFilter and Covers answer as the straightforward
// strings.Split implementation does, for every input.
func FuzzMatchFilter(f *testing.F) {
	for _, s := range [][2]string{
		{"+/+/alarm/#", "fleet/dev-1/alarm/fire"}, {"#", "$SYS/broker"}, {"a/+", "a/#"},
		{"+", ""}, {"a/#", "a"}, {"/", "/"}, {"a//b", "a/+/b"}, {"+/+", "/a"}, {"$SYS/+", "$SYS/x/"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		if got, want := MatchFilter(filter, topic), splitCovers(filter, topic, true); got != want {
			t.Fatalf("MatchFilter(%q, %q): got %v, want %v", filter, topic, got, want)
		}
		if got, want := Covers(filter, topic), splitCovers(filter, topic, false); got != want {
			t.Fatalf("Covers(%q, %q): got %v, want %v", filter, topic, got, want)
		}
	})
}
