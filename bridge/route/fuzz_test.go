package route

import "testing"

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
