package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// Partition is one replica of a topic partition on this broker: its log,
// its role (leader or follower) at a leader epoch, and the idempotent
// producers' sequence state.
//
// As leader it takes produce requests, stamps its leader epoch on each
// batch, tracks how far each follower has fetched, and moves the high
// watermark to the smallest log end among the in-sync replicas; it asks
// the controller to shrink the ISR when a follower falls behind for longer
// than Config.ReplicaLagMax and to expand it when a follower catches up.
// As follower it refuses produce and consumer fetches (clients then look
// for the leader) and its log is written only by the replica fetcher.
type Partition struct {
	Topic string
	Index int32
	log   *commitlog.Log
	b     *Broker

	// Produced to this replica as leader and served to consumers; a
	// follower's copying counts in neither.
	recordsIn, bytesIn, bytesOut, recordsOut atomic.Int64

	mu         sync.Mutex // serializes appends with the producer checks; guards the fields below
	producers  map[int64]*producerState
	txns       txnState // transactions: ongoing, aborted (txn.go)
	snapEnd    int64    // log end as of the last producer snapshot written or read; -1 none
	snapSeen   int64    // log end at the last maintenance round
	snapRounds int      // maintenance rounds since the last snapshot
	replayed   int64    // batches replayed to rebuild the state (open, truncation)

	// The assignment, as of the last metadata change applied.
	leader         int32 // node id of the leader, or -1
	leaderEpoch    int32
	partitionEpoch int32
	replicas, isr  []int32
	minISR         int

	// Leader only: each follower's progress, and whether an ISR change is
	// waiting for the controller.
	followers  map[int32]*followerState
	isrPending bool
	// epochStart is the log end when this replica became leader: a
	// follower below it has not caught up with this term.
	epochStart int64
	// localEnd is the log end as of the last append that returned (after
	// the fsync its flush policy asked for): the leader's own share of the
	// high watermark.
	localEnd int64

	appended chan struct{} // closed at the next append, for replica long polls; guarded by mu
}

// followerState is what a leader knows of one follower.
type followerState struct {
	leo         int64     // offsets below it are on the follower (its last fetch offset); -1 unknown
	caughtUp    time.Time // last time the follower had everything the leader had
	lastFetch   time.Time
	lastFetchTo int64 // the leader's log end at lastFetch
}

// producerState is what Kafka keeps per idempotent producer: its epoch and
// the last few batches' sequence ranges, enough to recognise a retry.
type producerState struct {
	epoch   int16
	batches []seqRange // newest last, at most maxInflight
}

type seqRange struct {
	first, last int32
	base, end   int64 // offsets the batch was given
}

// maxInflight is how many recent batches per producer are remembered for
// duplicate detection: Kafka allows 5 in-flight requests per connection
// with idempotence.
const maxInflight = 5

func openPartition(b *Broker, topic string, index int32, dir string, cfg commitlog.Config, logger zerolog.Logger) (*Partition, error) {
	cfg.Logger = logger.With().Str("topic", topic).Int32("partition", index).Logger()
	l, err := commitlog.Open(dir, cfg)
	if err != nil {
		return nil, err
	}
	p := &Partition{Topic: topic, Index: index, log: l, b: b, producers: map[int64]*producerState{}, snapEnd: -1, leader: -1, minISR: 1}
	from := l.LogStartOffset()
	if off, st, ongoing, ok := readProducerSnapshot(dir); ok && off <= l.LogEndOffset() {
		p.producers, p.snapEnd = st, off
		p.txns.ongoing = ongoing
		from = max(from, off)
	}
	if err := p.rebuildProducers(from); err != nil {
		l.Close()
		return nil, err
	}
	if eps := l.LeaderEpochs(); len(eps) > 0 {
		p.leaderEpoch = eps[len(eps)-1].Epoch
	}
	p.localEnd = l.LogEndOffset()
	return p, nil
}

