package broker

import (
	"context"
	"errors"
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
	data := encodeProducerSnapshot(11, want)
	off, got, err := decodeProducerSnapshot(data)
	if err != nil || off != 11 || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %d, %v, %v, want 11, %v, nil", off, got, err, want)
	}
	// Every single-byte flip and every cut is caught.
	for i := range data {
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x40
		if _, _, err := decodeProducerSnapshot(bad); !errors.Is(err, errBadSnapshot) {
			t.Fatalf("flip at %d: got %v, want errBadSnapshot", i, err)
		}
		if _, _, err := decodeProducerSnapshot(data[:i]); !errors.Is(err, errBadSnapshot) {
			t.Fatalf("cut at %d: got %v, want errBadSnapshot", i, err)
		}
	}
}

// FuzzProducerSnapshot checks that decoding never panics and that what
// decodes encodes back to the same state.
func FuzzProducerSnapshot(f *testing.F) {
	f.Add(encodeProducerSnapshot(11, sampleProducers()))
	f.Add(encodeProducerSnapshot(0, nil))
	f.Add([]byte("FXPS"))
	f.Fuzz(func(t *testing.T, data []byte) {
		off, st, err := decodeProducerSnapshot(data)
		if err != nil {
			return
		}
		off2, st2, err := decodeProducerSnapshot(encodeProducerSnapshot(off, st))
		if err != nil || off2 != off || !reflect.DeepEqual(st2, st) {
			t.Fatalf("got %d, %v, %v after a round trip, want %d, %v", off2, st2, err, off, st)
		}
	})
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
	off, st, ok := readProducerSnapshot(pdir)
	if !ok || off != 5 || st[7] == nil {
		t.Fatalf("got snapshot %d, %v, %v after close, want offset 5 with producer 7", off, st, ok)
	}

	// A producer that only the snapshot knows shows that the log below
	// the snapshot was not replayed.
	st[99] = &producerState{epoch: 0, batches: []seqRange{{first: 0, last: 0, base: 1, end: 1}}}
	if err := writeProducerSnapshot(pdir, encodeProducerSnapshot(off, st)); err != nil {
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
	if err := writeProducerSnapshot(pdir, encodeProducerSnapshot(100, st)); err != nil {
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
