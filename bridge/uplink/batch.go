package uplink

import (
	"hash/crc32"
	"slices"

	"github.com/klauspost/compress/s2"

	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/core/commitlog"
)

// batchEncoder encodes a lane's batches into buffers it keeps from one
// window to the next: the records before compression, and an arena that
// holds the window's batches until the produce requests carrying them
// have come back. A window is about a megabyte of records, and encoding
// each one into new buffers made the collector run several times as often
// under load. A batchEncoder is for one goroutine (its lane's).
type batchEncoder struct {
	body  []byte // the records of the batch being encoded
	arena []byte // the window's batches, one after the other
}

// encode builds one RecordBatch v2 for a partition: the records in the
// order given, the producer's id, epoch and base sequence, and the records
// section compressed with snappy (raw block format, as Kafka clients write
// it) when compress is set. The snappy encoder is s2's "better" one
// (klauspost/compress, which franz-go already uses for its snappy): plain
// snappy output that any snappy decoder reads, with longer matches found
// than golang/snappy's greedy encoder finds (0.31 against 0.34 of the
// payload on the benchmark's fleet telemetry). Each record is encoded once
// (commitlog.AppendRecord). It returns the batch, which lives in the
// arena until the window is done, and the size of its records before
// compression.
func (e *batchEncoder) encode(recs []spool.Record, pid int64, epoch int16, baseSeq int32, compress bool) ([]byte, int) {
	first := recs[0].Time.UnixMilli()
	maxTS := first
	size := commitlog.HeaderSize
	for _, r := range recs {
		size += 32 + len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			size += 8 + len(h.Key) + len(h.Value)
		}
	}
	body := slices.Grow(e.body[:0], size)[:commitlog.HeaderSize]
	for i, r := range recs {
		ts := r.Time.UnixMilli()
		maxTS = max(maxTS, ts)
		body = commitlog.AppendRecord(body, int32(i), ts-first, r.Key, r.Value, r.Headers)
	}
	e.body = body
	raw := len(body) - commitlog.HeaderSize
	attrs := int16(0)
	var batch []byte
	if compress {
		out := e.take(commitlog.HeaderSize + s2.MaxEncodedLen(raw))
		enc := s2.EncodeSnappyBetter(out[commitlog.HeaderSize:], body[commitlog.HeaderSize:])
		batch = e.keep(out, commitlog.HeaderSize+len(enc))
		attrs = commitlog.CompressionSnappy
	} else {
		out := e.take(len(body))
		copy(out, body)
		batch = e.keep(out, len(body))
	}
	if cap(e.body) > maxKeptBody {
		e.body = nil
	}
	h := commitlog.BatchHeader{FirstTimestamp: first, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: baseSeq, LeaderEpoch: -1, Attributes: attrs}
	return commitlog.FinishBatch(batch, h, int32(len(recs)), maxTS), raw
}

// take returns n bytes at the end of the arena. An arena without room is
// replaced by a bigger one: the batches already in the old one stay there.
func (e *batchEncoder) take(n int) []byte {
	if cap(e.arena)-len(e.arena) < n {
		e.arena = make([]byte, 0, max(n, 2*cap(e.arena), 64<<10))
	}
	start := len(e.arena)
	e.arena = e.arena[:start+n]
	return e.arena[start : start+n : start+n]
}

// keep shrinks out, the last bytes taken, to its first n, and gives the
// rest back to the arena.
func (e *batchEncoder) keep(out []byte, n int) []byte {
	e.arena = e.arena[:len(e.arena)-len(out)+n]
	return out[:n:n]
}

// done ends a window. acked says every produce request of it came back
// (acknowledged or refused), so nothing refers to its batches any more and
// the arena is reused. A request that failed on the way (a timeout, a
// broken connection) may still be queued in the client: the arena is then
// left to it and to the collector.
func (e *batchEncoder) done(acked bool) {
	if acked && cap(e.arena) <= maxKeptArena {
		e.arena = e.arena[:0]
		return
	}
	e.arena = nil
}

// drop lets go of both buffers, for a lane that has nothing to send.
func (e *batchEncoder) drop() { e.body, e.arena = nil, nil }

const (
	// maxKeptBody and maxKeptArena bound the buffers kept from window to
	// window (a window past them, with an outsized message, gets buffers
	// of its own).
	maxKeptBody  = 4 << 20
	maxKeptArena = 8 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
