package uplink

import (
	"hash/crc32"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"

	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/core/commitlog"
)

// encodeBatch builds one RecordBatch v2 for a partition: the records in
// the order given, the producer's id, epoch and base sequence, and the
// records section compressed with snappy (raw block format, as Kafka
// clients write it) when compress is set. The snappy encoder is s2's
// "better" one (klauspost/compress, which franz-go already uses for its
// snappy): plain snappy output that any snappy decoder reads, with longer
// matches found than golang/snappy's greedy encoder finds (0.31 against
// 0.34 of the payload on the benchmark's fleet telemetry). Each record is encoded once
// (commitlog.AppendRecord). It returns the batch and the size of its records
// before compression.
func encodeBatch(recs []spool.Record, pid int64, epoch int16, baseSeq int32, compress bool) ([]byte, int) {
	first := recs[0].Time.UnixMilli()
	maxTS := first
	size := commitlog.HeaderSize
	for _, r := range recs {
		size += 32 + len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			size += 8 + len(h.Key) + len(h.Value)
		}
	}
	var scratch *[]byte
	var body []byte
	if compress {
		// The records are encoded into a pooled buffer, which only
		// feeds the compressor.
		scratch = encodeBufs.Get().(*[]byte)
		body = slices.Grow((*scratch)[:0], size)[:commitlog.HeaderSize]
	} else {
		body = make([]byte, commitlog.HeaderSize, size)
	}
	for i, r := range recs {
		ts := r.Time.UnixMilli()
		maxTS = max(maxTS, ts)
		body = commitlog.AppendRecord(body, int32(i), ts-first, r.Key, r.Value, r.Headers)
	}
	raw := len(body) - commitlog.HeaderSize
	attrs := int16(0)
	if compress {
		out := make([]byte, commitlog.HeaderSize+s2.MaxEncodedLen(raw))
		enc := s2.EncodeSnappyBetter(out[commitlog.HeaderSize:], body[commitlog.HeaderSize:])
		if cap(body) <= maxPooledEncodeBuf {
			*scratch = body[:0]
			encodeBufs.Put(scratch)
		}
		body = out[:commitlog.HeaderSize+len(enc)]
		attrs = commitlog.CompressionSnappy
	}
	h := commitlog.BatchHeader{FirstTimestamp: first, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: baseSeq, LeaderEpoch: -1, Attributes: attrs}
	return commitlog.FinishBatch(body, h, int32(len(recs)), maxTS), raw
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeBufs holds the buffers records are encoded into before they are
// compressed: a window's worth (up to MaxBatchBytes) each window, which
// was allocated and cleared anew every time. Buffers past
// maxPooledEncodeBuf are left to the collector.
var encodeBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledEncodeBuf = 4 << 20
