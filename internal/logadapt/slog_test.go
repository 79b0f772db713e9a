package logadapt

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestMochi(t *testing.T) {
	var buf bytes.Buffer
	l := Mochi(zerolog.New(&buf).Level(zerolog.DebugLevel))
	l.With("listener", "mqtt", slog.Group("g", "n", 1)).WithGroup("conn").Warn("client error",
		"err", errors.New("boom"), "pk", "payload", "d", 2*time.Second, "ok", true,
		slog.Group("x", "u", uint64(7)), "f", 0.5)
	l.Warn("", "err", errors.New("EOF"))
	l.Info("starting")
	l.Error("listener failed", "packet", "x", "will", "y")

	got := lines(t, &buf)
	if len(got) != 4 {
		t.Fatalf("got %d lines, want 4:\n%s", len(got), buf.String())
	}
	want := map[string]any{
		"level": "warn", "message": "client error", "component": "mqtt",
		"listener": "mqtt", "g.n": float64(1), "conn.err": "boom", "conn.d": float64(2000),
		"conn.ok": true, "conn.x.u": float64(7), "conn.f": 0.5,
	}
	for k, v := range want {
		if got[0][k] != v {
			t.Errorf("line 1, field %s: got %v, want %v", k, got[0][k], v)
		}
	}
	if _, ok := got[0]["conn.pk"]; ok {
		t.Errorf("line 1: got a pk field, want packets left out")
	}
	if got[1]["level"] != "debug" || got[1]["message"] != "mqtt connection ended" {
		t.Errorf("a warning without message: got level %v message %v, want debug, mqtt connection ended", got[1]["level"], got[1]["message"])
	}
	if got[2]["level"] != "debug" {
		t.Errorf("info: got level %v, want debug", got[2]["level"])
	}
	if got[3]["level"] != "error" || got[3]["packet"] != nil || got[3]["will"] != nil {
		t.Errorf("error: got %v, want level error without packet and will", got[3])
	}

	buf.Reset()
	quiet := Mochi(zerolog.New(&buf).Level(zerolog.WarnLevel))
	quiet.Info("starting")
	if buf.Len() != 0 {
		t.Errorf("info at warn level: got %q, want nothing", buf.String())
	}
}
