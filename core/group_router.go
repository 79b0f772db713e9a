package core

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/broker"
	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/core/commitlog"
	"github.com/fluxo-io/fluxo/core/group"
)

// groupRouter spreads consumer groups over the brokers as Kafka does:
// group g belongs to partition abs(javaHash(g)) % n of the replicated
// __consumer_offsets topic, and that partition's leader coordinates it,
// with a group.Coordinator whose log is the partition. Commits are
// acknowledged once the partition's ISR has them (acks=all), so a
// coordinator's death loses none: the new leader of the partition loads
// the groups from its replica and coordinates them.
//
// The topic is created on the first FindCoordinator, with
// Config.OffsetsPartitions partitions and the default replication factor
// (min(3, live brokers)), fsync on every write and no time retention.
type groupRouter struct {
	b          *broker.Broker
	cfg        group.Config
	partitions int32
	log        zerolog.Logger

	mu     sync.Mutex // guards shards
	shards map[int32]*groupShard

	compacted atomic.Bool // the offsets topic is known to have cleanup.policy=compact

	roles chan roleChange // leadership changes, applied in order by run
	quit  chan struct{}
	done  chan struct{}
}

// groupShard is the coordinator of one __consumer_offsets partition.
type groupShard struct {
	epoch int32
	c     *group.Coordinator // nil while loading
}

type roleChange struct {
	p      *broker.Partition
	leader bool
	epoch  int32
}

