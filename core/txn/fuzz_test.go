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
		updated:    time.UnixMilli(1700000000000), started: time.UnixMilli(1699999999000), lastEpoch: -1}
	f.Add(encodeKey("tx"), encodeValue(m))
	m2 := *m
	m2.lastEpoch, m2.state = 2, PrepareAbort
	f.Add(encodeKey("tx"), encodeValue(&m2))
	f.Add(encodeKey("tx"), []byte(nil))
	f.Add(encodeKey(""), encodeValue(&meta{producerID: 1, state: Empty, lastEpoch: -1}))
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
			!maps.Equal(m2.partitions, m.partitions) || !m2.started.Equal(m.started) || m2.lastEpoch != m.lastEpoch {
			t.Fatalf("re-decoding %q: got %+v, want %+v", id, m2, m)
		}
	})
}

func TestRecordRoundTrip(t *testing.T) {
	m := &meta{producerID: 42, epoch: 9, timeout: 90 * time.Second, state: PrepareCommit,
		partitions: map[Partition]struct{}{{"orders", 3}: {}, {"__consumer_offsets", 11}: {}},
		updated:    time.UnixMilli(1700000000123), started: time.UnixMilli(1700000000000), lastEpoch: -1}
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

// The producer's last epoch travels in a version 1 value, in a tagged
// field that Kafka's reader skips; without one the value stays version 0.
func TestRecordLastEpoch(t *testing.T) {
	m := &meta{producerID: 42, epoch: 10, timeout: time.Minute, state: PrepareAbort,
		partitions: map[Partition]struct{}{{"orders", 3}: {}}, updated: time.UnixMilli(1700000000123), lastEpoch: 9}
	raw := encodeValue(m)
	_, got, ok, err := decodeRecord(encodeKey("shop"), raw)
	if err != nil || !ok || got.lastEpoch != 9 || got.epoch != 10 || got.state != PrepareAbort {
		t.Fatalf("got %+v, %v, %v, want last epoch 9 at epoch 10", got, ok, err)
	}
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(raw); err != nil || v.Version != 1 || v.ProducerEpoch != 10 || len(v.Topics) != 1 {
		t.Fatalf("as kmsg.TxnMetadataValue: got %+v, %v, want version 1, epoch 10, 1 topic", v, err)
	}
	m.lastEpoch = -1
	if raw := encodeValue(m); raw[1] != 0 || raw[0] != 0 {
		t.Fatalf("without a last epoch: got version %d, want 0", int16(raw[0])<<8|int16(raw[1]))
	}
	// A damaged last epoch is corrupt, not misread.
	v.UnknownTags = kmsg.Tags{}
	v.UnknownTags.Set(lastEpochTag, []byte{1})
	if _, _, _, err := decodeRecord(encodeKey("shop"), v.AppendTo(nil)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("last epoch of 1 byte: got %v, want ErrCorrupt", err)
	}
}
