package commitlog

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// dirFiles lists the names of the files in dir.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// memEntries copies the active segment's index entries, as readers see
// them.
func memEntries(t *testing.T, l *Log) (base int64, idx, tidx []byte) {
	t.Helper()
	s := l.segs[len(l.segs)-1]
	r, err := s.acquire(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer r.release()
	return s.base, append([]byte(nil), r.idx.data[:int(r.nIdx)*offsetEntrySize]...),
		append([]byte(nil), r.tidx.data[:int(r.nTidx)*timeEntrySize]...)
}

// checkLookups checks, for every batch of want (as appended, in order from
// offset 0), that a read at each of its offsets starts with it, and that
// OffsetForTimestamp finds the first record at or after each batch's
// timestamps.
func checkLookups(t *testing.T, l *Log, want [][]byte) {
	t.Helper()
	type rec struct{ off, ts int64 }
	var recs []rec
	for _, raw := range want {
		b, err := ParseHeader(raw)
		if err != nil {
			t.Fatal(err)
		}
		for o := b.BaseOffset; o <= b.LastOffset(); o++ {
			v, err := l.Read(o, 1)
			if err != nil {
				t.Fatalf("Read(%d): %v", o, err)
			}
			if v.First != b.BaseOffset || !bytes.Equal(v.Data[:len(raw)], raw) {
				t.Fatalf("Read(%d) starts at batch %d, want %d", o, v.First, b.BaseOffset)
			}
			v.Release()
		}
		if err := Records(b, raw, func(o, ts int64, _ *kmsg.Record) bool {
			recs = append(recs, rec{o, ts})
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range recs {
		wantOff, wantTS := int64(-1), int64(0)
		for _, r := range recs {
			if r.ts >= q.ts {
				wantOff, wantTS = r.off, r.ts
				break
			}
		}
		off, ts, found, err := l.OffsetForTimestamp(q.ts)
		if err != nil || !found || off != wantOff || ts != wantTS {
			t.Fatalf("OffsetForTimestamp(%d) = %d, %d, %v, %v; want %d, %d", q.ts, off, ts, found, err, wantOff, wantTS)
		}
	}
}

// The first write to a fresh log creates one file, the .log: the indexes
// stay in memory, where readers find them, until they must be on disk.
// Each way they get there leaves files holding the entries readers saw.
func TestFirstWriteCreatesOneFile(t *testing.T) {
	for _, how := range []string{"close", "roll", "sleep", "truncate", "sync", "grow"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			cfg := DefaultConfig()
			cfg.IndexIntervalBytes = 2048
			l := mustOpen(t, dir, cfg)
			if got := dirFiles(t, dir); len(got) != 0 {
				t.Fatalf("a log never written holds files %v, want none", got)
			}
			var want [][]byte
			appendOne := func(i int, size int) {
				// Timestamps mostly grow, sometimes step back.
				ts := epoch.UnixMilli() + int64(i)*10 - int64(i%3)*15
				b := testBatch(1+i%4, size, ts, "mem")
				mustAppend(t, l, b)
				want = append(want, b)
			}
			appendOne(0, 500)
			if got := dirFiles(t, dir); len(got) != 1 || got[0] != "00000000000000000000.log" {
				t.Fatalf("the first write created %v, want only the .log", got)
			}
			for i := 1; i < 200; i++ {
				appendOne(i, 500)
			}
			if got := dirFiles(t, dir); len(got) != 1 {
				t.Fatalf("200 writes left %v, want only the .log", got)
			}
			_, idx, tidx := memEntries(t, l)
			if len(idx) < 20*offsetEntrySize || len(tidx) < 20*timeEntrySize {
				t.Fatalf("got %d offset and %d time index bytes in memory, want 20 entries of each at least", len(idx), len(tidx))
			}
			checkLookups(t, l, want)

			// A small sync leaves the indexes in memory: the recovery
			// point may pass data they cover (recovery needs no index).
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			for _, name := range dirFiles(t, dir) {
				if filepath.Ext(name) == ".index" || filepath.Ext(name) == ".timeindex" {
					t.Fatalf("a sync of %d bytes wrote %s, want the indexes still in memory", l.Size(), name)
				}
			}

			idxPath := filepath.Join(dir, "00000000000000000000.index")
			tidxPath := filepath.Join(dir, "00000000000000000000.timeindex")
			switch how {
			case "close", "roll":
				_, idx, tidx = memEntries(t, l)
				var err error
				if how == "close" {
					err = l.Close()
				} else {
					err = l.Roll()
				}
				if err != nil {
					t.Fatal(err)
				}
				// Sealing adds a time entry for the largest timestamp
				// when the last one does not hold it.
				if got, _ := os.ReadFile(tidxPath); len(got) == len(tidx)+timeEntrySize {
					tidx = append(tidx, got[len(tidx):]...)
				}
			case "sleep":
				_, idx, tidx = memEntries(t, l)
				if err := l.Maintain(time.Now().Add(cfg.IdleUnmap + time.Second)); err != nil {
					t.Fatal(err)
				}
			case "truncate":
				b, _ := ParseHeader(want[150])
				if _, err := l.TruncateTo(b.BaseOffset); err != nil {
					t.Fatal(err)
				}
				want = want[:150]
				_, idx, tidx = memEntries(t, l)
			case "sync":
				for i := 200; l.Size() < memIndexSyncBytes; i++ {
					appendOne(i, 50000)
				}
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
				_, idx, tidx = memEntries(t, l)
			case "grow":
				// No sync: the write past memIndexMaxBytes makes them.
				for i := 200; ; i++ {
					if _, err := os.Stat(idxPath); err == nil {
						if l.Size() < memIndexMaxBytes {
							t.Fatalf("index file written at %d bytes, before memIndexMaxBytes", l.Size())
						}
						break
					}
					if l.Size() > memIndexMaxBytes+1<<20 {
						t.Fatalf("no index file at %d bytes, past memIndexMaxBytes", l.Size())
					}
					appendOne(i, 200000)
				}
				_, idx, tidx = memEntries(t, l)
			}
			gotIdx, err := os.ReadFile(idxPath)
			if err != nil {
				t.Fatalf("after %s: %v", how, err)
			}
			gotTidx, err := os.ReadFile(tidxPath)
			if err != nil {
				t.Fatalf("after %s: %v", how, err)
			}
			if how == "grow" {
				// Written to since: space is reserved past the entries.
				if len(gotIdx) > len(idx) && allZero(gotIdx[len(idx):]) {
					gotIdx = gotIdx[:len(idx)]
				}
				if len(gotTidx) > len(tidx) && allZero(gotTidx[len(tidx):]) {
					gotTidx = gotTidx[:len(tidx)]
				}
			}
			if !bytes.Equal(gotIdx, idx) || !bytes.Equal(gotTidx, tidx) {
				t.Fatalf("after %s: index files hold %d and %d bytes, want the %d and %d in memory, equal", how, len(gotIdx), len(gotTidx), len(idx), len(tidx))
			}
			if how == "sync" || how == "truncate" || how == "grow" {
				// Later entries go to the files (their mapping).
				for i, n := len(want), len(want)+50; i < n; i++ {
					appendOne(i, 3000)
				}
			}
			if how != "close" {
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
			gotIdx, _ = os.ReadFile(idxPath)
			gotTidx, _ = os.ReadFile(tidxPath)
			l = mustOpen(t, dir, cfg)
			defer l.Close()
			// Recovery checks the last segment's indexes against the log:
			// it finds nothing to change.
			if n := l.Recovery().IndexesRebuilt; n != 0 {
				t.Fatalf("reopen after %s rebuilt %d indexes, want 0 (the files were right)", how, n)
			}
			if again, _ := os.ReadFile(tidxPath); !bytes.Equal(again, gotTidx) {
				t.Fatalf("reopen after %s rewrote the time index (%d bytes, was %d)", how, len(again), len(gotTidx))
			}
			if again, _ := os.ReadFile(idxPath); !bytes.Equal(again, gotIdx) {
				t.Fatalf("reopen after %s rewrote the offset index", how)
			}
			got := readAll(t, l)
			if len(got) != len(want) {
				t.Fatalf("reopen after %s: got %d batches, want %d", how, len(got), len(want))
			}
			checkLookups(t, l, want)
		})
	}
}

// A crash before anything is synced leaves a .log without index files:
// recovery rebuilds them, and they lead lookups right.
func TestCrashBeforeIndexFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.IndexIntervalBytes = 1024
	l := mustOpen(t, dir, cfg)
	var want [][]byte
	for i := 0; i < 100; i++ {
		b := testBatch(1+i%3, 400, epoch.UnixMilli()+int64(i*7%50), "crash")
		mustAppend(t, l, b)
		want = append(want, b)
	}
	_, idx, tidx := memEntries(t, l)
	Crash(l)
	if got := dirFiles(t, dir); len(got) != 1 {
		t.Fatalf("crash left %v, want only the .log", got)
	}
	l = mustOpen(t, dir, cfg)
	defer l.Close()
	for ext, w := range map[string][]byte{".index": idx, ".timeindex": tidx} {
		got, err := os.ReadFile(filepath.Join(dir, "00000000000000000000"+ext))
		if err != nil {
			t.Fatalf("recovery did not rebuild %s: %v", ext, err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("rebuilt %s holds %d bytes, want the %d the writer had", ext, len(got), len(w))
		}
	}
	l.SetHighWatermark(l.LogEndOffset())
	if got := readAll(t, l); len(got) != len(want) {
		t.Fatalf("got %d batches after the crash, want %d", len(got), len(want))
	}
	checkLookups(t, l, want)
}
