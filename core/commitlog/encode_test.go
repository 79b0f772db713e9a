package commitlog

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// kmsgBatch is the reference encoding of recs: kmsg's own RecordBatch and
// Record encoders, which share no code with AppendBatch.
func kmsgBatch(h BatchHeader, recs []kmsg.Record) []byte {
	var body []byte
	maxTS := h.FirstTimestamp
	for i, r := range recs {
		r.OffsetDelta = int32(i)
		r.TimestampDelta = int32(r.TimestampDelta64)
		r.Length = 0
		r.Length = int32(len(r.AppendTo(nil)) - 1) // AppendTo wrote a one-byte zero length
		body = r.AppendTo(body)
		maxTS = max(maxTS, h.FirstTimestamp+r.TimestampDelta64)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          0,
		Length:               int32(HeaderSize - lengthPrefix + len(body)),
		PartitionLeaderEpoch: h.LeaderEpoch,
		Magic:                Magic,
		Attributes:           h.Attributes,
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       h.FirstTimestamp,
		MaxTimestamp:         maxTS,
		ProducerID:           h.ProducerID,
		ProducerEpoch:        h.ProducerEpoch,
		FirstSequence:        h.BaseSequence,
		NumRecords:           int32(len(recs)),
		Records:              body,
	}
	out := rb.AppendTo(nil)
	rb.CRC = int32(crc32c(out[crcStart:]))
	return rb.AppendTo(nil)
}

// TestAppendBatchMatchesKmsg checks the one-pass encoder against kmsg's
// encoders byte for byte, over null and empty fields, negative deltas,
// long varints and producer fields, and that the result validates.
func TestAppendBatchMatchesKmsg(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 300)
	cases := []struct {
		h    BatchHeader
		recs []kmsg.Record
	}{
		{NoProducer(1_700_000_000_000), []kmsg.Record{{Key: []byte("c-1"), Value: []byte("v"), Headers: []kmsg.Header{{Key: "mqtt.topic", Value: []byte("a/b")}}}}},
		{NoProducer(1_700_000_000_000), []kmsg.Record{{Key: nil, Value: nil}, {Key: []byte{}, Value: []byte{}, TimestampDelta64: -5}}},
		{NoProducer(1_700_000_000_000), []kmsg.Record{{Key: big, Value: big, TimestampDelta64: 1 << 40, Headers: []kmsg.Header{{Key: "", Value: nil}, {Key: string(big), Value: big}}}}},
		{BatchHeader{FirstTimestamp: 7, ProducerID: 1 << 40, ProducerEpoch: 3, BaseSequence: 1 << 30, LeaderEpoch: 9}, []kmsg.Record{{Value: []byte("a")}, {Value: []byte("b"), TimestampDelta64: 2}}},
	}
	for i, c := range cases {
		want := kmsgBatch(c.h, c.recs)
		got := AppendBatch([]byte("prefix"), c.h, c.recs)
		if !bytes.Equal(got[:6], []byte("prefix")) {
			t.Fatalf("case %d: got prefix %q, want it kept", i, got[:6])
		}
		got = got[6:]
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d: got\n%x\nwant\n%x", i, got, want)
		}
		b, err := ValidateBatch(got)
		if err != nil {
			t.Fatalf("case %d: got %v, want a valid batch", i, err)
		}
		if b.ProducerID != c.h.ProducerID || b.LeaderEpoch != c.h.LeaderEpoch || b.BaseSequence != c.h.BaseSequence {
			t.Fatalf("case %d: got header %+v, want the fields of %+v", i, b, c.h)
		}
	}
}

// TestAppendRecordWithHeader checks that the extra first header encodes
// as if it led the header slice.
func TestAppendRecordWithHeader(t *testing.T) {
	first := kmsg.Header{Key: "fluxo.topic", Value: []byte("t")}
	rest := []kmsg.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: nil}}
	got := AppendRecordWithHeader(nil, 3, -2, []byte("k"), []byte("v"), first, rest)
	want := AppendRecord(nil, 3, -2, []byte("k"), []byte("v"), append([]kmsg.Header{first}, rest...))
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}

// FuzzAppendRecord checks that kmsg decodes every record AppendRecord
// writes to the fields it was given, with a length that covers the record.
func FuzzAppendRecord(f *testing.F) {
	f.Add(int32(0), int64(0), []byte("k"), []byte("v"), "h", []byte("hv"), false)
	f.Add(int32(1<<30), int64(-1<<40), []byte{}, []byte(nil), "", []byte(nil), true)
	f.Fuzz(func(t *testing.T, delta int32, ts int64, key, value []byte, hk string, hv []byte, nilKey bool) {
		if nilKey {
			key = nil
		}
		hs := []kmsg.Header{{Key: hk, Value: hv}}
		buf := AppendRecord(nil, delta, ts, key, value, hs)
		var r kmsg.Record
		if err := r.ReadFrom(buf); err != nil {
			t.Fatalf("got %v, want kmsg to read the record", err)
		}
		if r.OffsetDelta != delta || r.TimestampDelta64 != ts || !bytes.Equal(r.Key, key) || (r.Key == nil) != (key == nil) ||
			!bytes.Equal(r.Value, value) || len(r.Headers) != 1 || r.Headers[0].Key != hk || !bytes.Equal(r.Headers[0].Value, hv) {
			t.Fatalf("got %+v, want delta %d ts %d key %q value %q header %q=%q", r, delta, ts, key, value, hk, hv)
		}
		if again := r.AppendTo(nil); !bytes.Equal(again, buf) {
			t.Fatalf("got kmsg re-encoding %x, want %x", again, buf)
		}
	})
}
