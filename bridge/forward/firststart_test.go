package forward

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The first start is recorded once and read back on later starts; a
// torn file is replaced by the start that finds it.
func TestFirstStart(t *testing.T) {
	dir := t.TempDir()
	t0 := time.UnixMilli(1_700_000_000_000)
	got, err := firstStart(dir, t0)
	if err != nil || !got.Equal(t0) {
		t.Fatalf("first: got %v, %v; want %v", got, err, t0)
	}
	got, err = firstStart(dir, t0.Add(time.Hour))
	if err != nil || !got.Equal(t0) {
		t.Fatalf("later start: got %v, %v; want the first, %v", got, err, t0)
	}
	if err := os.WriteFile(filepath.Join(dir, firstStartFile), []byte("x\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(2 * time.Hour)
	if got, err = firstStart(dir, t1); err != nil || !got.Equal(t1) {
		t.Fatalf("torn file: got %v, %v; want this start, %v", got, err, t1)
	}
}
