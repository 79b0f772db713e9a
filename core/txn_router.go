package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/broker"
	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/core/commitlog"
	"github.com/fluxo-io/fluxo/core/txn"
)

// txnRouter spreads transactional ids over the brokers as Kafka does: id
// t belongs to partition abs(javaHash(t)) % n of the replicated
// __transaction_state topic, and that partition's leader coordinates it,
// with a txn.Coordinator whose log is the partition (acks=all), mirroring
// groupRouter. A new leader of a partition reloads its transactions and
// finishes those it finds half-ended.
//
// It is also the coordinators' txn.Cluster: producer ids come from the
// broker's allocator, and markers go to each partition's leader: in
// process when this broker leads it, else with WriteTxnMarkers over the
// inter-broker listener. A marker for a __consumer_offsets partition ends
// the transaction's offset commits in that partition's group coordinator.
type txnRouter struct {
	b          *broker.Broker
	groups     *groupRouter
	cfg        txn.Config
	partitions int32
	log        zerolog.Logger

	mu     sync.Mutex // guards shards and clients
	shards map[int32]*txnShard
	// clients reach other brokers for WriteTxnMarkers, by node id.
	clients map[int32]*markerClient

	roles chan roleChange
	quit  chan struct{}
	done  chan struct{}

	compacted atomic.Bool // the transaction topic is known to have cleanup.policy=compact
}

type txnShard struct {
	epoch int32
	c     *txn.Coordinator // nil while loading
}

type markerClient struct {
	addr string
	cl   *kgo.Client
}

// markerTimeout bounds one round of marker writes.
const markerTimeout = 30 * time.Second

