package spool

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// TestEncodeMatchesKmsg checks the one-pass encoder against
// commitlog.AppendBatch (kmsg's encoder, run twice per record), byte for
// byte, over null and empty fields, negative deltas and long varints.
func TestEncodeMatchesKmsg(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 300)
	cases := [][]kmsg.Record{
		{{Key: []byte("c-1"), Value: []byte("v"), Headers: []kmsg.Header{{Key: "mqtt.topic", Value: []byte("a/b")}}}},
		{{Key: nil, Value: nil}, {Key: []byte{}, Value: []byte{}, TimestampDelta64: -5}},
		{{Key: big, Value: big, TimestampDelta64: 1 << 40, Headers: []kmsg.Header{{Key: "", Value: nil}, {Key: string(big), Value: big}}}},
	}
	for i, recs := range cases {
		want := commitlog.AppendBatch(nil, commitlog.NoProducer(1_700_000_000_000), recs)
		got := make([]byte, commitlog.HeaderSize)
		maxTS := int64(1_700_000_000_000)
		for j, r := range recs {
			got = AppendRecord(got, int32(j), r.TimestampDelta64, r.Key, r.Value, r.Headers)
			maxTS = max(maxTS, 1_700_000_000_000+r.TimestampDelta64)
		}
		got = FinishBatch(got, 0, int32(len(recs)), 1_700_000_000_000, maxTS, -1, -1, -1)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d: got\n%x\nwant\n%x", i, got, want)
		}
		if _, err := commitlog.ValidateBatch(got); err != nil {
			t.Fatalf("case %d: got %v, want a valid batch", i, err)
		}
	}
}
