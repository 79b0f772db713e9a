package commitlog

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// crashCases is how many seeded crash cases TestCrashRecovery runs;
// FLUXO_CRASH_CASES raises it (make fuzz does).
func crashCases() int {
	if n, err := strconv.Atoi(os.Getenv("FLUXO_CRASH_CASES")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// crashDir returns a scratch directory, on tmpfs when there is one: the
// property holds for any file system, and tmpfs keeps 1,000 cases fast.
func crashDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "fluxo-crash-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// TestCrashRecovery is the storage property test: random batches, random
// syncs, a crash (files left as they are, nothing flushed or cut), then the
// damage a power cut may do to bytes written after the last sync — a cut at
// a random byte, random byte flips, garbage — plus damaged indexes and
// stale checkpoints. On reopen:
//
//   - every batch whose append returned before the last sync is there,
//     byte for byte;
//   - every batch returned is valid and is what was appended at its offset
//     (nothing corrupt is ever returned);
//   - offsets continue without gaps, before and after new appends.
func TestCrashRecovery(t *testing.T) {
	root := crashDir(t)
	for seed := 0; seed < crashCases(); seed++ {
		dir := filepath.Join(root, strconv.Itoa(seed))
		if err := crashCase(dir, uint64(seed)); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		os.RemoveAll(dir)
	}
}

func crashCase(dir string, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	cfg := DefaultConfig()
	cfg.SegmentBytes = int64(4<<10 + r.IntN(12<<10))
	cfg.MaxBatchBytes = 4 << 10
	cfg.IndexIntervalBytes = 256 + r.IntN(1024)
	cfg.MaxIndexBytes = 256
	cfg.PreallocateBytes = int64(r.IntN(8 << 10))
	l, err := Open(dir, cfg)
	if err != nil {
		return err
	}
	var appended [][]byte
	n := 5 + r.IntN(60)
	for i := 0; i < n; i++ {
		b := randomBatch(r, int64(1000+i))
		if _, err := l.Append(b); err != nil {
			return fmt.Errorf("append %d: %w", i, err)
		}
		appended = append(appended, b) // now carries its offset
		if r.IntN(5) == 0 {
			if err := l.Sync(); err != nil {
				return err
			}
		}
	}
	durable := l.DurableOffset()
	l.release() // the crash

	if err := damage(r, dir, durable); err != nil {
		return err
	}

	l, err = Open(dir, cfg)
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	defer l.Close()
	got, err := readAllErr(l)
	if err != nil {
		return err
	}
	want := int64(0)
	for i, g := range got {
		b, err := ValidateBatch(g)
		if err != nil {
			return fmt.Errorf("batch %d returned corrupt: %v", i, err)
		}
		if b.BaseOffset != want {
			return fmt.Errorf("batch %d: got offset %d, want %d (gap)", i, b.BaseOffset, want)
		}
		if i >= len(appended) || !equalMaskingEpoch(g, appended[i]) {
			return fmt.Errorf("batch %d at offset %d is not what was appended", i, b.BaseOffset)
		}
		want = b.NextOffset()
	}
	for i, a := range appended {
		if h, _ := ParseHeader(a); h.NextOffset() <= durable && i >= len(got) {
			return fmt.Errorf("durable batch %d (offsets %d-%d, durable below %d) lost", i, h.BaseOffset, h.LastOffset(), durable)
		}
	}
	if l.LogEndOffset() != want {
		return fmt.Errorf("got log end %d, want %d", l.LogEndOffset(), want)
	}
	// New appends continue where recovery ended.
	for i := 0; i < 3; i++ {
		res, err := l.Append(randomBatch(r, 5000))
		if err != nil {
			return fmt.Errorf("append after recovery: %w", err)
		}
		if res.FirstOffset != want {
			return fmt.Errorf("append after recovery got offset %d, want %d", res.FirstOffset, want)
		}
		want = res.LastOffset + 1
		l.SetHighWatermark(want)
	}
	got2, err := readAllErr(l)
	if err != nil {
		return err
	}
	if len(got2) != len(got)+3 {
		return fmt.Errorf("after new appends got %d batches, want %d", len(got2), len(got)+3)
	}
	return nil
}

// equalMaskingEpoch compares two batches except for the partition leader
// epoch: the format leaves it outside the CRC (a leader stamps it), so a
// flipped epoch byte in an unsynced tail is undetectable by design.
func equalMaskingEpoch(a, b []byte) bool {
	if len(a) != len(b) || len(a) < HeaderSize {
		return false
	}
	return bytes.Equal(a[:offLeaderEpoch], b[:offLeaderEpoch]) && bytes.Equal(a[offMagic:], b[offMagic:])
}

func readAllErr(l *Log) ([][]byte, error) {
	var out [][]byte
	off := l.LogStartOffset()
	for off < l.HighWatermark() {
		v, err := l.Read(off, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("read %d: %w", off, err)
		}
		if len(v.Data) == 0 {
			return nil, fmt.Errorf("read %d: empty below the high watermark %d", off, l.HighWatermark())
		}
		err = Batches(v.Data, func(_ Batch, raw []byte) bool {
			out = append(out, append([]byte(nil), raw...))
			return true
		})
		off = v.Next
		v.Release()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// damage does to the files what a power cut may do to writes after the
// last sync. Durable bytes are never touched.
func damage(r *rand.Rand, dir string, durable int64) error {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	sort.Strings(logs)
	type region struct {
		path     string
		from, to int64 // volatile bytes of this file
	}
	var vol []region
	for _, p := range logs {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		pos := int64(0)
		for pos < int64(len(data)) {
			b, err := ParseHeader(data[pos:])
			if err != nil || b.NextOffset() > durable {
				break
			}
			pos += int64(b.Size)
		}
		if pos < int64(len(data)) {
			vol = append(vol, region{p, pos, int64(len(data))})
		}
	}
	if len(vol) > 0 {
		switch r.IntN(4) {
		case 0: // cut at a random byte, maybe losing later segments too
			g := vol[r.IntN(len(vol))]
			at := g.from + r.Int64N(g.to-g.from+1)
			if err := os.Truncate(g.path, at); err != nil {
				return err
			}
			if r.IntN(2) == 0 {
				for _, p := range logs {
					if p > g.path {
						os.Remove(p)
					}
				}
			}
		case 1: // flipped bytes
			for k := 1 + r.IntN(5); k > 0; k-- {
				g := vol[r.IntN(len(vol))]
				if g.to > g.from {
					flip(g.path, g.from+r.Int64N(g.to-g.from), byte(1+r.IntN(255)))
				}
			}
		case 2: // a torn sector: garbage in the middle of unsynced data
			g := vol[r.IntN(len(vol))]
			if g.to > g.from {
				at := g.from + r.Int64N(g.to-g.from)
				junk := make([]byte, 1+r.IntN(512))
				for i := range junk {
					junk[i] = byte(r.Uint32())
				}
				f, err := os.OpenFile(g.path, os.O_WRONLY, 0)
				if err != nil {
					return err
				}
				f.WriteAt(junk[:min(int64(len(junk)), g.to-at)], at)
				f.Close()
			}
		case 3: // the unsynced writes all made it
		}
	}
	// Indexes are rebuilt or verified, wherever they are.
	idx, _ := filepath.Glob(filepath.Join(dir, "*index"))
	for _, p := range idx {
		switch r.IntN(8) {
		case 0:
			os.Remove(p)
		case 1:
			if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
				os.Truncate(p, r.Int64N(fi.Size()))
			}
		case 2:
			if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
				flip(p, r.Int64N(fi.Size()), byte(1+r.IntN(255)))
			}
		}
	}
	// A checkpoint may be stale or missing; never ahead of the truth.
	switch r.IntN(6) {
	case 0:
		os.Remove(filepath.Join(dir, recoveryPointFile))
	case 1:
		os.WriteFile(filepath.Join(dir, recoveryPointFile), encodeOffset(r.Int64N(durable+1)), 0o644)
	case 2:
		os.Remove(filepath.Join(dir, epochFile))
	}
	return nil
}

func flip(path string, at int64, mask byte) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], at); err != nil {
		return
	}
	b[0] ^= mask
	f.WriteAt(b[:], at)
}

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
