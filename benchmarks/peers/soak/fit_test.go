package main

import (
	"math"
	"testing"
)

func TestSlope(t *testing.T) {
	x := []float64{0, 1, 2, 3, 4}
	for _, c := range []struct {
		name string
		y    []float64
		want float64
		ok   bool
	}{
		{"flat", []float64{5, 5, 5, 5, 5}, 0, true},
		{"line", []float64{1, 3, 5, 7, 9}, 2, true},
		{"noisy", []float64{0, 2, 1, 3, 2}, 0.5, true},
		{"gap", []float64{1, math.NaN(), 5, 7, 9}, 2, true},
		{"too few", []float64{1, math.NaN(), math.NaN(), math.NaN(), 9}, 0, false},
	} {
		got, ok := slope(x, c.y)
		if ok != c.ok || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: got %v, %v; want %v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

func TestJudge(t *testing.T) {
	// 30 minutes, one sample every 10 s.
	var ts []float64
	for s := 0.0; s <= 1800; s += 10 {
		ts = append(ts, s)
	}
	series := func(perHour float64, warm float64) []float64 {
		y := make([]float64, len(ts))
		for i, s := range ts {
			y[i] = 100 + perHour*s/3600
			if s < 600 {
				y[i] += warm * s / 600 // a steep warm-up the fit must skip
			}
			if i%2 == 1 {
				y[i] += 3 // noise
			}
		}
		return y
	}
	b := bound{PerHour: 60, Floor: 20}
	for _, c := range []struct {
		name    string
		perHour float64
		leak    bool
	}{
		{"steady", 0, false},
		{"slow growth", 30, false},
		{"leak", 120, true},
	} {
		f := judge("edge", "goroutines", ts, series(c.perHour, 500), 600, b)
		if f.Leak != c.leak {
			t.Errorf("%s: got leak %v (%v), want %v", c.name, f.Leak, f, c.leak)
		}
		if math.Abs(f.PerHour-c.perHour) > 5 {
			t.Errorf("%s: got %.1f/h, want %.1f/h", c.name, f.PerHour, c.perHour)
		}
	}
	// Two minutes: a steep slope that grows less than the floor is no leak.
	short := []float64{40, 50, 60, 70, 80, 90, 100, 110, 120}
	y := []float64{100, 101, 102, 103, 104, 105, 106, 107, 108}
	if f := judge("edge", "goroutines", short, y, 40, b); f.Leak || f.PerHour < 300 {
		t.Errorf("short run: got %v, want a steep slope and no leak", f)
	}
}
