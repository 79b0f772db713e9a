package txn

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Transaction states (Kafka's, as kmsg names them).
const (
	Empty          = kmsg.TransactionState(0)
	Ongoing        = kmsg.TransactionState(1)
	PrepareCommit  = kmsg.TransactionState(2)
	PrepareAbort   = kmsg.TransactionState(3)
	CompleteCommit = kmsg.TransactionState(4)
	CompleteAbort  = kmsg.TransactionState(5)
	Dead           = kmsg.TransactionState(6)
)

// maxEpoch is the last producer epoch handed out; the next init takes a
// new producer id (Kafka keeps 32767 for itself).
const maxEpoch = 32766

// Cluster is what a coordinator needs from the brokers around it.
type Cluster interface {
	// NewProducerID returns a producer id never handed out before.
	NewProducerID(ctx context.Context) (int64, error)
	// WriteMarkers writes m's marker to each of m.Partitions through the
	// partition's leader, each returning once its in-sync replicas have
	// it, and returns the partitions not done (no leader, a leader that
	// cannot be reached or refused). A partition that no longer exists
	// counts as done. It is called from the coordinator's goroutines,
	// several at once for different transactions.
	WriteMarkers(ctx context.Context, m Markers) []Partition
}

// Markers are the markers that end one transaction.
type Markers struct {
	ProducerID       int64
	Epoch            int16
	Commit           bool
	CoordinatorEpoch int32
	Partitions       []Partition
}

// Coordinator runs the transactions of the transactional ids of one log
// (one __transaction_state partition). Its methods return Kafka error
// codes (0 for success) and never fail otherwise. All methods are safe for
// concurrent use.
type Coordinator struct {
	cfg   Config
	log   Log
	cl    Cluster
	lg    zerolog.Logger
	now   func() time.Time
	epoch int32

	// ctx bounds marker writers and the timeout loop; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // marker writers and the timeout loop; Adds happen before Close's cancel is seen

	mu     sync.Mutex      // guards txns and closed; a leaf
	txns   map[string]*txn // by transactional id
	closed bool
}

// txn is one transactional id.
type txn struct {
	id   string
	mu   sync.Mutex    // held across log writes and changes of m and done
	m    meta          // producerID -1: created, not yet persisted
	done chan struct{} // in a Prepare state: closed once its markers are written and Complete stored
	// expired: the id's tombstone is stored and the entry left the map;
	// m then reads as an unknown id (producer id -1).
	expired bool
}

// entry returns id's entry, making an empty one if there is none; nil
// once the coordinator is closed.
func (c *Coordinator) entry(id string) *txn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	t := c.txns[id]
	if t == nil {
		t = &txn{id: id, m: meta{producerID: -1, epoch: -1, lastEpoch: -1}}
		c.txns[id] = t
	}
	return t
}

// New returns a coordinator that has replayed log; epoch is its
// coordinator epoch (the leader epoch of the log's partition), written in
// each marker. Transactions found half-ended (PrepareCommit, PrepareAbort)
// have their markers written again in the background.
func New(cfg Config, epoch int32, log Log, cl Cluster) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil || cl == nil {
		return nil, errors.New("txn: nil Log or Cluster")
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Coordinator{cfg: cfg, log: log, cl: cl, lg: cfg.Logger, now: cfg.Now, epoch: epoch,
		ctx: ctx, cancel: cancel, txns: map[string]*txn{}}
	if c.now == nil {
		c.now = time.Now
	}
	n := 0
	err := log.Replay(func(key, value []byte) error {
		n++
		id, m, ok, err := decodeRecord(key, value)
		if err != nil {
			return fmt.Errorf("record %d: %w", n, err)
		}
		switch {
		case !ok:
		case m == nil:
			delete(c.txns, id)
		default:
			c.txns[id] = &txn{id: id, m: *m}
		}
		return nil
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("txn: cannot replay log: %w", err)
	}
	resumed := 0
	for _, t := range c.txns {
		if t.m.state == PrepareCommit || t.m.state == PrepareAbort {
			t.mu.Lock()
			c.startFinish(t)
			t.mu.Unlock()
			resumed++
		}
	}
	c.wg.Add(1)
	go c.timeoutLoop()
	c.lg.Info().Int("records", n).Int("transactional_ids", len(c.txns)).Int("resumed", resumed).Msg("transaction log replayed")
	return c, nil
}

// Close stops the coordinator: marker writers and the timeout loop stop
// (a later coordinator of the same log resumes them), and later calls
// answer NOT_COORDINATOR. It waits for its goroutines and is safe to call
// more than once.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

func (c *Coordinator) lookup(id string) *txn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	return c.txns[id]
}

