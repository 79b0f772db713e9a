package scrape

import (
	"math"
	"strings"
	"testing"
)

const exposition = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
fluxo_edge_uplink_lag_records{lane="telemetry"} 7
fluxo_edge_uplink_lag_records{lane="alarm"} 3
process_resident_memory_bytes 1.2345e+07
broken line
`

func TestParse(t *testing.T) {
	m, err := Parse(exposition)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, label string
		want        float64
	}{
		{"go_goroutines", "", 42},
		{"fluxo_edge_uplink_lag_records", "", 10},
		{"fluxo_edge_uplink_lag_records", `lane="alarm"`, 3},
		{"process_resident_memory_bytes", "", 12345000},
		{"absent", "", 0},
	} {
		if got := m.Sum(c.name, c.label); got != c.want {
			t.Errorf("Sum(%q, %q): got %v, want %v", c.name, c.label, got, c.want)
		}
	}
	if got, want := len(m), 4; got != want {
		t.Errorf("samples: got %d, want %d", got, want)
	}
}

// FuzzParse checks that Parse never fails or panics on any input, and that
// every sample it returns has a name free of braces and spaces that
// appears in the input, and a value that is a number.
func FuzzParse(f *testing.F) {
	f.Add(exposition)
	f.Add("")
	f.Add("a{b=\"c\"} NaN\nx 1 2\n{ 3\n")
	f.Add("go_goroutines +Inf")
	f.Fuzz(func(t *testing.T, body string) {
		m, err := Parse(body)
		if err != nil {
			return // a line longer than the scanner's buffer
		}
		for _, s := range m {
			if strings.ContainsAny(s.Name, "{ ") {
				t.Fatalf("name %q: got a brace or space, want none", s.Name)
			}
			if !strings.Contains(body, s.Name) {
				t.Fatalf("name %q: got a name not in the input", s.Name)
			}
			_ = math.IsNaN(s.Value)
		}
	})
}
