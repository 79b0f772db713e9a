package main

import (
	"encoding/json"
	"testing"
)

func TestFixedPayloads(t *testing.T) {
	for _, size := range []int{1, 100, 256, 4096} {
		for i, p := range fixedPayloads(8, size, 1) {
			if len(p) != size {
				t.Fatalf("size %d, payload %d: got %d bytes", size, i, len(p))
			}
			if size >= 256 && !json.Valid(p) {
				t.Errorf("size %d, payload %d: not JSON: %s", size, i, p)
			}
		}
	}
}

func TestCarPayloads(t *testing.T) {
	c := newCar(6, 1)
	var ts int64 = 1767225600123456789
	for _, p := range [][]byte{c.telemetry(nil, ts, true), c.alarm(nil, ts)} {
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if m["device"] != "c-0007" || m["ts_ms"] != float64(ts/1e6) {
			t.Errorf("%s: want device c-0007 and ts_ms %d", p, ts/1e6)
		}
		if got := tsNs(p); got != ts {
			t.Errorf("%s: ts_ns %d, want %d", p, got, ts)
		}
	}
	if p := c.telemetry(nil, ts, false); tsNs(p) != 0 {
		t.Errorf("%s: want no ts_ns", p)
	}
	if c.seq != 3 {
		t.Errorf("seq %d after three messages, want 3", c.seq)
	}
}
