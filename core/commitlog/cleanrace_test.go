package commitlog

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// txnsOf is what a partition gives the cleaner (Partition.CleanerTxns):
// the aborted transactions in the log's transaction indexes below the
// high watermark.
func txnsOf(l *Log) Transactions {
	txns := Transactions{StableOffset: l.HighWatermark()}
	for _, a := range l.AbortedTxns(l.LogStartOffset(), txns.StableOffset) {
		txns.Aborted = append(txns.Aborted, AbortedRange{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset, LastOffset: a.LastOffset})
	}
	return txns
}

// TestCleanKeepsReaddedTxnEntry: a follower's truncation replays the log
// and adds back an aborted transaction's index entry that was missing,
// while a cleaning of the segment holding its marker is under way. The
// entry must survive: the cleaning gives up (its swap would write the
// index it read before, or it took the transaction's data for committed
// data), and the next cleaning, told of the transaction, drops its data
// and keeps the entry.
func TestCleanKeepsReaddedTxnEntry(t *testing.T) {
	for _, c := range []struct {
		name string
		step string // the cleaner's step at which the entry comes back
		told bool   // the cleaning was given the transaction all the same
	}{
		{"before the entries are read", "cleaned log", false},
		{"before the swap", "cleaned", false},
		{"before the swap, transaction given", "cleaned", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := compactConfig()
			l := mustOpen(t, dir, cfg)
			defer func() { l.Close() }()
			appendRoll(t, l,
				keyedBatch(1, CompressionNone, []string{"k"}, [][]byte{[]byte("committed")}), // 0
				txnBatch(1, "k", "aborted"), // 1
				markerBatch(1, false),       // 2, its index entry missing
				keyedBatch(1, CompressionNone, []string{"x"}, [][]byte{[]byte("x1")}), // 3
			)
			// 4, 5 in the active segment, 5 to be cut.
			mustAppend(t, l, keyedBatch(1, CompressionNone, []string{"y"}, [][]byte{[]byte("y1")}))
			mustAppend(t, l, keyedBatch(1, CompressionNone, []string{"y"}, [][]byte{[]byte("y2")}))
			entry := AbortedTxn{ProducerID: 1, FirstOffset: 1, LastOffset: 2, LastStableOffset: 3}

			txns := txnsOf(l)
			if len(txns.Aborted) != 0 {
				t.Fatalf("aborted before the replay: got %v, want none", txns.Aborted)
			}
			if c.told {
				txns.Aborted = []AbortedRange{{ProducerID: 1, FirstOffset: 1, LastOffset: 2}}
			}
			readded := false
			swapHook = func(step string) error {
				if step != c.step || readded {
					return nil
				}
				readded = true
				// The follower cuts its diverging tail and replays the log,
				// adding back the entry of the abort marker it finds.
				if _, err := l.TruncateTo(5); err != nil {
					return err
				}
				return l.AddAbortedTxn(entry)
			}
			defer func() { swapHook = nil }()
			cl, _ := NewCleaner(DefaultCleanerConfig())
			res, err := cl.CleanTxn(context.Background(), l, epoch, txns)
			swapHook = nil
			if err != nil {
				t.Fatal(err)
			}
			if !readded {
				t.Fatalf("the cleaning never reached step %q", c.step)
			}
			if got, want := l.AbortedTxns(0, 100), []AbortedTxn{entry}; !reflect.DeepEqual(got, want) {
				t.Fatalf("after the cleaning (cleaned %v): got aborted %v, want %v", res.Cleaned, got, want)
			}
			if res.Cleaned || cl.Stats().GaveUp != 1 {
				t.Fatalf("cleaning: got %+v, %d given up, want it given up", res, cl.Stats().GaveUp)
			}
			if err := l.SyncTxnIndex(); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, dir, cfg)
			l.SetHighWatermark(l.LogEndOffset())
			if got, want := l.AbortedTxns(0, 100), []AbortedTxn{entry}; !reflect.DeepEqual(got, want) {
				t.Fatalf("reopened: got aborted %v, want %v", got, want)
			}

			// The next cleaning is told of the transaction.
			res, err = cl.CleanTxn(context.Background(), l, epoch, txnsOf(l))
			if err != nil || !res.Cleaned {
				t.Fatalf("next cleaning: got %+v, %v, want a cleaning", res, err)
			}
			if got := dataRecords(t, l); strings.Contains(got, "aborted") || !strings.Contains(got, "0:k=committed") {
				t.Fatalf("next cleaning: got records %q, want the committed k and not the aborted one", got)
			}
			if got, want := l.AbortedTxns(0, 100), []AbortedTxn{entry}; !reflect.DeepEqual(got, want) {
				t.Fatalf("next cleaning: got aborted %v, want %v (its data dropped in this pass)", got, want)
			}
		})
	}
}

// TestCleanAfterTruncationBelow: a truncation below the high watermark
// (a follower whose leader lost an unsynced tail) into the segments under
// cleaning, followed by new batches, a roll and a sync before the swap,
// leaves those segments in the list as they were: the swap must not put
// back the batches cleaned from before the cut, nor drop the new ones.
func TestCleanAfterTruncationBelow(t *testing.T) {
	for _, c := range []struct {
		name string
		cut  int64
		want string
	}{
		{"into the segment", 1, "0:a=old0 1:c=new 2:d=new "},
		{"at its end, reopening it", 2, "0:a=old0 1:a=old1 2:c=new 3:d=new "},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := mustOpen(t, t.TempDir(), compactConfig())
			defer l.Close()
			kb := func(k, v string) []byte { return keyedBatch(1, CompressionNone, []string{k}, [][]byte{[]byte(v)}) }
			mustAppend(t, l, kb("a", "old0")) // 0
			mustAppend(t, l, kb("a", "old1")) // 1
			if err := l.Roll(); err != nil {
				t.Fatal(err)
			}
			mustAppend(t, l, kb("b", "x")) // 2, active
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			cut := false
			swapHook = func(step string) error {
				if step != "cleaned" || cut {
					return nil
				}
				cut = true
				if _, err := l.TruncateTo(c.cut); err != nil {
					return err
				}
				mustAppend(t, l, kb("c", "new"))
				if err := l.Roll(); err != nil {
					return err
				}
				mustAppend(t, l, kb("d", "new"))
				return l.Sync()
			}
			defer func() { swapHook = nil }()
			cl, _ := NewCleaner(DefaultCleanerConfig())
			res, err := cl.Clean(context.Background(), l, epoch)
			swapHook = nil
			if err != nil {
				t.Fatal(err)
			}
			if !cut {
				t.Fatal("the cleaning never reached its swap")
			}
			if got := dataRecords(t, l); got != c.want {
				t.Fatalf("got %q (cleaned %v), want %q", got, res.Cleaned, c.want)
			}
			if res.Cleaned || cl.Stats().GaveUp != 1 {
				t.Fatalf("cleaning: got %+v, %d given up, want it given up", res, cl.Stats().GaveUp)
			}
			// The next cleaning cleans the new history.
			if res := mustClean(t, cl, l, epoch); !res.Cleaned {
				t.Fatalf("next cleaning: got %+v, want a cleaning", res)
			}
			if got := dataRecords(t, l); !strings.Contains(got, "c=new") {
				t.Fatalf("next cleaning: got %q, want c=new kept", got)
			}
		})
	}
}