func (c *Coordinator) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// persist writes m as t's new state and applies it. Called with t.mu held.
func (c *Coordinator) persist(ctx context.Context, t *txn, m meta) int16 {
	m.updated = c.now()
	err := c.log.Append(ctx, []Record{{Key: encodeKey(t.id), Value: encodeValue(&m)}})
	if err != nil {
		c.lg.Warn().Err(err).Str("transactional_id", t.id).Msg("cannot store transaction state")
		var ke *kerr.Error
		if errors.As(err, &ke) && (ke == kerr.NotLeaderForPartition || ke == kerr.KafkaStorageError) {
			return kerr.NotCoordinator.Code
		}
		return kerr.CoordinatorNotAvailable.Code
	}
	t.m = m
	return 0
}

func (m meta) clone() meta {
	m.partitions = maps.Clone(m.partitions)
	if m.partitions == nil {
		m.partitions = map[Partition]struct{}{}
	}
	return m
}

// checkProducer compares a request's producer with t's. Called with t.mu
// held.
func checkProducer(t *txn, pid int64, epoch int16) int16 {
	switch {
	case t.m.producerID < 0 || pid != t.m.producerID:
		return kerr.InvalidProducerIDMapping.Code
	case epoch != t.m.epoch:
		return kerr.ProducerFenced.Code
	}
	return 0
}

// wait waits for done (nil: nothing to wait for) up to EndWait or ctx.
func (c *Coordinator) wait(ctx context.Context, done chan struct{}) bool {
	if done == nil {
		return true
	}
	tm := time.NewTimer(c.cfg.EndWait)
	defer tm.Stop()
	select {
	case <-done:
		return true
	case <-tm.C:
	case <-ctx.Done():
	case <-c.ctx.Done():
	}
	return false
}

// InitProducerID gives transactional id its producer id and a new epoch
// (KIP-98), fencing the previous producer of the id. With pid and epoch
// >= 0 (KIP-360, a producer recovering), they must be the id's current
// ones. An ongoing transaction is aborted first at a bumped epoch; if its
// markers are not written within EndWait the answer is
// CONCURRENT_TRANSACTIONS and the client retries.
func (c *Coordinator) InitProducerID(ctx context.Context, id string, timeout time.Duration, pid int64, epoch int16) (int64, int16, int16) {
	if timeout <= 0 || timeout > c.cfg.MaxTimeout {
		return -1, -1, kerr.InvalidTransactionTimeout.Code
	}
	t := c.entry(id)
	if t == nil {
		return -1, -1, kerr.NotCoordinator.Code
	}
	for {
		t.mu.Lock()
		if t.expired {
			// Expired while this call waited: start over with a new entry.
			t.mu.Unlock()
			if t = c.entry(id); t == nil {
				return -1, -1, kerr.NotCoordinator.Code
			}
			continue
		}
		switch t.m.state {
		case PrepareCommit, PrepareAbort:
			done := t.done
			t.mu.Unlock()
			if !c.wait(ctx, done) {
				return -1, -1, kerr.ConcurrentTransactions.Code
			}
			continue
		case Ongoing:
			if t.m.producerID >= 0 && pid >= 0 && (pid != t.m.producerID || epoch != t.m.epoch) {
				code := checkProducer(t, pid, epoch)
				t.mu.Unlock()
				return -1, -1, code
			}
			m := t.m.clone()
			m.epoch = min(m.epoch+1, maxEpoch+1)
			m.state = PrepareAbort
			if pid >= 0 {
				m.lastEpoch = epoch // stored with the abort: a retry at the next coordinator is no stranger
			}
			if code := c.persist(ctx, t, m); code != 0 {
				t.mu.Unlock()
				return -1, -1, code
			}
			c.lg.Info().Str("transactional_id", id).Int64("producer_id", m.producerID).Msg("aborting the ongoing transaction of a re-initialized producer")
			c.startFinish(t)
			done := t.done
			t.mu.Unlock()
			if !c.wait(ctx, done) {
				return -1, -1, kerr.ConcurrentTransactions.Code
			}
			continue
		}
		defer t.mu.Unlock()
		m := t.m.clone()
		switch {
		case m.producerID < 0:
			id, err := c.cl.NewProducerID(ctx)
			if err != nil {
				return -1, -1, kerr.CoordinatorNotAvailable.Code
			}
			m.producerID, m.epoch = id, 0
		case pid >= 0 && (pid != m.producerID || epoch != m.epoch) && !(pid == m.producerID && epoch == m.lastEpoch && m.epoch == epoch+1):
			return -1, -1, checkProducer(t, pid, epoch)
		case m.epoch >= maxEpoch:
			id, err := c.cl.NewProducerID(ctx)
			if err != nil {
				return -1, -1, kerr.CoordinatorNotAvailable.Code
			}
			m.producerID, m.epoch = id, 0
		default:
			m.epoch++
		}
		m.state = Empty
		m.timeout = timeout
		m.started = time.Time{}
		m.lastEpoch = -1
		clear(m.partitions)
		if code := c.persist(ctx, t, m); code != 0 {
			return -1, -1, code
		}
		return m.producerID, m.epoch, 0
	}
}

