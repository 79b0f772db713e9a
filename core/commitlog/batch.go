package commitlog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// RecordBatch v2 header layout (all integers big-endian). The CRC covers
// bytes [crcStart, end); the base offset, length, leader epoch and magic are
// outside it, which is what lets Append assign offsets and a leader stamp its
// epoch without re-encoding.
const (
	offBaseOffset      = 0
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

	// HeaderSize is the size of a RecordBatch v2 header, up to the records.
	HeaderSize = 61
	// lengthPrefix is the part of the header not counted in the length field.
	lengthPrefix = 12
	crcStart     = offAttributes

	// Magic is the only record format fluxo stores.
	Magic = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Compression codecs, from the low three bits of a batch's attributes.
const (
	CompressionNone   = 0
	CompressionGzip   = 1
	CompressionSnappy = 2
	CompressionLZ4    = 3
	CompressionZstd   = 4
)

// Batch is the decoded header of one RecordBatch v2. It never holds the
// records; they stay in the buffer the header was read from.
type Batch struct {
	BaseOffset      int64
	Size            int // whole batch in bytes, header included
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	FirstTimestamp  int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	NumRecords      int32
}

// LastOffset is the offset of the batch's last record.
func (b Batch) LastOffset() int64 { return b.BaseOffset + int64(b.LastOffsetDelta) }

// NextOffset is the offset that follows the batch.
func (b Batch) NextOffset() int64 { return b.LastOffset() + 1 }

// Compression is the batch's codec (CompressionNone, …).
func (b Batch) Compression() int { return int(b.Attributes & 0x07) }

// IsTransactional reports whether the batch belongs to a transaction.
func (b Batch) IsTransactional() bool { return b.Attributes&0x10 != 0 }

// IsControl reports whether the batch holds control records.
func (b Batch) IsControl() bool { return b.Attributes&0x20 != 0 }

// LastSequence is the producer sequence of the batch's last record.
func (b Batch) LastSequence() int32 {
	if b.BaseSequence < 0 {
		return b.BaseSequence
	}
	// Sequences wrap at MaxInt32, as in Kafka.
	return int32((int64(b.BaseSequence) + int64(b.LastOffsetDelta)) % (1 << 31))
}

// ParseHeader decodes the header at the start of buf and checks that the
// length field is sane and that buf holds the whole batch. It does not check
// the CRC; see ValidateBatch.
func ParseHeader(buf []byte) (Batch, error) {
	if len(buf) < HeaderSize {
		return Batch{}, fmt.Errorf("%w: %d bytes, shorter than a %d-byte header", ErrInvalidBatch, len(buf), HeaderSize)
	}
	length := int32(binary.BigEndian.Uint32(buf[offLength:]))
	if length < HeaderSize-lengthPrefix {
		return Batch{}, fmt.Errorf("%w: length field %d below the minimum %d", ErrInvalidBatch, length, HeaderSize-lengthPrefix)
	}
	size := int64(length) + lengthPrefix
	if size > int64(len(buf)) {
		return Batch{}, fmt.Errorf("%w: length field says %d bytes, only %d present", ErrInvalidBatch, size, len(buf))
	}
	b := Batch{
		BaseOffset:      int64(binary.BigEndian.Uint64(buf[offBaseOffset:])),
		Size:            int(size),
		LeaderEpoch:     int32(binary.BigEndian.Uint32(buf[offLeaderEpoch:])),
		Magic:           int8(buf[offMagic]),
		CRC:             binary.BigEndian.Uint32(buf[offCRC:]),
		Attributes:      int16(binary.BigEndian.Uint16(buf[offAttributes:])),
		LastOffsetDelta: int32(binary.BigEndian.Uint32(buf[offLastOffsetDelta:])),
		FirstTimestamp:  int64(binary.BigEndian.Uint64(buf[offFirstTimestamp:])),
		MaxTimestamp:    int64(binary.BigEndian.Uint64(buf[offMaxTimestamp:])),
		ProducerID:      int64(binary.BigEndian.Uint64(buf[offProducerID:])),
		ProducerEpoch:   int16(binary.BigEndian.Uint16(buf[offProducerEpoch:])),
		BaseSequence:    int32(binary.BigEndian.Uint32(buf[offBaseSequence:])),
		NumRecords:      int32(binary.BigEndian.Uint32(buf[offNumRecords:])),
	}
	if b.Magic != Magic {
		return b, fmt.Errorf("%w: magic %d, want %d", ErrInvalidBatch, b.Magic, Magic)
	}
	return b, nil
}

// ValidateBatch decodes and fully checks the batch at the start of buf:
// lengths, magic, CRC32C, and the record count against lastOffsetDelta.
// Trailing bytes after the batch are allowed; Batch.Size says where it ends.
func ValidateBatch(buf []byte) (Batch, error) {
	b, err := ParseHeader(buf)
	if err != nil {
		return b, err
	}
	if got := crc32.Checksum(buf[crcStart:b.Size], castagnoli); got != b.CRC {
		return b, fmt.Errorf("%w: crc %08x, computed %08x", ErrInvalidBatch, b.CRC, got)
	}
	if b.LastOffsetDelta < 0 {
		return b, fmt.Errorf("%w: negative lastOffsetDelta %d", ErrInvalidBatch, b.LastOffsetDelta)
	}
	if b.NumRecords <= 0 || int64(b.NumRecords) != int64(b.LastOffsetDelta)+1 {
		return b, fmt.Errorf("%w: %d records but lastOffsetDelta %d", ErrInvalidBatch, b.NumRecords, b.LastOffsetDelta)
	}
	// Every record takes at least 7 bytes uncompressed (length, attributes,
	// timestamp, offset delta, key, value, header count).
	if b.Compression() == CompressionNone && int64(b.NumRecords)*7 > int64(b.Size-HeaderSize) {
		return b, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrInvalidBatch, b.NumRecords, b.Size-HeaderSize)
	}
	if b.Compression() > CompressionZstd {
		return b, fmt.Errorf("%w: unknown compression codec %d", ErrInvalidBatch, b.Compression())
	}
	return b, nil
}

// SetBaseOffset rewrites the base offset of the batch at the start of buf.
// The CRC does not cover the field, so the batch stays valid.
func SetBaseOffset(buf []byte, offset int64) {
	binary.BigEndian.PutUint64(buf[offBaseOffset:], uint64(offset))
}

// SetLeaderEpoch rewrites the partition leader epoch of the batch at the
// start of buf. The CRC does not cover the field.
func SetLeaderEpoch(buf []byte, epoch int32) {
	binary.BigEndian.PutUint32(buf[offLeaderEpoch:], uint32(epoch))
}

// Batches iterates over concatenated batches in buf, calling fn with each
// batch's header and bytes. It stops at the first error, at a partial batch
// at the end (returning ErrInvalidBatch), or when fn returns false.
func Batches(buf []byte, fn func(b Batch, raw []byte) bool) error {
	for len(buf) > 0 {
		b, err := ParseHeader(buf)
		if err != nil {
			return err
		}
		if !fn(b, buf[:b.Size]) {
			return nil
		}
		buf = buf[b.Size:]
	}
	return nil
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
