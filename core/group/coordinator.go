package group

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Coordinator runs classic consumer groups: the JoinGroup/SyncGroup
// rebalance protocol, heartbeats and session timeouts, and committed
// offsets, which it persists in a Log.
//
// Each request method takes the decoded kmsg request, with Version set to
// the negotiated version, and returns the response of the same version.
// Kafka error codes are in the response; the methods never fail otherwise.
// All methods are safe for concurrent use.
type Coordinator struct {
	cfg Config
	log Log
	lg  zerolog.Logger
	now func() time.Time

	// ctx bounds log writes that belong to no single request; Close
	// cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts timer callbacks scheduled and not stopped, background
	// log writes, and the retention loop. Close waits for it. Adds happen
	// only under a group's mu while the group is loaded, so none can
	// follow Close's Wait.
	wg sync.WaitGroup

	txo txnOffsets // transactional commits pending (txn.go)

	mu     sync.Mutex        // guards groups and closed; a leaf: no lock is taken while holding it
	groups map[string]*group // by group id
	closed bool
}

// New returns a coordinator that has replayed log: committed offsets and
// the groups' last stored metadata are restored, and restored members must
// heartbeat within their session timeout to stay. The coordinator writes
// every later change to log.
func New(cfg Config, log Log) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		return nil, errors.New("group: nil Log")
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Coordinator{
		cfg:    cfg,
		log:    log,
		lg:     cfg.Logger,
		now:    cfg.Now,
		ctx:    ctx,
		cancel: cancel,
		groups: make(map[string]*group),
	}
	if c.now == nil {
		c.now = time.Now
	}
	if err := c.load(); err != nil {
		cancel()
		c.unloadAll()
		return nil, fmt.Errorf("group: cannot replay log: %w", err)
	}
	c.wg.Add(1)
	go c.retentionLoop()
	return c, nil
}

// Close unloads every group: pending JoinGroup and SyncGroup calls return
// NOT_COORDINATOR, timers stop, and in-flight log writes are canceled.
// Later calls answer COORDINATOR_NOT_AVAILABLE. Close waits for every
// goroutine and timer callback of the coordinator to finish. It is safe to
// call more than once.
func (c *Coordinator) Close() error {
	c.unloadAll()
	c.cancel()
	c.wg.Wait()
	return nil
}

func (c *Coordinator) unloadAll() {
	c.mu.Lock()
	c.closed = true
	groups := slices.Collect(maps.Values(c.groups))
	c.mu.Unlock()
	for _, g := range groups {
		g.mu.Lock()
		g.unload()
		g.mu.Unlock()
	}
}

// load replays the log into groups. It runs before any request, so the
// groups' locks are taken only to satisfy the timers' locking contract.
func (c *Coordinator) load() error {
	type state struct {
		meta    *kmsg.GroupMetadataValue
		offsets map[string]map[int32]offset
	}
	states := make(map[string]*state)
	get := func(id string) *state {
		s := states[id]
		if s == nil {
			s = &state{offsets: make(map[string]map[int32]offset)}
			states[id] = s
		}
		return s
	}
	n := 0
	// Transactional commits read so far, by producer, until their marker.
	type pendingCommit struct {
		group, topic string
		partition    int32
		o            offset
	}
	txnPending := map[int64][]pendingCommit{}
	apply := func(r Replayed) error {
		n++
		if r.Marker {
			if r.Commit {
				for _, pc := range txnPending[r.ProducerID] {
					s := get(pc.group)
					if s.offsets[pc.topic] == nil {
						s.offsets[pc.topic] = make(map[int32]offset)
					}
					s.offsets[pc.topic][pc.partition] = pc.o
				}
			}
			delete(txnPending, r.ProducerID)
			return nil
		}
		d, ok, err := decodeRecord(r.Key, r.Value)
		if err != nil {
			return fmt.Errorf("record %d: %w", n, err)
		}
		if !ok {
			c.lg.Debug().Int("record", n).Msg("skipping record of unknown type")
			return nil
		}
		if r.ProducerID >= 0 {
			if d.isOffset && d.offset != nil {
				txnPending[r.ProducerID] = append(txnPending[r.ProducerID], pendingCommit{d.group, d.topic, d.partition, *d.offset})
			}
			return nil
		}
		s := get(d.group)
		switch {
		case d.isOffset && d.offset == nil:
			delete(s.offsets[d.topic], d.partition)
		case d.isOffset:
			ps := s.offsets[d.topic]
			if ps == nil {
				ps = make(map[int32]offset)
				s.offsets[d.topic] = ps
			}
			ps[d.partition] = *d.offset
		default:
			s.meta = d.meta
		}
		return nil
	}
	var err error
	if tl, ok := c.log.(TxnLog); ok {
		err = tl.ReplayTxn(apply)
	} else {
		err = c.log.Replay(func(key, value []byte) error {
			return apply(Replayed{Key: key, Value: value, ProducerID: -1})
		})
	}
	for pid, pcs := range txnPending {
		for _, pc := range pcs {
			c.txo.add(pid, pc.group, pc.topic, map[int32]offset{pc.partition: pc.o})
		}
	}
	if err != nil {
		return err
	}
	for id, s := range states {
		for t, ps := range s.offsets {
			if len(ps) == 0 {
				delete(s.offsets, t)
			}
		}
		if s.meta == nil && len(s.offsets) == 0 {
			continue
		}
		g := newGroup(c, id)
		g.mu.Lock()
		g.offsets = s.offsets
		if s.meta != nil {
			g.restore(s.meta)
		}
		g.mu.Unlock()
		c.groups[id] = g
	}
	c.lg.Info().Int("records", n).Int("groups", len(c.groups)).Msg("group log replayed")
	return nil
}

