package broker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/core/commitlog"
)

// Config configures a Broker.
type Config struct {
	// DataDir holds one directory per hosted partition, named
	// <topic>-<partition> as Kafka names them.
	DataDir string
	// ReplicaTLS, if set, secures the followers' connections to their
	// leaders (the inter-broker listener is SSL): the broker's own
	// certificate, which names it to the leaders' authorizer, and the CA
	// it trusts. Nil: plaintext.
	ReplicaTLS *tls.Config
	// ReplicaDial, if set, opens the followers' connections to their
	// leaders in place of the operating system's dialer: a fault
	// injection hook for tests (see cluster.Config.Network). Nil: the
	// operating system's. Not with ReplicaTLS.
	ReplicaDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// NodeID is this broker's id.
	NodeID int32
	// AutoCreateTopics creates unknown topics on first produce or metadata
	// request (Kafka's auto.create.topics.enable).
	AutoCreateTopics bool
	// CompactedTopics are created with cleanup.policy=compact and hourly
	// segments (segment.ms) when they are auto-created (default: "state",
	// the edge's device state topic, keyed by device id).
	CompactedTopics []string
	// DefaultPartitions is the partition count of auto-created topics and
	// of CreateTopics requests that leave it to the broker (num.partitions).
	DefaultPartitions int32
	// DefaultReplicationFactor is the replication factor of auto-created
	// topics and of requests that leave it to the broker; 0 or less:
	// min(3, live brokers).
	DefaultReplicationFactor int16
	// MaxPartitionsPerTopic is the most partitions a topic may have; a
	// CreateTopics or CreatePartitions asking for more is refused
	// (INVALID_PARTITIONS), validate-only requests included.
	MaxPartitionsPerTopic int32
	// MaxPartitionsPerBroker is the most partition replicas one broker
	// may host (Kafka's max.broker.partitions, KIP-578): a topic or
	// partition creation that would place more on a broker is refused
	// (POLICY_VIOLATION). Replicas already hosted are never removed.
	MaxPartitionsPerBroker int32
	// ReplicaLagMax drops a follower from the ISR when it has not caught
	// up with the leader for this long (replica.lag.time.max.ms).
	ReplicaLagMax time.Duration
	// ReplicaFetchWait is how long a follower's fetch waits at the leader
	// for new records (replica.fetch.wait.max.ms).
	ReplicaFetchWait time.Duration
	// Log is the default configuration of partition logs; topic configs
	// (retention.ms, retention.bytes, segment.bytes, ...) override it.
	Log commitlog.Config
	// MaintainInterval is how often retention and idle unmapping run.
	MaintainInterval time.Duration
	// Cleaner tunes the log cleaner that compacts topics whose
	// cleanup.policy includes compact (I/O limit, offset map memory); its
	// Logger is the broker's. Zero value: commitlog.DefaultCleanerConfig.
	Cleaner commitlog.CleanerConfig
	// CleanInterval is how often the cleaner looks for compacted logs to
	// clean (Kafka's log.cleaner.backoff.ms). 0: 15 s.
	CleanInterval time.Duration
	// Quorum, if set, tells the broker whether its node is in contact
	// with the controller; with LeaderLease it makes a cut-off leader
	// step down. Nil: never steps down.
	Quorum Quorum
	// LeaderLease: a broker that has not heard from the controller (the
	// Raft leader) for this long stops acting as leader of its partitions
	// until contact is back (it cannot learn or change ISR, leadership or
	// fencing meanwhile, and the majority may have moved its partitions
	// already). 0 or less: never. Default DefaultLeaderLease.
	LeaderLease time.Duration
	// OnRole, if set, is called after every metadata change for every
	// hosted replica with whether this broker leads it and at which
	// epoch, and with leader false when a replica is dropped. It runs on
	// the goroutine that applies metadata: it must not block.
	OnRole func(p *Partition, leader bool, epoch int32)
	// Logger receives broker events. Zero value: no logs.
	Logger zerolog.Logger
}

