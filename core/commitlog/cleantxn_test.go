package commitlog

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnBatch builds a transactional batch of producer pid with the records
// key=value of kvs (pairs).
func txnBatch(pid int64, kvs ...string) []byte {
	h := BatchHeader{FirstTimestamp: epoch.UnixMilli(), ProducerID: pid, ProducerEpoch: 0, BaseSequence: -1, LeaderEpoch: -1, Attributes: 0x10}
	var recs []kmsg.Record
	for i := 0; i+1 < len(kvs); i += 2 {
		recs = append(recs, kmsg.Record{Key: []byte(kvs[i]), Value: []byte(kvs[i+1])})
	}
	return AppendBatch(nil, h, recs)
}

// markerBatch builds the control batch ending pid's transaction.
func markerBatch(pid int64, commit bool) []byte {
	typ := uint16(0)
	if commit {
		typ = 1
	}
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), typ)
	value := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, 0), 0)
	h := BatchHeader{FirstTimestamp: epoch.UnixMilli(), ProducerID: pid, ProducerEpoch: 0, BaseSequence: -1, LeaderEpoch: -1, Attributes: 0x30}
	return AppendBatch(nil, h, []kmsg.Record{{Key: key, Value: value}})
}

// appendRoll appends each batch in a segment of its own, synced.
func appendRoll(t *testing.T, l *Log, batches ...[]byte) {
	t.Helper()
	for _, b := range batches {
		mustAppend(t, l, b)
		if err := l.Roll(); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
}

// controlOffsets lists the offsets of the control batches below the high
// watermark.
func controlOffsets(t *testing.T, l *Log) []int64 {
	t.Helper()
	var out []int64
	for _, raw := range readAll(t, l) {
		b, _ := ParseHeader(raw)
		if b.IsControl() {
			out = append(out, b.BaseOffset)
		}
	}
	return out
}

// dataRecords lists the data records (markers left out) below the high
// watermark as "offset:key=value ".
func dataRecords(t *testing.T, l *Log) string {
	t.Helper()
	s := ""
	for _, raw := range readAll(t, l) {
		b, _ := ParseHeader(raw)
		if b.IsControl() {
			continue
		}
		err := Records(b, raw, func(off, _ int64, r *kmsg.Record) bool {
			s += fmt.Sprintf("%d:%s=%s ", off, r.Key, r.Value)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestCleanTransactions: the cleaner stops at the first unstable offset,
// so an open transaction's records stay; an aborted transaction's records
// are dropped and do not shadow the older committed value of their key;
// committed transactional records follow the newest-per-key rule; the
// markers stay.
func TestCleanTransactions(t *testing.T) {
	cfg := compactConfig()
	l := mustOpen(t, t.TempDir(), cfg)
	defer l.Close()
	appendRoll(t, l,
		keyedBatch(1, CompressionNone, []string{"a"}, [][]byte{[]byte("a0")}), // 0
		txnBatch(5, "a", "aborted", "b", "aborted"),                           // 1-2, aborted
		markerBatch(5, false),    // 3
		txnBatch(6, "c", "c1"),   // 4, committed
		markerBatch(6, true),     // 5
		txnBatch(7, "a", "open"), // 6, open
		keyedBatch(1, CompressionNone, []string{"c"}, [][]byte{[]byte("c2")}), // 7
	)
	c, err := NewCleaner(DefaultCleanerConfig())
	if err != nil {
		t.Fatal(err)
	}
	txns := Transactions{StableOffset: 6, Aborted: []AbortedRange{{ProducerID: 5, FirstOffset: 1, LastOffset: 3}}}
	res, err := c.CleanTxn(context.Background(), l, epoch, txns)
	if err != nil {
		t.Fatal(err)
	}
	if res.FirstDirty != 6 {
		t.Fatalf("first dirty offset: got %d, want 6 (the first unstable offset)", res.FirstDirty)
	}
	got := dataRecords(t, l)
	if want := "0:a=a0 4:c=c1 6:a=open 7:c=c2 "; got != want {
		t.Fatalf("after cleaning below the open transaction: got %q, want %q", got, want)
	}
	if got, want := fmt.Sprint(controlOffsets(t, l)), "[3 5]"; got != want {
		t.Fatalf("markers: got %s, want %s", got, want)
	}

	// The open transaction commits: everything is stable, and its record
	// and the newer value of c shadow the older ones.
	appendRoll(t, l, markerBatch(7, true)) // 8
	txns.StableOffset = l.HighWatermark()
	if _, err := c.CleanTxn(context.Background(), l, epoch, txns); err != nil {
		t.Fatal(err)
	}
	got = dataRecords(t, l)
	if want := "6:a=open 7:c=c2 "; got != want {
		t.Fatalf("after the commit: got %q, want %q", got, want)
	}
	if got, want := fmt.Sprint(controlOffsets(t, l)), "[3 5 8]"; got != want {
		t.Fatalf("markers: got %s, want %s", got, want)
	}
	if l.FirstDirtyOffset() != 9 {
		t.Fatalf("first dirty offset: got %d, want 9", l.FirstDirtyOffset())
	}
}

// TestCleanAbortedNewest: without the aborted transactions the cleaner
// would keep an aborted value as the newest of its key and drop the
// committed one; with them it keeps the committed one.
func TestCleanAbortedNewest(t *testing.T) {
	for _, tell := range []bool{false, true} {
		t.Run(fmt.Sprint(tell), func(t *testing.T) {
			l := mustOpen(t, t.TempDir(), compactConfig())
			defer l.Close()
			appendRoll(t, l,
				keyedBatch(1, CompressionNone, []string{"k"}, [][]byte{[]byte("committed")}), // 0
				txnBatch(9, "k", "aborted"), // 1
				markerBatch(9, false),       // 2
			)
			c, _ := NewCleaner(DefaultCleanerConfig())
			txns := Transactions{StableOffset: l.HighWatermark()}
			if tell {
				txns.Aborted = []AbortedRange{{ProducerID: 9, FirstOffset: 1, LastOffset: 2}}
			}
			if _, err := c.CleanTxn(context.Background(), l, epoch, txns); err != nil {
				t.Fatal(err)
			}
			want := "1:k=aborted "
			if tell {
				want = "0:k=committed "
			}
			if got := dataRecords(t, l); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}

// TestCleanRemovesMarkers: Kafka's rule for transaction markers. The pass
// that drops a transaction's last data keeps its marker (and an aborted
// one's index entry); a later pass that finds no data before the marker
// drops the entry, and the marker once its segment is older than
// delete.retention.ms. The last batch of a producer and the markers of
// transactions with data left stay; the cleaned log reopens the same.
func TestCleanRemovesMarkers(t *testing.T) {
	for _, pastFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("first pass past retention %v", pastFirst), func(t *testing.T) {
			cfg := compactConfig()
			cfg.DeleteRetention = time.Minute
			dir := t.TempDir()
			l := mustOpen(t, dir, cfg)
			defer func() { l.Close() }()
			ts := epoch.UnixMilli()
			plain := func(k, v string) []byte { return keyedBatch(ts, CompressionNone, []string{k}, [][]byte{[]byte(v)}) }
			appendRoll(t, l,
				txnBatch(1, "a", "a1"), markerBatch(1, true), // 0, 1: a1 shadowed below
				txnBatch(1, "b", "b1"), markerBatch(1, false), // 2, 3: aborted
				txnBatch(1, "c", "c1"), markerBatch(1, true), // 4, 5: the producer's last marker
				plain("a", "a2"),                                        // 6
				txnBatch(3, "x", "x1", "y", "y1"), markerBatch(3, true), // 7-8, 9: x1 shadowed, y1 left
				txnBatch(3, "z", "z1"), markerBatch(3, true), // 10, 11
				plain("x", "x2"), // 12
			)
			if err := l.AddAbortedTxn(AbortedTxn{ProducerID: 1, FirstOffset: 2, LastOffset: 3, LastStableOffset: 4}); err != nil {
				t.Fatal(err)
			}
			c, _ := NewCleaner(DefaultCleanerConfig())
			txns := Transactions{StableOffset: l.HighWatermark(), Aborted: []AbortedRange{{ProducerID: 1, FirstOffset: 2, LastOffset: 3}}}
			now := epoch
			if pastFirst {
				now = epoch.Add(2 * time.Minute)
			}
			if _, err := c.CleanTxn(context.Background(), l, now, txns); err != nil {
				t.Fatal(err)
			}
			wantData := "4:c=c1 6:a=a2 8:y=y1 10:z=z1 12:x=x2 "
			if got := dataRecords(t, l); got != wantData {
				t.Fatalf("first pass: got %q, want %q", got, wantData)
			}
			if got, want := fmt.Sprint(controlOffsets(t, l)), "[1 3 5 9 11]"; got != want {
				t.Fatalf("first pass: got markers %s, want %s", got, want)
			}
			if got := l.AbortedTxns(0, 100); len(got) != 1 {
				t.Fatalf("first pass: got aborted %v, want the one whose data it dropped", got)
			}

			appendRoll(t, l, plain("e", "e1")) // 13: new dirty data, for the cleaner to run
			txns.StableOffset = l.HighWatermark()
			res, err := c.CleanTxn(context.Background(), l, epoch.Add(2*time.Minute), txns)
			if err != nil || !res.Cleaned || res.MarkersRemoved != 2 {
				t.Fatalf("second pass, past delete.retention.ms: got %+v, %v, want a cleaning removing 2 markers", res, err)
			}
			wantData += "13:e=e1 "
			for _, when := range []string{"second pass", "reopened"} {
				if got := dataRecords(t, l); got != wantData {
					t.Fatalf("%s: got %q, want %q", when, got, wantData)
				}
				if got, want := fmt.Sprint(controlOffsets(t, l)), "[5 9 11]"; got != want {
					t.Fatalf("%s: got markers %s, want %s", when, got, want)
				}
				if got := l.AbortedTxns(0, 100); len(got) != 0 {
					t.Fatalf("%s: got aborted %v, want none (no data left)", when, got)
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				l = mustOpen(t, dir, cfg)
				l.SetHighWatermark(l.LogEndOffset())
			}
		})
	}
}

func TestAbortedIndex(t *testing.T) {
	ix := newAbortedIndex([]AbortedRange{{1, 10, 20}, {1, 0, 5}, {2, 7, 8}})
	tx := func(pid, off int64) Batch {
		return Batch{ProducerID: pid, BaseOffset: off, Attributes: 0x10}
	}
	for _, c := range []struct {
		b    Batch
		want bool
	}{
		{tx(1, 0), true}, {tx(1, 4), true}, {tx(1, 5), false}, {tx(1, 9), false},
		{tx(1, 10), true}, {tx(1, 19), true}, {tx(1, 20), false}, {tx(2, 7), true},
		{tx(2, 6), false}, {tx(3, 0), false},
		{Batch{ProducerID: 1, BaseOffset: 11}, false},                   // not transactional
		{Batch{ProducerID: 1, BaseOffset: 11, Attributes: 0x30}, false}, // a marker
	} {
		if got := ix.aborted(c.b); got != c.want {
			t.Fatalf("aborted(producer %d, offset %d, attributes %#x): got %v, want %v", c.b.ProducerID, c.b.BaseOffset, c.b.Attributes, got, c.want)
		}
	}
	if newAbortedIndex(nil).aborted(tx(1, 0)) {
		t.Fatal("empty index: got aborted, want not")
	}
}
