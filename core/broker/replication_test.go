package broker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/core/commitlog"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// localMeta is the cluster metadata without Raft: the cluster's own state
// machine (cluster.State.Apply), each command applied at once in this
// process. It lets a test run a broker that leads partitions replicated
// to brokers 2 and 3 that do not run (the test plays their fetches),
// which a real cluster's controller would fence for missing from Serf.
type localMeta struct {
	mu sync.Mutex
	st *cluster.State
	ch chan struct{} // closed when st is replaced
}

func newLocalMeta() *localMeta {
	return &localMeta{st: cluster.NewState(), ch: make(chan struct{})}
}

func (m *localMeta) Watch() (*cluster.State, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st, m.ch
}

func (m *localMeta) Apply(_ context.Context, cmd cluster.Command) (cluster.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next, res, err := m.st.Apply(cmd)
	if err != nil {
		return res, err
	}
	next.Index = m.st.Index + 1
	m.st = next
	close(m.ch)
	m.ch = make(chan struct{})
	return res, nil
}

// mustApply applies cmd to m, failing t on error.
func (m *localMeta) mustApply(t *testing.T, cmd cluster.Command) cluster.Result {
	t.Helper()
	res, err := m.Apply(context.Background(), cmd)
	if err != nil {
		t.Fatalf("%T: %v", cmd, err)
	}
	return res
}

