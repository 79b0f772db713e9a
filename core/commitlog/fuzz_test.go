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

// FuzzResumeIndex opens a log whose active segment's offset index (which
// Open uses to skip the batches below the recovery point) is replaced by
// arbitrary bytes. Invariant: Open never panics or fails, and every batch
// comes back intact, whatever the index says.
func FuzzResumeIndex(f *testing.F) {
	var batches [][]byte
	for i := 0; i < 12; i++ {
		batches = append(batches, testBatch(2, 200, int64(i), "r"))
	}
	valid := func() []byte {
		dir := f.TempDir()
		l, err := Open(dir, smallConfig())
		if err != nil {
			f.Fatal(err)
		}
		for _, b := range batches {
			if _, err := l.Append(append([]byte(nil), b...)); err != nil {
				f.Fatal(err)
			}
		}
		l.Close()
		idx, _ := os.ReadFile(filepath.Join(dir, "00000000000000000000.index"))
		return idx
	}()
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(make([]byte, 24))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, idx []byte) {
		dir := t.TempDir()
		l, err := Open(dir, smallConfig())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range batches {
			if _, err := l.Append(append([]byte(nil), b...)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "00000000000000000000.index"), idx, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err = Open(dir, smallConfig())
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		got, err := readAllErr(l)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(batches) {
			t.Fatalf("got %d batches, want %d", len(got), len(batches))
		}
		for i := range got {
			b, err := ValidateBatch(got[i])
			if err != nil || b.BaseOffset != int64(2*i) || !bytes.Equal(got[i][12:], batches[i][12:]) {
				t.Fatalf("batch %d: %+v, %v; want batch %d intact at offset %d", i, b, err, i, 2*i)
			}
		}
	})
}
