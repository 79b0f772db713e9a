package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// baselineMaxBytes bounds the baseline's disk use: it stops early when it
// has appended this much.
const baselineMaxBytes = 8 << 30

// baselineResult is the raw append rate of the segment log.
type baselineResult struct {
	batchRecords int
	batchBytes   int // encoded size of one batch
	records      int64
	valueBytes   int64
	elapsed      time.Duration
}

func (r baselineResult) mbps() float64 { return float64(r.valueBytes) / r.elapsed.Seconds() / 1e6 }

func (r baselineResult) recordsPerSec() float64 { return float64(r.records) / r.elapsed.Seconds() }

// runBaseline appends uncompressed batches of batchRecords records with
// values from pool, each valueSize bytes, to a commitlog.Log opened with
// DefaultConfig (no fsync) in dir, for d or baselineMaxBytes, whichever
// comes first, setting the high watermark after each append as the broker
// does. The log sees what the broker's log sees, minus the network, the
// Kafka protocol and the client.
//
// Like the broker's, the log only grows while it is timed (rolling its own
// segments) and is removed afterwards. Removing and recreating it during
// the run, as core/commitlog's benchmarks do, would let it reuse page
// cache pages it has just freed, which on some virtual machines are much
// cheaper to write than the fresh pages a growing log needs.
func runBaseline(ctx context.Context, dir string, pool []byte, valueSize, batchRecords int, d time.Duration) (baselineResult, error) {
	res := baselineResult{batchRecords: batchRecords}
	// A few distinct batches, so the values differ from append to append
	// like the producer's do (Append stamps offsets into the header only).
	batches := make([][]byte, 8)
	for i := range batches {
		recs := make([]kmsg.Record, batchRecords)
		for j := range recs {
			recs[j].Value = poolValue(pool, i*batchRecords+j, valueSize)
		}
		batches[i] = commitlog.AppendBatch(nil, commitlog.NoProducer(time.Now().UnixMilli()), recs)
	}
	res.batchBytes = len(batches[0])

	l, err := commitlog.Open(dir, commitlog.DefaultConfig())
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	defer l.Close()
	var written int64
	start := time.Now()
	for i := 0; time.Since(start) < d && written+int64(res.batchBytes) <= baselineMaxBytes; i++ {
		if i%64 == 0 && ctx.Err() != nil {
			return res, ctx.Err()
		}
		ar, err := l.Append(batches[i%len(batches)])
		if err != nil {
			return res, fmt.Errorf("append: %w", err)
		}
		l.SetHighWatermark(ar.LastOffset + 1)
		written += int64(res.batchBytes)
		res.records += int64(batchRecords)
	}
	res.elapsed = time.Since(start)
	res.valueBytes = res.records * int64(valueSize)
	return res, l.Close()
}
