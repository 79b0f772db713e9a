package main

import (
	"bytes"
	"fmt"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/s2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// codecEstimate is what the uplink would send for a sample of records
// with one choice of codec and headers.
type codecEstimate struct {
	name    string
	sent    int64 // batch bytes: compressed records sections plus headers
	payload int64 // the records' values
}

// Headers that repeat what the record already says: the receive time is
// the record's timestamp. (The edge already leaves out mqtt.client when
// it is the device id, the key, as with the devices package's clients.)
var redundantHeaders = map[string]bool{"edge.received_ms": true}

// estimateCompression re-encodes records the consumer read (the records
// the uplink sent, headers included) in batches of perBatch, as the
// uplink's encodeBatch does, and compresses each records section with
// snappy as the uplink does (s2's EncodeSnappyBetter: this checks the
// estimate against its metrics), with two other snappy encoders
// (golang/snappy's, the uplink's before; s2's best), and with lz4 and zstd
// (franz-go's default compressors), also without the redundant headers.
func estimateCompression(recs []*kgo.Record, perBatch int) ([]codecEstimate, error) {
	if len(recs) == 0 || perBatch < 1 {
		return nil, nil
	}
	type codec struct {
		name     string
		compress func([]byte) []byte
	}
	var codecs []codec
	codecs = append(codecs,
		codec{"snappy (s2's better encoder)", func(b []byte) []byte { return s2.EncodeSnappyBetter(nil, b) }},
		codec{"snappy (golang/snappy)", func(b []byte) []byte { return snappy.Encode(nil, b) }},
		codec{"snappy (s2's best encoder)", func(b []byte) []byte { return s2.EncodeSnappyBest(nil, b) }},
	)
	for _, c := range []struct {
		name  string
		codec kgo.CompressionCodec
	}{{"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()}} {
		comp, err := kgo.DefaultCompressor(c.codec)
		if err != nil {
			return nil, err
		}
		codecs = append(codecs, codec{c.name, func(b []byte) []byte {
			var buf bytes.Buffer
			out, _ := comp.Compress(&buf, b)
			return bytes.Clone(out)
		}})
	}
	var out []codecEstimate
	for _, lean := range []bool{false, true} {
		for _, c := range codecs {
			e := codecEstimate{name: c.name}
			if lean {
				e.name += ", without edge.received_ms"
			}
			for start := 0; start < len(recs); start += perBatch {
				batch := recs[start:min(start+perBatch, len(recs))]
				body := encodeRecords(batch, lean)
				e.sent += int64(len(c.compress(body))) + commitlog.HeaderSize
				for _, r := range batch {
					e.payload += int64(len(r.Value))
				}
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// encodeRecords is the records section of a batch of recs, as the
// uplink builds it (with commitlog's encoder).
func encodeRecords(recs []*kgo.Record, lean bool) []byte {
	first := recs[0].Timestamp.UnixMilli()
	var body []byte
	for i, r := range recs {
		var hs []kmsg.Header
		for _, h := range r.Headers {
			if !lean || !redundantHeaders[h.Key] {
				hs = append(hs, kmsg.Header{Key: h.Key, Value: h.Value})
			}
		}
		body = commitlog.AppendRecord(body, int32(i), r.Timestamp.UnixMilli()-first, r.Key, r.Value, hs)
	}
	return body
}

// checkHeaders returns an error unless the records carry the edge's
// redundant headers, so that the estimate's "without" rows mean what
// they say.
func checkHeaders(recs []*kgo.Record) error {
	for _, r := range recs {
		n := 0
		for _, h := range r.Headers {
			if redundantHeaders[h.Key] {
				n++
			}
		}
		if n != len(redundantHeaders) {
			return fmt.Errorf("record at offset %d lacks the edge.received_ms header", r.Offset)
		}
	}
	return nil
}
