package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// Transactions, partition side (KIP-98). A transactional producer's
// batches carry attribute bit 4; the transaction coordinator ends the
// transaction by writing a control batch (bits 4 and 5) with one control
// record to every partition the transaction touched:
//
//	key   version int16 = 0 | type int16 (0 abort, 1 commit)
//	value version int16 = 0 | coordinator epoch int32
//
// Each partition tracks, from the batch headers it appends (as leader, as
// follower, and when it is opened, by replaying the log after its producer
// snapshot, as for the idempotent producers' state):
//
//   - the ongoing transactions: producer id → offset of its first batch in
//     the transaction;
//   - the last stable offset (LSO): the first offset of the oldest ongoing
//     transaction, or the high watermark when none is older; read_committed
//     consumers read below it;
//   - the aborted transactions: producer id, first offset, the offset of
//     the abort marker and the LSO once aborted, which a read_committed
//     fetch lists for the range it returns, so that the client drops those
//     records. They are kept in the log's per-segment transaction indexes
//     (commitlog.AbortedTxn, Kafka's .txnindex), added when the abort
//     marker is appended.
//
// The ongoing transactions are saved in the producer snapshot with the
// producers' state (producers.go), so that opening the partition replays
// only the batches after the snapshot; the replay adds again the index
// entries of the aborts it meets (the log keeps one per marker).

// Control record types (the key's type field).
const (
	ControlAbort  int16 = 0
	ControlCommit int16 = 1
)

// controlAttrs are the attributes of a transaction marker batch:
// transactional and control, uncompressed.
const controlAttrs = 0x10 | 0x20

// ErrControlRecord marks a control record that cannot be decoded.
var ErrControlRecord = errors.New("broker: bad control record")

// ControlRecord is a decoded transaction marker record.
type ControlRecord struct {
	Type             int16 // ControlAbort or ControlCommit
	CoordinatorEpoch int32
}

// ParseControlRecord decodes a control record's key and value. A value
// may be missing (the epoch is then -1); a key of a version other than 0
// or of a type other than abort and commit is an error.
func ParseControlRecord(key, value []byte) (ControlRecord, error) {
	if len(key) < 4 {
		return ControlRecord{}, fmt.Errorf("%w: key of %d bytes", ErrControlRecord, len(key))
	}
	if v := int16(binary.BigEndian.Uint16(key)); v != 0 {
		return ControlRecord{}, fmt.Errorf("%w: key version %d", ErrControlRecord, v)
	}
	cr := ControlRecord{Type: int16(binary.BigEndian.Uint16(key[2:])), CoordinatorEpoch: -1}
	if cr.Type != ControlAbort && cr.Type != ControlCommit {
		return ControlRecord{}, fmt.Errorf("%w: type %d", ErrControlRecord, cr.Type)
	}
	if len(value) >= 6 {
		cr.CoordinatorEpoch = int32(binary.BigEndian.Uint32(value[2:]))
	} else if len(value) != 0 {
		return ControlRecord{}, fmt.Errorf("%w: value of %d bytes", ErrControlRecord, len(value))
	}
	return cr, nil
}

// MarkerBatch encodes the control batch that ends producer id's
// transaction at epoch: commit or abort, written by coordinator epoch.
func MarkerBatch(producerID int64, epoch int16, commit bool, coordinatorEpoch int32, now time.Time) []byte {
	typ := ControlAbort
	if commit {
		typ = ControlCommit
	}
	key := binary.BigEndian.AppendUint16(nil, 0)
	key = binary.BigEndian.AppendUint16(key, uint16(typ))
	value := binary.BigEndian.AppendUint16(nil, 0)
	value = binary.BigEndian.AppendUint32(value, uint32(coordinatorEpoch))
	h := commitlog.BatchHeader{FirstTimestamp: now.UnixMilli(), ProducerID: producerID, ProducerEpoch: epoch,
		BaseSequence: -1, LeaderEpoch: -1, Attributes: controlAttrs}
	return commitlog.AppendBatch(nil, h, []kmsg.Record{{Key: key, Value: value}})
}

// AbortedTxn is a transaction of one partition: its producer, the offset
// of its first batch, and the offset of its marker (and, for an aborted
// one, the last stable offset once it was aborted).
type AbortedTxn = commitlog.AbortedTxn

