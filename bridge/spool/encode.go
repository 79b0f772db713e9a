package spool

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Offsets of the RecordBatch v2 header fields a batch encoder fills in
// (the layout is in core/commitlog's doc).
const (
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offFirstTimestamp  = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offNumRecords      = 57
)

// AppendRecord appends one record as RecordBatch v2 stores it (length,
// attributes, timestamp delta, offset delta, key, value, headers) and
// returns the extended buffer. The length prefix is computed from the
// field sizes, so the record is encoded once. A nil key or header value
// is encoded as null, as kmsg.Record.AppendTo does.
func AppendRecord(dst []byte, offsetDelta int32, tsDelta int64, key, value []byte, headers []kmsg.Header) []byte {
	return appendRecord(dst, offsetDelta, tsDelta, key, value, nil, headers)
}

// appendRecord is AppendRecord with an optional first header (the spool's
// core topic) ahead of headers.
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

// FinishBatch fills in the header of a RecordBatch v2 whose records
// (numRecords of them, offset deltas 0 to numRecords-1) follow
// commitlog.HeaderSize reserved bytes at the start of b: base offset 0,
// no leader epoch, the given attributes, timestamps and producer fields,
// and the CRC. It returns b.
func FinishBatch(b []byte, attrs int16, numRecords int32, firstTS, maxTS int64, pid int64, epoch int16, baseSeq int32) []byte {
	binary.BigEndian.PutUint64(b[0:], 0)
	binary.BigEndian.PutUint32(b[offLength:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], 0xffffffff)
	b[offMagic] = byte(commitlog.Magic)
	binary.BigEndian.PutUint16(b[offAttributes:], uint16(attrs))
	binary.BigEndian.PutUint32(b[offLastOffsetDelta:], uint32(numRecords-1))
	binary.BigEndian.PutUint64(b[offFirstTimestamp:], uint64(firstTS))
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(maxTS))
	binary.BigEndian.PutUint64(b[offProducerID:], uint64(pid))
	binary.BigEndian.PutUint16(b[offProducerEpoch:], uint16(epoch))
	binary.BigEndian.PutUint32(b[offBaseSequence:], uint32(baseSeq))
	binary.BigEndian.PutUint32(b[offNumRecords:], uint32(numRecords))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return b
}
