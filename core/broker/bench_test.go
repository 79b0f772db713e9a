package broker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// The produce benchmarks over many partitions, each with its baseline in
// the same run (benchmarks/README.md: the figure to read is the ratio):
//
//	BenchmarkProduceManyPartitions/first   vs  .../baseline-first
//	BenchmarkProduceManyPartitions/steady  vs  .../baseline-steady
//
// One op is what a produce request spread over benchPartitions partitions
// asks of the broker: one batch of benchBatchRecords 1 KiB records
// appended to each partition (Partition.Append with acks=all, idempotent
// for the first write), the shape of `go run ./benchmarks/kafka -many`.
// The baselines write the same bytes with one pwrite per partition into
// plain files: created by the op for "first" (the first write of a
// partition), already open for "steady".
const (
	benchPartitions   = 1000
	benchBatchRecords = 63
	benchValueBytes   = 1 << 10
	// benchRotateOps bounds the disk the steady benchmarks use: after
	// this many ops the topic (or the files) start again, timer stopped.
	benchRotateOps = 16
)

func benchManyBatch(pid int64) []byte {
	recs := make([]kmsg.Record, benchBatchRecords)
	for i := range recs {
		v := make([]byte, benchValueBytes)
		for j := range v {
			v[j] = byte(i*7 + j*13)
		}
		recs[i] = kmsg.Record{Value: v}
	}
	h := commitlog.BatchHeader{ProducerID: pid, ProducerEpoch: -1, BaseSequence: -1, LeaderEpoch: -1}
	if pid >= 0 {
		h.ProducerEpoch, h.BaseSequence = 0, 0
	}
	return commitlog.AppendBatch(nil, h, recs)
}

func BenchmarkProduceManyPartitions(b *testing.B) {
	ctx := context.Background()
	b.Run("first", func(b *testing.B) {
		tb := openTestBroker(b, b.TempDir())
		defer tb.Close()
		// Sequence 0 of a new producer: valid as the first batch of each
		// fresh partition.
		batch := benchManyBatch(1)
		buf := make([]byte, len(batch))
		b.SetBytes(int64(benchPartitions * len(batch)))
		b.ReportAllocs()
		topic := 0
		for b.Loop() {
			b.StopTimer()
			if topic > 0 {
				if err := tb.DeleteTopic(ctx, fmt.Sprint("t", topic-1)); err != nil {
					b.Fatal(err)
				}
			}
			tp, err := tb.CreateTopic(ctx, fmt.Sprint("t", topic), benchPartitions, 0, nil)
			if err != nil {
				b.Fatal(err)
			}
			topic++
			b.StartTimer()
			for _, p := range tp.Partitions {
				copy(buf, batch)
				if res := p.Append(buf, -1); res.Code != 0 {
					b.Fatalf("append: got code %d (%v), want 0", res.Code, res.Err)
				}
			}
		}
	})
	b.Run("baseline-first", func(b *testing.B) {
		batch := benchManyBatch(1)
		b.SetBytes(int64(benchPartitions * len(batch)))
		b.ReportAllocs()
		root := b.TempDir()
		round := 0
		for b.Loop() {
			b.StopTimer()
			if round > 0 {
				os.RemoveAll(filepath.Join(root, fmt.Sprint(round-1)))
			}
			// The directories exist before the first write, as a
			// created topic's do.
			dir := filepath.Join(root, fmt.Sprint(round))
			round++
			for i := range benchPartitions {
				if err := os.MkdirAll(filepath.Join(dir, fmt.Sprint(i)), 0o755); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			for i := range benchPartitions {
				f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(i), "log"), os.O_RDWR|os.O_CREATE, 0o644)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := f.WriteAt(batch, 0); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		}
	})
	b.Run("steady", func(b *testing.B) {
		tb := openTestBroker(b, b.TempDir())
		defer tb.Close()
		batch := benchManyBatch(-1)
		buf := make([]byte, len(batch))
		b.SetBytes(int64(benchPartitions * len(batch)))
		b.ReportAllocs()
		var tp *Topic
		topic, ops := 0, 0
		for b.Loop() {
			if ops%benchRotateOps == 0 {
				b.StopTimer()
				if tp != nil {
					if err := tb.DeleteTopic(ctx, fmt.Sprint("t", topic-1)); err != nil {
						b.Fatal(err)
					}
				}
				var err error
				if tp, err = tb.CreateTopic(ctx, fmt.Sprint("t", topic), benchPartitions, 0, nil); err != nil {
					b.Fatal(err)
				}
				topic++
				for _, p := range tp.Partitions {
					copy(buf, batch)
					if res := p.Append(buf, -1); res.Code != 0 {
						b.Fatalf("append: got code %d (%v), want 0", res.Code, res.Err)
					}
				}
				b.StartTimer()
			}
			ops++
			for _, p := range tp.Partitions {
				copy(buf, batch)
				if res := p.Append(buf, -1); res.Code != 0 {
					b.Fatalf("append: got code %d (%v), want 0", res.Code, res.Err)
				}
			}
		}
	})
	b.Run("baseline-steady", func(b *testing.B) {
		batch := benchManyBatch(-1)
		buf := make([]byte, len(batch))
		b.SetBytes(int64(benchPartitions * len(batch)))
		b.ReportAllocs()
		dir := b.TempDir()
		files := make([]*os.File, benchPartitions)
		for i := range files {
			f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(i)), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			files[i] = f
		}
		var pos int64
		ops := 0
		for b.Loop() {
			if ops%benchRotateOps == 0 {
				b.StopTimer()
				for _, f := range files {
					if err := f.Truncate(0); err != nil {
						b.Fatal(err)
					}
				}
				pos = 0
				b.StartTimer()
			}
			ops++
			for _, f := range files {
				// The copy stands for Append's in-place offset rewrite.
				copy(buf, batch)
				if _, err := f.WriteAt(buf, pos); err != nil {
					b.Fatal(err)
				}
			}
			pos += int64(len(batch))
		}
	})
}
