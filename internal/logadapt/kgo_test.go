package logadapt

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestKgo(t *testing.T) {
	var buf bytes.Buffer
	l := Kgo(zerolog.New(&buf).Level(zerolog.DebugLevel), kgo.LogLevelWarn)
	if got := l.Level(); got != kgo.LogLevelWarn {
		t.Errorf("Level: got %s, want %s", got, kgo.LogLevelWarn)
	}
	l.Log(kgo.LogLevelWarn, "unable to open connection to broker",
		"addr", "127.0.0.1:1", "broker", "seed_0", "err", errors.New("connection refused"), "n", 3, "odd")
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("got %q, want one JSON log line: %v", buf.String(), err)
	}
	want := map[string]any{
		"level":     "warn",
		"message":   "unable to open connection to broker",
		"component": "kgo",
		"addr":      "127.0.0.1:1",
		"broker":    "seed_0",
		"err":       "connection refused",
		"n":         float64(3),
		"extra":     "odd",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("field %s: got %v, want %v", k, got[k], v)
		}
	}
	buf.Reset()
	l.Log(kgo.LogLevelNone, "never")
	if buf.Len() != 0 {
		t.Errorf("level none: got %q, want nothing logged", buf.String())
	}
}