func newGroupRouter(cfg group.Config, partitions int32, log zerolog.Logger) *groupRouter {
	r := &groupRouter{cfg: cfg, partitions: partitions, log: log, shards: map[int32]*groupShard{},
		roles: make(chan roleChange, 1024), quit: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

// onRole is the broker's OnRole hook: it queues the changes of the
// offsets topic's replicas, never blocking the broker for long.
func (r *groupRouter) onRole(p *broker.Partition, leader bool, epoch int32) {
	if p.Topic != broker.OffsetsTopic {
		return
	}
	r.mu.Lock()
	sh := r.shards[p.Index]
	same := leader && sh != nil && sh.epoch == epoch || !leader && sh == nil
	r.mu.Unlock()
	if same {
		return
	}
	select {
	case r.roles <- roleChange{p, leader, epoch}:
	case <-r.quit:
	}
}

func (r *groupRouter) run() {
	defer close(r.done)
	for {
		select {
		case <-r.quit:
			return
		case rc := <-r.roles:
			r.apply(rc)
		}
	}
}

// apply starts or stops the coordinator of one partition.
func (r *groupRouter) apply(rc roleChange) {
	idx := rc.p.Index
	r.mu.Lock()
	old := r.shards[idx]
	if rc.leader && old != nil && old.epoch == rc.epoch {
		r.mu.Unlock()
		return
	}
	delete(r.shards, idx)
	var sh *groupShard
	if rc.leader {
		sh = &groupShard{epoch: rc.epoch}
		r.shards[idx] = sh
	}
	r.mu.Unlock()
	if old != nil && old.c != nil {
		old.c.Close()
		r.log.Info().Int32("partition", idx).Msg("stopped coordinating groups")
	}
	if sh == nil {
		return
	}
	// Load the groups: everything in the replica, including a tail the
	// previous leader had not committed, which this leader now owns.
	c, err := group.New(r.cfg, &offsetsLog{p: rc.p, epoch: rc.epoch})
	if err != nil {
		r.log.Error().Err(err).Int32("partition", idx).Msg("cannot load groups")
		r.mu.Lock()
		if r.shards[idx] == sh {
			delete(r.shards, idx)
		}
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	if r.shards[idx] == sh {
		sh.c = c
		c = nil
	}
	r.mu.Unlock()
	if c != nil {
		c.Close() // superseded while loading
		return
	}
	r.log.Info().Int32("partition", idx).Int32("epoch", rc.epoch).Msg("coordinating groups")
}

// partitionFor is the offsets partition of group g, as Kafka computes it.
func (r *groupRouter) partitionFor(g string) int32 { return javaHashPartition(g, r.partitions) }

// javaHashPartition is Kafka's partition of a group or transactional id
// among n: abs(Java's String.hashCode(key)) % n.
func javaHashPartition(key string, n int32) int32 {
	var h int32
	for _, c := range key { // Java's String.hashCode over UTF-16 units
		if c >= 0x10000 {
			hi, lo := utf16.EncodeRune(c)
			h = 31*(31*h+hi) + lo
		} else {
			h = 31*h + c
		}
	}
	if h == -1<<31 {
		h = 0
	}
	if h < 0 {
		h = -h
	}
	return h % n
}

// Coordinator implements kafka.Groups.
func (r *groupRouter) Coordinator(g string) *group.Coordinator {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sh := r.shards[r.partitionFor(g)]; sh != nil {
		return sh.c
	}
	return nil
}

// Local implements kafka.Groups.
func (r *groupRouter) Local() []*group.Coordinator {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*group.Coordinator, 0, len(r.shards))
	for _, sh := range r.shards {
		if sh.c != nil {
			out = append(out, sh.c)
		}
	}
	return out
}

// Find implements kafka.Groups: the leader of the group's partition,
// creating the offsets topic first if it does not exist yet.
func (r *groupRouter) Find(ctx context.Context, key string) (int32, string, int16) {
	st := r.b.State()
	if st.Topics[broker.OffsetsTopic] == nil {
		configs := offsetsTopicConfigs()
		_, err := r.b.CreateTopic(ctx, broker.OffsetsTopic, r.partitions, 0, configs)
		if err != nil && !errors.Is(err, broker.ErrTopicExists) {
			r.log.Warn().Err(err).Msg("cannot create the offsets topic")
			return -1, "", kerr.CoordinatorNotAvailable.Code
		}
		st = r.b.State()
	}
	if ts := st.Topics[broker.OffsetsTopic]; ts != nil && !r.compacted.Load() {
		makeCompacted(ctx, r.b, r.log, broker.OffsetsTopic, ts.Configs, offsetsTopicConfigs(), &r.compacted)
	}
	ps, ok := st.Partition(broker.OffsetsTopic, r.partitionFor(key))
	if !ok || ps.Leader == cluster.NoLeader {
		return -1, "", kerr.CoordinatorNotAvailable.Code
	}
	bi, ok := st.Brokers[ps.Leader]
	if !ok || bi.Fenced {
		return -1, "", kerr.CoordinatorNotAvailable.Code
	}
	return ps.Leader, bi.KafkaAddr, 0
}

// close stops every coordinator.
func (r *groupRouter) close() {
	close(r.quit)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	for idx, sh := range r.shards {
		if sh.c != nil {
			sh.c.Close()
		}
		delete(r.shards, idx)
	}
}

// offsetsLog is a group.Log on a __consumer_offsets partition this broker
// leads at epoch.
type offsetsLog struct {
	p     *broker.Partition
	epoch int32
}

// Append writes the records as one batch with acks=all: it returns once
// every in-sync replica has them. Errors are Kafka errors, which the
// coordinator maps to its response codes (NOT_LEADER: NOT_COORDINATOR).
func (l *offsetsLog) Append(ctx context.Context, recs []group.Record) error {
	if lead, epoch := l.p.IsLeader(); !lead || epoch != l.epoch {
		return kerr.NotLeaderForPartition
	}
	krecs := make([]kmsg.Record, len(recs))
	for i, r := range recs {
		krecs[i] = kmsg.Record{Key: r.Key, Value: r.Value}
	}
	res := l.p.Append(commitlog.AppendBatch(nil, commitlog.NoProducer(time.Now().UnixMilli()), krecs), -1)
	if res.Code != 0 {
		return kerr.ErrorForCode(res.Code)
	}
	if code := l.p.WaitCommitted(ctx, res); code != 0 {
		return kerr.ErrorForCode(code)
	}
	return nil
}

// AppendTxn writes the records as one transactional batch of producer id
// at epoch (a TxnOffsetCommit), with acks=all.
func (l *offsetsLog) AppendTxn(ctx context.Context, producerID int64, epoch int16, recs []group.Record) error {
	if lead, e := l.p.IsLeader(); !lead || e != l.epoch {
		return kerr.NotLeaderForPartition
	}
	krecs := make([]kmsg.Record, len(recs))
	for i, r := range recs {
		krecs[i] = kmsg.Record{Key: r.Key, Value: r.Value}
	}
	h := commitlog.BatchHeader{FirstTimestamp: time.Now().UnixMilli(), ProducerID: producerID, ProducerEpoch: epoch,
		BaseSequence: -1, LeaderEpoch: -1, Attributes: 0x10}
	res := l.p.AppendCoordinator(commitlog.AppendBatch(nil, h, krecs), nil)
	if res.Code != 0 {
		return kerr.ErrorForCode(res.Code)
	}
	if code := l.p.WaitCommitted(ctx, res); code != 0 {
		return kerr.ErrorForCode(code)
	}
	return nil
}

// Replay reads the partition from its start to its log end, every
// record as an ordinary one (transaction markers left out).
func (l *offsetsLog) Replay(fn func(key, value []byte) error) error {
	return l.ReplayTxn(func(r group.Replayed) error {
		if r.Marker {
			return nil
		}
		return fn(r.Key, r.Value)
	})
}

// ReplayTxn reads the partition from its start to its log end, with each
// record's producer and the transaction markers.
func (l *offsetsLog) ReplayTxn(fn func(r group.Replayed) error) error {
	lg := l.p.Log()
	for off := lg.LogStartOffset(); off < lg.LogEndOffset(); {
		v, err := lg.ReadUncommitted(off, 4<<20)
		if err != nil {
			return fmt.Errorf("core: replay %s-%d: %w", l.p.Topic, l.p.Index, err)
		}
		if len(v.Data) == 0 {
			v.Release()
			return nil
		}
		var ferr error
		err = commitlog.Batches(v.Data, func(b commitlog.Batch, raw []byte) bool {
			pid := int64(-1)
			if b.IsTransactional() {
				pid = b.ProducerID
			}
			rerr := commitlog.Records(b, raw, func(_, _ int64, r *kmsg.Record) bool {
				if b.IsControl() {
					cr, err := broker.ParseControlRecord(r.Key, r.Value)
					if err != nil {
						return false // a bad marker is skipped, as the partition skips it
					}
					ferr = fn(group.Replayed{ProducerID: b.ProducerID, Marker: true, Commit: cr.Type == broker.ControlCommit})
					return false
				}
				ferr = fn(group.Replayed{Key: r.Key, Value: r.Value, ProducerID: pid})
				return ferr == nil
			})
			if ferr == nil {
				ferr = rerr
			}
			return ferr == nil
		})
		off = v.Next
		v.Release()
		if err != nil {
			return err
		}
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

// offsetsTopicConfigs are the configs of __consumer_offsets: compacted, as
// Kafka's (each group/topic/partition key keeps its newest commit, a
// deleted group's tombstones go after delete.retention.ms), in segments of
// at most 100 MiB (Kafka's offsets.topic.segment.bytes) so that commits
// become cleanable long before a 1 GiB segment fills, and fsynced at every
// commit.
func offsetsTopicConfigs() map[string]string {
	seg := min(100<<20, commitlog.DefaultConfig().SegmentBytes)
	return map[string]string{"cleanup.policy": "compact", "retention.ms": "-1", "flush.messages": "1",
		"segment.bytes": strconv.FormatInt(seg, 10)}
}
