package logadapt

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

func TestHclog(t *testing.T) {
	var buf bytes.Buffer
	h := Hclog(zerolog.New(&buf).Level(zerolog.DebugLevel), "raft").With("peer", "n2")
	h.Trace("heartbeat")
	h.Warn("failed to contact", "err", errors.New("timeout"), "time", "x", "n", hclog.Fmt("%d ms", 5))
	h.Named("snapshot").Error("cannot snapshot")
	got := lines(t, &buf)
	if len(got) != 3 {
		t.Fatalf("got %d lines, want 3: %q", len(got), buf.String())
	}
	want := []map[string]any{
		{"level": "debug", "message": "heartbeat", "component": "raft", "peer": "n2"},
		{"level": "warn", "message": "failed to contact", "component": "raft", "err": "timeout", "lib_time": "x", "n": "5 ms"},
		{"level": "error", "message": "cannot snapshot", "component": "raft.snapshot"},
	}
	for i, w := range want {
		for k, v := range w {
			if got[i][k] != v {
				t.Errorf("line %d field %s: got %v, want %v", i, k, got[i][k], v)
			}
		}
	}
	if q := Hclog(zerolog.New(&buf).Level(zerolog.WarnLevel), "raft"); q.IsInfo() || !q.IsWarn() || q.GetLevel() != hclog.Warn {
		t.Errorf("at warn: got IsInfo %v IsWarn %v GetLevel %v, want false, true, warn", q.IsInfo(), q.IsWarn(), q.GetLevel())
	}
}

func TestStdLogger(t *testing.T) {
	var buf bytes.Buffer
	var special []string
	l := StdLogger(zerolog.New(&buf).Level(zerolog.DebugLevel), "serf", func(_ zerolog.Logger, component, line string) bool {
		if strings.Contains(line, "secret") {
			special = append(special, component+"|"+line)
			return true
		}
		return false
	})
	l.Print("[DEBUG] memberlist: probing n2")
	l.Print("[INFO] serf: EventMemberJoin: n2 127.0.0.1")
	l.Print("[WARN] memberlist: secret mismatch")
	l.Print("[ERR] something broke")
	l.Print("no prefix at all")
	got := lines(t, &buf)
	want := []map[string]any{
		{"level": "debug", "component": "memberlist", "message": "probing n2"},
		{"level": "info", "component": "serf", "message": "EventMemberJoin: n2 127.0.0.1"},
		{"level": "error", "component": "serf", "message": "something broke"},
		{"level": "info", "component": "serf", "message": "no prefix at all"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d: %q", len(got), len(want), buf.String())
	}
	for i, w := range want {
		for k, v := range w {
			if got[i][k] != v {
				t.Errorf("line %d field %s: got %v, want %v", i, k, got[i][k], v)
			}
		}
	}
	if len(special) != 1 || special[0] != "memberlist|secret mismatch" {
		t.Errorf("got special lines %q, want the one secret line with its component", special)
	}
}
