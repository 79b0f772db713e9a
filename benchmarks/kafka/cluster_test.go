package main

import "testing"

func TestParseClusterScenarios(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "rf1-acks1,rf3-acksall", want: []string{"rf1-acks1", "rf3-acksall"}},
		{in: "", want: nil},
		{in: "rf4-acks1", err: true},
		{in: "rf0-acksall", err: true},
		{in: "p1-acks1", err: true},
		{in: "rf3-acks2", err: true},
	} {
		got, err := parseClusterScenarios(tc.in, 6)
		if (err != nil) != tc.err {
			t.Errorf("parseClusterScenarios(%q): got error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("parseClusterScenarios(%q): got %d scenarios, want %d", tc.in, len(got), len(tc.want))
			continue
		}
		for i, s := range got {
			if s.name() != tc.want[i] || s.partitions != 6 {
				t.Errorf("parseClusterScenarios(%q)[%d]: got %s with %d partitions, want %s with 6", tc.in, i, s.name(), s.partitions, tc.want[i])
			}
		}
	}
	// The single-node names stay as they were.
	got, err := parseScenarios("p8-acksall")
	if err != nil || len(got) != 1 || got[0].name() != "p8-acksall" || got[0].replicationFactor() != 1 {
		t.Errorf("parseScenarios(p8-acksall): got %v, %v; want one p8-acksall with one replica", got, err)
	}
}
