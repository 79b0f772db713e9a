//go:build soak

package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSoakCheck is the two-minute soak (make soak-check): the whole
// harness with one core restart and one edge restart, held to the same
// loss and duplicate checks and leak bounds as the long run. The leak
// floors make a two-minute warm-up pass unless it grows by more than a
// floor. SOAK_OUT keeps the files (soak.json, soak.csv, soak.png);
// FLUXO_BIN uses a built fluxo instead of building one.
func TestSoakCheck(t *testing.T) {
	o := defaultOptions()
	o.Duration = 2 * time.Minute
	o.Interval = 5 * time.Second
	o.Fluxo = os.Getenv("FLUXO_BIN")
	o.Dir = t.TempDir()
	o.Out = os.Getenv("SOAK_OUT")
	if o.Out == "" {
		o.Out = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := run(ctx, o, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Err(); err != nil {
		t.Fatalf("got %v, want a soak without leaks, losses or duplicates", err)
	}
	if got, want := len(res.Restarts), 2; got != want {
		t.Errorf("restarts: got %d, want %d", got, want)
	}
	if got, min := len(res.Samples), 20; got < min {
		t.Errorf("samples: got %d, want at least %d", got, min)
	}
	for _, name := range []string{"soak.json", "soak.csv", "soak.png"} {
		if fi, err := os.Stat(o.Out + "/" + name); err != nil || fi.Size() == 0 {
			t.Errorf("%s: got %v, want a file", name, err)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
