//go:build linux

package commitlog

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFullDisk fills a real, size-limited tmpfs: appends fail with ENOSPC
// (an error return, no SIGBUS), nothing half-written becomes visible, reads
// go on, and appends work again once space is freed.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a size-limited tmpfs needs root")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })

	// A filler file takes most of the space, so it can be given back.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := smallConfig()
	cfg.SegmentBytes = 256 << 10
	cfg.PreallocateBytes = 64 << 10
	cfg.FlushBatches = 1
	l := mustOpen(t, filepath.Join(mnt, "log"), cfg)
	defer l.Close()

	var last int64 = -1
	var err error
	for i := 0; i < 10000; i++ {
		var res AppendResult
		res, err = l.Append(testBatch(4, 1000, 1, "full"))
		if err != nil {
			break
		}
		last = res.LastOffset
		l.SetHighWatermark(last + 1)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("got %v, want an error wrapping ENOSPC", err)
	}
	if last < 0 {
		t.Fatal("nothing fit before the disk was full")
	}
	if got := l.LogEndOffset(); got != last+1 {
		t.Fatalf("got log end %d after ENOSPC, want %d (nothing of the failed append)", got, last+1)
	}
	// Reads go on.
	got := readAll(t, l)
	if n := int64(len(got)) * 4; n != last+1 {
		t.Fatalf("read %d records, want %d", n, last+1)
	}
	// ENOSPC is not sticky: free space and append again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	res, err := l.Append(testBatch(4, 1000, 1, "after"))
	if err != nil {
		t.Fatalf("append after freeing space: %v", err)
	}
	if res.FirstOffset != last+1 {
		t.Fatalf("got offset %d, want %d", res.FirstOffset, last+1)
	}
	l.SetHighWatermark(res.LastOffset + 1)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l = mustOpen(t, filepath.Join(mnt, "log"), cfg)
	if l.LogEndOffset() != res.LastOffset+1 {
		t.Fatalf("after reopen got log end %d, want %d", l.LogEndOffset(), res.LastOffset+1)
	}
}