// DefaultConfig returns a configuration with Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:                "data",
		AutoCreateTopics:       true,
		CompactedTopics:        []string{"state"},
		DefaultPartitions:      1,
		MaxPartitionsPerTopic:  10000,
		MaxPartitionsPerBroker: 4000,
		ReplicaLagMax:          10 * time.Second,
		ReplicaFetchWait:       500 * time.Millisecond,
		Log:                    commitlog.DefaultConfig(),
		MaintainInterval:       10 * time.Second,
		Cleaner:                commitlog.DefaultCleanerConfig(),
		CleanInterval:          15 * time.Second,
		LeaderLease:            DefaultLeaderLease,
		Logger:                 zerolog.Nop(),
	}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("broker: DataDir is empty")
	case c.DefaultPartitions < 1:
		return fmt.Errorf("broker: DefaultPartitions %d must be at least 1", c.DefaultPartitions)
	case c.MaxPartitionsPerTopic < 1:
		return fmt.Errorf("broker: MaxPartitionsPerTopic %d must be at least 1", c.MaxPartitionsPerTopic)
	case c.DefaultPartitions > c.MaxPartitionsPerTopic:
		return fmt.Errorf("broker: DefaultPartitions %d is above MaxPartitionsPerTopic %d", c.DefaultPartitions, c.MaxPartitionsPerTopic)
	case c.MaxPartitionsPerBroker < 1:
		return fmt.Errorf("broker: MaxPartitionsPerBroker %d must be at least 1", c.MaxPartitionsPerBroker)
	case c.MaintainInterval <= 0:
		return fmt.Errorf("broker: MaintainInterval %v must be positive", c.MaintainInterval)
	case c.ReplicaLagMax <= 0:
		return fmt.Errorf("broker: ReplicaLagMax %v must be positive", c.ReplicaLagMax)
	case c.ReplicaDial != nil && c.ReplicaTLS != nil:
		return errors.New("broker: ReplicaDial and ReplicaTLS are exclusive")
	case c.ReplicaFetchWait <= 0:
		return fmt.Errorf("broker: ReplicaFetchWait %v must be positive", c.ReplicaFetchWait)
	case c.CleanInterval < 0:
		return fmt.Errorf("broker: CleanInterval %v is negative", c.CleanInterval)
	}
	if c.Cleaner.DedupeBufferBytes != 0 {
		if err := c.Cleaner.Validate(); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
	}
	return c.Log.Validate()
}

// Metadata is the cluster metadata the broker follows and changes:
// cluster.Cluster implements it. Watch returns the latest state and a
// channel closed at the next change; Apply makes a change through the
// controller, from any node.
type Metadata interface {
	Watch() (*cluster.State, <-chan struct{})
	Apply(ctx context.Context, cmd cluster.Command) (cluster.Result, error)
}

// TopicMeta is what the cluster knows of a topic.
type TopicMeta struct {
	Name       string
	ID         [16]byte
	Partitions int32
	Configs    map[string]string
}

// Topic is a topic as the metadata has it, with the partitions this
// broker hosts a replica of (nil for the others).
type Topic struct {
	Meta       TopicMeta
	State      *cluster.TopicState
	Partitions []*Partition
}

