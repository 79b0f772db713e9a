package commitlog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// openFilesUnder counts this process's file descriptors open on files in
// dir.
func openFilesUnder(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			n++
		}
	}
	return n
}

// mappingsUnder counts this process's memory mappings of files in dir
// whose name ends with suffix.
func mappingsUnder(t *testing.T, dir, suffix string) int {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("no /proc/self/maps: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(maps), "\n") {
		if i := strings.Index(line, dir+string(filepath.Separator)); i >= 0 && strings.HasSuffix(line, suffix) {
			n++
		}
	}
	return n
}

// allocated is the disk space a file takes (du, not its apparent size).
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// An idle log holds no file open and no index mapped, gives its reserved
// space back, and comes back to life on the next read and append.
func TestIdleLogHoldsNoFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.IndexIntervalBytes = 1024
	l := mustOpen(t, dir, cfg)
	defer l.Close()
	if got := openFilesUnder(t, dir); got != 0 {
		t.Fatalf("got %d files open by a log never written, want 0", got)
	}
	var want [][]byte
	for i := 0; i < 300; i++ {
		b := testBatch(1, 1000, epoch.UnixMilli()+int64(i), "idle")
		mustAppend(t, l, b)
		want = append(want, b)
	}
	if got := openFilesUnder(t, dir); got == 0 {
		t.Fatalf("got no file open by a log being written, want its segment's")
	}
	// The indexes are in memory until the segment goes to sleep.
	if got := mappingsUnder(t, dir, ".index") + mappingsUnder(t, dir, ".timeindex"); got != 0 {
		t.Fatalf("got %d index files mapped while the log is written, want 0 (in memory)", got)
	}

	later := time.Now().Add(cfg.IdleUnmap + time.Second)
	if err := l.Maintain(later); err != nil {
		t.Fatalf("Maintain: %v", err)
	}
	if got := openFilesUnder(t, dir); got > 2 {
		t.Fatalf("got %d files open by an idle log, want at most 2", got)
	}
	if got := mappingsUnder(t, dir, ".index") + mappingsUnder(t, dir, ".timeindex"); got != 0 {
		t.Fatalf("got %d index mappings in an idle log, want 0", got)
	}
	for _, ext := range []string{".index", ".timeindex"} {
		if _, err := os.Stat(filepath.Join(dir, "00000000000000000000"+ext)); err != nil {
			t.Fatalf("sleep did not write the %s file: %v", ext, err)
		}
	}
	seg := filepath.Join(dir, "00000000000000000000.log")
	if got, size := allocated(t, seg), l.Size(); got > size+1<<20 {
		t.Fatalf("got %d bytes on disk for %d bytes of batches, want at most 1 MiB more", got, size)
	}
	if l.DurableOffset() != l.LogEndOffset() {
		t.Fatalf("got durable offset %d, want the log end %d: an idle log is synced", l.DurableOffset(), l.LogEndOffset())
	}

	// A read of the sleeping log maps it for the reader; the next
	// Maintain after the read goes idle unmaps it again.
	got := readAll(t, l)
	if len(got) != len(want) {
		t.Fatalf("got %d batches after sleep, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs after sleep", i)
		}
	}
	if got := openFilesUnder(t, dir); got > 2 {
		t.Fatalf("got %d files open after a read of an idle log, want at most 2", got)
	}
	if err := l.Maintain(time.Now().Add(cfg.IdleUnmap + time.Second)); err != nil {
		t.Fatalf("Maintain: %v", err)
	}
	if got := mappingsUnder(t, dir, ".log"); got != 0 {
		t.Fatalf("got %d log mappings once the read went idle, want 0", got)
	}

	// A view held across the sleep keeps its bytes.
	v, err := l.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	held := append([]byte(nil), v.Data...)
	res := mustAppend(t, l, testBatch(1, 10, epoch.UnixMilli(), "wake"))
	if res.FirstOffset != 300 {
		t.Fatalf("got offset %d after wake, want 300", res.FirstOffset)
	}
	if err := l.Maintain(time.Now().Add(cfg.IdleUnmap + time.Second)); err != nil {
		t.Fatalf("Maintain: %v", err)
	}
	if !bytes.Equal(v.Data, held) {
		t.Fatalf("a view held across sleep changed")
	}
	v.Release()
	if got := readAll(t, l); len(got) != 301 {
		t.Fatalf("got %d batches after wake and sleep, want 301", len(got))
	}
}

