package uplink

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/golang/snappy"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/core/commitlog"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeBatch builds one RecordBatch v2 for a partition: the records in
// spool order, the producer's id, epoch and base sequence, and the records
// section compressed with snappy (raw block format, as Kafka clients
// write it) when compress is set. It returns the batch and the size of
// its records before compression.
func encodeBatch(recs []spool.Record, pid int64, epoch int16, baseSeq int32, compress bool) ([]byte, int) {
	first := recs[0].Time.UnixMilli()
	maxTS := first
	var body []byte
	for i, r := range recs {
		ts := r.Time.UnixMilli()
		maxTS = max(maxTS, ts)
		kr := kmsg.Record{Key: r.Key, Value: r.Value, Headers: r.Headers, OffsetDelta: int32(i), TimestampDelta64: ts - first}
		kr.Length = 0
		enc := kr.AppendTo(nil)
		kr.Length = int32(len(enc) - 1)
		body = kr.AppendTo(body)
	}
	raw := len(body)
	attrs := int16(0)
	if compress {
		body = snappy.Encode(nil, body)
		attrs = commitlog.CompressionSnappy
	}
	b := kmsg.RecordBatch{
		FirstOffset:          0,
		Length:               int32(commitlog.HeaderSize - 12 + len(body)),
		PartitionLeaderEpoch: -1,
		Magic:                commitlog.Magic,
		Attributes:           attrs,
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       first,
		MaxTimestamp:         maxTS,
		ProducerID:           pid,
		ProducerEpoch:        epoch,
		FirstSequence:        baseSeq,
		NumRecords:           int32(len(recs)),
		Records:              body,
	}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], castagnoli))
	return out, raw
}
