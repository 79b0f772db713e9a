package core

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/core/commitlog"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// testTimers are cluster.FastTimers slowed down 2.5 times: these tests
// move records as well as metadata, on two cores shared with the rest of
// the suite, and Raft must not lose its leader to a busy moment.
func testTimers() cluster.Timers {
	t := cluster.FastTimers()
	for _, d := range []*time.Duration{&t.RaftHeartbeat, &t.RaftElection, &t.RaftLeaderLease, &t.RaftCommit,
		&t.SerfProbeInterval, &t.SerfProbeTimeout, &t.SerfGossipInterval, &t.FailureConfirm, &t.ReconcileInterval} {
		*d = *d * 5 / 2
	}
	return t
}

// testCluster is n core nodes in this process, on loopback, with short
// Serf and Raft timers.
type testCluster struct {
	t     *testing.T
	dir   string
	cfgs  []Config
	nodes []*Node // nil while stopped
}

func startCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	return startClusterWith(t, n, nil)
}

// startClusterWith starts n nodes like startCluster, letting edit change
// each node's configuration first (listeners, security).
func startClusterWith(t *testing.T, n int, edit func(i int, cfg *Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, dir: t.TempDir(), nodes: make([]*Node, n)}
	// Each node binds port 0 and joins the ones created before it; its
	// bound addresses go back into its config, so a restart comes back
	// on the same Raft and Serf addresses (no port picked in advance that
	// another test could take meanwhile).
	var serf []string
	nodes := make([]*Node, n)
	for i := range n {
		cfg := DefaultConfig()
		cfg.NodeID = int32(i + 1)
		cfg.DataDir = filepath.Join(tc.dir, fmt.Sprintf("node-%d", i+1))
		cfg.KafkaAddr = "127.0.0.1:0"
		cfg.HTTPAddr = ""
		cfg.Cluster.SerfAddr = "127.0.0.1:0"
		cfg.Cluster.RaftAddr = "127.0.0.1:0"
		cfg.Cluster.Join = slices.Clone(serf)
		cfg.Cluster.BootstrapExpect = n
		cfg.Cluster.Timers = testTimers()
		cfg.Broker.ReplicaLagMax = 2 * time.Second
		cfg.Broker.ReplicaFetchWait = 100 * time.Millisecond
		cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Int("node", i+1).Logger()
		if edit != nil {
			edit(i, &cfg)
		}
		nd, err := New(cfg)
		if err != nil {
			t.Fatalf("node %d: New: %v", i+1, err)
		}
		nodes[i] = nd
		cfg.KafkaAddr = nd.KafkaAddr()
		cfg.Listeners = slices.Clone(cfg.Listeners)
		for j := range cfg.Listeners {
			cfg.Listeners[j].Addr = nd.KafkaListenerAddr(cfg.Listeners[j].Name)
		}
		cfg.Cluster.SerfAddr = nd.cluster.SerfAddr()
		cfg.Cluster.RaftAddr = nd.cluster.RaftAddr()
		serf = append(serf, cfg.Cluster.SerfAddr)
		tc.cfgs = append(tc.cfgs, cfg)
	}
	for i := range tc.cfgs {
		tc.cfgs[i].Cluster.Join = slices.Clone(serf)
	}
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := nd.Start(); err != nil {
				t.Errorf("node %d: Start: %v", i+1, err)
				return
			}
			tc.nodes[i] = nd
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for i, nd := range tc.nodes {
			if nd != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				nd.Shutdown(ctx)
				cancel()
				tc.nodes[i] = nil
			}
		}
	})
	return tc
}

func (tc *testCluster) start(i int) {
	n, err := New(tc.cfgs[i])
	if err != nil {
		tc.t.Errorf("node %d: New: %v", i+1, err)
		return
	}
	if err := n.Start(); err != nil {
		tc.t.Errorf("node %d: Start: %v", i+1, err)
		return
	}
	tc.nodes[i] = n
}

// crash stops node i without leaving the cluster: its peers have to
// notice it is gone.
func (tc *testCluster) crash(i int) {
	n := tc.nodes[i]
	tc.nodes[i] = nil
	n.crash()
}

func (tc *testCluster) seeds() []string {
	var out []string
	for i, n := range tc.nodes {
		if n != nil {
			out = append(out, tc.cfgs[i].KafkaAddr)
		}
	}
	return out
}

