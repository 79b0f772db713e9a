package commitlog

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// This file is fluxo's one RecordBatch v2 encoder (the layout is in the
// package doc; the parser is ParseHeader and ValidateBatch in batch.go).
// The log, the edge's spool, the uplink and the benchmarks all build their
// batches here: reserve HeaderSize bytes, append records with AppendRecord,
// then fill the header in with FinishBatch.

// BatchHeader carries the header fields a producer chooses for a batch.
type BatchHeader struct {
	FirstTimestamp int64 // timestamp of the first record; deltas are relative to it
	ProducerID     int64 // -1 when not idempotent
	ProducerEpoch  int16 // -1 when not idempotent
	BaseSequence   int32 // -1 when not idempotent
	LeaderEpoch    int32 // -1 from producers; the leader stamps its epoch
	Attributes     int16 // codec in the low three bits (CompressionNone, …)
}

// NoProducer is the header of an uncompressed batch from a producer
// without idempotence.
func NoProducer(firstTimestamp int64) BatchHeader {
	return BatchHeader{FirstTimestamp: firstTimestamp, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, LeaderEpoch: -1}
}

// AppendBatch encodes recs as one uncompressed RecordBatch v2 and appends it
// to dst. Record i gets offset delta i; each record's TimestampDelta64,
// key, value and headers are kept (its OffsetDelta, TimestampDelta and
// Length fields are ignored). The base offset is 0: Append assigns it.
// h.Attributes must say no compression.
func AppendBatch(dst []byte, h BatchHeader, recs []kmsg.Record) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	maxTS := h.FirstTimestamp
	for i := range recs {
		r := &recs[i]
		dst = AppendRecord(dst, int32(i), r.TimestampDelta64, r.Key, r.Value, r.Headers)
		maxTS = max(maxTS, h.FirstTimestamp+r.TimestampDelta64)
	}
	FinishBatch(dst[start:], h, int32(len(recs)), maxTS)
	return dst
}

// FinishBatch fills in the header of the RecordBatch v2 that is all of b:
// HeaderSize reserved bytes, then the records section (numRecords records
// with offset deltas 0 to numRecords-1, compressed as h.Attributes says).
// It writes base offset 0, the length, h's fields, maxTimestamp, magic 2
// and, last, the CRC. It returns b.
func FinishBatch(b []byte, h BatchHeader, numRecords int32, maxTimestamp int64) []byte {
	binary.BigEndian.PutUint64(b[offBaseOffset:], 0)
	binary.BigEndian.PutUint32(b[offLength:], uint32(len(b)-lengthPrefix))
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(h.LeaderEpoch))
	b[offMagic] = Magic
	binary.BigEndian.PutUint16(b[offAttributes:], uint16(h.Attributes))
	binary.BigEndian.PutUint32(b[offLastOffsetDelta:], uint32(numRecords-1))
	binary.BigEndian.PutUint64(b[offFirstTimestamp:], uint64(h.FirstTimestamp))
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(maxTimestamp))
	binary.BigEndian.PutUint64(b[offProducerID:], uint64(h.ProducerID))
	binary.BigEndian.PutUint16(b[offProducerEpoch:], uint16(h.ProducerEpoch))
	binary.BigEndian.PutUint32(b[offBaseSequence:], uint32(h.BaseSequence))
	binary.BigEndian.PutUint32(b[offNumRecords:], uint32(numRecords))
	binary.BigEndian.PutUint32(b[offCRC:], crc32c(b[crcStart:]))
	return b
}

// AppendRecord appends one record as RecordBatch v2 stores it (length,
// attributes, timestamp delta, offset delta, key, value, headers) and
// returns the extended buffer. The length prefix is computed from the
// field sizes, so the record is encoded in one pass. A nil key or header
// value is encoded as null, as kmsg.Record.AppendTo does.
func AppendRecord(dst []byte, offsetDelta int32, tsDelta int64, key, value []byte, headers []kmsg.Header) []byte {
	return appendRecord(dst, offsetDelta, tsDelta, key, value, nil, headers)
}

// AppendRecordWithHeader is AppendRecord with one more header, first,
// ahead of headers (the spool stores the core topic that way without
// building a new header slice per record).
func AppendRecordWithHeader(dst []byte, offsetDelta int32, tsDelta int64, key, value []byte, first kmsg.Header, headers []kmsg.Header) []byte {
	return appendRecord(dst, offsetDelta, tsDelta, key, value, &first, headers)
}

func appendRecord(dst []byte, offsetDelta int32, tsDelta int64, key, value []byte, first *kmsg.Header, headers []kmsg.Header) []byte {
	nh := len(headers)
	if first != nil {
		nh++
	}
	n := 1 + varintLen(tsDelta) + varintLen(int64(offsetDelta)) +
		bytesLen(key) + bytesLen(value) + varintLen(int64(nh))
	if first != nil {
		n += headerLen(first)
	}
	for i := range headers {
		n += headerLen(&headers[i])
	}
	dst = binary.AppendVarint(dst, int64(n))
	dst = append(dst, 0) // attributes
	dst = binary.AppendVarint(dst, tsDelta)
	dst = binary.AppendVarint(dst, int64(offsetDelta))
	dst = appendBytes(dst, key)
	dst = appendBytes(dst, value)
	dst = binary.AppendVarint(dst, int64(nh))
	if first != nil {
		dst = appendHeader(dst, first)
	}
	for i := range headers {
		dst = appendHeader(dst, &headers[i])
	}
	return dst
}

func varintLen(x int64) int {
	ux := uint64(x<<1) ^ uint64(x>>63)
	n := 1
	for ux >= 0x80 {
		ux >>= 7
		n++
	}
	return n
}

func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

func headerLen(h *kmsg.Header) int {
	return varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

func appendHeader(dst []byte, h *kmsg.Header) []byte {
	dst = binary.AppendVarint(dst, int64(len(h.Key)))
	dst = append(dst, h.Key...)
	return appendBytes(dst, h.Value)
}