// Broker owns the partition replicas of one node and follows the cluster
// metadata: it opens the replicas assigned to it, leads or follows each
// as the metadata says, and removes those taken away.
type Broker struct {
	cfg  Config
	log  zerolog.Logger
	meta Metadata

	mu      sync.RWMutex // guards st, topics and changed
	st      *cluster.State
	topics  map[string]*Topic
	changed chan struct{} // closed when the next metadata change has been applied

	fmu      sync.Mutex // guards fetchers and following
	fetchers map[int32]*fetcher
	// following maps each partition replicated from a leader to it.
	following map[*Partition]int32

	pidMu   sync.Mutex // guards the producer id block
	pidNext int64
	pidEnd  int64

	isrShrinks, isrExpands atomic.Int64

	cleaner *commitlog.Cleaner // compacts logs whose cleanup.policy includes compact

	// quorumLost is set while the broker has stepped down for lack of
	// contact with the controller; lostCh (guarded by mu) is closed at
	// each step-down.
	quorumLost atomic.Bool
	lostCh     chan struct{}

	rmu         sync.Mutex         // guards reassigning
	reassigning map[string][]int32 // topic/partition -> target replicas

	ctx    context.Context // cancelled by Close; parent of async work
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Open opens the partition replicas the metadata assigns to this node and
// starts following the metadata.
func Open(cfg Config, meta Metadata) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if cfg.Cleaner.DedupeBufferBytes == 0 {
		cfg.Cleaner = commitlog.DefaultCleanerConfig()
	}
	if cfg.CleanInterval == 0 {
		cfg.CleanInterval = 15 * time.Second
	}
	cfg.Cleaner.Logger = cfg.Logger
	cleaner, err := commitlog.NewCleaner(cfg.Cleaner)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{cfg: cfg, cleaner: cleaner, log: cfg.Logger, meta: meta, topics: map[string]*Topic{}, changed: make(chan struct{}), lostCh: make(chan struct{}),
		fetchers: map[int32]*fetcher{}, following: map[*Partition]int32{}, reassigning: map[string][]int32{}, ctx: ctx, cancel: cancel}
	st, ch := meta.Watch()
	b.apply(st)
	b.wg.Add(4)
	go b.follow(ch)
	go b.maintain()
	go b.clean()
	go b.watchLag()
	if cfg.Quorum != nil && cfg.LeaderLease > 0 {
		b.wg.Add(1)
		go b.watchQuorum()
	}
	return b, nil
}

// follow applies every metadata change.
func (b *Broker) follow(ch <-chan struct{}) {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-ch:
		}
		var st *cluster.State
		st, ch = b.meta.Watch()
		b.apply(st)
	}
}

