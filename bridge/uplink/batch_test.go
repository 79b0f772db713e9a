package uplink

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/core/commitlog"
)

// encodeBatch is batchEncoder.encode with buffers of its own.
func encodeBatch(recs []spool.Record, pid int64, epoch int16, baseSeq int32, compress bool) ([]byte, int) {
	var e batchEncoder
	return e.encode(recs, pid, epoch, baseSeq, compress)
}

// TestEncodeBatchIsPlainSnappy: a compressed batch is valid, plain snappy
// (golang/snappy decodes it), and holds the records as given.
func TestEncodeBatchIsPlainSnappy(t *testing.T) {
	var recs []spool.Record
	t0 := time.UnixMilli(1_700_000_000_000)
	for i := 0; i < 500; i++ {
		dev := fmt.Sprintf("c-%04d", i%7)
		recs = append(recs, spool.Record{Key: []byte(dev), Time: t0.Add(time.Duration(i) * time.Millisecond),
			Value:   []byte(fmt.Sprintf(`{"device":%q,"seq":%d,"speed_kmh":%d}`, dev, i, i%90)),
			Headers: []kmsg.Header{{Key: "mqtt.topic", Value: []byte("cars/" + dev + "/telemetry")}}})
	}
	batch, raw := encodeBatch(recs, 7, 1, 100, true)
	b, err := commitlog.ValidateBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	if b.Compression() != commitlog.CompressionSnappy || b.ProducerID != 7 || b.BaseSequence != 100 || b.NumRecords != 500 {
		t.Fatalf("got header %+v, want snappy, producer 7, sequence 100, 500 records", b)
	}
	plain, err := snappy.Decode(nil, batch[commitlog.HeaderSize:])
	if err != nil || len(plain) != raw {
		t.Fatalf("golang/snappy: got %d bytes, %v; want %d", len(plain), err, raw)
	}
	uncompressed, _ := encodeBatch(recs, 7, 1, 100, false)
	if !bytes.Equal(plain, uncompressed[commitlog.HeaderSize:]) {
		t.Fatal("decompressed records differ from the uncompressed batch's")
	}
	i := 0
	err = commitlog.Records(b, batch, func(off, ts int64, r *kmsg.Record) bool {
		if !bytes.Equal(r.Value, recs[i].Value) || ts != recs[i].Time.UnixMilli() || off != int64(i) {
			t.Fatalf("record %d: got %q at %d, want %q at %d", i, r.Value, ts, recs[i].Value, recs[i].Time.UnixMilli())
		}
		i++
		return true
	})
	if err != nil || i != 500 {
		t.Fatalf("got %d records, %v", i, err)
	}
}

func TestLatencyHistogram(t *testing.T) {
	var h latencyHist
	for _, d := range []time.Duration{500 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Minute} {
		h.observe(d)
	}
	got := h.snapshot()
	want := map[float64]uint64{0.001: 2, 0.002: 2, 0.005: 3, 60: 3}
	for ub, n := range want {
		if got.Buckets[ub] != n {
			t.Errorf("bucket le=%v: got %d, want %d", ub, got.Buckets[ub], n)
		}
	}
	if got.Count != 4 {
		t.Errorf("count: got %d, want 4 (the +Inf bucket counts too)", got.Count)
	}
	if want := 0.0005 + 0.001 + 0.003 + 120; got.Sum < want-1e-6 || got.Sum > want+1e-6 {
		t.Errorf("sum: got %v, want %v", got.Sum, want)
	}
}