func (tc *testCluster) client(opts ...kgo.Opt) *kgo.Client {
	tc.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(tc.seeds()...)}, opts...)...)
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.t.Cleanup(cl.Close)
	return cl
}

// waitState waits until every running node's metadata satisfies ok.
func (tc *testCluster) waitState(what string, ok func(*cluster.State) bool) {
	tc.t.Helper()
	testutil.EventuallyWithin(tc.t, 30*time.Second, what, func() bool {
		for _, n := range tc.nodes {
			if n != nil && !ok(n.Broker().State()) {
				return false
			}
		}
		return true
	})
}

// produce writes n records keyed k-0..k-(n-1) with acks=all and an
// idempotent producer, failing the test on any error.
func produce(t *testing.T, cl *kgo.Client, topic, prefix string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		wg.Add(1)
		r := &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("k-%d", i%7)), Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("produce: %v", firstErr)
	}
}

// readAll consumes the whole topic from the start through a fresh client
// and returns each partition's values in order.
func (tc *testCluster) readAll(topic string, want int) map[int32][]string {
	tc.t.Helper()
	cl := tc.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[int32][]string{}
	got := 0
	for got < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			tc.t.Fatalf("read %d of %d records", got, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out[r.Partition] = append(out[r.Partition], string(r.Value))
			got++
		})
	}
	return out
}

// TestClusterReplicationAndFailover: three brokers elect a controller; a
// topic with three replicas takes acks=all writes; the leader of a
// partition crashes and the writes go on through a new leader with no
// acknowledged record lost or doubled; the crashed broker comes back,
// catches up and rejoins every ISR.
func TestClusterReplicationAndFailover(t *testing.T) {
	t.Parallel() // waits on failure detection: overlap it with the other cluster tests
	tc := startCluster(t, 3)
	adm := kadm.NewClient(tc.client())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 3, 3, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	tc.waitState("the topic on every node", func(st *cluster.State) bool { return st.Topics["orders"] != nil })
	cl := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()))
	produce(t, cl, "orders", "a", 300)

	st := tc.nodes[0].Broker().State()
	ps, _ := st.Partition("orders", 0)
	if len(ps.ISR) != 3 {
		t.Fatalf("partition 0: got ISR %v, want three replicas", ps.ISR)
	}
	victim := ps.Leader
	tc.crash(int(victim - 1))
	tc.waitState("a new leader for partition 0", func(st *cluster.State) bool {
		ps, _ := st.Partition("orders", 0)
		return ps.Leader != victim && ps.Leader != cluster.NoLeader && ps.LeaderEpoch > 0
	})
	produce(t, cl, "orders", "b", 300)

	tc.start(int(victim - 1))
	tc.waitState("every ISR whole again", func(st *cluster.State) bool {
		ts := st.Topics["orders"]
		if ts == nil {
			return false // a restarted node still replaying its Raft log
		}
		for _, ps := range ts.Partitions {
			if len(ps.ISR) != 3 {
				return false
			}
		}
		return true
	})
	got := tc.readAll("orders", 600)
	seen := map[string]bool{}
	total := 0
	for p, vals := range got {
		for _, v := range vals {
			if seen[v] {
				t.Errorf("partition %d: %s read twice", p, v)
			}
			seen[v] = true
			total++
		}
	}
	if total != 600 {
		t.Fatalf("got %d records, want 600", total)
	}
	// Every replica holds the same log: compare log ends per partition.
	for i := range 3 {
		var ends []int64
		for _, n := range tc.nodes {
			p, ok := n.Broker().Partition("orders", int32(i))
			if !ok {
				t.Fatalf("a node lacks partition %d", i)
			}
			ends = append(ends, p.Log().LogEndOffset())
		}
		if ends[0] != ends[1] || ends[1] != ends[2] {
			t.Errorf("partition %d: log ends %v differ", i, ends)
		}
	}
}