// apply brings the hosted replicas in line with st.
func (b *Broker) apply(st *cluster.State) {
	me := b.cfg.NodeID
	type role struct {
		p  *Partition
		ps cluster.PartitionState
		ts *cluster.TopicState
	}
	var roles []role
	var drop []*Partition // closed and removed from disk
	b.mu.Lock()
	topics := make(map[string]*Topic, len(st.Topics))
	for name, ts := range st.Topics {
		old := b.topics[name]
		parts := make([]*Partition, len(ts.Partitions))
		if old != nil && old.Meta.ID == ts.ID {
			copy(parts, old.Partitions)
			if !maps.Equal(old.Meta.Configs, ts.Configs) {
				b.reconfigure(old, ts)
			}
		}
		for i, ps := range ts.Partitions {
			hosted := slices.Contains(ps.Replicas, me)
			switch {
			case hosted && parts[i] == nil:
				p, err := b.openReplica(ts, int32(i))
				if err != nil {
					b.log.Error().Err(err).Str("topic", name).Int("partition", i).Msg("cannot open partition")
					continue
				}
				parts[i] = p
			case !hosted && parts[i] != nil:
				drop = append(drop, parts[i])
				parts[i] = nil
			}
			if parts[i] != nil {
				roles = append(roles, role{parts[i], ps, ts})
			}
		}
		topics[name] = &Topic{Meta: TopicMeta{Name: name, ID: ts.ID, Partitions: int32(len(ts.Partitions)), Configs: ts.Configs}, State: ts, Partitions: parts}
	}
	for name, old := range b.topics {
		if t := topics[name]; t == nil || t.Meta.ID != old.Meta.ID {
			for i, p := range old.Partitions {
				if p != nil && (t == nil || i >= len(t.Partitions) || t.Partitions[i] != p) {
					drop = append(drop, p)
				}
			}
			if t == nil {
				b.log.Info().Str("topic", name).Msg("deleted topic")
			}
		}
	}
	b.topics = topics
	b.mu.Unlock()

	for _, r := range roles {
		follow := r.p.setAssignment(r.ps, cluster.MinInsync(r.ts))
		if b.cfg.OnRole != nil {
			b.cfg.OnRole(r.p, r.ps.Leader == me, r.ps.LeaderEpoch)
		}
		switch {
		case r.ps.Leader == me || r.ps.Leader == cluster.NoLeader:
			b.unfollow(r.p)
		case follow:
			b.followFrom(r.p, r.ps.Leader, st.Brokers[r.ps.Leader].KafkaAddr, r.ps.LeaderEpoch)
		}
	}
	for _, p := range drop {
		if b.cfg.OnRole != nil {
			b.cfg.OnRole(p, false, -1)
		}
		b.unfollow(p)
		p.close()
		if err := os.RemoveAll(b.partitionDir(p.Topic, p.Index)); err != nil {
			b.log.Error().Err(err).Str("topic", p.Topic).Int32("partition", p.Index).Msg("cannot remove partition data")
		}
	}
	// Published last: whoever waits for this state (CreateTopic, acks=all
	// waiters) finds every replica in its role.
	b.mu.Lock()
	b.st = st
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

func (b *Broker) reconfigure(t *Topic, ts *cluster.TopicState) {
	cfg, err := b.logConfig(ts.Configs)
	if err != nil {
		b.log.Error().Err(err).Str("topic", ts.Name).Msg("cannot apply topic configs")
		return
	}
	for _, p := range t.Partitions {
		if p != nil {
			if err := p.log.Reconfigure(cfg); err != nil {
				b.log.Error().Err(err).Str("topic", ts.Name).Int32("partition", p.Index).Msg("cannot apply topic configs")
			}
		}
	}
	b.log.Info().Str("topic", ts.Name).Interface("configs", ts.Configs).Msg("topic configs changed")
}

// followFrom makes p replicate from leader at epoch.
func (b *Broker) followFrom(p *Partition, leader int32, addr string, epoch int32) {
	b.fmu.Lock()
	defer b.fmu.Unlock()
	if cur, ok := b.following[p]; ok && cur != leader {
		if f := b.fetchers[cur]; f != nil && !f.unfollow(p) {
			f.close()
			delete(b.fetchers, cur)
		}
	}
	f := b.fetchers[leader]
	if f != nil && f.addr != addr {
		f.close()
		delete(b.fetchers, leader)
		f = nil
	}
	if f == nil {
		var err error
		if f, err = newFetcher(b, leader, addr); err != nil {
			b.log.Error().Err(err).Int32("leader", leader).Msg("cannot start replica fetcher")
			return
		}
		b.fetchers[leader] = f
		// Every partition this node follows from leader moves to the
		// new fetcher.
		for q, l := range b.following {
			if l == leader && q != p {
				f.follow(q, q.LeaderEpoch())
			}
		}
	}
	b.following[p] = leader
	f.follow(p, epoch)
}

func (b *Broker) unfollow(p *Partition) {
	b.fmu.Lock()
	defer b.fmu.Unlock()
	cur, ok := b.following[p]
	if !ok {
		return
	}
	delete(b.following, p)
	if f := b.fetchers[cur]; f != nil && !f.unfollow(p) {
		f.close()
		delete(b.fetchers, cur)
	}
}

// watchLag shrinks ISRs of led partitions whose followers fall behind.
func (b *Broker) watchLag() {
	b.everyPartition(max(b.cfg.ReplicaLagMax/4, 50*time.Millisecond), func(now time.Time, p *Partition) {
		p.checkLag(now, b.cfg.ReplicaLagMax)
	})
}

// everyPartition calls fn for each hosted partition every d, until the
// broker closes. Run it as a goroutine Close waits for.
func (b *Broker) everyPartition(d time.Duration, fn func(now time.Time, p *Partition)) {
	defer b.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case now := <-t.C:
			for _, tp := range b.Topics() {
				for _, p := range tp.Partitions {
					if p != nil {
						fn(now, p)
					}
				}
			}
		}
	}
}

// goAsync runs fn in a goroutine Close waits for.
func (b *Broker) goAsync(fn func(ctx context.Context)) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn(b.ctx)
	}()
}

// ISRShrinks counts the ISR shrinks this broker proposed as leader and
// the controller accepted.
func (b *Broker) ISRShrinks() int64 { return b.isrShrinks.Load() }