// AddPartitions adds partitions to the producer's transaction, starting
// it if it is not ongoing (AddPartitionsToTxn; AddOffsetsToTxn adds the
// group's __consumer_offsets partition).
func (c *Coordinator) AddPartitions(ctx context.Context, id string, pid int64, epoch int16, parts []Partition) int16 {
	t := c.lookup(id)
	if t == nil {
		if c.isClosed() {
			return kerr.NotCoordinator.Code
		}
		return kerr.InvalidProducerIDMapping.Code
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if code := checkProducer(t, pid, epoch); code != 0 {
		return code
	}
	switch t.m.state {
	case PrepareCommit, PrepareAbort:
		return kerr.ConcurrentTransactions.Code
	case Ongoing:
		all := true
		for _, p := range parts {
			if _, ok := t.m.partitions[p]; !ok {
				all = false
				break
			}
		}
		if all {
			return 0
		}
	}
	m := t.m.clone()
	if m.state != Ongoing {
		clear(m.partitions)
		m.started = c.now()
		m.state = Ongoing
	}
	for _, p := range parts {
		m.partitions[p] = struct{}{}
	}
	return c.persist(ctx, t, m)
}

// EndTxn commits or aborts the producer's ongoing transaction: the
// decision is stored, then the markers are written; it answers once they
// are, or after EndWait (they are then written in the background). A
// retry of an ended transaction's EndTxn succeeds.
func (c *Coordinator) EndTxn(ctx context.Context, id string, pid int64, epoch int16, commit bool) int16 {
	t := c.lookup(id)
	if t == nil {
		if c.isClosed() {
			return kerr.NotCoordinator.Code
		}
		return kerr.InvalidProducerIDMapping.Code
	}
	t.mu.Lock()
	if code := checkProducer(t, pid, epoch); code != 0 {
		t.mu.Unlock()
		return code
	}
	var done chan struct{}
	switch s := t.m.state; {
	case s == Ongoing:
		m := t.m.clone()
		m.state = PrepareAbort
		if commit {
			m.state = PrepareCommit
		}
		if code := c.persist(ctx, t, m); code != 0 {
			t.mu.Unlock()
			return code
		}
		c.startFinish(t)
		done = t.done
	case s == PrepareCommit && commit, s == PrepareAbort && !commit:
		done = t.done
	case s == CompleteCommit && commit, s == CompleteAbort && !commit:
	default:
		t.mu.Unlock()
		return kerr.InvalidTxnState.Code
	}
	t.mu.Unlock()
	c.wait(ctx, done)
	return 0
}

// startFinish starts writing the markers of t's Prepare state. Called
// with t.mu held.
func (c *Coordinator) startFinish(t *txn) {
	done := make(chan struct{})
	t.done = done
	m := Markers{ProducerID: t.m.producerID, Epoch: t.m.epoch, Commit: t.m.state == PrepareCommit,
		CoordinatorEpoch: c.epoch, Partitions: slices.SortedFunc(maps.Keys(t.m.partitions), comparePartitions)}
	c.wg.Add(1)
	go c.finish(t, m, done)
}

func comparePartitions(a, b Partition) int {
	if d := strings.Compare(a.Topic, b.Topic); d != 0 {
		return d
	}
	return int(a.Partition) - int(b.Partition)
}

// finish writes m until every partition has it, then stores the Complete
// state. A closed coordinator leaves it to its successor.
func (c *Coordinator) finish(t *txn, m Markers, done chan struct{}) {
	defer c.wg.Done()
	pause := func() bool {
		tm := time.NewTimer(c.cfg.MarkerRetry)
		defer tm.Stop()
		select {
		case <-c.ctx.Done():
			return false
		case <-tm.C:
			return true
		}
	}
	for len(m.Partitions) > 0 {
		m.Partitions = c.cl.WriteMarkers(c.ctx, m)
		if len(m.Partitions) > 0 && !pause() {
			return
		}
	}
	for {
		t.mu.Lock()
		if t.done != done {
			t.mu.Unlock()
			return
		}
		next := t.m.clone()
		next.state = CompleteAbort
		if m.Commit {
			next.state = CompleteCommit
		}
		clear(next.partitions)
		if c.persist(c.ctx, t, next) == 0 {
			t.done = nil
			close(done)
			t.mu.Unlock()
			c.lg.Debug().Str("transactional_id", t.id).Bool("commit", m.Commit).Msg("transaction ended")
			return
		}
		t.mu.Unlock()
		if !pause() {
			return
		}
	}
}

// timeoutLoop aborts transactions past their timeout and expires idle
// transactional ids until Close.
func (c *Coordinator) timeoutLoop() {
	defer c.wg.Done()
	tk := time.NewTicker(c.cfg.AbortCheckInterval)
	defer tk.Stop()
	ex := time.NewTicker(c.cfg.ExpireCheckInterval)
	defer ex.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-tk.C:
			c.AbortTimedOut()
		case <-ex.C:
			c.ExpireIDs()
		}
	}
}