// txnState is a partition's transactions in memory (the aborted ones are
// in the log's transaction indexes). Guarded by Partition.mu.
type txnState struct {
	ongoing map[int64]int64 // producer id → first offset of its ongoing transaction
	// ending are transactions whose marker is in the log but maybe not
	// yet above the high watermark: they stay unstable until it is, so
	// that no read_committed reader sees a transaction's records before
	// the marker that decides them is safe.
	ending []AbortedTxn
}

// trackTxn updates the transaction state with an appended batch; raw is
// the whole batch (a control batch's record is read from it). Called with
// mu held, or before the partition is shared.
func (p *Partition) trackTxn(b commitlog.Batch, raw []byte) {
	if !b.IsTransactional() || b.ProducerID < 0 {
		return
	}
	if p.txns.ongoing == nil {
		p.txns.ongoing = map[int64]int64{}
	}
	if !b.IsControl() {
		if _, ok := p.txns.ongoing[b.ProducerID]; !ok {
			p.txns.ongoing[b.ProducerID] = b.BaseOffset
		}
		return
	}
	var cr ControlRecord
	var perr error
	err := commitlog.Records(b, raw, func(_, _ int64, r *kmsg.Record) bool {
		cr, perr = ParseControlRecord(r.Key, r.Value)
		return false
	})
	if err != nil || perr != nil {
		p.b.log.Warn().Err(errors.Join(err, perr)).Str("topic", p.Topic).Int32("partition", p.Index).
			Int64("offset", b.BaseOffset).Msg("skipping unreadable control batch")
		return
	}
	first, ok := p.txns.ongoing[b.ProducerID]
	if !ok {
		return // a marker for a transaction with no data here (a retried marker)
	}
	delete(p.txns.ongoing, b.ProducerID)
	// Pruned here too, for followers, which never compute the LSO.
	hw := p.log.HighWatermark()
	p.txns.ending = slices.DeleteFunc(p.txns.ending, func(e AbortedTxn) bool { return e.LastOffset < hw })
	p.txns.ending = append(p.txns.ending, AbortedTxn{ProducerID: b.ProducerID, FirstOffset: first, LastOffset: b.BaseOffset})
	if cr.Type == ControlAbort {
		// Kafka's LSO for the index: the first offset of the oldest
		// transaction still open, or the offset after the marker.
		lso := b.BaseOffset + 1
		for _, f := range p.txns.ongoing {
			lso = min(lso, f)
		}
		a := AbortedTxn{ProducerID: b.ProducerID, FirstOffset: first, LastOffset: b.BaseOffset, LastStableOffset: lso}
		if err := p.log.AddAbortedTxn(a); err != nil {
			p.b.log.Error().Err(err).Str("topic", p.Topic).Int32("partition", p.Index).
				Int64("offset", b.BaseOffset).Msg("cannot index aborted transaction")
		}
	}
}

// LastStableOffset is the offset below which every transaction is decided:
// the first offset of the oldest ongoing transaction, or the high
// watermark if that is lower; never below the log start (a transaction
// that began in deleted records, as Kafka bounds it).
func (p *Partition) LastStableOffset() int64 {
	hw := p.log.HighWatermark()
	p.mu.Lock()
	defer p.mu.Unlock()
	lso := hw
	for _, first := range p.txns.ongoing {
		lso = min(lso, first)
	}
	p.txns.ending = slices.DeleteFunc(p.txns.ending, func(e AbortedTxn) bool { return e.LastOffset < hw })
	for _, e := range p.txns.ending {
		lso = min(lso, e.FirstOffset)
	}
	return max(lso, min(p.log.LogStartOffset(), hw))
}

// AbortedTxns returns the aborted transactions a read_committed reader of
// offsets [from, to) must know of: those whose abort marker is at or
// after from and whose first batch is before to, oldest first, from the
// transaction indexes of the segments from the one holding from on.
func (p *Partition) AbortedTxns(from, to int64) []AbortedTxn {
	return p.log.AbortedTxns(from, to)
}

// OngoingTxn reports the first offset of producer id's ongoing transaction
// on this partition, if it has one.
func (p *Partition) OngoingTxn(producerID int64) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	off, ok := p.txns.ongoing[producerID]
	return off, ok
}