// ISRExpands counts the ISR expansions this broker proposed as leader and
// the controller accepted.
func (b *Broker) ISRExpands() int64 { return b.isrExpands.Load() }

// metaChanged returns a channel closed when the next metadata change has
// been applied.
func (b *Broker) metaChanged() <-chan struct{} {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.changed
}

// WaitApplied waits until this broker has applied the metadata up to
// Raft index index: its replicas are in the roles that state gives them.
func (b *Broker) WaitApplied(ctx context.Context, index uint64) error {
	return b.waitState(ctx, func(st *cluster.State) bool { return st.Index >= index })
}

// waitState waits until the applied metadata satisfies ok.
func (b *Broker) waitState(ctx context.Context, ok func(*cluster.State) bool) error {
	for {
		b.mu.RLock()
		st, ch := b.st, b.changed
		b.mu.RUnlock()
		if ok(st) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// State is the metadata as last applied by this broker.
func (b *Broker) State() *cluster.State {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.st
}

func (b *Broker) partitionDir(topic string, p int32) string {
	return filepath.Join(b.cfg.DataDir, topic+"-"+strconv.Itoa(int(p)))
}

// logConfig applies a topic's configs to the broker's log defaults.
func (b *Broker) logConfig(configs map[string]string) (commitlog.Config, error) {
	c := b.cfg.Log
	for k, v := range configs {
		if err := applyTopicConfig(&c, k, v); err != nil {
			return c, err
		}
	}
	return c, c.Validate()
}

// openReplica opens partition i of ts, first removing a directory left
// by an older topic of the same name (its partition.metadata names
// another topic id).
func (b *Broker) openReplica(ts *cluster.TopicState, i int32) (*Partition, error) {
	cfg, err := b.logConfig(ts.Configs)
	if err != nil {
		return nil, err
	}
	dir := b.partitionDir(ts.Name, i)
	if err := checkTopicID(dir, ts.ID); err != nil {
		return nil, err
	}
	return openPartition(b, ts.Name, i, dir, cfg, b.log)
}

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// ValidateTopicName applies Kafka's topic name rules.
func ValidateTopicName(name string) error {
	if !topicName.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf(`broker: invalid topic name %q: want 1-249 of [a-zA-Z0-9._-] and neither "." nor ".."`, name)
	}
	return nil
}

// OffsetsTopic is the internal topic of the consumer group coordinators:
// their commits and group metadata.
const OffsetsTopic = "__consumer_offsets"

// TxnTopic is the internal topic of the transaction coordinators: the
// state of every transactional id.
const TxnTopic = "__transaction_state"

// IsInternalTopic reports whether name is a topic the brokers keep for
// themselves (Metadata marks it internal; clients hide it from listings).
func IsInternalTopic(name string) bool { return name == OffsetsTopic || name == TxnTopic }

// Topic returns the topic named name.
func (b *Broker) Topic(name string) (*Topic, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, ok := b.topics[name]
	return t, ok
}

// Topics returns every topic, sorted by name.
func (b *Broker) Topics() []*Topic {
	b.mu.RLock()
	out := make([]*Topic, 0, len(b.topics))
	for _, t := range b.topics {
		out = append(out, t)
	}
	b.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Meta.Name < out[j].Meta.Name })
	return out
}

// Partition returns this broker's replica of partition p of topic, if it
// hosts one.
func (b *Broker) Partition(topic string, p int32) (*Partition, bool) {
	t, ok := b.Topic(topic)
	if !ok || p < 0 || int(p) >= len(t.Partitions) || t.Partitions[p] == nil {
		return nil, false
	}
	return t.Partitions[p], true
}

// AutoCreate reports whether unknown topics are created on first use.
func (b *Broker) AutoCreate() bool { return b.cfg.AutoCreateTopics }

// NodeID is this broker's id.
func (b *Broker) NodeID() int32 { return b.cfg.NodeID }

// applyTimeout bounds a metadata change made on behalf of a request.
const applyTimeout = 15 * time.Second

