package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
)

// producerSnapshotFile holds a partition's idempotent producer state and
// its ongoing transactions as of a log offset, so that opening the
// partition replays only the batches written after it instead of the
// whole log (Kafka's .snapshot files), with or without transactions.
//
// Format, big-endian:
//
//	"FXPS" | version uint8 (2) | offset int64 | producers uint32 |
//	per producer: id int64 | epoch int16 | batches uint8 |
//	              per batch: first int32 | last int32 | base int64 | end int64
//	| ongoing uint32 | per ongoing transaction: producer id int64 | first offset int64
//	| crc32c uint32 of everything before it
//
// offset is the log end the state covers. Version 1 (written while a
// partition held no transaction) has no ongoing section and no producer
// without batches. The file is replaced atomically (not fsynced): a lost
// or damaged snapshot, or one past the log end, only means a longer
// replay. The log's transaction index is synced before the file is
// written (the aborts below offset are not replayed).
const producerSnapshotFile = "producer-snapshot"

const (
	snapMagic      = "FXPS"
	snapVersion    = 2
	snapHeaderSize = 4 + 1 + 8 + 4
	snapProducer   = 8 + 2 + 1
	snapBatch      = 4 + 4 + 8 + 8
	snapOngoing    = 8 + 8
)

var snapCRC = crc32.MakeTable(crc32.Castagnoli)

// encodeProducerSnapshot encodes the producer state and the ongoing
// transactions (producer id → first offset) at log offset offset.
func encodeProducerSnapshot(offset int64, producers map[int64]*producerState, ongoing map[int64]int64) []byte {
	ids := make([]int64, 0, len(producers))
	for id := range producers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b := make([]byte, 0, snapHeaderSize+len(ids)*(snapProducer+maxInflight*snapBatch)+4)
	b = append(b, snapMagic...)
	b = append(b, snapVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(offset))
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		st := producers[id]
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(st.epoch))
		b = append(b, byte(len(st.batches)))
		for _, r := range st.batches {
			b = binary.BigEndian.AppendUint32(b, uint32(r.first))
			b = binary.BigEndian.AppendUint32(b, uint32(r.last))
			b = binary.BigEndian.AppendUint64(b, uint64(r.base))
			b = binary.BigEndian.AppendUint64(b, uint64(r.end))
		}
	}
	ids = ids[:0]
	for id := range ongoing {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint64(b, uint64(ongoing[id]))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, snapCRC))
}

var errBadSnapshot = errors.New("broker: bad producer snapshot")

