package commitlog

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// testBatch builds a batch of n records with values of size valueSize.
func testBatch(n, valueSize int, ts int64, tag string) []byte {
	recs := make([]kmsg.Record, n)
	for i := range recs {
		v := bytes.Repeat([]byte{byte('a' + i%26)}, valueSize)
		copy(v, fmt.Sprintf("%s-%d", tag, i))
		recs[i] = kmsg.Record{Key: []byte(tag), Value: v, TimestampDelta64: int64(i)}
	}
	return AppendBatch(nil, NoProducer(ts), recs)
}

func randomBatch(r *rand.Rand, ts int64) []byte {
	n := 1 + r.IntN(8)
	recs := make([]kmsg.Record, n)
	for i := range recs {
		v := make([]byte, r.IntN(300))
		for j := range v {
			v[j] = byte(r.Uint32())
		}
		recs[i] = kmsg.Record{Value: v, TimestampDelta64: int64(r.IntN(5))}
	}
	h := NoProducer(ts)
	h.LeaderEpoch = int32(r.IntN(3))
	return AppendBatch(nil, h, recs)
}

func smallConfig() Config {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 16 << 10
	cfg.MaxBatchBytes = 8 << 10
	cfg.IndexIntervalBytes = 512
	cfg.MaxIndexBytes = 1 << 10
	cfg.PreallocateBytes = 4 << 10
	return cfg
}

func mustOpen(t testing.TB, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func mustAppend(t testing.TB, l *Log, b []byte) AppendResult {
	t.Helper()
	res, err := l.Append(b)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	l.SetHighWatermark(res.LastOffset + 1)
	return res
}

// readAll reads every batch from the log start to the high watermark.
func readAll(t testing.TB, l *Log) [][]byte {
	t.Helper()
	var out [][]byte
	off := l.LogStartOffset()
	for off < l.HighWatermark() {
		v, err := l.Read(off, 1<<20)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if len(v.Data) == 0 {
			t.Fatalf("Read(%d): no data below the high watermark %d", off, l.HighWatermark())
		}
		err = Batches(v.Data, func(b Batch, raw []byte) bool {
			out = append(out, append([]byte(nil), raw...))
			return true
		})
		if err != nil {
			t.Fatalf("Batches: %v", err)
		}
		off = v.Next
		v.Release()
	}
	return out
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// readAllErr reads every batch of l from its log start to its high
// watermark.
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
