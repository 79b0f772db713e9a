package group

import (
	"errors"
	"testing"
)

// FuzzDecodeRecord decodes arbitrary __consumer_offsets keys and values.
// Invariant: it never panics; it either skips a record type it does not
// know (ok false, no error), reports ErrCorrupt, or returns a record whose
// kind matches its key version (an offset commit for versions 0 and 1, a
// group's metadata for 2), and a decoded commit re-encodes to a value that
// decodes to the same offset.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(offsetKey("g", "t", 3), offsetValue(offset{offset: 42, leaderEpoch: 1, metadata: "m"}))
	f.Add(offsetKey("g", "t", 3), []byte(nil))
	f.Add(groupKey("g"), []byte{0, 3, 0, 0})
	f.Add([]byte{0, 9, 1, 2}, []byte{1})
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		d, ok, err := decodeRecord(key, value)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
			return
		}
		if !ok {
			return
		}
		version := int(key[0])<<8 | int(key[1])
		if d.isOffset != (version == 0 || version == 1) {
			t.Fatalf("key version %d decoded as offset=%v", version, d.isOffset)
		}
		if d.isOffset && d.offset != nil {
			d2, ok2, err2 := decodeRecord(offsetKey(d.group, d.topic, d.partition), offsetValue(*d.offset))
			if err2 != nil || !ok2 || d2.offset == nil || d2.offset.offset != d.offset.offset {
				t.Fatalf("re-encoded commit: %+v %v %v, want offset %d", d2.offset, ok2, err2, d.offset.offset)
			}
		}
	})
}