// TestClusterTruncatesDivergentReplica: a leader crashes holding records
// no follower has (written at its epoch, never replicated); a follower
// takes over at the next epoch and takes new writes; when the old leader
// comes back it must cut its own tail by leader epoch (KIP-101/279) and
// end with exactly the new leader's log, not keep the ghosts or cut
// acknowledged records.
func TestClusterTruncatesDivergentReplica(t *testing.T) {
	t.Parallel() // waits on failure detection: overlap it with the other cluster tests
	// The ghosts carry the old leader's own epoch (KIP-101), or a later
	// epoch the new leader never had, as a broker can hold after quick
	// successive failovers (KIP-279): the new leader then answers with an
	// older epoch than asked, and the cut must still land at 100, not at
	// the replica's own high watermark or log end.
	for _, later := range []int32{0, 5} {
		t.Run(fmt.Sprintf("ghost epoch +%d", later), func(t *testing.T) { testTruncatesDivergentReplica(t, later) })
	}
}

func testTruncatesDivergentReplica(t *testing.T, later int32) {
	tc := startCluster(t, 3)
	adm := kadm.NewClient(tc.client())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "div"); err != nil {
		t.Fatal(err)
	}
	tc.waitState("the topic on every node", func(st *cluster.State) bool { return st.Topics["div"] != nil })
	cl := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce(t, cl, "div", "a", 100)
	ps, _ := tc.nodes[0].Broker().State().Partition("div", 0)
	old := int(ps.Leader - 1)
	tc.waitLogEnds("div", 0, 100)

	tc.crash(old)
	// Records the old leader wrote at its epoch and nobody fetched.
	l, err := commitlog.Open(filepath.Join(tc.cfgs[old].DataDir, "div-0"), commitlog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var ghosts []kmsg.Record
	for i := range 10 {
		ghosts = append(ghosts, kmsg.Record{Value: []byte(fmt.Sprintf("ghost-%d", i))})
	}
	h := commitlog.NoProducer(time.Now().UnixMilli())
	h.LeaderEpoch = ps.LeaderEpoch + later
	if _, err := l.Append(commitlog.AppendBatch(nil, h, ghosts)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tc.waitState("a new leader", func(st *cluster.State) bool {
		p, _ := st.Partition("div", 0)
		return p.Leader != ps.Leader && p.Leader != cluster.NoLeader
	})
	produce(t, cl, "div", "b", 50)

	tc.start(old)
	tc.waitState("the old leader back in the ISR", func(st *cluster.State) bool {
		p, _ := st.Partition("div", 0)
		return len(p.ISR) == 3
	})
	tc.waitLogEnds("div", 0, 150)
	p, _ := tc.nodes[old].Broker().Partition("div", 0)
	if eps := p.Log().LeaderEpochs(); len(eps) != 2 || eps[1].StartOffset != 100 {
		t.Errorf("old leader's epochs: got %v, want the old epoch from 0 and the new one from 100", eps)
	}
	got := tc.readAll("div", 150)[0]
	for i, v := range got {
		want := fmt.Sprintf("a-%d", i)
		if i >= 100 {
			want = fmt.Sprintf("b-%d", i-100)
		}
		if v != want {
			t.Fatalf("offset %d: got %q, want %q", i, v, want)
		}
	}
}

// waitLogEnds waits until every running replica of the partition has
// log end end.
func (tc *testCluster) waitLogEnds(topic string, partition int32, end int64) {
	tc.t.Helper()
	testutil.EventuallyNoError(tc.t, fmt.Sprintf("%s-%d", topic, partition), func() error {
		var ends []int64
		for _, n := range tc.nodes {
			if n == nil {
				continue
			}
			if p, ok := n.Broker().Partition(topic, partition); ok {
				ends = append(ends, p.Log().LogEndOffset())
			}
		}
		if len(ends) > 0 && !slices.ContainsFunc(ends, func(e int64) bool { return e != end }) {
			return nil
		}
		return fmt.Errorf("log ends %v, want all at %d", ends, end)
	})
}

// TestClusterShrinksLaggingFollower: a follower whose replication stops
// while its process stays a healthy cluster member (Serf sees it alive,
// the controller does not fence it) is dropped from the ISR by the
// leader after ReplicaLagMax, and acks=all writes go on with the others.
func TestClusterShrinksLaggingFollower(t *testing.T) {
	t.Parallel() // waits on failure detection: overlap it with the other cluster tests
	tc := startCluster(t, 3)
	adm := kadm.NewClient(tc.client())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "lag"); err != nil {
		t.Fatal(err)
	}
	tc.waitState("the topic on every node", func(st *cluster.State) bool { return st.Topics["lag"] != nil })
	cl := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()))
	produce(t, cl, "lag", "a", 50)
	ps, _ := tc.nodes[0].Broker().State().Partition("lag", 0)
	leader := tc.nodes[ps.Leader-1]
	var follower int32 = -1
	for _, r := range ps.Replicas {
		if r != ps.Leader {
			follower = r
			break
		}
	}
	// Replication stops; the node keeps serving its cluster membership.
	tc.nodes[follower-1].Broker().Close()
	produce(t, cl, "lag", "b", 50)
	// The stopped broker no longer applies metadata: ask the leader.
	testutil.EventuallyNoError(t, "the ISR to shrink", func() error {
		if p, _ := leader.Broker().State().Partition("lag", 0); len(p.ISR) != 2 || p.InISR(follower) {
			return fmt.Errorf("ISR still %v, want it without broker %d", p.ISR, follower)
		}
		return nil
	})
	st := leader.Broker().State()
	if b := st.Brokers[follower]; b.Fenced {
		t.Fatalf("broker %d was fenced: the controller, not the leader, took it out", follower)
	}
	if n := leader.Broker().ISRShrinks(); n < 1 {
		t.Fatalf("leader's ISR shrinks: got %d, want at least 1", n)
	}
	produce(t, cl, "lag", "c", 50)
}

