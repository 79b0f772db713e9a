package commitlog_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/fluxo-io/fluxo/core/commitlog"
	"github.com/fluxo-io/fluxo/core/commitlog/crashtest"
	"github.com/twmb/franz-go/pkg/kmsg"
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
	eachSeed(t, crashCases(), crashCase)
}

// eachSeed runs one case per seed, each in a directory of its own under
// crashDir, removed once the case passes.
func eachSeed(t *testing.T, seeds int, run func(dir string, seed uint64) error) {
	t.Helper()
	root := crashDir(t)
	for seed := 0; seed < seeds; seed++ {
		dir := filepath.Join(root, strconv.Itoa(seed))
		if err := run(dir, uint64(seed)); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		os.RemoveAll(dir)
	}
}

func crashCase(dir string, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	cfg := commitlog.DefaultConfig()
	cfg.SegmentBytes = int64(4<<10 + r.IntN(12<<10))
	cfg.MaxBatchBytes = 4 << 10
	cfg.IndexIntervalBytes = 256 + r.IntN(1024)
	cfg.MaxIndexBytes = 256
	cfg.PreallocateBytes = int64(r.IntN(8 << 10))
	l, err := commitlog.Open(dir, cfg)
	if err != nil {
		return err
	}
	var appended [][]byte
	n := 5 + r.IntN(60)
	for i := 0; i < n; i++ {
		b := commitlog.RandomBatch(r, int64(1000+i))
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
	commitlog.Crash(l)

	if err := damage(r, dir, durable); err != nil {
		return err
	}

	l, err = commitlog.Open(dir, cfg)
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	defer l.Close()
	// Every batch valid, offsets from 0 without gaps (ReadAll checks).
	got, err := crashtest.ReadAll(l)
	if err != nil {
		return err
	}
	want := int64(0)
	for i, g := range got {
		b, _ := commitlog.ParseHeader(g)
		if i >= len(appended) || !commitlog.EqualMaskingEpoch(g, appended[i]) {
			return fmt.Errorf("batch %d at offset %d is not what was appended", i, b.BaseOffset)
		}
		want = b.NextOffset()
	}
	for i, a := range appended {
		if h, _ := commitlog.ParseHeader(a); h.NextOffset() <= durable && i >= len(got) {
			return fmt.Errorf("durable batch %d (offsets %d-%d, durable below %d) lost", i, h.BaseOffset, h.LastOffset(), durable)
		}
	}
	if l.LogEndOffset() != want {
		return fmt.Errorf("got log end %d, want %d", l.LogEndOffset(), want)
	}
	// New appends continue where recovery ended.
	for i := 0; i < 3; i++ {
		res, err := l.Append(commitlog.RandomBatch(r, 5000))
		if err != nil {
			return fmt.Errorf("append after recovery: %w", err)
		}
		if res.FirstOffset != want {
			return fmt.Errorf("append after recovery got offset %d, want %d", res.FirstOffset, want)
		}
		want = res.LastOffset + 1
		l.SetHighWatermark(want)
	}
	got2, err := crashtest.ReadAll(l)
	if err != nil {
		return err
	}
	if len(got2) != len(got)+3 {
		return fmt.Errorf("after new appends got %d batches, want %d", len(got2), len(got)+3)
	}
	return nil
}

// damage does to the files what a power cut may do to writes after the
// last sync (crashtest.PowerCut), and damages indexes and checkpoints as
// recovery must survive. Durable bytes are never touched.
func damage(r *rand.Rand, dir string, durable int64) error {
	if _, err := crashtest.PowerCut(r, dir, durable); err != nil {
		return err
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
				if err := crashtest.FlipByte(p, r.Int64N(fi.Size()), byte(1+r.IntN(255))); err != nil {
					return err
				}
			}
		}
	}
	// A checkpoint may be stale or missing; never ahead of the truth.
	switch r.IntN(6) {
	case 0:
		os.Remove(filepath.Join(dir, commitlog.RecoveryPointFile))
	case 1:
		os.WriteFile(filepath.Join(dir, commitlog.RecoveryPointFile), commitlog.EncodeOffset(r.Int64N(durable+1)), 0o644)
	case 2:
		os.Remove(filepath.Join(dir, commitlog.EpochFile))
	}
	return nil
}