// ExpireIDs removes the transactional ids that have had no transaction
// for IDExpiration (Kafka's transactional.id.expiration.ms): those with
// no transaction under way (Empty, CompleteCommit, CompleteAbort) whose
// state last changed that long ago. Each gets a tombstone in the log (so
// the log's compaction forgets it and a replay does not bring it back),
// then leaves the coordinator: the id is unknown afterwards, and a
// producer using it again starts with a new producer id. The
// coordinator calls it every ExpireCheckInterval; it returns how many
// ids went.
func (c *Coordinator) ExpireIDs() int {
	now := c.now()
	c.mu.Lock()
	ts := slices.Collect(maps.Values(c.txns))
	c.mu.Unlock()
	n := 0
	for _, t := range ts {
		t.mu.Lock()
		idle := t.m.state == Empty || t.m.state == CompleteCommit || t.m.state == CompleteAbort
		if t.expired || t.m.producerID < 0 || !idle || now.Sub(t.m.updated) < c.cfg.IDExpiration || c.isClosed() {
			t.mu.Unlock()
			continue
		}
		if err := c.log.Append(c.ctx, []Record{{Key: encodeKey(t.id)}}); err != nil {
			c.lg.Warn().Err(err).Str("transactional_id", t.id).Msg("cannot store the expiry of a transactional id")
			t.mu.Unlock()
			continue
		}
		c.lg.Info().Str("transactional_id", t.id).Int64("producer_id", t.m.producerID).Time("last_update", t.m.updated).Msg("transactional id expired")
		t.expired = true
		t.m = meta{producerID: -1, epoch: -1, lastEpoch: -1}
		c.mu.Lock()
		if c.txns[t.id] == t {
			delete(c.txns, t.id)
		}
		c.mu.Unlock()
		t.mu.Unlock()
		n++
	}
	return n
}

// AbortTimedOut aborts every ongoing transaction older than its timeout,
// at a bumped epoch so that its producer is fenced. The coordinator calls
// it every AbortCheckInterval.
func (c *Coordinator) AbortTimedOut() {
	now := c.now()
	c.mu.Lock()
	ts := slices.Collect(maps.Values(c.txns))
	c.mu.Unlock()
	for _, t := range ts {
		t.mu.Lock()
		if t.m.state == Ongoing && now.Sub(t.m.started) > t.m.timeout && !c.isClosed() {
			m := t.m.clone()
			m.epoch = min(m.epoch+1, maxEpoch+1)
			m.state = PrepareAbort
			if c.persist(c.ctx, t, m) == 0 {
				c.lg.Info().Str("transactional_id", t.id).Int64("producer_id", m.producerID).Dur("timeout", m.timeout).Msg("aborting a timed-out transaction")
				c.startFinish(t)
			}
		}
		t.mu.Unlock()
	}
}

// Info describes one transactional id, for DescribeTransactions and
// ListTransactions.
type Info struct {
	ID         string
	ProducerID int64
	Epoch      int16
	State      kmsg.TransactionState
	Timeout    time.Duration
	Started    time.Time // zero when no transaction is ongoing
	Partitions []Partition
}

func (t *txn) info() Info {
	in := Info{ID: t.id, ProducerID: t.m.producerID, Epoch: t.m.epoch, State: t.m.state, Timeout: t.m.timeout,
		Partitions: slices.SortedFunc(maps.Keys(t.m.partitions), comparePartitions)}
	if t.m.state == Ongoing || t.m.state == PrepareCommit || t.m.state == PrepareAbort {
		in.Started = t.m.started
	}
	return in
}

// Describe returns the state of transactional id, if this coordinator
// holds it.
func (c *Coordinator) Describe(id string) (Info, bool) {
	t := c.lookup(id)
	if t == nil {
		return Info{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m.producerID < 0 {
		return Info{}, false
	}
	return t.info(), true
}

// List returns every transactional id this coordinator holds, sorted.
func (c *Coordinator) List() []Info {
	c.mu.Lock()
	ts := slices.Collect(maps.Values(c.txns))
	c.mu.Unlock()
	out := make([]Info, 0, len(ts))
	for _, t := range ts {
		t.mu.Lock()
		if t.m.producerID >= 0 {
			out = append(out, t.info())
		}
		t.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.ID, b.ID) })
	return out
}
