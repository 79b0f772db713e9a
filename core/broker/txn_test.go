package broker

import (
	"errors"
	"testing"
	"time"

	"github.com/fluxo-io/fluxo/core/commitlog"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzParseControlRecord checks that ParseControlRecord never panics,
// fails only with ErrControlRecord, and accepts only abort and commit
// records of key version 0.
func FuzzParseControlRecord(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1}, []byte{0, 0, 0, 0, 0, 5})
	f.Add([]byte{0, 0, 0, 0}, []byte{})
	f.Add([]byte{0, 1, 0, 0}, []byte{0, 0, 0, 0, 0, 5})
	f.Add([]byte{0, 0, 0, 2}, []byte(nil))
	f.Add([]byte{0}, []byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		cr, err := ParseControlRecord(key, value)
		if err != nil {
			if !errors.Is(err, ErrControlRecord) {
				t.Fatalf("got error %v, want one wrapping ErrControlRecord", err)
			}
			return
		}
		if cr.Type != ControlAbort && cr.Type != ControlCommit {
			t.Fatalf("got type %d, want abort or commit", cr.Type)
		}
	})
}

// MarkerBatch builds a valid control batch that ParseControlRecord reads
// back, with Kafka's layout (kmsg's EndTxnMarker and ControlRecordKey).
func TestMarkerBatch(t *testing.T) {
	for _, commit := range []bool{false, true} {
		raw := MarkerBatch(17, 4, commit, 9, time.UnixMilli(1700000000000))
		b, err := commitlog.ValidateBatch(raw)
		if err != nil {
			t.Fatalf("ValidateBatch: %v", err)
		}
		if !b.IsControl() || !b.IsTransactional() || b.ProducerID != 17 || b.ProducerEpoch != 4 || b.NumRecords != 1 {
			t.Fatalf("header: got %+v, want a control, transactional batch of producer 17 epoch 4 with one record", b)
		}
		err = commitlog.Records(b, raw, func(_, _ int64, r *kmsg.Record) bool {
			cr, err := ParseControlRecord(r.Key, r.Value)
			want := ControlAbort
			if commit {
				want = ControlCommit
			}
			if err != nil || cr.Type != want || cr.CoordinatorEpoch != 9 {
				t.Errorf("control record: got %+v, %v, want type %d epoch 9", cr, err, want)
			}
			var k kmsg.ControlRecordKey
			var v kmsg.EndTxnMarker
			if err := k.ReadFrom(r.Key); err != nil || int16(k.Type) != want {
				t.Errorf("as kmsg.ControlRecordKey: got %+v, %v", k, err)
			}
			if err := v.ReadFrom(r.Value); err != nil || v.CoordinatorEpoch != 9 {
				t.Errorf("as kmsg.EndTxnMarker: got %+v, %v", v, err)
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
