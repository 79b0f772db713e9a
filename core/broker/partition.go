package broker

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// Partition is one topic partition on this broker: its log, its log end
// and high watermark, and the idempotent producers' sequence state.
//
// On a single node the high watermark follows the log end after each
// append (and its fsync, if the flush policy asks for one). Replication
// changes only that step: the leader moves the watermark once the in-sync
// replicas have the records.
type Partition struct {
	Topic string
	Index int32
	log   *commitlog.Log

	recordsIn, bytesOut, recordsOut atomic.Int64

	mu          sync.Mutex // serializes appends with the producer checks
	producers   map[int64]*producerState
	leaderEpoch int32
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

func openPartition(topic string, index int32, dir string, cfg commitlog.Config, logger zerolog.Logger) (*Partition, error) {
	cfg.Logger = logger.With().Str("topic", topic).Int32("partition", index).Logger()
	l, err := commitlog.Open(dir, cfg)
	if err != nil {
		return nil, err
	}
	p := &Partition{Topic: topic, Index: index, log: l, producers: map[int64]*producerState{}}
	if err := p.rebuildProducers(); err != nil {
		l.Close()
		return nil, err
	}
	if eps := l.LeaderEpochs(); len(eps) > 0 {
		p.leaderEpoch = eps[len(eps)-1].Epoch
	}
	return p, nil
}

// rebuildProducers replays batch headers to restore producer state, so
// retries after a broker restart are still recognised.
func (p *Partition) rebuildProducers() error {
	for off := p.log.LogStartOffset(); off < p.log.LogEndOffset(); {
		v, err := p.log.ReadUncommitted(off, 4<<20)
		if err != nil {
			return err
		}
		err = commitlog.Batches(v.Data, func(b commitlog.Batch, _ []byte) bool {
			if b.ProducerID >= 0 {
				p.remember(b)
			}
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

// AppendResult is the outcome of a produce to one partition. Code is a
// Kafka error code (0 on success); Err explains it for logs.
type AppendResult struct {
	BaseOffset     int64
	LogStartOffset int64
	Code           int16
	Err            error
}

// Append writes a Produce request's records for this partition: checks
// idempotent producers' sequences (a retried batch is acknowledged with its
// first offsets and not written again), stamps the leader epoch, appends,
// and moves the high watermark.
func (p *Partition) Append(records []byte) AppendResult {
	fail := func(code int16, err error) AppendResult {
		return AppendResult{BaseOffset: -1, LogStartOffset: -1, Code: code, Err: err}
	}
	var batches []commitlog.Batch
	for pos := 0; pos < len(records); {
		b, err := commitlog.ValidateBatch(records[pos:])
		if err != nil {
			return fail(kerr.CorruptMessage.Code, err)
		}
		batches = append(batches, b)
		pos += b.Size
	}
	if len(batches) == 0 {
		return fail(kerr.CorruptMessage.Code, errors.New("no record batch"))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := batches[0]; b.ProducerID >= 0 {
		if len(batches) > 1 {
			return fail(kerr.InvalidRecord.Code, errors.New("an idempotent produce carries one batch per partition"))
		}
		if r, dup, code, err := p.checkSequence(b); code != 0 {
			return fail(code, err)
		} else if dup {
			return AppendResult{BaseOffset: r.base, LogStartOffset: p.log.LogStartOffset()}
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
			return fail(kerr.MessageTooLarge.Code, err)
		case errors.Is(err, commitlog.ErrInvalidBatch):
			return fail(kerr.CorruptMessage.Code, err)
		case errors.Is(err, syscall.ENOSPC):
			return fail(kerr.KafkaStorageError.Code, err)
		default:
			return fail(kerr.KafkaStorageError.Code, err)
		}
	}
	for pos, i := 0, 0; i < len(batches); i++ {
		b, _ := commitlog.ParseHeader(records[pos:])
		if b.ProducerID >= 0 {
			p.remember(b)
		}
		pos += b.Size
	}
	p.log.SetHighWatermark(res.LastOffset + 1)
	n := int64(0)
	for _, b := range batches {
		n += int64(b.NumRecords)
	}
	p.recordsIn.Add(n)
	return AppendResult{BaseOffset: res.FirstOffset, LogStartOffset: p.log.LogStartOffset()}
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

func (p *Partition) close() error { return p.log.Close() }

// NoteFetched counts bytes and records served to consumers.
func (p *Partition) NoteFetched(bytes, records int64) {
	p.bytesOut.Add(bytes)
	p.recordsOut.Add(records)
}

// Counters are the partition's traffic since start.
type Counters struct{ RecordsIn, BytesOut, RecordsOut int64 }

// Counters returns the partition's traffic since start.
func (p *Partition) Counters() Counters {
	return Counters{RecordsIn: p.recordsIn.Load(), BytesOut: p.bytesOut.Load(), RecordsOut: p.recordsOut.Load()}
}
