package commitlog

import (
	"bytes"
	"testing"
)

// TestCrashDuringRoll: a crash between creating the next segment and
// sealing the previous one leaves the previous one below the recovery
// point with its reserved space and oversized index files. Open finishes
// the seal instead of calling it corrupt.
func TestCrashDuringRoll(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	cfg.PreallocateBytes = 8 << 10
	l := mustOpen(t, dir, cfg)
	var want [][]byte
	for i := 0; i < 5; i++ {
		b := testBatch(2, 100, 1, "r")
		mustAppend(t, l, b)
		want = append(want, b)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	// The roll's first half: the next segment exists, the old one is
	// not cut; then the crash.
	l.appendMu.Lock()
	s, err := createSegment(dir, l.leo.Load(), &l.cfg, epoch)
	l.appendMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	s.closeFiles()
	s.mu.Lock()
	s.dropMappingsLocked()
	s.mu.Unlock()
	l.release()

	l = mustOpen(t, dir, cfg)
	defer l.Close()
	got := readAll(t, l)
	if len(got) != len(want) {
		t.Fatalf("got %d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	if res := mustAppend(t, l, testBatch(1, 1, 1, "n")); res.FirstOffset != 10 {
		t.Fatalf("got offset %d, want 10", res.FirstOffset)
	}
}
