package txn

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzDecodeRecord checks that decodeRecord never panics, that it fails
// only with ErrCorrupt, and that what it decodes encodes back to a record
// that decodes to the same transaction state.
func FuzzDecodeRecord(f *testing.F) {
	m := &meta{producerID: 7, epoch: 3, timeout: time.Minute, state: Ongoing,
		partitions: map[Partition]struct{}{{"a", 0}: {}, {"a", 2}: {}, {"b", 1}: {}},
		updated:    time.UnixMilli(1700000000000), started: time.UnixMilli(1699999999000)}
	f.Add(encodeKey("tx"), encodeValue(m))
	f.Add(encodeKey("tx"), []byte(nil))
	f.Add(encodeKey(""), encodeValue(&meta{producerID: 1, state: Empty}))
	f.Add([]byte{0, 1, 0, 2, 'g', 'g'}, []byte{0})
	f.Add([]byte{0}, []byte{})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		id, m, ok, err := decodeRecord(key, value)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got error %v, want one wrapping ErrCorrupt", err)
			}
			return
		}
		if !ok || m == nil {
			return
		}
		id2, m2, ok2, err := decodeRecord(encodeKey(id), encodeValue(m))
		if err != nil || !ok2 || id2 != id {
			t.Fatalf("re-decoding %q: got %q, %v, %v, want the same id", id, id2, ok2, err)
		}
		if m2.producerID != m.producerID || m2.epoch != m.epoch || m2.state != m.state || m2.timeout != m.timeout ||
			!maps.Equal(m2.partitions, m.partitions) || !m2.started.Equal(m.started) {
			t.Fatalf("re-decoding %q: got %+v, want %+v", id, m2, m)
		}
	})
}

func TestRecordRoundTrip(t *testing.T) {
	m := &meta{producerID: 42, epoch: 9, timeout: 90 * time.Second, state: PrepareCommit,
		partitions: map[Partition]struct{}{{"orders", 3}: {}, {"__consumer_offsets", 11}: {}},
		updated:    time.UnixMilli(1700000000123), started: time.UnixMilli(1700000000000)}
	id, got, ok, err := decodeRecord(encodeKey("shop"), encodeValue(m))
	if err != nil || !ok {
		t.Fatalf("decode: got %v, %v, want a record", ok, err)
	}
	if id != "shop" || got.producerID != 42 || got.epoch != 9 || got.state != PrepareCommit ||
		got.timeout != 90*time.Second || !maps.Equal(got.partitions, m.partitions) || !got.started.Equal(m.started) {
		t.Errorf("got %q %+v, want shop %+v", id, got, m)
	}
	// Kafka's own encoding reads the same: the value is a
	// TxnMetadataValue v0.
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(encodeValue(m)); err != nil || v.State != PrepareCommit || len(v.Topics) != 2 {
		t.Errorf("as kmsg.TxnMetadataValue: got %+v, %v, want state PrepareCommit and 2 topics", v, err)
	}
}
