package commitlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzValidateBatch checks batch validation on arbitrary bytes. Invariant:
// it never panics, and a batch it accepts is self-consistent (its size fits
// the input, its CRC matches, its record count agrees with lastOffsetDelta),
// stays valid when its base offset is rewritten, and its records can be
// walked without a panic.
func FuzzValidateBatch(f *testing.F) {
	f.Add(testBatch(1, 10, 1, "a"))
	f.Add(testBatch(5, 100, 1, "b"))
	f.Add(AppendBatch(nil, NoProducer(0), []kmsg.Record{{Key: []byte("k"), Headers: []kmsg.Header{{Key: "h", Value: []byte("v")}}}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ValidateBatch(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidBatch) {
				t.Fatalf("got %v, want ErrInvalidBatch", err)
			}
			return
		}
		if b.Size > len(data) || crc32c(data[crcStart:b.Size]) != b.CRC || int64(b.NumRecords) != int64(b.LastOffsetDelta)+1 {
			t.Fatalf("accepted an inconsistent batch: %+v", b)
		}
		buf := append([]byte(nil), data[:b.Size]...)
		SetBaseOffset(buf, 12345)
		if _, err := ValidateBatch(buf); err != nil {
			t.Fatalf("rewriting the base offset broke the batch: %v", err)
		}
		_ = Records(b, buf, func(int64, int64, *kmsg.Record) bool { return true })
	})
}

// FuzzRecover opens a log whose segment is three durable batches followed
// by arbitrary bytes. Invariant: Open never panics or fails, the durable
// batches survive intact, and every batch it then serves is valid with
// contiguous offsets.
func FuzzRecover(f *testing.F) {
	prefix := []byte{}
	var next int64
	for i := 0; i < 3; i++ {
		b := testBatch(2, 50, int64(i), "p")
		SetBaseOffset(b, next)
		next += 2
		prefix = append(prefix, b...)
	}
	tail := testBatch(3, 20, 9, "t")
	SetBaseOffset(tail, next)
	f.Add(tail)
	f.Add(tail[:30])
	f.Add(make([]byte, 100))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, junk []byte) {
		dir := t.TempDir()
		seg := filepath.Join(dir, "00000000000000000000.log")
		if err := os.WriteFile(seg, append(append([]byte(nil), prefix...), junk...), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, recoveryPointFile), encodeOffset(next), 0o644); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, epochFile), encodeEpochs(nil), 0o644)
		l, err := Open(dir, smallConfig())
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		if l.LogEndOffset() < next {
			t.Fatalf("got log end %d, durable data ends at %d", l.LogEndOffset(), next)
		}
		got, err := readAllErr(l)
		if err != nil {
			t.Fatal(err)
		}
		want := int64(0)
		for i, g := range got {
			b, err := ValidateBatch(g)
			if err != nil || b.BaseOffset != want {
				t.Fatalf("batch %d: %+v, %v; want a valid batch at %d", i, b, err, want)
			}
			want = b.NextOffset()
		}
	})
}

// FuzzDecodeEpochs parses arbitrary leader-epoch checkpoints. Invariant:
// it never panics, and what it accepts is strictly increasing in epoch and
// non-decreasing in start offset, and survives an encode/decode round trip.
func FuzzDecodeEpochs(f *testing.F) {
	f.Add(encodeEpochs([]EpochEntry{{0, 0}, {3, 100}}))
	f.Add([]byte("0\n0\n"))
	f.Add([]byte("0\n2\n1 5\n0 9\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := decodeEpochs(data)
		if err != nil {
			return
		}
		for i := 1; i < len(es); i++ {
			if es[i].Epoch <= es[i-1].Epoch || es[i].StartOffset < es[i-1].StartOffset {
				t.Fatalf("accepted out-of-order entries %v", es)
			}
		}
		back, err := decodeEpochs(encodeEpochs(es))
		if err != nil || len(back) != len(es) {
			t.Fatalf("round trip: got %v %v, want %v", back, err, es)
		}
		for i := range es {
			if back[i] != es[i] {
				t.Fatalf("round trip: got %v, want %v", back, es)
			}
		}
	})
}

// FuzzSwapManifest checks the cleaner's swap manifest decoder on arbitrary
// bytes. Invariant: it never panics; a manifest it accepts is a sane plan
// (old bases ascending from the new base, all below next, next at most
// the cleaned-to offset) and encodes back to exactly the input.
func FuzzSwapManifest(f *testing.F) {
	f.Add(encodeSwap(swapPlan{next: 10, cleanedTo: 10, old: []int64{0}}))
	f.Add(encodeSwap(swapPlan{next: 900, cleanedTo: 1200, old: []int64{100, 300, 512}}))
	f.Add([]byte("FXSW"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := decodeSwap(data)
		if err != nil {
			if !errors.Is(err, errBadSwap) {
				t.Fatalf("got %v, want errBadSwap", err)
			}
			return
		}
		for i, o := range p.old {
			if o < 0 || o >= p.next || (i > 0 && o <= p.old[i-1]) {
				t.Fatalf("accepted an insane plan %+v", p)
			}
		}
		if p.next > p.cleanedTo {
			t.Fatalf("accepted next %d past cleanedTo %d", p.next, p.cleanedTo)
		}
		if got := encodeSwap(p); string(got) != string(data) {
			t.Fatalf("got %x re-encoded, want %x", got, data)
		}
	})
}

// FuzzValidateStoredBatch checks the validation of stored, possibly
// cleaned, batches. Invariant: it never panics; an accepted batch fits the
// input, its CRC matches, it holds at most lastOffsetDelta+1 records, and
// its records can be walked without a panic.
func FuzzValidateStoredBatch(f *testing.F) {
	f.Add(testBatch(3, 10, 1, "a"))
	var cb bytes.Buffer
	raw := testBatch(4, 10, 1, "c")
	b, _ := ParseHeader(raw)
	f.Add(rewriteBatch(nil, &cb, raw, b, []kmsg.Record{{Key: []byte("c"), Value: []byte("v"), OffsetDelta: 3}}))
	f.Add(rewriteBatch(nil, &cb, raw, b, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ValidateStoredBatch(data)
		if err != nil {
			return
		}
		if b.Size > len(data) || crc32c(data[crcStart:b.Size]) != b.CRC || int64(b.NumRecords) > int64(b.LastOffsetDelta)+1 || b.NumRecords < 0 {
			t.Fatalf("accepted an inconsistent batch: %+v", b)
		}
		_ = Records(b, data[:b.Size], func(int64, int64, *kmsg.Record) bool { return true })
	})
}
