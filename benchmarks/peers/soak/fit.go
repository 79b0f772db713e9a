package main

import (
	"fmt"
	"math"
)

// slope is the least-squares slope of y against x, over the points whose
// y is not NaN; ok is false with fewer than three such points or when
// every x is the same.
func slope(x, y []float64) (b float64, ok bool) {
	var n, sx, sy, sxx, sxy float64
	for i := range x {
		if math.IsNaN(y[i]) {
			continue
		}
		n++
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		sxy += x[i] * y[i]
	}
	if n < 3 {
		return 0, false
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0, false
	}
	return (n*sxy - sx*sy) / d, true
}

// bound is a leak threshold for one quantity. A series leaks when both
// its fitted slope exceeds PerHour and the growth that slope makes over
// the fitted window exceeds Floor: a short run sees steep but small
// warm-up slopes, a long one slow steady growth, and only growth that is
// both fast and large counts.
type bound struct {
	PerHour float64 `json:"per_hour"`
	Floor   float64 `json:"floor"`
}

// fit is the verdict on one quantity of one process.
type fit struct {
	Process  string  `json:"process"`
	Quantity string  `json:"quantity"`
	PerHour  float64 `json:"slope_per_hour"`
	Growth   float64 `json:"growth_in_window"` // slope × window
	Points   int     `json:"points"`
	Bound    bound   `json:"bound"`
	Leak     bool    `json:"leak"`
}

func (f fit) String() string {
	verdict := "ok"
	if f.Leak {
		verdict = "LEAK"
	}
	return fmt.Sprintf("%s %s: %+.1f/h over %d points (%+.1f in the window; bound %.0f/h and %.0f): %s",
		f.Process, f.Quantity, f.PerHour, f.Points, f.Growth, f.Bound.PerHour, f.Bound.Floor, verdict)
}

// judge fits y (sampled at t, in seconds since the start) over the
// samples taken at or after from seconds, and compares with b.
func judge(process, quantity string, t, y []float64, from float64, b bound) fit {
	var xs, ys []float64
	for i := range t {
		if t[i] >= from && !math.IsNaN(y[i]) {
			xs = append(xs, t[i])
			ys = append(ys, y[i])
		}
	}
	f := fit{Process: process, Quantity: quantity, Points: len(xs), Bound: b}
	s, ok := slope(xs, ys)
	if !ok {
		return f
	}
	f.PerHour = s * 3600
	f.Growth = s * (xs[len(xs)-1] - xs[0])
	f.Leak = f.PerHour > b.PerHour && f.Growth > b.Floor
	return f
}
