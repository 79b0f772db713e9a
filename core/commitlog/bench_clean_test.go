package commitlog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkClean measures the cleaner: one op compacts a freshly written
// 32 MiB log of 1 KiB batches (one keyed record each, 4 MiB segments, all
// sealed and dirty), swaps included (each swap costs about eight fsyncs,
// so smaller segments clean slower per byte). Its baseline in the same run is BenchmarkRead/1KiB,
// the segment log's read rate: clean ratio = Clean MB/s ÷ Read/1KiB MB/s.
//
//	keys=256      256 keys over 32,768 records: almost every batch goes
//	              (the map, the rewrite and the swap of a log that shrinks)
//	keys=unique   every key once: every batch is kept as it is (the cost
//	              of reading, mapping and copying a log already compact)
//
// Building the log is not timed.
func BenchmarkClean(b *testing.B) {
	const logBytes, batchSize = 32 << 20, 1 << 10
	for _, keys := range []int{256, 0} {
		name := fmt.Sprintf("keys=%d", keys)
		if keys == 0 {
			name = "keys=unique"
		}
		b.Run(name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.SegmentBytes = 4 << 20
			cfg.MaxBatchBytes = 64 << 10
			cfg.Cleanup = CleanupCompact
			cfg.MinCleanableDirtyRatio = 0
			c, err := NewCleaner(DefaultCleanerConfig())
			if err != nil {
				b.Fatal(err)
			}
			n := logBytes / batchSize
			batches := make([][]byte, n)
			for i := range batches {
				k := i
				if keys > 0 {
					k = i % keys
				}
				key := []byte(fmt.Sprintf("device-%08d", k))
				v := make([]byte, batchSize-HeaderSize-len(key)-8)
				for j := range v {
					v[j] = byte('a' + (i+j)%26)
				}
				batches[i] = AppendBatch(nil, NoProducer(epoch.UnixMilli()), []kmsg.Record{{Key: key, Value: v}})
			}
			b.SetBytes(logBytes)
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				l, err := Open(b.TempDir(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				for _, bt := range batches {
					res, err := l.Append(append([]byte(nil), bt...))
					if err != nil {
						b.Fatal(err)
					}
					l.SetHighWatermark(res.LastOffset + 1)
				}
				if err := l.Roll(); err != nil {
					b.Fatal(err)
				}
				if err := l.Sync(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res, err := c.Clean(context.Background(), l, epoch.Add(time.Hour))
				if err != nil || !res.Cleaned {
					b.Fatalf("Clean: got %+v, %v; want a cleaning", res, err)
				}
				b.StopTimer()
				l.Close()
				b.StartTimer()
			}
		})
	}
}