// TestClusterCoordinatorFailover: a group's coordinator is the leader of
// its __consumer_offsets partition, on another broker than the controller
// or the data perhaps; when it crashes, another replica of that partition
// takes over, loads the group, and the committed offsets are all there: a
// member that joins afterwards resumes where the group left off.
func TestClusterCoordinatorFailover(t *testing.T) {
	t.Parallel() // waits on failure detection: overlap it with the other cluster tests
	tc := startCluster(t, 3)
	adm := kadm.NewClient(tc.client())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 3, 3, nil, "events"); err != nil {
		t.Fatal(err)
	}
	tc.waitState("the topic on every node", func(st *cluster.State) bool { return st.Topics["events"] != nil })
	produce(t, tc.client(), "events", "a", 90)

	consume := func(n int) {
		t.Helper()
		cl := tc.client(kgo.ConsumerGroup("audit"), kgo.ConsumeTopics("events"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
		got := 0
		for got < n {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("group read %d of %d records", got, n)
			}
			got += fs.NumRecords()
		}
		if got != n {
			t.Fatalf("group read %d records, want %d", got, n)
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}
	consume(90)
	found := adm.FindGroupCoordinators(ctx, "audit")["audit"]
	if found.Err != nil {
		t.Fatal(found.Err)
	}
	coord := found.NodeID
	tc.crash(int(coord - 1))

	// A fresh client for each look: kgo keeps a coordinator it found for
	// sharded requests such as OffsetFetch even when it cannot dial it,
	// and right after the crash FindCoordinator may still name the dead
	// broker.
	testutil.EventuallyNoError(t, "committed offsets after the coordinator died", func() error {
		cl := tc.client()
		offs, err := kadm.NewClient(cl).FetchOffsets(ctx, "audit")
		cl.Close()
		if err != nil {
			return err
		}
		total := int64(0)
		offs.Each(func(o kadm.OffsetResponse) { total += o.At })
		if total != 90 {
			return fmt.Errorf("got %d, want 90", total)
		}
		return nil
	})
	produce(t, tc.client(), "events", "b", 30)
	consume(30)
}

// TestClusterReassignWhileWriting: a partition with one replica moves to
// two other brokers (AlterPartitionReassignments, as `fluxo topic
// reassign` sends it) while an acks=all producer keeps writing: the new
// replicas copy the log, the old one is dropped with its data, and every
// acknowledged record is there.
func TestClusterReassignWhileWriting(t *testing.T) {
	t.Parallel() // waits on failure detection: overlap it with the other cluster tests
	tc := startCluster(t, 3)
	adm := kadm.NewClient(tc.client())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "moves"); err != nil {
		t.Fatal(err)
	}
	tc.waitState("the topic on every node", func(st *cluster.State) bool { return st.Topics["moves"] != nil })
	ps, _ := tc.nodes[0].Broker().State().Partition("moves", 0)
	from := ps.Replicas[0]
	var target []int32
	for id := int32(1); id <= 3; id++ {
		if id != from {
			target = append(target, id)
		}
	}
	cl := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()))
	produce(t, cl, "moves", "a", 200)

	done := make(chan struct{})
	var acked atomic.Int64
	go func() {
		defer close(done)
		for i := 0; i < 300; i++ {
			r := &kgo.Record{Topic: "moves", Value: []byte(fmt.Sprintf("b-%d", i))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Errorf("produce during the move: %v", err)
				return
			}
			acked.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign("moves", 0, target)
	resps, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resps.Each(func(r kadm.AlterPartitionAssignmentsResponse) {
		if r.Err != nil {
			t.Fatalf("reassign: %v", r.Err)
		}
	})
	tc.waitState("the partition on its new replicas, both in sync", func(st *cluster.State) bool {
		p, _ := st.Partition("moves", 0)
		return slices.Equal(p.Replicas, target) && len(p.ISR) == 2
	})
	<-done
	if acked.Load() != 300 {
		t.Fatalf("acked %d of 300 writes during the move", acked.Load())
	}
	got := tc.readAll("moves", 500)[0]
	if len(got) != 500 {
		t.Fatalf("read %d records, want 500", len(got))
	}
	if _, err := os.Stat(filepath.Join(tc.cfgs[from-1].DataDir, "moves-0")); !os.IsNotExist(err) {
		t.Errorf("broker %d still has the partition's data: %v", from, err)
	}
	tc.waitLogEnds("moves", 0, 500)
}

// TestClusterLastReplicaStanding is KIP-966's case with real brokers: of a
// partition's three replicas two stop (cleanly), leaving the leader alone
// in the ISR, then the leader crashes and comes back having lost the tail
// of its log (a power cut before the fsync). The replica that stopped
// last had every acknowledged record: it must lead, and the crashed
// leader must copy the records back rather than the cluster keep its
// shorter log. Five brokers, so Raft keeps a majority throughout.
func TestClusterLastReplicaStanding(t *testing.T) {
	t.Parallel() // waits on failure detection: overlap it with the other cluster tests
	tc := startCluster(t, 5)
	adm := kadm.NewClient(tc.client())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "lrs"); err != nil {
		t.Fatal(err)
	}
	tc.waitState("the topic on every node", func(st *cluster.State) bool { return st.Topics["lrs"] != nil })
	produce(t, tc.client(kgo.RequiredAcks(kgo.AllISRAcks())), "lrs", "a", 100)
	ps, _ := tc.nodes[0].Broker().State().Partition("lrs", 0)
	leader := ps.Leader
	var followers []int32
	for _, r := range ps.Replicas {
		if r != leader {
			followers = append(followers, r)
		}
	}
	tc.waitLogEnds("lrs", 0, 100)
	stop := func(id int32) {
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer scancel()
		if err := tc.nodes[id-1].Shutdown(sctx); err != nil {
			t.Fatalf("stop broker %d: %v", id, err)
		}
		tc.nodes[id-1] = nil
	}
	stop(followers[0])
	stop(followers[1])
	tc.waitState("the leader alone in the ISR, the last follower eligible", func(st *cluster.State) bool {
		p, _ := st.Partition("lrs", 0)
		return p.Leader == leader && slices.Equal(p.ISR, []int32{leader}) && slices.Equal(p.ELR, []int32{followers[1]})
	})

	tc.crash(int(leader - 1))
	l, err := commitlog.Open(filepath.Join(tc.cfgs[leader-1].DataDir, "lrs-0"), commitlog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.TruncateTo(50); err != nil {
		t.Fatal(err)
	}
	l.Close()
	tc.start(int(leader - 1))
	tc.waitState("the partition offline: the crashed leader may not lead", func(st *cluster.State) bool {
		p, _ := st.Partition("lrs", 0)
		return st.Brokers[leader].Unclean && !st.Brokers[leader].Fenced && p.Leader == cluster.NoLeader
	})
	tc.start(int(followers[1] - 1))
	tc.waitState("the eligible replica leading", func(st *cluster.State) bool {
		p, _ := st.Partition("lrs", 0)
		return p.Leader == followers[1]
	})
	got := tc.readAll("lrs", 100)[0]
	if len(got) != 100 || got[99] != "a-99" {
		t.Fatalf("read %d records (last %q), want the 100 acknowledged", len(got), got[len(got)-1])
	}
	tc.waitLogEnds("lrs", 0, 100)
}