// ledPartition opens broker 1 on a localMeta where brokers 1, 2 and 3 are
// registered and creates a three-replica partition that broker 1 leads
// (epoch 0, ISR 1, 2, 3). The lag watcher is off (ReplicaLagMax an hour):
// tests call checkLag with the times they choose.
func ledPartition(t *testing.T) (*Broker, *localMeta, *Partition) {
	t.Helper()
	m := newLocalMeta()
	for id := int32(1); id <= 3; id++ {
		m.mustApply(t, cluster.RegisterBroker{Info: cluster.BrokerInfo{ID: id, KafkaAddr: fmt.Sprintf("127.0.0.1:%d", 1+id)}})
	}
	cfg := DefaultConfig()
	cfg.NodeID = 1
	cfg.DataDir = t.TempDir()
	cfg.ReplicaLagMax = time.Hour
	b, err := Open(cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	// Partition leaders spread over the brokers by topic name: take the
	// first name broker 1 leads.
	for i := 0; ; i++ {
		name := fmt.Sprintf("t%d", i)
		tp, err := b.CreateTopic(context.Background(), name, 1, 3, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p := tp.Partitions[0]; p != nil {
			if lead, _ := p.IsLeader(); lead {
				return b, m, p
			}
		}
	}
}

// soloPartition is the one partition of a topic on a broker on a real
// single-node cluster: it leads at epoch 0, alone in its ISR.
func soloPartition(t *testing.T) *Partition {
	t.Helper()
	b := openTestBroker(t, t.TempDir())
	t.Cleanup(func() { b.Close() })
	tp, err := b.CreateTopic(context.Background(), "t", 1, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tp.Partitions[0]
}

// records is a batch of n records without a producer id.
func records(n int) []byte { return idemBatch(-1, -1, -1, n) }

// TestHighWatermarkFromISR: the high watermark is the smallest log end
// among the in-sync replicas, the leader's included, and waits for every
// ISR member whose progress it does not know.
func TestHighWatermarkFromISR(t *testing.T) {
	_, _, p := ledPartition(t)
	if res := p.Append(records(10), 1); res.Code != 0 {
		t.Fatalf("append: got code %d (%v), want 0", res.Code, res.Err)
	}
	steps := []struct {
		name     string
		follower int32
		offset   int64
		wantHW   int64
	}{
		{"follower 3 unknown yet", 2, 10, 0},
		{"follower 3 behind", 3, 4, 4},
		{"follower 2 fetching again counts its offset", 2, 6, 4},
		{"follower 3 passes follower 2", 3, 10, 6},
		{"both caught up", 2, 10, 10},
		{"a fetch past the log end counts as the log end", 3, 99, 10},
	}
	for _, st := range steps {
		if code := p.ReplicaFetch(st.follower, st.offset, 0); code != 0 {
			t.Fatalf("%s: fetch: got code %d, want 0", st.name, code)
		}
		if got := p.HighWatermark(); got != st.wantHW {
			t.Fatalf("%s: got high watermark %d, want %d", st.name, got, st.wantHW)
		}
	}
	if res := p.Append(records(5), 1); res.Code != 0 || p.HighWatermark() != 10 {
		t.Fatalf("after a new append: got code %d, high watermark %d, want 0 and 10 (followers not there yet)", res.Code, p.HighWatermark())
	}
}

// TestReplicaFetchChecks: the leader refuses fetches it must not count.
func TestReplicaFetchChecks(t *testing.T) {
	_, _, p := ledPartition(t)
	for _, c := range []struct {
		name    string
		replica int32
		epoch   int32
		want    int16
	}{
		{"no epoch given", 2, -1, 0},
		{"current epoch", 2, 0, 0},
		{"newer epoch than the leader knows", 2, 1, kerr.UnknownLeaderEpoch.Code},
		{"not a replica", 7, 0, kerr.ReplicaNotAvailable.Code},
	} {
		if got := p.ReplicaFetch(c.replica, 0, c.epoch); got != c.want {
			t.Errorf("%s: got code %d, want %d", c.name, got, c.want)
		}
	}
}

// TestISRShrinkAndExpand: a follower that has not caught up for longer
// than the lag limit leaves the ISR through the metadata, the high
// watermark then moves without it, acks=all is refused below
// min.insync.replicas, and a follower that catches up joins again.
func TestISRShrinkAndExpand(t *testing.T) {
	b, m, p := ledPartition(t)
	if res := p.Append(records(10), -1); res.Code != 0 {
		t.Fatalf("append: got code %d (%v), want 0", res.Code, res.Err)
	}
	p.ReplicaFetch(3, 4, 0)
	time.Sleep(10 * time.Millisecond) // follower 3 last caught up (at the term's start) at least this long ago
	before := time.Now()
	p.ReplicaFetch(2, 10, 0) // follower 2 caught up now
	if got := p.HighWatermark(); got != 4 {
		t.Fatalf("got high watermark %d, want 4 (follower 3's)", got)
	}

	// Follower 3 lags more than 5ms, follower 2 does not.
	p.checkLag(before.Add(5*time.Millisecond), 5*time.Millisecond)
	testutil.Eventually(t, "the ISR to shrink to [1 2]", func() bool { return slices.Equal(p.ISR(), []int32{1, 2}) })
	st, _ := m.Watch()
	if ps, _ := st.Partition(p.Topic, 0); !slices.Equal(ps.ISR, []int32{1, 2}) {
		t.Fatalf("got metadata ISR %v, want [1 2]", ps.ISR)
	}
	if got := p.HighWatermark(); got != 10 {
		t.Fatalf("after the shrink: got high watermark %d, want 10", got)
	}
	if b.ISRShrinks() != 1 {
		t.Fatalf("got %d ISR shrinks, want 1", b.ISRShrinks())
	}

	// Follower 2 lags too: the leader alone is below min.insync.replicas 2.
	testutil.Eventually(t, "the last ISR change to be applied", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return !p.isrPending })
	p.checkLag(time.Now().Add(time.Minute), 5*time.Millisecond)
	testutil.Eventually(t, "the ISR to shrink to [1]", func() bool { return slices.Equal(p.ISR(), []int32{1}) })
	if res := p.Append(records(1), -1); res.Code != kerr.NotEnoughReplicas.Code {
		t.Fatalf("acks=all below min.insync.replicas: got code %d, want NOT_ENOUGH_REPLICAS", res.Code)
	}
	if res := p.Append(records(1), 1); res.Code != 0 {
		t.Fatalf("acks=1 below min.insync.replicas: got code %d (%v), want 0", res.Code, res.Err)
	}

	// Follower 3 catches up with the log end: it joins again.
	testutil.Eventually(t, "the last ISR change to be applied", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return !p.isrPending })
	if code := p.ReplicaFetch(3, p.Log().LogEndOffset(), 0); code != 0 {
		t.Fatalf("fetch: got code %d, want 0", code)
	}
	testutil.Eventually(t, "follower 3 to join the ISR", func() bool { return slices.Equal(p.ISR(), []int32{1, 3}) })
	if b.ISRExpands() != 1 {
		t.Fatalf("got %d ISR expands, want 1", b.ISRExpands())
	}
	if got, want := p.HighWatermark(), p.Log().LogEndOffset(); got != want {
		t.Fatalf("after the expand: got high watermark %d, want the log end %d", got, want)
	}
}

// TestTruncateByLeaderEpoch: a replica that led at epochs 0 and 1 and
// became a follower at epoch 2 cuts its log where the new leader's
// history for its last epoch ends (KIP-279), forgets the producer
// batches it cut, and keeps what the leader has.
func TestTruncateByLeaderEpoch(t *testing.T) {
	tests := []struct {
		name        string
		leaderEpoch int32 // the new leader's answer for epoch 1
		leaderEnd   int64
		wantEnd     int64
		wantEpochs  []commitlog.EpochEntry
	}{
		{"leader has epoch 1 up to 7", 1, 7, 7, []commitlog.EpochEntry{{Epoch: 0, StartOffset: 0}, {Epoch: 1, StartOffset: 5}}},
		{"leader has all of epoch 1 and more", 1, 20, 9, []commitlog.EpochEntry{{Epoch: 0, StartOffset: 0}, {Epoch: 1, StartOffset: 5}}},
		{"leader never saw epoch 1: its epoch 0 ends at 5", 0, 5, 5, []commitlog.EpochEntry{{Epoch: 0, StartOffset: 0}}},
		{"leader's epoch 0 ends earlier", 0, 3, 3, []commitlog.EpochEntry{{Epoch: 0, StartOffset: 0}}},
		{"leader's epoch 0 runs past where this replica's ended", 0, 7, 5, []commitlog.EpochEntry{{Epoch: 0, StartOffset: 0}}},
		{"leader knows no epoch: cut to the high watermark", -1, -1, 5, []commitlog.EpochEntry{{Epoch: 0, StartOffset: 0}}},
		{"leader's epoch 1 ends where this replica's does", 1, 9, 9, []commitlog.EpochEntry{{Epoch: 0, StartOffset: 0}, {Epoch: 1, StartOffset: 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := soloPartition(t)
			// Epoch 0: offsets 0-2 and 3-4, committed (the only replica);
			// the producer's sequences follow its offsets.
			for _, seq := range []int32{0, 3} {
				if res := p.Append(idemBatch(7, 0, seq, 3-int(seq/3)), 1); res.Code != 0 {
					t.Fatalf("append at epoch 0: got code %d (%v)", res.Code, res.Err)
				}
			}
			// Epoch 1, ISR 1 and 2: offsets 5-6 and 7-8, which follower 2
			// never fetched.
			p.setAssignment(cluster.PartitionState{Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 1}, 1)
			for _, seq := range []int32{5, 7} {
				if res := p.Append(idemBatch(7, 0, seq, 2), 1); res.Code != 0 {
					t.Fatalf("append at epoch 1: got code %d (%v)", res.Code, res.Err)
				}
			}
			if hw := p.HighWatermark(); hw != 5 {
				t.Fatalf("got high watermark %d, want 5", hw)
			}
			// Epoch 2: broker 2 leads.
			if follow := p.setAssignment(cluster.PartitionState{Replicas: []int32{1, 2}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 2, PartitionEpoch: 2}, 1); !follow {
				t.Fatal("got follow false, want this replica to follow the new leader")
			}
			if err := p.truncateTo(p.divergence(tt.leaderEpoch, tt.leaderEnd)); err != nil {
				t.Fatal(err)
			}
			if got := p.Log().LogEndOffset(); got != tt.wantEnd {
				t.Fatalf("got log end %d, want %d", got, tt.wantEnd)
			}
			if got := p.Log().LeaderEpochs(); !slices.Equal(got, tt.wantEpochs) {
				t.Fatalf("got leader epochs %v, want %v", got, tt.wantEpochs)
			}
			// The producer state is rebuilt from what is left: its next
			// sequence is the new log end, and the one after is a gap.
			p.setAssignment(cluster.PartitionState{Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 3, PartitionEpoch: 3}, 1)
			if res := p.Append(idemBatch(7, 0, int32(tt.wantEnd)+1, 1), 1); res.Code != kerr.OutOfOrderSequenceNumber.Code {
				t.Fatalf("sequence %d: got code %d, want OUT_OF_ORDER_SEQUENCE_NUMBER", tt.wantEnd+1, res.Code)
			}
			if res := p.Append(idemBatch(7, 0, int32(tt.wantEnd), 1), 1); res.Code != 0 || res.BaseOffset != tt.wantEnd {
				t.Fatalf("sequence %d: got code %d base %d (%v), want 0 and %d", tt.wantEnd, res.Code, res.BaseOffset, res.Err, tt.wantEnd)
			}
		})
	}
}

// TestSequenceWindow: a retry is recognised among the producer's last
// five batches (Kafka's in-flight limit with idempotence), not older; and
// sequences wrap at MaxInt32.
func TestSequenceWindow(t *testing.T) {
	p := soloPartition(t)
	for seq := int32(0); seq < 6; seq++ {
		if res := p.Append(idemBatch(9, 0, seq, 1), 1); res.Code != 0 {
			t.Fatalf("sequence %d: got code %d (%v), want 0", seq, res.Code, res.Err)
		}
	}
	steps := []struct {
		name     string
		batch    []byte
		wantCode int16
		wantBase int64
	}{
		{"retry of the fifth-newest batch", idemBatch(9, 0, 1, 1), 0, 1},
		{"retry of the sixth-newest batch", idemBatch(9, 0, 0, 1), kerr.OutOfOrderSequenceNumber.Code, -1},
		{"next in order", idemBatch(9, 0, 6, 1), 0, 6},
		{"new producer near the wrap", idemBatch(10, 0, 0, 1), 0, 7},
	}
	for _, st := range steps {
		res := p.Append(st.batch, 1)
		if res.Code != st.wantCode || (st.wantCode == 0 && res.BaseOffset != st.wantBase) {
			t.Fatalf("%s: got code %d base %d (%v), want code %d base %d", st.name, res.Code, res.BaseOffset, res.Err, st.wantCode, st.wantBase)
		}
	}
	// A batch ending at MaxInt32 is followed by sequence 0.
	p.mu.Lock()
	p.producers[10].batches = []seqRange{{first: 1<<31 - 3, last: 1<<31 - 1, base: 7, end: 7}}
	p.mu.Unlock()
	if res := p.Append(idemBatch(10, 0, 0, 1), 1); res.Code != 0 {
		t.Fatalf("sequence 0 after MaxInt32: got code %d (%v), want 0", res.Code, res.Err)
	}
}