func newTxnRouter(cfg txn.Config, partitions int32, groups *groupRouter, log zerolog.Logger) *txnRouter {
	r := &txnRouter{cfg: cfg, partitions: partitions, groups: groups, log: log, shards: map[int32]*txnShard{},
		clients: map[int32]*markerClient{}, roles: make(chan roleChange, 1024), quit: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

// onRole is the broker's OnRole hook for the transaction topic.
func (r *txnRouter) onRole(p *broker.Partition, leader bool, epoch int32) {
	if p.Topic != broker.TxnTopic {
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

func (r *txnRouter) run() {
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

func (r *txnRouter) apply(rc roleChange) {
	idx := rc.p.Index
	r.mu.Lock()
	old := r.shards[idx]
	if rc.leader && old != nil && old.epoch == rc.epoch {
		r.mu.Unlock()
		return
	}
	delete(r.shards, idx)
	var sh *txnShard
	if rc.leader {
		sh = &txnShard{epoch: rc.epoch}
		r.shards[idx] = sh
	}
	r.mu.Unlock()
	if old != nil && old.c != nil {
		old.c.Close()
		r.log.Info().Int32("partition", idx).Msg("stopped coordinating transactions")
	}
	if sh == nil {
		return
	}
	c, err := txn.New(r.cfg, rc.epoch, txnLogAdapter{&offsetsLog{p: rc.p, epoch: rc.epoch}}, r)
	if err != nil {
		r.log.Error().Err(err).Int32("partition", idx).Msg("cannot load transactions")
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
		c.Close()
		return
	}
	r.log.Info().Int32("partition", idx).Int32("epoch", rc.epoch).Msg("coordinating transactions")
}

// partitionFor is the transaction topic partition of id.
func (r *txnRouter) partitionFor(id string) int32 { return javaHashPartition(id, r.partitions) }

// Coordinator implements kafka.Txns.
func (r *txnRouter) Coordinator(id string) *txn.Coordinator {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sh := r.shards[r.partitionFor(id)]; sh != nil {
		return sh.c
	}
	return nil
}

// Local implements kafka.Txns.
func (r *txnRouter) Local() []*txn.Coordinator {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*txn.Coordinator, 0, len(r.shards))
	for _, sh := range r.shards {
		if sh.c != nil {
			out = append(out, sh.c)
		}
	}
	return out
}

// Find implements kafka.Txns: the leader of the id's partition, creating
// the transaction topic first if need be, as groupRouter creates the
// offsets topic (default replication factor, fsync on every write, no
// time retention).
func (r *txnRouter) Find(ctx context.Context, key string) (int32, string, int16) {
	st := r.b.State()
	if st.Topics[broker.TxnTopic] == nil {
		_, err := r.b.CreateTopic(ctx, broker.TxnTopic, r.partitions, 0, txnTopicConfigs())
		if err != nil && !errors.Is(err, broker.ErrTopicExists) {
			r.log.Warn().Err(err).Msg("cannot create the transaction topic")
			return -1, "", kerr.CoordinatorNotAvailable.Code
		}
		st = r.b.State()
	}
	if ts := st.Topics[broker.TxnTopic]; ts != nil && !r.compacted.Load() {
		makeCompacted(ctx, r.b, r.log, broker.TxnTopic, ts.Configs, txnTopicConfigs(), &r.compacted)
	}
	ps, ok := st.Partition(broker.TxnTopic, r.partitionFor(key))
	if !ok || ps.Leader == cluster.NoLeader {
		return -1, "", kerr.CoordinatorNotAvailable.Code
	}
	bi, ok := st.Brokers[ps.Leader]
	if !ok || bi.Fenced {
		return -1, "", kerr.CoordinatorNotAvailable.Code
	}
	return ps.Leader, bi.KafkaAddr, 0
}

// txnTopicConfigs are the configs of __transaction_state: the same as
// __consumer_offsets' (offsetsTopicConfigs), as Kafka's: compacted (each
// transactional id keeps its newest state, an expired id's tombstone goes
// after delete.retention.ms), in segments of at most 100 MiB
// (transaction.state.log.segment.bytes), no time retention, and fsynced
// at every write.
func txnTopicConfigs() map[string]string { return offsetsTopicConfigs() }

// OffsetsPartition implements kafka.Txns: the __consumer_offsets
// partition of group, which AddOffsetsToTxn adds to a transaction.
func (r *txnRouter) OffsetsPartition(group string) int32 { return r.groups.partitionFor(group) }

// NewProducerID implements txn.Cluster.
func (r *txnRouter) NewProducerID(ctx context.Context) (int64, error) {
	id, _, err := r.b.InitProducerID(ctx)
	return id, err
}

// WriteMarkers implements txn.Cluster.
func (r *txnRouter) WriteMarkers(ctx context.Context, m txn.Markers) []txn.Partition {
	ctx, cancel := context.WithTimeout(ctx, markerTimeout)
	defer cancel()
	st := r.b.State()
	me := r.b.NodeID()
	byLeader := map[int32][]txn.Partition{}
	var rest []txn.Partition
	for _, p := range m.Partitions {
		ps, ok := st.Partition(p.Topic, p.Partition)
		switch {
		case !ok && st.Topics[p.Topic] == nil:
			// Deleted: nothing left to mark.
		case !ok || ps.Leader == cluster.NoLeader:
			rest = append(rest, p)
		default:
			byLeader[ps.Leader] = append(byLeader[ps.Leader], p)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for leader, parts := range byLeader {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var failed []txn.Partition
			if leader == me {
				mk := m
				mk.Partitions = parts
				for p, code := range r.WriteMarkersLocal(ctx, mk) {
					if code != 0 {
						failed = append(failed, p)
					}
				}
			} else {
				failed = r.writeRemote(ctx, st, leader, m, parts)
			}
			mu.Lock()
			rest = append(rest, failed...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(rest) > 0 {
		r.log.Debug().Int64("producer_id", m.ProducerID).Int("partitions", len(rest)).Msg("transaction markers not written yet")
	}
	return rest
}

// WriteMarkersLocal implements kafka.Txns: it writes m's marker to each
// of its partitions that this broker leads, and returns a Kafka error
// code per partition. On a __consumer_offsets partition, once the marker
// is written, the partition's group coordinator applies or drops the
// transaction's offset commits. INVALID_PRODUCER_EPOCH (a later marker is
// already there) counts as done.
func (r *txnRouter) WriteMarkersLocal(ctx context.Context, m txn.Markers) map[txn.Partition]int16 {
	out := make(map[txn.Partition]int16, len(m.Partitions))
	for _, tp := range m.Partitions {
		if tp.Topic == broker.OffsetsTopic {
			out[tp] = r.completeOffsets(ctx, tp.Partition, m)
			continue
		}
		p, ok := r.b.Partition(tp.Topic, tp.Partition)
		if !ok {
			if _, exists := r.b.Topic(tp.Topic); !exists {
				out[tp] = 0 // deleted
			} else {
				out[tp] = kerr.NotLeaderForPartition.Code
			}
			continue
		}
		code := p.WriteTxnMarker(ctx, m.ProducerID, m.Epoch, m.Commit, m.CoordinatorEpoch)
		if code == kerr.InvalidProducerEpoch.Code {
			code = 0
		}
		out[tp] = code
	}
	return out
}

// completeOffsets writes the marker to __consumer_offsets partition idx,
// then has its group coordinator apply it. Without a coordinator loaded
// for the partition it writes nothing and answers NOT_LEADER_OR_FOLLOWER:
// the coordinator retries, and a coordinator that loads later replays
// the marker from the log.
func (r *txnRouter) completeOffsets(ctx context.Context, idx int32, m txn.Markers) int16 {
	r.groups.mu.Lock()
	sh := r.groups.shards[idx]
	r.groups.mu.Unlock()
	p, ok := r.b.Partition(broker.OffsetsTopic, idx)
	if sh == nil || sh.c == nil || !ok {
		return kerr.NotLeaderForPartition.Code
	}
	code := p.WriteTxnMarker(ctx, m.ProducerID, m.Epoch, m.Commit, m.CoordinatorEpoch)
	if code != 0 && code != kerr.InvalidProducerEpoch.Code {
		return code
	}
	if err := sh.c.CompleteTxn(ctx, m.ProducerID, m.Commit); err != nil {
		r.log.Warn().Err(err).Int32("partition", idx).Int64("producer_id", m.ProducerID).Msg("cannot end transactional offset commits")
		return kerr.CoordinatorNotAvailable.Code
	}
	return 0
}

// writeRemote sends WriteTxnMarkers to leader for parts and returns those
// not done.
func (r *txnRouter) writeRemote(ctx context.Context, st *cluster.State, leader int32, m txn.Markers, parts []txn.Partition) []txn.Partition {
	bi, ok := st.Brokers[leader]
	if !ok || bi.Fenced {
		return parts
	}
	cl, err := r.client(leader, bi.KafkaAddr)
	if err != nil {
		return parts
	}
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	mk := kmsg.NewWriteTxnMarkersRequestMarker()
	mk.ProducerID, mk.ProducerEpoch, mk.Committed, mk.CoordinatorEpoch = m.ProducerID, m.Epoch, m.Commit, m.CoordinatorEpoch
	byTopic := map[string][]int32{}
	for _, p := range parts {
		byTopic[p.Topic] = append(byTopic[p.Topic], p.Partition)
	}
	for t, ps := range byTopic {
		mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		mt.Topic, mt.Partitions = t, ps
		mk.Topics = append(mk.Topics, mt)
	}
	req.Markers = append(req.Markers, mk)
	// To the seed, the leader itself: kgo would send a request it does
	// not route to any broker it knows.
	seeds := cl.SeedBrokers()
	if len(seeds) == 0 {
		return parts
	}
	kresp, err := seeds[0].Request(ctx, req)
	resp, _ := kresp.(*kmsg.WriteTxnMarkersResponse)
	if err != nil || resp == nil || len(resp.Markers) != 1 {
		r.log.Debug().Err(err).Int32("leader", leader).Msg("cannot send transaction markers")
		return parts
	}
	done := map[txn.Partition]bool{}
	for _, t := range resp.Markers[0].Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode == 0 || p.ErrorCode == kerr.InvalidProducerEpoch.Code {
				done[txn.Partition{Topic: t.Topic, Partition: p.Partition}] = true
			}
		}
	}
	return slices.DeleteFunc(slices.Clone(parts), func(p txn.Partition) bool { return done[p] })
}

// client returns the inter-broker client of broker id at addr.
func (r *txnRouter) client(id int32, addr string) (*kgo.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if mc := r.clients[id]; mc != nil {
		if mc.addr == addr {
			return mc.cl, nil
		}
		mc.cl.Close()
		delete(r.clients, id)
	}
	cl, err := kgo.NewClient(r.b.InterBrokerOpts("fluxo-txn-markers", addr)...)
	if err != nil {
		return nil, fmt.Errorf("core: marker client for broker %d: %w", id, err)
	}
	r.clients[id] = &markerClient{addr: addr, cl: cl}
	return cl, nil
}

// close stops every coordinator and client.
func (r *txnRouter) close() {
	close(r.quit)
	<-r.done
	r.mu.Lock()
	shards := r.shards
	r.shards = map[int32]*txnShard{}
	clients := r.clients
	r.clients = map[int32]*markerClient{}
	r.mu.Unlock()
	for _, sh := range shards {
		if sh.c != nil {
			sh.c.Close()
		}
	}
	for _, mc := range clients {
		mc.cl.Close()
	}
}

// txnLogAdapter is a txn.Log on a __transaction_state partition this
// broker leads: offsetsLog's writes and replay, with txn's record type.
type txnLogAdapter struct{ l *offsetsLog }

// Append implements txn.Log.
func (a txnLogAdapter) Append(ctx context.Context, recs []txn.Record) error {
	if lead, epoch := a.l.p.IsLeader(); !lead || epoch != a.l.epoch {
		return kerr.NotLeaderForPartition
	}
	krecs := make([]kmsg.Record, len(recs))
	for i, r := range recs {
		krecs[i] = kmsg.Record{Key: r.Key, Value: r.Value}
	}
	res := a.l.p.Append(commitlog.AppendBatch(nil, commitlog.NoProducer(time.Now().UnixMilli()), krecs), -1)
	if res.Code != 0 {
		return kerr.ErrorForCode(res.Code)
	}
	if code := a.l.p.WaitCommitted(ctx, res); code != 0 {
		return kerr.ErrorForCode(code)
	}
	return nil
}

// Replay implements txn.Log.
func (a txnLogAdapter) Replay(fn func(key, value []byte) error) error { return a.l.Replay(fn) }
