package txn

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// markerLog is a Cluster that hands out producer ids in order and records
// the markers written; while down, every partition is left to retry.
type markerLog struct {
	mu      sync.Mutex
	nextID  int64
	down    bool
	written []Markers
	wrote   chan struct{} // a marker round succeeded
}

func newMarkerLog() *markerLog { return &markerLog{nextID: 1000, wrote: make(chan struct{}, 100)} }

func (l *markerLog) NewProducerID(context.Context) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nextID++
	return l.nextID, nil
}

func (l *markerLog) WriteMarkers(_ context.Context, m Markers) []Partition {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return m.Partitions
	}
	l.written = append(l.written, m)
	l.wrote <- struct{}{}
	return nil
}

func (l *markerLog) setDown(d bool) {
	l.mu.Lock()
	l.down = d
	l.mu.Unlock()
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.MarkerRetry = time.Millisecond
	cfg.EndWait = 0 // answer at once; the markers follow
	return cfg
}

func newCoordinator(t *testing.T, log Log, cl Cluster) *Coordinator {
	t.Helper()
	c, err := New(testConfig(), 3, log, cl)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitState(t *testing.T, c *Coordinator, id string, want string) Info {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, _ := c.Describe(id)
		if in.State.String() == want {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: got state %s, want %s", id, in.State, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// A coordinator that stops between the decision and the markers leaves
// the transaction in PrepareCommit in its log; the next coordinator of the
// log writes the markers and completes it.
func TestResumeAfterFailover(t *testing.T) {
	ctx := context.Background()
	log := &MemLog{}
	cl := newMarkerLog()
	cl.setDown(true)
	c1, err := New(testConfig(), 1, log, cl)
	if err != nil {
		t.Fatal(err)
	}
	pid, epoch, code := c1.InitProducerID(ctx, "tx", time.Minute, -1, -1)
	if code != 0 {
		t.Fatalf("InitProducerID: got code %d, want 0", code)
	}
	parts := []Partition{{"a", 0}, {"b", 1}}
	if code := c1.AddPartitions(ctx, "tx", pid, epoch, parts); code != 0 {
		t.Fatalf("AddPartitions: got code %d, want 0", code)
	}
	if code := c1.EndTxn(ctx, "tx", pid, epoch, true); code != 0 {
		t.Fatalf("EndTxn: got code %d, want 0", code)
	}
	if in, _ := c1.Describe("tx"); in.State != PrepareCommit {
		t.Fatalf("with the leaders down: got state %s, want PrepareCommit", in.State)
	}
	c1.Close()

	cl.setDown(false)
	c2 := newCoordinator(t, log, cl)
	waitState(t, c2, "tx", "CompleteCommit")
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if len(cl.written) != 1 {
		t.Fatalf("markers: got %d rounds, want 1", len(cl.written))
	}
	m := cl.written[0]
	if m.ProducerID != pid || m.Epoch != epoch || !m.Commit || m.CoordinatorEpoch != 3 || len(m.Partitions) != 2 {
		t.Errorf("markers: got %+v, want commit of producer %d epoch %d on 2 partitions by coordinator epoch 3", m, pid, epoch)
	}
}

// InitProducerID fences the previous producer of the id: an ongoing
// transaction is aborted at a bumped epoch, and the old epoch is refused.
func TestInitFencesAndAborts(t *testing.T) {
	ctx := context.Background()
	cl := newMarkerLog()
	c := newCoordinator(t, &MemLog{}, cl)
	pid, e0, _ := c.InitProducerID(ctx, "tx", time.Minute, -1, -1)
	if code := c.AddPartitions(ctx, "tx", pid, e0, []Partition{{"a", 0}}); code != 0 {
		t.Fatalf("AddPartitions: got code %d, want 0", code)
	}
	var pid2 int64
	var e2 int16
	for {
		var code int16
		pid2, e2, code = c.InitProducerID(ctx, "tx", time.Minute, -1, -1)
		if code == 0 {
			break
		}
		if code != kerr.ConcurrentTransactions.Code {
			t.Fatalf("InitProducerID again: got code %d, want 0 or CONCURRENT_TRANSACTIONS", code)
		}
		time.Sleep(time.Millisecond)
	}
	if pid2 != pid || e2 != e0+2 {
		t.Errorf("re-init: got producer %d epoch %d, want %d epoch %d (one bump to abort, one to start)", pid2, e2, pid, e0+2)
	}
	cl.mu.Lock()
	if len(cl.written) != 1 || cl.written[0].Commit || cl.written[0].Epoch != e0+1 {
		t.Errorf("markers: got %+v, want one abort at epoch %d", cl.written, e0+1)
	}
	cl.mu.Unlock()
	if code := c.AddPartitions(ctx, "tx", pid, e0, []Partition{{"a", 0}}); code != kerr.ProducerFenced.Code {
		t.Errorf("old epoch AddPartitions: got code %d, want PRODUCER_FENCED", code)
	}
	if code := c.EndTxn(ctx, "tx", pid, e0, true); code != kerr.ProducerFenced.Code {
		t.Errorf("old epoch EndTxn: got code %d, want PRODUCER_FENCED", code)
	}
	if code := c.EndTxn(ctx, "tx", pid2, e2, true); code != kerr.InvalidTxnState.Code {
		t.Errorf("EndTxn with no transaction: got code %d, want INVALID_TXN_STATE", code)
	}
}

// EndTxn retried after the transaction ended succeeds the same way and
// fails the other way.
func TestEndTxnRetry(t *testing.T) {
	ctx := context.Background()
	cl := newMarkerLog()
	c := newCoordinator(t, &MemLog{}, cl)
	pid, e, _ := c.InitProducerID(ctx, "tx", time.Minute, -1, -1)
	c.AddPartitions(ctx, "tx", pid, e, []Partition{{"a", 0}})
	if code := c.EndTxn(ctx, "tx", pid, e, false); code != 0 {
		t.Fatalf("EndTxn abort: got code %d, want 0", code)
	}
	waitState(t, c, "tx", "CompleteAbort")
	if code := c.EndTxn(ctx, "tx", pid, e, false); code != 0 {
		t.Errorf("retried abort: got code %d, want 0", code)
	}
	if code := c.EndTxn(ctx, "tx", pid, e, true); code != kerr.InvalidTxnState.Code {
		t.Errorf("commit after abort: got code %d, want INVALID_TXN_STATE", code)
	}
	if _, _, code := c.InitProducerID(ctx, "tx", time.Hour, -1, -1); code != kerr.InvalidTransactionTimeout.Code {
		t.Errorf("timeout over the maximum: got code %d, want INVALID_TRANSACTION_TIMEOUT", code)
	}
}

// A transaction past its timeout is aborted at a bumped epoch.
func TestAbortTimedOut(t *testing.T) {
	ctx := context.Background()
	now := time.UnixMilli(1700000000000)
	var mu sync.Mutex
	cfg := testConfig()
	cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cl := newMarkerLog()
	c, err := New(cfg, 0, &MemLog{}, cl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	pid, e, _ := c.InitProducerID(ctx, "tx", 10*time.Second, -1, -1)
	c.AddPartitions(ctx, "tx", pid, e, []Partition{{"a", 0}})
	c.AbortTimedOut()
	if in, _ := c.Describe("tx"); in.State != Ongoing {
		t.Fatalf("before the timeout: got state %s, want Ongoing", in.State)
	}
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	c.AbortTimedOut()
	in := waitState(t, c, "tx", "CompleteAbort")
	if in.Epoch != e+1 {
		t.Errorf("after the timeout: got epoch %d, want %d", in.Epoch, e+1)
	}
	if code := c.EndTxn(ctx, "tx", pid, e, true); code != kerr.ProducerFenced.Code {
		t.Errorf("commit of the timed-out producer: got code %d, want PRODUCER_FENCED", code)
	}
}

// A producer that re-initializes with its own producer id and epoch
// (KIP-360, as franz-go does to abort a commit whose outcome it does not
// know) aborts its ongoing transaction at the next epoch; retrying with the
// same epoch while the abort completes, it is not fenced by that abort but
// gets the epoch after it. Another epoch is fenced.
func TestInitWithEpochAbortsOwnTransaction(t *testing.T) {
	ctx := context.Background()
	cl := newMarkerLog()
	c := newCoordinator(t, &MemLog{}, cl)
	pid, e0, _ := c.InitProducerID(ctx, "tx", time.Minute, -1, -1)
	if code := c.AddPartitions(ctx, "tx", pid, e0, []Partition{{"a", 0}}); code != 0 {
		t.Fatalf("AddPartitions: got code %d, want 0", code)
	}
	var pid2 int64
	var e2 int16
	for {
		var code int16
		pid2, e2, code = c.InitProducerID(ctx, "tx", time.Minute, pid, e0)
		if code == 0 {
			break
		}
		if code != kerr.ConcurrentTransactions.Code {
			t.Fatalf("InitProducerID(%d, %d): got code %d, want 0 or CONCURRENT_TRANSACTIONS", pid, e0, code)
		}
		time.Sleep(time.Millisecond)
	}
	if pid2 != pid || e2 != e0+2 {
		t.Errorf("re-init with epoch: got producer %d epoch %d, want %d epoch %d", pid2, e2, pid, e0+2)
	}
	cl.mu.Lock()
	if len(cl.written) != 1 || cl.written[0].Commit || cl.written[0].Epoch != e0+1 {
		t.Errorf("markers: got %+v, want one abort at epoch %d", cl.written, e0+1)
	}
	cl.mu.Unlock()
	if _, _, code := c.InitProducerID(ctx, "tx", time.Minute, pid, e0); code != kerr.ProducerFenced.Code {
		t.Errorf("InitProducerID with the old epoch once more: got code %d, want PRODUCER_FENCED", code)
	}
	if _, e3, code := c.InitProducerID(ctx, "tx", time.Minute, pid, e2); code != 0 || e3 != e2+1 {
		t.Errorf("InitProducerID with the current epoch: got epoch %d code %d, want %d and 0", e3, code, e2+1)
	}
}

// The epoch a re-initializing producer aborted its own transaction with
// is stored with the abort (Kafka's lastProducerEpoch): when the
// coordinator fails over before the producer's retry, the next one
// accepts the retry with the same epoch and answers the epoch after the
// abort, whether the abort's markers were written before the failover
// or are written by the new coordinator. Another stale epoch is fenced.
func TestInitWithEpochRetryAfterFailover(t *testing.T) {
	for _, markersBefore := range []bool{false, true} {
		t.Run(fmt.Sprintf("markers written before the failover %v", markersBefore), func(t *testing.T) {
			ctx := context.Background()
			log := &MemLog{}
			cl := newMarkerLog()
			c1, err := New(testConfig(), 1, log, cl)
			if err != nil {
				t.Fatal(err)
			}
			pid, e0, _ := c1.InitProducerID(ctx, "tx", time.Minute, -1, -1)
			if code := c1.AddPartitions(ctx, "tx", pid, e0, []Partition{{"a", 0}}); code != 0 {
				t.Fatalf("AddPartitions: got code %d, want 0", code)
			}
			cl.setDown(!markersBefore)
			// EndWait is 0: the answer comes before the abort completes,
			// as a slow marker write makes it.
			if _, _, code := c1.InitProducerID(ctx, "tx", time.Minute, pid, e0); code != kerr.ConcurrentTransactions.Code {
				t.Fatalf("InitProducerID(%d, %d): got code %d, want CONCURRENT_TRANSACTIONS", pid, e0, code)
			}
			if markersBefore {
				waitState(t, c1, "tx", "CompleteAbort")
			} else if in, _ := c1.Describe("tx"); in.State != PrepareAbort {
				t.Fatalf("with the leaders down: got state %s, want PrepareAbort", in.State)
			}
			c1.Close()

			cl.setDown(false)
			c2 := newCoordinator(t, log, cl)
			var pid2 int64
			var e2 int16
			for {
				var code int16
				pid2, e2, code = c2.InitProducerID(ctx, "tx", time.Minute, pid, e0)
				if code == 0 {
					break
				}
				if code != kerr.ConcurrentTransactions.Code {
					t.Fatalf("retry at the new coordinator: got code %d, want 0 or CONCURRENT_TRANSACTIONS", code)
				}
				time.Sleep(time.Millisecond)
			}
			if pid2 != pid || e2 != e0+2 {
				t.Fatalf("retry at the new coordinator: got producer %d epoch %d, want %d epoch %d", pid2, e2, pid, e0+2)
			}
			cl.mu.Lock()
			if len(cl.written) != 1 || cl.written[0].Commit || cl.written[0].Epoch != e0+1 {
				t.Errorf("markers: got %+v, want one abort at epoch %d", cl.written, e0+1)
			}
			cl.mu.Unlock()
			// The stored epoch served once: it fences again now, on this
			// coordinator and on the next.
			if _, _, code := c2.InitProducerID(ctx, "tx", time.Minute, pid, e0); code != kerr.ProducerFenced.Code {
				t.Errorf("InitProducerID with the old epoch once more: got code %d, want PRODUCER_FENCED", code)
			}
			c2.Close()
			c3 := newCoordinator(t, log, cl)
			if _, _, code := c3.InitProducerID(ctx, "tx", time.Minute, pid, e0); code != kerr.ProducerFenced.Code {
				t.Errorf("InitProducerID with the old epoch at a third coordinator: got code %d, want PRODUCER_FENCED", code)
			}
			if _, e3, code := c3.InitProducerID(ctx, "tx", time.Minute, pid, e2); code != 0 || e3 != e2+1 {
				t.Errorf("InitProducerID with the current epoch: got epoch %d code %d, want %d and 0", e3, code, e2+1)
			}
		})
	}
}

// Transactional ids without a transaction for IDExpiration are forgotten
// (Kafka's transactional.id.expiration.ms): idle ones (Empty, Complete*)
// get a tombstone and leave the coordinator and, through the log, the
// next one; an id with a transaction under way or used recently stays.
// An expired id used again starts with a new producer id.
func TestExpireIDs(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	cfg := testConfig()
	cfg.Now = clock
	log := &MemLog{}
	cl := newMarkerLog()
	c, err := New(cfg, 1, log, cl)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close() }()
	pidA, _, _ := c.InitProducerID(ctx, "idle", time.Minute, -1, -1) // Empty
	pidB, eB, _ := c.InitProducerID(ctx, "open", time.Minute, -1, -1)
	if code := c.AddPartitions(ctx, "open", pidB, eB, []Partition{{"a", 0}}); code != 0 { // Ongoing
		t.Fatalf("AddPartitions: got code %d, want 0", code)
	}
	pidC, eC, _ := c.InitProducerID(ctx, "done", time.Minute, -1, -1)
	c.AddPartitions(ctx, "done", pidC, eC, []Partition{{"a", 1}})
	if code := c.EndTxn(ctx, "done", pidC, eC, true); code != 0 {
		t.Fatalf("EndTxn: got code %d, want 0", code)
	}
	waitState(t, c, "done", "CompleteCommit")

	advance(cfg.IDExpiration - time.Second)
	c.InitProducerID(ctx, "recent", time.Minute, -1, -1)
	if n := c.ExpireIDs(); n != 0 {
		t.Fatalf("before the expiration: got %d expired, want 0", n)
	}
	advance(2 * time.Second)
	if n := c.ExpireIDs(); n != 2 {
		t.Fatalf("past the expiration: got %d expired, want 2 (idle, done)", n)
	}
	check := func(c *Coordinator, when string) {
		t.Helper()
		for id, want := range map[string]bool{"idle": false, "done": false, "open": true, "recent": true} {
			if _, ok := c.Describe(id); ok != want {
				t.Errorf("%s: Describe(%s): got known %v, want %v", when, id, ok, want)
			}
		}
		if got := len(c.List()); got != 2 {
			t.Errorf("%s: List: got %d ids, want 2", when, got)
		}
	}
	check(c, "expired")
	if code := c.AddPartitions(ctx, "done", pidC, eC+1, []Partition{{"a", 1}}); code != kerr.InvalidProducerIDMapping.Code {
		t.Errorf("AddPartitions with an expired id: got code %d, want INVALID_PRODUCER_ID_MAPPING", code)
	}
	c.Close()
	c = newCoordinator(t, log, cl)
	check(c, "replayed")
	if pid, e, code := c.InitProducerID(ctx, "idle", time.Minute, -1, -1); code != 0 || pid == pidA || e != 0 {
		t.Errorf("InitProducerID of an expired id: got producer %d epoch %d code %d, want a new producer id (not %d) at epoch 0", pid, e, code, pidA)
	}
}