// CreateTopic creates a topic with partitions partitions and rf replicas
// (0 or less: the defaults) and the given configs, and returns it once
// this broker has applied the change. It first checks what
// ValidateNewTopic checks.
func (b *Broker) CreateTopic(ctx context.Context, name string, partitions int32, rf int16, configs map[string]string) (*Topic, error) {
	if err := b.ValidateNewTopic(name, partitions, rf, configs); err != nil {
		return nil, err
	}
	partitions, rf = b.topicDefaults(partitions, rf)
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	cmd := cluster.CreateTopic{Name: name, Partitions: partitions, ReplicationFactor: rf, Configs: configs}
	rand.Read(cmd.ID[:])
	if _, err := b.meta.Apply(ctx, cmd); err != nil {
		return nil, metaError(err)
	}
	var t *Topic
	err := b.waitState(ctx, func(st *cluster.State) bool {
		ts := st.Topics[name]
		return ts != nil && ts.ID == cmd.ID
	})
	if err != nil {
		return nil, err
	}
	t, _ = b.Topic(name)
	b.log.Info().Str("topic", name).Int32("partitions", partitions).Int16("replication_factor", rf).Msg("created topic")
	return t, nil
}

// metaError maps the cluster's command errors onto the broker's.
func metaError(err error) error {
	switch {
	case errors.Is(err, cluster.ErrTopicExists):
		return fmt.Errorf("%w: %v", ErrTopicExists, err)
	case errors.Is(err, cluster.ErrUnknownTopic):
		return fmt.Errorf("%w: %v", ErrUnknownTopic, err)
	case errors.Is(err, cluster.ErrReplicationFactor):
		return fmt.Errorf("%w: %v", ErrInvalidReplication, err)
	case errors.Is(err, cluster.ErrInvalidPartitions):
		return fmt.Errorf("%w: %v", ErrInvalidPartitions, err)
	}
	return err
}

var (
	// ErrTopicExists is returned when creating a topic whose name is taken.
	ErrTopicExists = errors.New("broker: topic exists")
	// ErrUnknownTopic is returned for a topic the metadata does not hold.
	ErrUnknownTopic = errors.New("broker: unknown topic")
	// ErrInvalidReplication marks a replication factor the cluster cannot
	// place (more replicas than live brokers).
	ErrInvalidReplication = errors.New("broker: invalid replication factor")
)

// ErrInvalidConfig marks a topic config the broker does not accept.
var ErrInvalidConfig = errors.New("broker: invalid topic config")

// EnsureTopic returns the topic, creating it with the defaults when
// auto-creation is on (compacted if named in Config.CompactedTopics).
func (b *Broker) EnsureTopic(ctx context.Context, name string) (*Topic, error) {
	if t, ok := b.Topic(name); ok {
		return t, nil
	}
	if !b.cfg.AutoCreateTopics {
		return nil, ErrUnknownTopic
	}
	var configs map[string]string
	if slices.Contains(b.cfg.CompactedTopics, name) {
		// Hourly segments: the active one is never cleaned, so this
		// bounds how long older values stay next to the newest.
		configs = map[string]string{"cleanup.policy": "compact", "segment.ms": "3600000"}
	}
	t, err := b.CreateTopic(ctx, name, 0, 0, configs)
	if errors.Is(err, ErrTopicExists) {
		// Created meanwhile, perhaps through another broker: wait until
		// this one has applied it.
		ctx, cancel := context.WithTimeout(ctx, applyTimeout)
		defer cancel()
		if err := b.waitState(ctx, func(st *cluster.State) bool { return st.Topics[name] != nil }); err != nil {
			return nil, err
		}
		if t, ok := b.Topic(name); ok {
			return t, nil
		}
	}
	return t, err
}

// DeleteTopic removes a topic; every broker then removes its data.
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	if _, err := b.meta.Apply(ctx, cluster.DeleteTopic{Name: name}); err != nil {
		return metaError(err)
	}
	return b.waitState(ctx, func(st *cluster.State) bool { return st.Topics[name] == nil })
}

