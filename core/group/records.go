package group

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrCorrupt marks a log record the coordinator cannot decode. New returns
// it wrapped, with the record's position; check it with errors.Is.
var ErrCorrupt = errors.New("group: corrupt record")

// Record versions written. Keys and values are Kafka's __consumer_offsets
// formats, encoded with kmsg; see the package documentation.
const (
	offsetKeyVersion         = 1 // OffsetCommitKey
	groupKeyVersion          = 2 // GroupMetadataKey
	offsetValueVersion       = 3 // OffsetCommitValue with leader epoch
	offsetValueVersionExpiry = 1 // OffsetCommitValue with an explicit expire timestamp
	groupValueVersion        = 3 // GroupMetadataValue with instance ids
)

// offset is one committed offset.
type offset struct {
	offset      int64
	leaderEpoch int32 // -1 when unknown
	metadata    string
	committed   time.Time
	// expires is set only by OffsetCommit v2-v4 requests that carried a
	// retention time; the zero value means the group's retention rules.
	expires time.Time
}

func offsetKey(group, topic string, partition int32) []byte {
	k := kmsg.OffsetCommitKey{Version: offsetKeyVersion, Group: group, Topic: topic, Partition: partition}
	return k.AppendTo(nil)
}

func offsetValue(o offset) []byte {
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetValueVersion
	v.Offset = o.offset
	v.LeaderEpoch = o.leaderEpoch
	v.Metadata = o.metadata
	v.CommitTimestamp = o.committed.UnixMilli()
	if !o.expires.IsZero() {
		v.Version = offsetValueVersionExpiry
		v.ExpireTimestamp = o.expires.UnixMilli()
	}
	return v.AppendTo(nil)
}

func groupKey(group string) []byte {
	k := kmsg.GroupMetadataKey{Version: groupKeyVersion, Group: group}
	return k.AppendTo(nil)
}

// decoded is one replayed record: an offset commit or a group's metadata,
// either of which may be a tombstone (nil offset or meta).
type decoded struct {
	group     string
	isOffset  bool
	topic     string
	partition int32
	offset    *offset
	meta      *kmsg.GroupMetadataValue
}

// decodeRecord decodes a record of the log. ok is false for a key version
// that is not Kafka's classic group format (Kafka writes other record
// types to the same topic); such records are skipped.
func decodeRecord(key, value []byte) (d decoded, ok bool, err error) {
	if len(key) < 2 {
		return d, false, fmt.Errorf("%w: key of %d bytes", ErrCorrupt, len(key))
	}
	switch version := int16(binary.BigEndian.Uint16(key)); version {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if err := k.ReadFrom(key); err != nil {
			return d, false, fmt.Errorf("%w: offset commit key: %v", ErrCorrupt, err)
		}
		d = decoded{group: k.Group, isOffset: true, topic: k.Topic, partition: k.Partition}
		if value == nil {
			return d, true, nil
		}
		var v kmsg.OffsetCommitValue
		if err := v.ReadFrom(value); err != nil {
			return d, false, fmt.Errorf("%w: offset commit value for group %q: %v", ErrCorrupt, k.Group, err)
		}
		o := offset{offset: v.Offset, leaderEpoch: -1, metadata: v.Metadata, committed: time.UnixMilli(v.CommitTimestamp)}
		if v.Version >= 3 {
			o.leaderEpoch = v.LeaderEpoch
		}
		if v.Version == 1 && v.ExpireTimestamp >= 0 {
			o.expires = time.UnixMilli(v.ExpireTimestamp)
		}
		d.offset = &o
		return d, true, nil
	case 2:
		var k kmsg.GroupMetadataKey
		if err := k.ReadFrom(key); err != nil {
			return d, false, fmt.Errorf("%w: group metadata key: %v", ErrCorrupt, err)
		}
		d = decoded{group: k.Group}
		if value == nil {
			return d, true, nil
		}
		v := kmsg.NewGroupMetadataValue()
		if err := v.ReadFrom(value); err != nil {
			return d, false, fmt.Errorf("%w: group metadata value for group %q: %v", ErrCorrupt, k.Group, err)
		}
		d.meta = &v
		return d, true, nil
	default:
		return d, false, nil
	}
}
