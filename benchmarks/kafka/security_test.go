package main

import "testing"

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want string
	}{
		{nil, "none"},
		{[]float64{0.7}, "0.70 (0.70–0.70)"},
		{[]float64{0.9, 0.6, 0.7}, "0.70 (0.60–0.90)"},
		{[]float64{1.0, 0.6, 0.8, 0.7}, "0.75 (0.60–1.00)"},
	} {
		if got := spread(tc.xs); got != tc.want {
			t.Errorf("spread(%v): got %q, want %q", tc.xs, got, tc.want)
		}
	}
}