// InitProducerID hands out a new idempotent producer id (epoch 0). Ids are
// reserved from the metadata in blocks, so no two brokers and no restart
// ever hand out the same one.
func (b *Broker) InitProducerID(ctx context.Context) (int64, int16, error) {
	b.pidMu.Lock()
	defer b.pidMu.Unlock()
	if b.pidNext == b.pidEnd {
		const block = 1000
		ctx, cancel := context.WithTimeout(ctx, applyTimeout)
		defer cancel()
		res, err := b.meta.Apply(ctx, cluster.AllocateProducerIDs{N: block})
		if err != nil {
			return 0, 0, err
		}
		b.pidNext, b.pidEnd = res.FirstProducerID, res.FirstProducerID+block
	}
	id := b.pidNext
	b.pidNext++
	return id, 0, nil
}

func (b *Broker) maintain() {
	b.everyPartition(b.cfg.MaintainInterval, func(now time.Time, p *Partition) {
		if err := p.log.Maintain(now); err != nil && !errors.Is(err, commitlog.ErrClosed) {
			b.log.Error().Err(err).Str("topic", p.Topic).Int32("partition", p.Index).Msg("maintenance failed")
		}
	})
}

// clean compacts, every CleanInterval, the logs whose cleanup.policy
// includes compact and which are due (the cleaner checks the policy, the
// dirty ratio and the compaction lags), below their last stable offset,
// discarding the data of aborted transactions.
func (b *Broker) clean() {
	b.everyPartition(b.cfg.CleanInterval, func(now time.Time, p *Partition) {
		if b.ctx.Err() != nil || !p.log.Compacted() {
			return
		}
		if _, err := b.cleaner.CleanTxn(b.ctx, p.log, now, p.CleanerTxns()); err != nil && !errors.Is(err, commitlog.ErrClosed) && !errors.Is(err, context.Canceled) {
			b.log.Error().Err(err).Str("topic", p.Topic).Int32("partition", p.Index).Msg("log cleaning failed")
		}
	})
}

// CleanerStats returns the log cleaner's counters.
func (b *Broker) CleanerStats() commitlog.CleanerStats { return b.cleaner.Stats() }

// Close stops following the metadata and replicating, then closes every
// log, flushing it. Later calls return the first call's result.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.close() })
	return b.closeErr
}

