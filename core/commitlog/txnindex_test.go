package commitlog

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func txnFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+txnIndexDotEx))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// TestTxnIndexLifecycle: entries go to the index of their marker's
// segment, survive a reopen, are read by range, and follow their segment
// through truncation, retention and damage.
func TestTxnIndexLifecycle(t *testing.T) {
	dir := t.TempDir()
	cfg := compactConfig()
	l := mustOpen(t, dir, cfg)
	defer func() { l.Close() }()
	// Offsets: 0 data(1), 1 marker(1) | 2 data(2), 3 data(3), 4 marker(2) | 5 marker(3) | 6 data
	appendRoll(t, l,
		txnBatch(1, "a", "1"), markerBatch(1, false),
		txnBatch(2, "b", "2"), txnBatch(3, "c", "3"), markerBatch(2, false),
		markerBatch(3, false), txnBatch(4, "d", "4"),
	)
	es := []AbortedTxn{
		{ProducerID: 1, FirstOffset: 0, LastOffset: 1, LastStableOffset: 2},
		{ProducerID: 2, FirstOffset: 2, LastOffset: 4, LastStableOffset: 3},
		{ProducerID: 3, FirstOffset: 3, LastOffset: 5, LastStableOffset: 6},
	}
	for _, a := range []AbortedTxn{es[1], es[0], es[2], es[1]} { // out of order, and a repeat
		if err := l.AddAbortedTxn(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.AddAbortedTxn(AbortedTxn{ProducerID: 1, FirstOffset: 0, LastOffset: 7, LastStableOffset: 0}); err == nil {
		t.Fatal("entry past the log end: got nil, want an error")
	}
	if got, want := fmt.Sprint(txnFiles(t, dir)), "[00000000000000000001.txnindex 00000000000000000004.txnindex 00000000000000000005.txnindex]"; got != want {
		t.Fatalf("got files %s, want %s", got, want)
	}
	check := func(when string) {
		t.Helper()
		for _, c := range []struct {
			from, to int64
			want     []AbortedTxn
		}{
			{0, 100, es},
			{0, 1, es[:1]},  // stops at entry 0: its LSO 2 is past 1
			{2, 3, es[1:2]}, // entry 2 starts at 3
			{2, 4, es[1:3]},
			{4, 5, es[1:3]}, // both markers at or after 4
			{5, 6, es[2:3]},
			{6, 100, nil},   // every marker before the range
			{1, 2, es[0:1]}, // the marker itself is in the range
		} {
			if got := l.AbortedTxns(c.from, c.to); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("%s: [%d, %d): got %v, want %v", when, c.from, c.to, got, c.want)
			}
		}
	}
	check("written")
	if err := l.SyncTxnIndex(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = mustOpen(t, dir, cfg)
	check("reopened")

	// A damaged entry and what follows it are dropped at open.
	path := filepath.Join(dir, "00000000000000000004.txnindex")
	data, _ := os.ReadFile(path)
	data[0] = 9 // version
	os.WriteFile(path, data, 0o644)
	os.WriteFile(filepath.Join(dir, "00000000000000000099.txnindex"), data, 0o644) // no segment
	l.Close()
	l = mustOpen(t, dir, cfg)
	want := []AbortedTxn{es[0], es[2]}
	if got := l.AbortedTxns(0, 100); !reflect.DeepEqual(got, want) {
		t.Fatalf("damaged: got %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000099.txnindex")); !os.IsNotExist(err) {
		t.Fatalf("orphan index: got %v, want it removed", err)
	}
	if err := l.AddAbortedTxn(es[1]); err != nil { // a replay adds it back
		t.Fatal(err)
	}
	check("added back")

	// Truncation cuts the entries past the new end, durably.
	l.SetHighWatermark(l.LogEndOffset())
	if _, err := l.TruncateTo(5); err != nil {
		t.Fatal(err)
	}
	if got := l.AbortedTxns(0, 100); !reflect.DeepEqual(got, es[:2]) {
		t.Fatalf("truncated to 5: got %v, want %v", got, es[:2])
	}
	if got, want := fmt.Sprint(txnFiles(t, dir)), "[00000000000000000001.txnindex 00000000000000000004.txnindex]"; got != want {
		t.Fatalf("truncated to 5: got files %s, want %s", got, want)
	}
	// Retention deletes the index with its segment.
	if _, err := l.DeleteBefore(2); err != nil {
		t.Fatal(err)
	}
	if got := l.AbortedTxns(0, 100); !reflect.DeepEqual(got, es[1:2]) {
		t.Fatalf("log start 2: got %v, want %v", got, es[1:2])
	}
	if got, want := fmt.Sprint(txnFiles(t, dir)), "[00000000000000000004.txnindex]"; got != want {
		t.Fatalf("log start 2: got files %s, want %s", got, want)
	}
	l.Close()
	l = mustOpen(t, dir, cfg)
	if got := l.AbortedTxns(0, 100); !reflect.DeepEqual(got, es[1:2]) {
		t.Fatalf("reopened: got %v, want %v", got, es[1:2])
	}
}

// TestTxnIndexCleanedWithSegments: a cleaning that merges segments keeps
// the entries of the transactions whose data it drops (their markers stay
// in its first pass) in the cleaned segment's index, and a swap
// interrupted at any step leaves the index of the old segments or of the
// new one.
func TestTxnIndexCleanedWithSegments(t *testing.T) {
	for _, stop := range []string{"", "cleaned", "manifest", "rename 00000000000000000000.txnindex", "checkpoint"} {
		t.Run(stop, func(t *testing.T) {
			dir := t.TempDir()
			cfg := compactConfig()
			l := mustOpen(t, dir, cfg)
			defer func() { l.Close() }()
			appendRoll(t, l,
				txnBatch(1, "a", "1"), markerBatch(1, false), // 0, 1
				txnBatch(2, "b", "2"), markerBatch(2, false), // 2, 3
				keyedBatch(1, CompressionNone, []string{"c"}, [][]byte{[]byte("c")}), // 4
			)
			es := []AbortedTxn{{ProducerID: 1, FirstOffset: 0, LastOffset: 1, LastStableOffset: 2}, {ProducerID: 2, FirstOffset: 2, LastOffset: 3, LastStableOffset: 4}}
			for _, a := range es {
				if err := l.AddAbortedTxn(a); err != nil {
					t.Fatal(err)
				}
			}
			c, _ := NewCleaner(DefaultCleanerConfig())
			txns := Transactions{StableOffset: l.HighWatermark(), Aborted: []AbortedRange{{1, 0, 1}, {2, 2, 3}}}
			if stop != "" {
				swapHook = func(step string) error {
					if step == stop {
						return fmt.Errorf("crash at %s", step)
					}
					return nil
				}
				defer func() { swapHook = nil }()
			}
			_, err := c.CleanTxn(context.Background(), l, epoch, txns)
			if stop == "" && err != nil {
				t.Fatal(err)
			}
			if stop == "" {
				if got := l.AbortedTxns(0, 100); !reflect.DeepEqual(got, es) {
					t.Fatalf("cleaned: got %v, want %v", got, es)
				}
			}
			Crash(l)
			swapHook = nil
			l = mustOpen(t, dir, cfg)
			if got := l.AbortedTxns(0, 100); !reflect.DeepEqual(got, es) {
				t.Fatalf("reopened: got %v, want %v (files %v)", got, es, txnFiles(t, dir))
			}
		})
	}
}

// FuzzDecodeTxnEntry: decoding never panics, and an entry that decodes
// encodes back to the same bytes.
func FuzzDecodeTxnEntry(f *testing.F) {
	f.Add(appendTxnEntry(nil, AbortedTxn{ProducerID: 7, FirstOffset: 3, LastOffset: 9, LastStableOffset: 4}))
	f.Add(make([]byte, txnEntrySize))
	f.Add([]byte{0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeTxnEntry(data)
		if err != nil {
			return
		}
		if got := appendTxnEntry(nil, a); !bytes.Equal(got, data[:txnEntrySize]) {
			t.Fatalf("got %x after a round trip, want %x", got, data[:txnEntrySize])
		}
	})
}