// TestReadAllCatchesDamage: crashtest.ReadAll, which the property test
// relies on to find corrupt batches and gaps, reports a log whose
// durable data was damaged behind its back (below the recovery point,
// where recovery trusts the data and reads check the CRC lazily).
func TestReadAllCatchesDamage(t *testing.T) {
	dir := t.TempDir()
	l, err := commitlog.Open(dir, commitlog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3; i++ {
		res, err := l.Append(commitlog.RandomBatch(r, int64(i)))
		if err != nil {
			t.Fatal(err)
		}
		l.SetHighWatermark(res.LastOffset + 1)
	}
	got, err := crashtest.ReadAll(l)
	if err != nil || len(got) != 3 {
		t.Fatalf("intact log: got %d batches, %v; want 3, nil", len(got), err)
	}
	// A flipped byte in the second batch's records, under the open log.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if err := crashtest.FlipByte(segs[0], int64(len(got[0])+commitlog.HeaderSize+2), 0xff); err != nil {
		t.Fatal(err)
	}
	if _, err := crashtest.ReadAll(l); !errors.Is(err, crashtest.ErrBadLog) {
		t.Fatalf("damaged log: got %v, want ErrBadLog", err)
	}
}

// TestCrashBeforeFirstSync: random batches into a fresh log (some segments
// rolled, the active one's indexes still in memory), a crash before any
// sync, sometimes a power cut's damage too. On reopen every segment has
// its index files again, every batch returned is what was appended, a
// process crash loses nothing, and reads and time lookups find the right
// batches.
func TestCrashBeforeFirstSync(t *testing.T) {
	eachSeed(t, max(crashCases()/4, 1), crashBeforeSyncCase)
}

func crashBeforeSyncCase(dir string, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 0x1d5))
	cfg := commitlog.DefaultConfig()
	cfg.SegmentBytes = int64(8<<10 + r.IntN(64<<10))
	cfg.MaxBatchBytes = 4 << 10
	cfg.IndexIntervalBytes = 256 + r.IntN(1024)
	cfg.PreallocateBytes = int64(r.IntN(8 << 10))
	l, err := commitlog.Open(dir, cfg)
	if err != nil {
		return err
	}
	var appended [][]byte
	for i, n := 0, 1+r.IntN(80); i < n; i++ {
		b := commitlog.RandomBatch(r, int64(1000+r.IntN(100)+i*3))
		if _, err := l.Append(b); err != nil {
			return fmt.Errorf("append %d: %w", i, err)
		}
		appended = append(appended, b)
	}
	if l.DurableOffset() != 0 {
		return fmt.Errorf("durable offset %d before any sync", l.DurableOffset())
	}
	commitlog.Crash(l)
	powerCut := r.IntN(2) == 0
	if powerCut {
		if _, err := crashtest.PowerCut(r, dir, 0); err != nil {
			return err
		}
	}

	l, err = commitlog.Open(dir, cfg)
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	defer l.Close()
	got, err := crashtest.ReadAll(l)
	if err != nil {
		return err
	}
	if !powerCut && len(got) != len(appended) {
		return fmt.Errorf("a process crash lost batches: got %d, want %d", len(got), len(appended))
	}
	type rec struct{ off, ts int64 }
	var recs []rec
	for i, g := range got {
		if !commitlog.EqualMaskingEpoch(g, appended[i]) {
			return fmt.Errorf("batch %d is not what was appended", i)
		}
		b, _ := commitlog.ParseHeader(g)
		v, err := l.Read(b.LastOffset(), 1)
		if err != nil {
			return err
		}
		first := v.First
		v.Release()
		if first != b.BaseOffset {
			return fmt.Errorf("read at %d starts at %d, want batch %d", b.LastOffset(), first, b.BaseOffset)
		}
		commitlog.Records(b, g, func(o, ts int64, _ *kmsg.Record) bool {
			recs = append(recs, rec{o, ts})
			return true
		})
	}
	for _, q := range recs {
		want := rec{-1, 0}
		for _, c := range recs {
			if c.ts >= q.ts {
				want = c
				break
			}
		}
		off, ts, found, err := l.OffsetForTimestamp(q.ts)
		if err != nil || !found || off != want.off || ts != want.ts {
			return fmt.Errorf("OffsetForTimestamp(%d) = %d, %d, %v, %v; want %d, %d", q.ts, off, ts, found, err, want.off, want.ts)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, p := range logs {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			continue
		}
		stem := p[:len(p)-len(".log")]
		for _, ext := range []string{".index", ".timeindex"} {
			if _, err := os.Stat(stem + ext); err != nil {
				return fmt.Errorf("recovery left %s without its %s: %v", filepath.Base(p), ext, err)
			}
		}
	}
	return nil
}