func (b *Broker) close() error {
	b.cancel()
	b.wg.Wait()
	b.fmu.Lock()
	for id, f := range b.fetchers {
		f.close()
		delete(b.fetchers, id)
	}
	b.fmu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	var first error
	for _, t := range b.topics {
		for _, p := range t.Partitions {
			if p == nil {
				continue
			}
			if err := p.close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// ValidateTopicConfigs checks topic configs without creating anything.
func (b *Broker) ValidateTopicConfigs(configs map[string]string) error {
	_, err := b.logConfig(configs)
	return err
}

// SetTopicConfigs replaces a topic's configs; every broker applies them
// to its replicas' logs when the change reaches it.
func (b *Broker) SetTopicConfigs(ctx context.Context, name string, configs map[string]string) error {
	if err := b.ValidateTopicConfigs(configs); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	if _, err := b.meta.Apply(ctx, cluster.SetConfigs{Name: name, Configs: configs}); err != nil {
		return metaError(err)
	}
	return b.waitState(ctx, func(st *cluster.State) bool {
		ts := st.Topics[name]
		return ts == nil || maps.Equal(ts.Configs, configs)
	})
}

// TopicConfigValue is a topic config's effective value and whether the
// topic sets it (false: the broker default).
type TopicConfigValue struct {
	Name, Value string
	Set         bool
}

// DescribeTopicConfigs returns every topic config the broker understands,
// with its effective value for the topic.
func (b *Broker) DescribeTopicConfigs(name string) ([]TopicConfigValue, error) {
	t, ok := b.Topic(name)
	if !ok {
		return nil, ErrUnknownTopic
	}
	d := b.cfg.Log
	defaults := map[string]string{
		"cleanup.policy":            d.Cleanup.String(),
		"min.cleanable.dirty.ratio": strconv.FormatFloat(d.MinCleanableDirtyRatio, 'g', -1, 64),
		"min.compaction.lag.ms":     strconv.FormatInt(durationMs(d.MinCompactionLag), 10),
		"max.compaction.lag.ms":     strconv.FormatInt(durationMs(d.MaxCompactionLag), 10),
		"delete.retention.ms":       strconv.FormatInt(durationMs(d.DeleteRetention), 10),
		"message.timestamp.type":    "CreateTime",
		"retention.ms":              strconv.FormatInt(durationMs(d.RetentionAge), 10),
		"retention.bytes":           strconv.FormatInt(d.RetentionBytes, 10),
		"segment.bytes":             strconv.FormatInt(d.SegmentBytes, 10),
		"segment.ms":                strconv.FormatInt(durationMs(d.SegmentMaxAge), 10),
		"max.message.bytes":         strconv.Itoa(d.MaxBatchBytes),
		"flush.messages":            strconv.Itoa(d.FlushBatches),
		"flush.ms":                  strconv.FormatInt(durationMs(d.FlushInterval), 10),
	}
	if d.FlushBatches == 0 {
		defaults["flush.messages"] = "9223372036854775807"
	}
	if d.FlushInterval == 0 {
		defaults["flush.ms"] = "9223372036854775807"
	}
	out := make([]TopicConfigValue, 0, len(TopicConfigs))
	for _, k := range TopicConfigs {
		v, set := t.Meta.Configs[k]
		if !set {
			v = defaults[k]
		}
		out = append(out, TopicConfigValue{Name: k, Value: v, Set: set})
	}
	return out, nil
}

func durationMs(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}

// CreatePartitions grows a topic to total partitions, within
// MaxPartitionsPerTopic and MaxPartitionsPerBroker; validateOnly checks
// without changing anything.
func (b *Broker) CreatePartitions(ctx context.Context, name string, total int32, validateOnly bool) error {
	t, ok := b.Topic(name)
	if !ok {
		return ErrUnknownTopic
	}
	if total <= t.Meta.Partitions {
		return fmt.Errorf("%w: topic %s has %d partitions, cannot go to %d", ErrInvalidPartitions, name, t.Meta.Partitions, total)
	}
	if err := b.checkTopicPartitions(name, total); err != nil {
		return err
	}
	rf := 1
	if len(t.State.Partitions) > 0 {
		rf = len(t.State.Partitions[0].Replicas)
	}
	if err := b.checkBrokerPartitions(b.State(), name, t.Meta.Partitions, total, rf); err != nil {
		return err
	}
	if validateOnly {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	if _, err := b.meta.Apply(ctx, cluster.CreatePartitions{Name: name, Total: total}); err != nil {
		return metaError(err)
	}
	if err := b.waitState(ctx, func(st *cluster.State) bool {
		ts := st.Topics[name]
		return ts == nil || int32(len(ts.Partitions)) >= total
	}); err != nil {
		return err
	}
	b.log.Info().Str("topic", name).Int32("partitions", total).Msg("added partitions")
	return nil
}

// ErrInvalidPartitions marks a partition count the broker refuses.
var ErrInvalidPartitions = errors.New("broker: invalid partition count")

// BrokerConfigs lists the broker's main settings as Kafka names them.
func (b *Broker) BrokerConfigs() [][2]string {
	d := b.cfg.Log
	return [][2]string{
		{"broker.id", strconv.Itoa(int(b.cfg.NodeID))},
		{"auto.create.topics.enable", strconv.FormatBool(b.cfg.AutoCreateTopics)},
		{"num.partitions", strconv.Itoa(int(b.cfg.DefaultPartitions))},
		{"log.retention.ms", strconv.FormatInt(durationMs(d.RetentionAge), 10)},
		{"log.retention.bytes", strconv.FormatInt(d.RetentionBytes, 10)},
		{"log.segment.bytes", strconv.FormatInt(d.SegmentBytes, 10)},
		{"message.max.bytes", strconv.Itoa(d.MaxBatchBytes)},
		{"log.dirs", b.cfg.DataDir},
	}
}