// rebuildProducers replays batch headers from offset from to restore
// producer state, so retries after a broker restart are still recognised.
// Opening starts from the producer snapshot, if there is one.
func (p *Partition) rebuildProducers(from int64) error {
	for off := from; off < p.log.LogEndOffset(); {
		v, err := p.log.ReadUncommitted(off, 4<<20)
		if err != nil {
			return err
		}
		err = commitlog.Batches(v.Data, func(b commitlog.Batch, raw []byte) bool {
			p.note(b, raw)
			p.replayed++
			return true
		})
		if len(v.Data) == 0 {
			v.Release()
			break
		}
		off = v.Next
		v.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// note updates the producer and transaction state with an appended batch
// (raw holds it whole). Called with mu held, or before the partition is
// shared.
func (p *Partition) note(b commitlog.Batch, raw []byte) {
	if b.ProducerID < 0 {
		return
	}
	if b.IsControl() {
		p.noteMarkerLocked(b)
	} else {
		p.remember(b)
	}
	p.trackTxn(b, raw)
}

func (p *Partition) remember(b commitlog.Batch) {
	st := p.producers[b.ProducerID]
	if st == nil || b.ProducerEpoch != st.epoch {
		st = &producerState{epoch: b.ProducerEpoch}
		p.producers[b.ProducerID] = st
	}
	st.batches = append(st.batches, seqRange{first: b.BaseSequence, last: b.LastSequence(), base: b.BaseOffset, end: b.LastOffset()})
	if len(st.batches) > maxInflight {
		st.batches = st.batches[1:]
	}
}

// Log is the partition's log.
func (p *Partition) Log() *commitlog.Log { return p.log }

// HighWatermark is the offset below which consumers see records.
func (p *Partition) HighWatermark() int64 { return p.log.HighWatermark() }

// LogStartOffset is the first readable offset.
func (p *Partition) LogStartOffset() int64 { return p.log.LogStartOffset() }

// LeaderEpoch is the partition's current leader epoch.
func (p *Partition) LeaderEpoch() int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leaderEpoch
}

// IsLeader reports whether this replica leads the partition, and at which
// epoch.
func (p *Partition) IsLeader() (bool, int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leader == p.b.NodeID(), p.leaderEpoch
}

// ISR returns the in-sync replicas as of the last metadata change.
func (p *Partition) ISR() []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.isr)
}

// AppendResult is the outcome of a produce to one partition. Code is a
// Kafka error code (0 on success); Err explains it for logs.
type AppendResult struct {
	BaseOffset     int64
	LastOffset     int64
	LogStartOffset int64
	LeaderEpoch    int32
	Code           int16
	Err            error
}

func failed(code int16, err error) AppendResult {
	return AppendResult{BaseOffset: -1, LastOffset: -1, LogStartOffset: -1, Code: code, Err: err}
}

