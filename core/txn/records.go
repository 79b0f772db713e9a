package txn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrCorrupt marks a log record the coordinator cannot decode. New returns
// it wrapped, with the record's position; check it with errors.Is.
var ErrCorrupt = errors.New("txn: corrupt record")

// Record versions written; see the package documentation. A value that
// carries the producer's last epoch is written as version 1 with it in
// tagged field lastEpochTag.
const (
	keyVersion   = 0
	valueVersion = 0
	// lastEpochTag is the tag of the producer's last epoch (int16) in a
	// version 1 value: far above Kafka's own tags (0-3), which readers
	// that do not know it skip.
	lastEpochTag = 0x4658
)

// Record is one key/value pair of the coordinator's log.
type Record struct {
	Key []byte
	// Value is nil for a tombstone.
	Value []byte
}

// Partition names one topic partition.
type Partition struct {
	Topic     string
	Partition int32
}

// meta is what the log keeps of one transactional id.
type meta struct {
	producerID int64
	epoch      int16
	timeout    time.Duration
	state      kmsg.TransactionState
	partitions map[Partition]struct{}
	updated    time.Time
	started    time.Time // zero when no transaction has started
	// lastEpoch is the epoch an InitProducerID naming this producer
	// (KIP-360) had when it aborted the producer's ongoing transaction at
	// the next epoch (Kafka's lastProducerEpoch): the producer, retrying
	// with it, is not fenced by its own abort, at this coordinator or the
	// next. -1: none.
	lastEpoch int16
}

func encodeKey(id string) []byte {
	k := kmsg.TxnMetadataKey{Version: keyVersion, TransactionalID: id}
	return k.AppendTo(nil)
}

func encodeValue(m *meta) []byte {
	v := kmsg.NewTxnMetadataValue()
	v.Version = valueVersion
	if m.lastEpoch >= 0 {
		v.Version = 1
		v.UnknownTags.Set(lastEpochTag, binary.BigEndian.AppendUint16(nil, uint16(m.lastEpoch)))
	}
	v.ProducerID = m.producerID
	v.ProducerEpoch = m.epoch
	v.TimeoutMillis = int32(m.timeout / time.Millisecond)
	v.State = m.state
	v.LastUpdateTimestamp = m.updated.UnixMilli()
	v.StartTimestamp = -1
	if !m.started.IsZero() {
		v.StartTimestamp = m.started.UnixMilli()
	}
	byTopic := map[string][]int32{}
	for p := range m.partitions {
		byTopic[p.Topic] = append(byTopic[p.Topic], p.Partition)
	}
	topics := make([]string, 0, len(byTopic))
	for t := range byTopic {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	for _, t := range topics {
		ps := byTopic[t]
		slices.Sort(ps)
		v.Topics = append(v.Topics, kmsg.TxnMetadataValueTopic{Topic: t, Partitions: ps})
	}
	return v.AppendTo(nil)
}

// decodeRecord decodes a record of the log: the transactional id and its
// metadata, nil for a tombstone. ok is false for a key of another version
// (Kafka keeps other record types nowhere in this topic today, but a
// future version is skipped rather than misread).
func decodeRecord(key, value []byte) (id string, m *meta, ok bool, err error) {
	if len(key) < 2 {
		return "", nil, false, fmt.Errorf("%w: key of %d bytes", ErrCorrupt, len(key))
	}
	if v := int16(binary.BigEndian.Uint16(key)); v != keyVersion {
		return "", nil, false, nil
	}
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(key); err != nil {
		return "", nil, false, fmt.Errorf("%w: key: %v", ErrCorrupt, err)
	}
	if value == nil {
		return k.TransactionalID, nil, true, nil
	}
	v := kmsg.NewTxnMetadataValue()
	if err := v.ReadFrom(value); err != nil {
		return "", nil, false, fmt.Errorf("%w: value of %q: %v", ErrCorrupt, k.TransactionalID, err)
	}
	if v.State < 0 || v.State > 7 {
		return "", nil, false, fmt.Errorf("%w: value of %q: state %d", ErrCorrupt, k.TransactionalID, v.State)
	}
	if v.TimeoutMillis < 0 {
		return "", nil, false, fmt.Errorf("%w: value of %q: timeout %d ms", ErrCorrupt, k.TransactionalID, v.TimeoutMillis)
	}
	lastEpoch := int16(-1)
	var tagErr error
	v.UnknownTags.Each(func(tag uint32, b []byte) {
		if tag != lastEpochTag {
			return
		}
		if len(b) != 2 || int16(binary.BigEndian.Uint16(b)) < 0 {
			tagErr = fmt.Errorf("%w: value of %q: last epoch of %d bytes", ErrCorrupt, k.TransactionalID, len(b))
			return
		}
		lastEpoch = int16(binary.BigEndian.Uint16(b))
	})
	if tagErr != nil {
		return "", nil, false, tagErr
	}
	m = &meta{
		producerID: v.ProducerID,
		epoch:      v.ProducerEpoch,
		timeout:    time.Duration(v.TimeoutMillis) * time.Millisecond,
		state:      v.State,
		partitions: map[Partition]struct{}{},
		updated:    time.UnixMilli(v.LastUpdateTimestamp),
		lastEpoch:  lastEpoch,
	}
	if v.StartTimestamp >= 0 {
		m.started = time.UnixMilli(v.StartTimestamp)
	}
	for _, t := range v.Topics {
		for _, p := range t.Partitions {
			m.partitions[Partition{t.Topic, p}] = struct{}{}
		}
	}
	return k.TransactionalID, m, true, nil
}