// A log that is never written costs no file: Open, Close and Open again
// leave its directory empty.
func TestUnwrittenLogMakesNoFiles(t *testing.T) {
	dir := t.TempDir()
	for range 2 {
		l := mustOpen(t, dir, DefaultConfig())
		if v, err := l.Read(0, 1<<20); err != nil || len(v.Data) != 0 {
			t.Fatalf("got %d bytes, %v from an empty log, want none", len(v.Data), err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if es, _ := os.ReadDir(dir); len(es) != 0 {
			t.Fatalf("got %d files in the directory of a log never written, want none", len(es))
		}
	}
	l := mustOpen(t, dir, DefaultConfig())
	mustAppend(t, l, testBatch(1, 10, epoch.UnixMilli(), "first"))
	Crash(l)
	l = mustOpen(t, dir, DefaultConfig())
	defer l.Close()
	if got := l.LogEndOffset(); got != 1 {
		t.Fatalf("got log end %d after the first append and a crash, want 1", got)
	}
	if rec := l.Recovery(); rec.ScanFrom != 0 || rec.ScannedBatches != 1 {
		t.Fatalf("got scan from %d over %d batches, want 1 batch from 0", rec.ScanFrom, rec.ScannedBatches)
	}
}

// A log that takes a little data holds little reserved space; one that is
// written fast reserves in larger steps.
func TestReservationFollowsWriteRate(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	l := mustOpen(t, dir, cfg)
	defer l.Close()
	for i := 0; i < 300; i++ {
		mustAppend(t, l, testBatch(1, 1000, epoch.UnixMilli(), "small"))
	}
	seg := filepath.Join(dir, "00000000000000000000.log")
	if got, size := allocated(t, seg), l.Size(); got > size+1<<20 {
		t.Fatalf("got %d bytes on disk for %d bytes of batches, want at most 1 MiB more", got, size)
	}
	// The clock stands still: every reservation is used up within a
	// window of the previous one, so the step doubles up to the limit.
	now := time.Now()
	l.cfg.Now = func() time.Time { return now }
	big := testBatch(16, 60000, epoch.UnixMilli(), "big")
	for i := 0; i < 64; i++ {
		mustAppend(t, l, append([]byte(nil), big...))
	}
	l.appendMu.Lock()
	step := l.segs[len(l.segs)-1].resStep
	l.appendMu.Unlock()
	if step != cfg.PreallocateBytes {
		t.Fatalf("got a reservation step of %d after a fast burst, want %d", step, cfg.PreallocateBytes)
	}
}

// A reopened log scans only what its recovery point does not cover (the
// active segment holds more than memIndexSyncBytes, so the sync wrote its
// indexes).
func TestReopenScansPastRecoveryPointOnly(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.IndexIntervalBytes = 4096
	l := mustOpen(t, dir, cfg)
	var want [][]byte
	const valueSize = 10000
	if 500*valueSize < memIndexSyncBytes {
		t.Fatalf("500 batches of %d bytes do not reach memIndexSyncBytes", valueSize)
	}
	for i := 0; i < 500; i++ {
		b := testBatch(1, valueSize, epoch.UnixMilli()+int64(i), "rp")
		mustAppend(t, l, b)
		want = append(want, b)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	const tail = 20
	for i := 0; i < tail; i++ {
		b := testBatch(1, 1000, epoch.UnixMilli()+int64(500+i), "tail")
		mustAppend(t, l, b)
		want = append(want, b)
	}
	Crash(l)

	l = mustOpen(t, dir, cfg)
	defer l.Close()
	rec := l.Recovery()
	if rec.RecoveryPoint != 500 {
		t.Fatalf("got recovery point %d, want 500", rec.RecoveryPoint)
	}
	// At most one index interval of batches below the recovery point is
	// scanned again, on top of the tail.
	perInterval := int64(cfg.IndexIntervalBytes/valueSize + 1)
	if rec.ScannedBatches < tail || rec.ScannedBatches > tail+perInterval {
		t.Fatalf("got %d batches scanned, want between %d and %d", rec.ScannedBatches, tail, tail+perInterval)
	}
	if rec.ScanFrom > 500 || rec.ScanFrom < 500-perInterval {
		t.Fatalf("got scan from offset %d, want just below the recovery point 500", rec.ScanFrom)
	}
	got := readAll(t, l)
	if len(got) != len(want) {
		t.Fatalf("got %d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs after reopen", i)
		}
	}
	// The recovered tail is not durable until the next sync.
	if l.DurableOffset() != 500 {
		t.Fatalf("got durable offset %d, want the recovery point 500", l.DurableOffset())
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if rp, _ := RecoveryPoint(dir); rp != 520 {
		t.Fatalf("got recovery point %d after Sync, want 520", rp)
	}
	// Time lookups still work across the resumed part.
	if off, _, found, err := l.OffsetForTimestamp(epoch.UnixMilli() + 510); err != nil || !found || off != 510 {
		t.Fatalf("got OffsetForTimestamp %d, %v, %v, want 510", off, found, err)
	}
}

// Discard closes a log to be deleted without syncing: its files close,
// later calls fail with ErrClosed, and a view taken before stays valid.
func TestDiscard(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, DefaultConfig())
	want := testBatch(2, 100, epoch.UnixMilli(), "gone")
	mustAppend(t, l, append([]byte(nil), want...))
	v, err := l.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	syncs := l.Stats().Syncs
	l.Discard()
	if got := l.Stats().Syncs; got != syncs {
		t.Fatalf("got %d syncs after Discard, want %d", got, syncs)
	}
	if got := openFilesUnder(t, dir); got != 0 {
		t.Fatalf("got %d files open after Discard, want 0", got)
	}
	if _, err := l.Append(testBatch(1, 1, 1, "late")); err != ErrClosed {
		t.Fatalf("Append after Discard: got %v, want ErrClosed", err)
	}
	if !bytes.Equal(v.Data[:len(want)][12:], want[12:]) {
		t.Fatalf("a view taken before Discard changed")
	}
	v.Release()
}
