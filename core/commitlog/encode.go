package commitlog

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// BatchHeader carries the header fields a producer chooses for a batch.
type BatchHeader struct {
	FirstTimestamp int64 // timestamp of the first record; deltas are relative to it
	ProducerID     int64 // -1 when not idempotent
	ProducerEpoch  int16 // -1 when not idempotent
	BaseSequence   int32 // -1 when not idempotent
	LeaderEpoch    int32 // -1 from producers; the leader stamps its epoch
}

// NoProducer is the header of a batch from a producer without idempotence.
func NoProducer(firstTimestamp int64) BatchHeader {
	return BatchHeader{FirstTimestamp: firstTimestamp, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, LeaderEpoch: -1}
}

// AppendBatch encodes recs as one uncompressed RecordBatch v2 and appends it
// to dst. Each record's OffsetDelta is its index and its Length is computed
// here; TimestampDelta64 is kept. The base offset is 0: Append assigns it.
func AppendBatch(dst []byte, h BatchHeader, recs []kmsg.Record) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	maxTS := h.FirstTimestamp
	for i := range recs {
		r := &recs[i]
		r.OffsetDelta = int32(i)
		r.TimestampDelta = int32(r.TimestampDelta64)
		r.Length = 0
		body := r.AppendTo(nil)
		// AppendTo wrote a one-byte zero length first; the real length is
		// the rest of the body.
		r.Length = int32(len(body) - 1)
		dst = r.AppendTo(dst)
		maxTS = max(maxTS, h.FirstTimestamp+r.TimestampDelta64)
	}
	b := dst[start:]
	binary.BigEndian.PutUint64(b[offBaseOffset:], 0)
	binary.BigEndian.PutUint32(b[offLength:], uint32(len(b)-lengthPrefix))
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(h.LeaderEpoch))
	b[offMagic] = Magic
	binary.BigEndian.PutUint16(b[offAttributes:], 0)
	binary.BigEndian.PutUint32(b[offLastOffsetDelta:], uint32(len(recs)-1))
	binary.BigEndian.PutUint64(b[offFirstTimestamp:], uint64(h.FirstTimestamp))
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(maxTS))
	binary.BigEndian.PutUint64(b[offProducerID:], uint64(h.ProducerID))
	binary.BigEndian.PutUint16(b[offProducerEpoch:], uint16(h.ProducerEpoch))
	binary.BigEndian.PutUint32(b[offBaseSequence:], uint32(h.BaseSequence))
	binary.BigEndian.PutUint32(b[offNumRecords:], uint32(len(recs)))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[crcStart:], castagnoli))
	return dst
}