// decodeProducerSnapshot parses a producer snapshot: the offset it covers,
// the producers' state and the ongoing transactions. Any damage (length,
// magic, version, checksum, counts or offsets out of range) is
// errBadSnapshot.
func decodeProducerSnapshot(data []byte) (int64, map[int64]*producerState, map[int64]int64, error) {
	if len(data) < snapHeaderSize+4 || string(data[:4]) != snapMagic || (data[4] != 1 && data[4] != snapVersion) {
		return 0, nil, nil, errBadSnapshot
	}
	version := data[4]
	body := data[:len(data)-4]
	if crc32.Checksum(body, snapCRC) != binary.BigEndian.Uint32(data[len(data)-4:]) {
		return 0, nil, nil, fmt.Errorf("%w: checksum", errBadSnapshot)
	}
	offset := int64(binary.BigEndian.Uint64(body[5:]))
	n := int(binary.BigEndian.Uint32(body[13:]))
	if offset < 0 || n > (len(body)-snapHeaderSize)/snapProducer {
		return 0, nil, nil, fmt.Errorf("%w: header", errBadSnapshot)
	}
	out := make(map[int64]*producerState, n)
	p := body[snapHeaderSize:]
	for range n {
		if len(p) < snapProducer {
			return 0, nil, nil, fmt.Errorf("%w: truncated", errBadSnapshot)
		}
		id := int64(binary.BigEndian.Uint64(p))
		st := &producerState{epoch: int16(binary.BigEndian.Uint16(p[8:]))}
		k := int(p[10])
		p = p[snapProducer:]
		if id < 0 || (k == 0 && version == 1) || k > maxInflight || len(p) < k*snapBatch || out[id] != nil {
			return 0, nil, nil, fmt.Errorf("%w: producer %d", errBadSnapshot, id)
		}
		for range k {
			st.batches = append(st.batches, seqRange{
				first: int32(binary.BigEndian.Uint32(p)),
				last:  int32(binary.BigEndian.Uint32(p[4:])),
				base:  int64(binary.BigEndian.Uint64(p[8:])),
				end:   int64(binary.BigEndian.Uint64(p[16:])),
			})
			p = p[snapBatch:]
		}
		out[id] = st
	}
	var ongoing map[int64]int64
	if version >= 2 {
		if len(p) < 4 {
			return 0, nil, nil, fmt.Errorf("%w: truncated", errBadSnapshot)
		}
		m := int(binary.BigEndian.Uint32(p))
		p = p[4:]
		if m > len(p)/snapOngoing {
			return 0, nil, nil, fmt.Errorf("%w: ongoing transactions", errBadSnapshot)
		}
		ongoing = make(map[int64]int64, m)
		for range m {
			id, first := int64(binary.BigEndian.Uint64(p)), int64(binary.BigEndian.Uint64(p[8:]))
			p = p[snapOngoing:]
			if _, dup := ongoing[id]; id < 0 || first < 0 || first >= offset || dup {
				return 0, nil, nil, fmt.Errorf("%w: transaction of producer %d", errBadSnapshot, id)
			}
			ongoing[id] = first
		}
	}
	if len(p) != 0 {
		return 0, nil, nil, fmt.Errorf("%w: trailing bytes", errBadSnapshot)
	}
	return offset, out, ongoing, nil
}

// readProducerSnapshot reads the partition's snapshot; ok is false when
// there is none or it is damaged.
func readProducerSnapshot(dir string) (int64, map[int64]*producerState, map[int64]int64, bool) {
	data, err := os.ReadFile(filepath.Join(dir, producerSnapshotFile))
	if err != nil {
		return 0, nil, nil, false
	}
	off, st, ongoing, err := decodeProducerSnapshot(data)
	return off, st, ongoing, err == nil
}

// writeProducerSnapshot replaces the partition's snapshot, atomically.
func writeProducerSnapshot(dir string, data []byte) error {
	path := filepath.Join(dir, producerSnapshotFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("broker: producer snapshot: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("broker: producer snapshot: %w", err)
	}
	return nil
}

// snapshotEvery is how many maintenance rounds a partition that is being
// written goes without a producer snapshot; one that has gone quiet gets
// its snapshot at the next round.
const snapshotEvery = 6

// snapshotProducers writes the producer state as of the log end, if the
// log has moved since the last snapshot and has either gone quiet since
// the previous maintenance round or been busy for snapshotEvery rounds:
// a restart after a crash replays at most that much. It holds mu
// throughout, so that snapshots and truncations (which remove the
// snapshot) never cross.
func (p *Partition) snapshotProducers() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	end := p.log.LogEndOffset()
	quiet := end == p.snapSeen
	p.snapSeen = end
	if p.snapRounds++; !quiet && p.snapRounds < snapshotEvery {
		return nil
	}
	if err := p.snapshotProducersLocked(); err != nil {
		return err
	}
	p.snapRounds = 0
	return nil
}

func (p *Partition) snapshotProducersLocked() error {
	end := p.log.LogEndOffset()
	if end == p.snapEnd || (end == p.log.LogStartOffset() && len(p.producers) == 0) {
		return nil // nothing new, or nothing to replay
	}
	// The aborted transactions below end are not replayed from a
	// snapshot at end: their index entries must be durable first.
	if err := p.log.SyncTxnIndex(); err != nil {
		return err
	}
	if err := writeProducerSnapshot(p.log.Dir(), encodeProducerSnapshot(end, p.producers, p.txns.ongoing)); err != nil {
		return err
	}
	p.snapEnd = end
	return nil
}