// Append writes a Produce request's records for this partition, as its
// leader: checks idempotent producers' sequences (a retried batch is
// acknowledged with its first offsets and not written again), stamps the
// leader epoch, appends, and moves the high watermark as far as the ISR
// allows. With acks -1 (all) it refuses with NOT_ENOUGH_REPLICAS while the
// ISR is below min.insync.replicas. While the broker has stepped down for
// lack of contact with the controller (Config.LeaderLease) it refuses
// every append with NOT_LEADER_OR_FOLLOWER. The caller then waits for the records
// to be committed with WaitCommitted.
func (p *Partition) Append(records []byte, acks int16) AppendResult {
	var batches []commitlog.Batch
	for pos := 0; pos < len(records); {
		b, err := commitlog.ValidateBatch(records[pos:])
		if err != nil {
			return failed(kerr.CorruptMessage.Code, err)
		}
		batches = append(batches, b)
		pos += b.Size
	}
	if len(batches) == 0 {
		return failed(kerr.CorruptMessage.Code, errors.New("no record batch"))
	}
	if p.log.Compacted() {
		if err := commitlog.CheckKeys(records, batches); err != nil {
			return failed(kerr.InvalidRecord.Code, err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leader != p.b.NodeID() {
		return failed(kerr.NotLeaderForPartition.Code, fmt.Errorf("node %d does not lead %s-%d (leader %d)", p.b.NodeID(), p.Topic, p.Index, p.leader))
	}
	if p.b.quorumLost.Load() {
		return failed(kerr.NotLeaderForPartition.Code, fmt.Errorf("node %d has lost contact with the controller: not acting as leader of %s-%d", p.b.NodeID(), p.Topic, p.Index))
	}
	if acks == -1 && len(p.isr) < p.minISR {
		return failed(kerr.NotEnoughReplicas.Code, fmt.Errorf("%d in-sync replicas, min.insync.replicas is %d", len(p.isr), p.minISR))
	}
	for _, b := range batches {
		if b.IsControl() {
			return failed(kerr.InvalidRecord.Code, errors.New("producers may not write control batches"))
		}
	}
	if b := batches[0]; b.ProducerID >= 0 {
		if len(batches) > 1 {
			return failed(kerr.InvalidRecord.Code, errors.New("an idempotent produce carries one batch per partition"))
		}
		if r, dup, code, err := p.checkSequence(b); code != 0 {
			return failed(code, err)
		} else if dup {
			return AppendResult{BaseOffset: r.base, LastOffset: r.end, LogStartOffset: p.log.LogStartOffset(), LeaderEpoch: p.leaderEpoch}
		}
	}
	for pos, i := 0, 0; i < len(batches); i++ {
		commitlog.SetLeaderEpoch(records[pos:], p.leaderEpoch)
		batches[i].LeaderEpoch = p.leaderEpoch
		pos += batches[i].Size
	}
	res, err := p.log.AppendValidated(records, batches)
	if err != nil {
		switch {
		case errors.Is(err, commitlog.ErrBatchTooLarge):
			return failed(kerr.MessageTooLarge.Code, err)
		case errors.Is(err, commitlog.ErrInvalidBatch):
			return failed(kerr.CorruptMessage.Code, err)
		case errors.Is(err, syscall.ENOSPC):
			return failed(kerr.KafkaStorageError.Code, err)
		default:
			return failed(kerr.KafkaStorageError.Code, err)
		}
	}
	for pos, i := 0, 0; i < len(batches); i++ {
		b, _ := commitlog.ParseHeader(records[pos:])
		p.note(b, records[pos:pos+b.Size])
		pos += b.Size
	}
	p.localEnd = res.LastOffset + 1
	p.advanceHighWatermarkLocked()
	if p.appended != nil {
		close(p.appended)
		p.appended = nil
	}
	n := int64(0)
	for _, b := range batches {
		n += int64(b.NumRecords)
	}
	p.recordsIn.Add(n)
	p.bytesIn.Add(int64(len(records)))
	return AppendResult{BaseOffset: res.FirstOffset, LastOffset: res.LastOffset, LogStartOffset: p.log.LogStartOffset(), LeaderEpoch: p.leaderEpoch}
}

// WaitCommitted waits until the records of res are below the high
// watermark, that is on every in-sync replica, and returns 0; or returns
// NOT_LEADER_OR_FOLLOWER if the partition changes leader epoch meanwhile
// or the broker steps down for lack of contact with the controller (the
// records may or may not survive: an idempotent producer's retry finds
// out), NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrinks below
// min.insync.replicas, or REQUEST_TIMED_OUT when ctx ends first.
func (p *Partition) WaitCommitted(ctx context.Context, res AppendResult) int16 {
	if p.log.HighWatermark() > res.LastOffset {
		// Committed already (always so on one node): no channel to make.
		return 0
	}
	for {
		ch := p.log.HighWatermarkChanged()
		if p.log.HighWatermark() > res.LastOffset {
			return 0
		}
		p.mu.Lock()
		lost := p.leaderEpoch != res.LeaderEpoch || p.leader != p.b.NodeID() || p.b.quorumLost.Load()
		short := len(p.isr) < p.minISR
		p.mu.Unlock()
		switch {
		case lost:
			return kerr.NotLeaderForPartition.Code
		case short:
			return kerr.NotEnoughReplicasAfterAppend.Code
		}
		select {
		case <-ch:
		case <-p.b.metaChanged():
		case <-p.b.steppedDown():
		case <-ctx.Done():
			return kerr.RequestTimedOut.Code
		}
	}
}

// advanceHighWatermarkLocked moves the high watermark to the smallest log
// end among the in-sync replicas (this leader's counted as of its last
// completed append). Called with mu held, as leader.
func (p *Partition) advanceHighWatermarkLocked() {
	hw := p.localEnd
	for _, id := range p.isr {
		if id == p.b.NodeID() {
			continue
		}
		f := p.followers[id]
		if f == nil || f.leo < 0 {
			return
		}
		hw = min(hw, f.leo)
	}
	p.log.SetHighWatermark(hw)
}

// checkSequence applies Kafka's idempotence rules to a batch. It returns
// dup=true with the original range for a retry of a recent batch.
func (p *Partition) checkSequence(b commitlog.Batch) (seqRange, bool, int16, error) {
	st := p.producers[b.ProducerID]
	switch {
	case st == nil:
		if b.BaseSequence != 0 {
			return seqRange{}, false, kerr.UnknownProducerID.Code,
				fmt.Errorf("producer %d unknown here, first sequence %d", b.ProducerID, b.BaseSequence)
		}
		return seqRange{}, false, 0, nil
	case b.ProducerEpoch < st.epoch:
		return seqRange{}, false, kerr.InvalidProducerEpoch.Code,
			fmt.Errorf("producer %d epoch %d is older than %d", b.ProducerID, b.ProducerEpoch, st.epoch)
	case b.ProducerEpoch > st.epoch:
		if b.BaseSequence != 0 {
			return seqRange{}, false, kerr.OutOfOrderSequenceNumber.Code,
				fmt.Errorf("producer %d new epoch %d starts at sequence %d, want 0", b.ProducerID, b.ProducerEpoch, b.BaseSequence)
		}
		return seqRange{}, false, 0, nil
	}
	if len(st.batches) == 0 {
		// Only a transaction marker at this epoch so far.
		if b.BaseSequence != 0 {
			return seqRange{}, false, kerr.OutOfOrderSequenceNumber.Code,
				fmt.Errorf("producer %d first sequence %d at epoch %d, want 0", b.ProducerID, b.BaseSequence, b.ProducerEpoch)
		}
		return seqRange{}, false, 0, nil
	}
	for _, r := range st.batches {
		if r.first == b.BaseSequence && r.last == b.LastSequence() {
			return r, true, 0, nil
		}
	}
	last := st.batches[len(st.batches)-1].last
	if want := int32((int64(last) + 1) % (1 << 31)); b.BaseSequence != want {
		return seqRange{}, false, kerr.OutOfOrderSequenceNumber.Code,
			fmt.Errorf("producer %d sequence %d, want %d", b.ProducerID, b.BaseSequence, want)
	}
	return seqRange{}, false, 0, nil
}

// close writes a last producer snapshot and closes the log.
func (p *Partition) close() error {
	p.mu.Lock()
	err := p.snapshotProducersLocked()
	p.mu.Unlock()
	if err != nil {
		p.b.log.Warn().Err(err).Str("topic", p.Topic).Int32("partition", p.Index).Msg("cannot write producer snapshot")
	}
	return p.log.Close()
}

// NoteFetched counts bytes and records served to consumers.
func (p *Partition) NoteFetched(bytes, records int64) {
	p.bytesOut.Add(bytes)
	p.recordsOut.Add(records)
}

// Counters are the partition's traffic since start.
type Counters struct{ RecordsIn, BytesIn, BytesOut, RecordsOut int64 }

// Counters returns the partition's traffic since start.
func (p *Partition) Counters() Counters {
	return Counters{RecordsIn: p.recordsIn.Load(), BytesIn: p.bytesIn.Load(), BytesOut: p.bytesOut.Load(), RecordsOut: p.recordsOut.Load()}
}
