package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func sampleProducers() map[int64]*producerState {
	return map[int64]*producerState{
		7:  {epoch: 1, batches: []seqRange{{first: 0, last: 2, base: 0, end: 2}, {first: 3, last: 3, base: 5, end: 5}}},
		42: {epoch: 0, batches: []seqRange{{first: 1<<31 - 2, last: 1<<31 - 1, base: 9, end: 10}}},
	}
}

func TestProducerSnapshotRoundTrip(t *testing.T) {
	want := sampleProducers()
	want[50] = &producerState{epoch: 3} // fenced by a marker: no batches
	wantTxns := map[int64]int64{7: 5, 50: 2}
	data := encodeProducerSnapshot(11, want, wantTxns)
	off, got, gotTxns, err := decodeProducerSnapshot(data)
	if err != nil || off != 11 || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotTxns, wantTxns) {
		t.Fatalf("got %d, %v, %v, %v, want 11, %v, %v, nil", off, got, gotTxns, err, want, wantTxns)
	}
	// Every single-byte flip and every cut is caught.
	for i := range data {
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x40
		if _, _, _, err := decodeProducerSnapshot(bad); !errors.Is(err, errBadSnapshot) {
			t.Fatalf("flip at %d: got %v, want errBadSnapshot", i, err)
		}
		if _, _, _, err := decodeProducerSnapshot(data[:i]); !errors.Is(err, errBadSnapshot) {
			t.Fatalf("cut at %d: got %v, want errBadSnapshot", i, err)
		}
	}
}

// FuzzProducerSnapshot checks that decoding never panics and that what
// decodes encodes back to the same state (a version 1 snapshot as a
// version 2 one with no ongoing transaction).
func FuzzProducerSnapshot(f *testing.F) {
	f.Add(encodeProducerSnapshot(11, sampleProducers(), map[int64]int64{7: 3}))
	f.Add(encodeProducerSnapshot(0, nil, nil))
	f.Add([]byte("FXPS"))
	f.Fuzz(func(t *testing.T, data []byte) {
		off, st, txns, err := decodeProducerSnapshot(data)
		if err != nil {
			return
		}
		off2, st2, txns2, err := decodeProducerSnapshot(encodeProducerSnapshot(off, st, txns))
		if len(txns) == 0 && len(txns2) == 0 {
			txns, txns2 = nil, nil
		}
		if err != nil || off2 != off || !reflect.DeepEqual(st2, st) || !reflect.DeepEqual(txns2, txns) {
			t.Fatalf("got %d, %v, %v, %v after a round trip, want %d, %v, %v", off2, st2, txns2, err, off, st, txns)
		}
	})
}

// A version 1 snapshot (no ongoing transactions) still reads.
func TestProducerSnapshotVersion1(t *testing.T) {
	st := sampleProducers()
	v2 := encodeProducerSnapshot(11, st, nil)
	v1 := append([]byte(nil), v2[:len(v2)-8]...) // without the ongoing count and the crc
	v1[4] = 1
	v1 = binary.BigEndian.AppendUint32(v1, crc32.Checksum(v1, snapCRC))
	off, got, txns, err := decodeProducerSnapshot(v1)
	if err != nil || off != 11 || !reflect.DeepEqual(got, st) || len(txns) != 0 {
		t.Fatalf("got %d, %v, %v, %v, want 11, %v, no transactions, nil", off, got, txns, err, st)
	}
}

// Opening a partition starts from its producer snapshot and replays only
// the batches after it; a snapshot past the log end is ignored.
func TestProducerSnapshotOnReopen(t *testing.T) {
	dir := t.TempDir()
	b := openTestBroker(t, dir)
	tp, err := b.CreateTopic(context.Background(), "t", 1, 0, nil)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	p := tp.Partitions[0]
	for i, n := range []int{3, 2} {
		seq := int32(0)
		if i == 1 {
			seq = 3
		}
		if res := p.Append(idemBatch(7, 0, seq, n), 1); res.Code != 0 {
			b.Close()
			t.Fatalf("append: got code %d (%v), want 0", res.Code, res.Err)
		}
	}
	pdir := p.Log().Dir()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	off, st, _, ok := readProducerSnapshot(pdir)
	if !ok || off != 5 || st[7] == nil {
		t.Fatalf("got snapshot %d, %v, %v after close, want offset 5 with producer 7", off, st, ok)
	}

	// A producer that only the snapshot knows shows that the log below
	// the snapshot was not replayed.
	st[99] = &producerState{epoch: 0, batches: []seqRange{{first: 0, last: 0, base: 1, end: 1}}}
	if err := writeProducerSnapshot(pdir, encodeProducerSnapshot(off, st, nil)); err != nil {
		t.Fatal(err)
	}
	b = openTestBroker(t, dir)
	p, _ = b.Partition("t", 0)
	p.mu.Lock()
	_, from99 := p.producers[99]
	p.mu.Unlock()
	if !from99 {
		b.Close()
		t.Fatalf("got no state for producer 99, want the snapshot's")
	}
	if res := p.Append(idemBatch(7, 0, 3, 2), 1); res.Code != 0 || res.BaseOffset != 3 {
		b.Close()
		t.Fatalf("retry after reopen: got code %d base %d, want the original offset 3", res.Code, res.BaseOffset)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// Past the log end: the snapshot is not trusted, the log is replayed.
	if err := writeProducerSnapshot(pdir, encodeProducerSnapshot(100, st, nil)); err != nil {
		t.Fatal(err)
	}
	b = openTestBroker(t, dir)
	defer b.Close()
	p, _ = b.Partition("t", 0)
	p.mu.Lock()
	_, from99 = p.producers[99]
	p.mu.Unlock()
	if from99 {
		t.Fatalf("got state for producer 99 from a snapshot past the log end, want none")
	}
	if res := p.Append(idemBatch(7, 0, 3, 2), 1); res.Code != 0 || res.BaseOffset != 3 {
		t.Fatalf("retry after replay: got code %d base %d, want the original offset 3", res.Code, res.BaseOffset)
	}
	if _, err := os.Stat(filepath.Join(pdir, producerSnapshotFile)); err != nil {
		t.Fatalf("got %v, want the snapshot file", err)
	}
}