// lookup returns the group named id, or nil if there is none or the
// coordinator is closed.
func (c *Coordinator) lookup(id string) *group {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	return c.groups[id]
}

// getOrCreate returns the group named id, creating it Empty if needed,
// and whether it did. It returns nil once the coordinator is closed.
func (c *Coordinator) getOrCreate(id string) (*group, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, false
	}
	g := c.groups[id]
	if g != nil {
		return g, false
	}
	g = newGroup(c, id)
	c.groups[id] = g
	return g, true
}

// drop removes g from the coordinator, if g is still the group of its id.
func (c *Coordinator) drop(g *group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups[g.id] == g {
		delete(c.groups, g.id)
	}
}

func (c *Coordinator) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// snapshot returns the loaded groups sorted by id.
func (c *Coordinator) snapshot() []*group {
	c.mu.Lock()
	gs := slices.Collect(maps.Values(c.groups))
	c.mu.Unlock()
	slices.SortFunc(gs, func(a, b *group) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	return gs
}

// Groups returns the ids of the groups the coordinator holds, sorted: those
// with members and those that only hold committed offsets.
func (c *Coordinator) Groups() []string {
	gs := c.snapshot()
	ids := make([]string, 0, len(gs))
	for _, g := range gs {
		ids = append(ids, g.id)
	}
	return ids
}

// Committed returns a copy of the offsets committed by group, by topic and
// partition, or nil if the group holds none. With the log end offsets it
// gives the group's lag.
func (c *Coordinator) Committed(group string) map[string]map[int32]int64 {
	g := c.lookup(group)
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone() || len(g.offsets) == 0 {
		return nil
	}
	out := make(map[string]map[int32]int64, len(g.offsets))
	for t, ps := range g.offsets {
		m := make(map[int32]int64, len(ps))
		for p, o := range ps {
			m[p] = o.offset
		}
		out[t] = m
	}
	return out
}

// retentionLoop removes expired offsets every OffsetsRetentionCheckInterval
// until Close.
func (c *Coordinator) retentionLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.OffsetsRetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.expireOffsets()
		}
	}
}

// expireOffsets removes the offsets whose retention has passed, and the
// groups left Empty with no offsets (Kafka's cleanupGroupMetadata).
func (c *Coordinator) expireOffsets() {
	now := c.now()
	for _, g := range c.snapshot() {
		g.cleanup(c.ctx, func() map[string][]int32 { return g.expiredOffsets(now) })
	}
}

// Client identifies the connection a request came from, for DescribeGroups
// and member ids. Pass it with WithClient.
type Client struct {
	ID   string // the request header's client id
	Host string // the peer's address
}

type clientKey struct{}

// WithClient returns a context that carries the requesting client's
// identity to JoinGroup.
func WithClient(ctx context.Context, cl Client) context.Context {
	return context.WithValue(ctx, clientKey{}, cl)
}

func clientFrom(ctx context.Context) Client {
	cl, _ := ctx.Value(clientKey{}).(Client)
	return cl
}

// newMemberID returns a member id as Kafka makes them: the client id, or
// the group instance id of a static member, a dash and a random UUID.
func newMemberID(clientID string, instanceID *string) string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	prefix := clientID
	if instanceID != nil {
		prefix = *instanceID
	}
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", prefix, u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// commitErrorCode maps a Log.Append error to an OffsetCommit partition
// code, as Kafka's GroupMetadataManager.storeOffsets does.
func commitErrorCode(err error) int16 {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return kerr.CoordinatorNotAvailable.Code
	}
	switch ke {
	case kerr.UnknownTopicOrPartition, kerr.NotEnoughReplicas, kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut:
		return kerr.CoordinatorNotAvailable.Code
	case kerr.NotLeaderForPartition, kerr.KafkaStorageError:
		return kerr.NotCoordinator.Code
	case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidFetchSize:
		return kerr.InvalidCommitOffsetSize.Code
	}
	return ke.Code
}

// storeErrorCode maps a Log.Append error of group metadata to a
// JoinGroup/SyncGroup code, as Kafka's GroupMetadataManager.storeGroup does.
func storeErrorCode(err error) int16 {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return kerr.CoordinatorNotAvailable.Code
	}
	switch ke {
	case kerr.UnknownTopicOrPartition, kerr.NotEnoughReplicas, kerr.NotEnoughReplicasAfterAppend:
		return kerr.CoordinatorNotAvailable.Code
	case kerr.NotLeaderForPartition, kerr.KafkaStorageError:
		return kerr.NotCoordinator.Code
	case kerr.RequestTimedOut:
		return kerr.RebalanceInProgress.Code
	case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidFetchSize:
		return kerr.UnknownServerError.Code
	}
	return ke.Code
}