// WriteTxnMarker appends the marker ending producer id's transaction, as
// the partition's leader, and waits until every in-sync replica has it.
// An epoch older than the producer's latest here answers
// INVALID_PRODUCER_EPOCH (a newer marker fenced it); other codes are those
// of Append and WaitCommitted. A marker for a producer with no ongoing
// transaction here is written all the same (Kafka does too): it is
// harmless, and the coordinator may be retrying one whose answer it lost.
func (p *Partition) WriteTxnMarker(ctx context.Context, producerID int64, epoch int16, commit bool, coordinatorEpoch int32) int16 {
	rec := MarkerBatch(producerID, epoch, commit, coordinatorEpoch, time.Now())
	res := p.AppendCoordinator(rec, func() int16 {
		if st := p.producers[producerID]; st != nil && epoch < st.epoch {
			return kerr.InvalidProducerEpoch.Code
		}
		return 0
	})
	if res.Code != 0 {
		return res.Code
	}
	return p.WaitCommitted(ctx, res)
}

// AppendCoordinator appends one batch written by a coordinator of this
// broker (a transaction marker; a group coordinator's transactional offset
// commit, which carries the producer's id and epoch but no sequence), as
// leader, without the producers' sequence checks. check, if not nil, runs
// with the partition locked first and may refuse with a Kafka code. The
// caller waits with WaitCommitted.
func (p *Partition) AppendCoordinator(rec []byte, check func() int16) AppendResult {
	b, err := commitlog.ValidateBatch(rec)
	if err != nil || b.Size != len(rec) {
		return failed(kerr.CorruptMessage.Code, fmt.Errorf("broker: coordinator batch: %v", err))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leader != p.b.NodeID() || p.b.quorumLost.Load() {
		return failed(kerr.NotLeaderForPartition.Code, fmt.Errorf("node %d does not lead %s-%d", p.b.NodeID(), p.Topic, p.Index))
	}
	if check != nil {
		if code := check(); code != 0 {
			return failed(code, nil)
		}
	}
	commitlog.SetLeaderEpoch(rec, p.leaderEpoch)
	b.LeaderEpoch = p.leaderEpoch
	res, err := p.log.AppendValidated(rec, []commitlog.Batch{b})
	if err != nil {
		p.b.log.Error().Err(err).Str("topic", p.Topic).Int32("partition", p.Index).Msg("cannot write coordinator batch")
		return failed(kerr.KafkaStorageError.Code, err)
	}
	b.BaseOffset = res.FirstOffset
	p.note(b, rec)
	p.localEnd = res.LastOffset + 1
	p.advanceHighWatermarkLocked()
	if p.appended != nil {
		close(p.appended)
		p.appended = nil
	}
	return AppendResult{BaseOffset: res.FirstOffset, LastOffset: res.LastOffset, LogStartOffset: p.log.LogStartOffset(), LeaderEpoch: p.leaderEpoch}
}

// noteMarkerLocked moves the producer's epoch to the marker's: a marker
// written at a bumped epoch fences the producer's older epoch here, and
// its sequences start again at 0. Called with mu held.
func (p *Partition) noteMarkerLocked(b commitlog.Batch) {
	st := p.producers[b.ProducerID]
	if st == nil || b.ProducerEpoch > st.epoch {
		p.producers[b.ProducerID] = &producerState{epoch: b.ProducerEpoch}
	}
}

// CleanerTxns returns what the log cleaner must know of the partition's
// transactions, taken at one instant: the last stable offset, below which
// it cleans, and the aborted transactions whose data starts below it,
// which it discards.
func (p *Partition) CleanerTxns() commitlog.Transactions {
	lso := p.LastStableOffset()
	// A transaction with data below lso was decided before lso was
	// computed (an undecided one would hold lso at or below its first
	// offset), so its abort, if any, is indexed now.
	var out []commitlog.AbortedRange
	for _, a := range p.log.AbortedTxns(p.log.LogStartOffset(), lso) {
		out = append(out, commitlog.AbortedRange{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset, LastOffset: a.LastOffset})
	}
	return commitlog.Transactions{StableOffset: lso, Aborted: out}
}
