package core

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/core/commitlog"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// testNet is the network between the brokers of a test cluster: every
// Raft, forwarding RPC, gossip and replica connection between brokers
// goes through it, so a test can cut a broker off from the others while
// it keeps running and its Kafka listeners stay reachable by clients
// (which dial directly). A cut fails new dials, closes the connections
// already open, and drops gossip datagrams, both ways.
type testNet struct {
	mu    sync.Mutex
	owner map[string]int32 // a broker's addresses (Raft, Serf, Kafka) -> its id
	cut   map[int32]bool
	pairs map[[2]int32]bool // cut between two brokers only, smaller id first
	conns map[*netConn]struct{}
}

func newTestNet() *testNet {
	return &testNet{owner: map[string]int32{}, cut: map[int32]bool{}, pairs: map[[2]int32]bool{}, conns: map[*netConn]struct{}{}}
}

// netConn is a connection between brokers opened through a testNet.
type netConn struct {
	net.Conn
	n    *testNet
	from int32
	addr string
}

func (c *netConn) Close() error {
	c.n.mu.Lock()
	delete(c.n.conns, c)
	c.n.mu.Unlock()
	return c.Conn.Close()
}

// register names the addresses of broker id.
func (n *testNet) register(id int32, addrs ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range addrs {
		n.owner[a] = id
	}
}

// blockedLocked reports whether traffic from broker from to addr is cut.
func (n *testNet) blockedLocked(from int32, addr string) bool {
	to, ok := n.owner[addr]
	return ok && to != from && (n.cut[from] || n.cut[to] || n.pairs[[2]int32{min(from, to), max(from, to)}])
}

// isolate cuts broker id off from every other broker.
func (n *testNet) isolate(id int32) {
	n.mu.Lock()
	n.cut[id] = true
	n.closeBlockedLocked()
}

// cutPair cuts brokers a and b off from each other only: each still
// reaches the others (a partial partition).
func (n *testNet) cutPair(a, b int32) {
	n.mu.Lock()
	n.pairs[[2]int32{min(a, b), max(a, b)}] = true
	n.closeBlockedLocked()
}

// healPair undoes cutPair.
func (n *testNet) healPair(a, b int32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.pairs, [2]int32{min(a, b), max(a, b)})
}

// closeBlockedLocked closes the open connections that the cuts now
// block. It is called with n.mu held and releases it.
func (n *testNet) closeBlockedLocked() {
	var doomed []*netConn
	for c := range n.conns {
		if n.blockedLocked(c.from, c.addr) {
			doomed = append(doomed, c)
		}
	}
	n.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
}

// heal reconnects broker id.
func (n *testNet) heal(id int32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.cut, id)
}

// node is broker id's side of the network: a cluster.Network, and its
// DialContext serves as the replica fetchers' dialer.
func (n *testNet) node(id int32) nodeNet { return nodeNet{n, id} }

type nodeNet struct {
	n  *testNet
	id int32
}

var errUnreachable = errors.New("testnet: unreachable")

func (nn nodeNet) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nn.n.mu.Lock()
	blocked := nn.n.blockedLocked(nn.id, addr)
	nn.n.mu.Unlock()
	if blocked {
		return nil, fmt.Errorf("%w: %s", errUnreachable, addr)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	nc := &netConn{Conn: c, n: nn.n, from: nn.id, addr: addr}
	nn.n.mu.Lock()
	defer nn.n.mu.Unlock()
	if nn.n.blockedLocked(nn.id, addr) { // cut while dialing
		c.Close()
		return nil, fmt.Errorf("%w: %s", errUnreachable, addr)
	}
	nn.n.conns[nc] = struct{}{}
	return nc, nil
}

func (nn nodeNet) Drops(addr string) bool {
	nn.n.mu.Lock()
	defer nn.n.mu.Unlock()
	return nn.n.blockedLocked(nn.id, addr)
}

// startCutCluster starts n brokers whose traffic between them goes
// through a testNet, with a leader lease of two Raft heartbeats, as
// broker.DefaultLeaderLease is with cluster.DefaultTimers.
func startCutCluster(t *testing.T, n int) (*testCluster, *testNet) {
	tn := newTestNet()
	tc := startClusterWith(t, n, func(i int, cfg *Config) {
		nn := tn.node(int32(i + 1))
		cfg.Cluster.Network = nn
		cfg.Broker.ReplicaDial = nn.DialContext
		cfg.Broker.LeaderLease = 2 * cfg.Cluster.Timers.RaftHeartbeat
	})
	for i, cfg := range tc.cfgs {
		tn.register(int32(i+1), cfg.KafkaAddr, cfg.Cluster.RaftAddr, cfg.Cluster.SerfAddr)
		for _, l := range cfg.Listeners {
			tn.register(int32(i+1), l.Addr)
		}
	}
	return tc, tn
}

// TestClusterCutOffLeaderStepsDown: the leader of a partition is cut off
// from the other brokers, twice, without stopping it, while an idempotent
// acks=all producer writes and every broker stays reachable by clients.
// The cut-off broker answers an acks=all produce that was waiting with
// NOT_LEADER_OR_FOLLOWER, refuses fetches the same way and reports the
// partition leaderless in Metadata; the producer follows the majority's
// new leader; after the heal the broker follows again, and every
// acknowledged record is in the topic exactly once.
func TestClusterCutOffLeaderStepsDown(t *testing.T) {
	t.Parallel() // waits on failure detection: overlap it with the other cluster tests
	tc, tn := startCutCluster(t, 3)
	const topic = "cut"
	adm := kadm.NewClient(tc.client())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic); err != nil {
		t.Fatal(err)
	}
	whole := func(st *cluster.State) bool {
		ps, ok := st.Partition(topic, 0)
		return ok && len(ps.ISR) == 3 && ps.Leader != cluster.NoLeader
	}
	tc.waitState("the topic with a whole ISR on every node", whole)

	// The load: unique values, acks=all, idempotent (kgo's default).
	pcl := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.ProducerLinger(0), kgo.DefaultProduceTopic(topic))
	var mu sync.Mutex
	acked := map[string]bool{}
	failed := 0
	stop := make(chan struct{})
	var wg, inflight sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			v := fmt.Sprintf("v-%d", i)
			inflight.Add(1)
			pcl.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(_ *kgo.Record, err error) {
				defer inflight.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					return
				}
				acked[v] = true
			})
		}
	}()
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitAcks := func(what string, n int) {
		t.Helper()
		testutil.EventuallyWithin(t, 30*time.Second, what, func() bool { return ackedCount() >= n })
	}
	waitAcks("first acknowledgements", 50)

	probe := tc.client()
	for round := 1; round <= 2; round++ {
		st := tc.nodes[0].Broker().State()
		ps, _ := st.Partition(topic, 0)
		victim := ps.Leader
		vb := tc.nodes[victim-1].Broker()
		t.Logf("round %d: cutting off broker %d, leader of %s-0 at epoch %d", round, victim, topic, ps.LeaderEpoch)
		tn.isolate(victim)

		// An acks=all produce to the cut-off leader cannot be committed
		// (its followers cannot fetch); it must be refused, not held
		// until its timeout.
		code := rawProduce(t, probe, victim, topic)
		if code != kerr.NotLeaderForPartition.Code {
			t.Fatalf("round %d: acks=all produce to the cut-off leader: got %v, want NOT_LEADER_OR_FOLLOWER", round, kerr.ErrorForCode(code))
		}
		if !vb.QuorumLost() {
			t.Fatalf("round %d: got QuorumLost false on the cut-off broker after its refusal, want true", round)
		}
		if code := rawFetch(t, probe, victim, topic); code != kerr.NotLeaderForPartition.Code {
			t.Fatalf("round %d: fetch from the cut-off leader: got %v, want NOT_LEADER_OR_FOLLOWER", round, kerr.ErrorForCode(code))
		}
		if leader, code := rawMetadata(t, probe, victim, topic); leader != -1 || code != kerr.LeaderNotAvailable.Code {
			t.Fatalf("round %d: metadata from the cut-off broker: got leader %d, %v, want -1, LEADER_NOT_AVAILABLE", round, leader, kerr.ErrorForCode(code))
		}

		// The majority moves the partition; the producer follows it.
		testutil.EventuallyWithin(t, 30*time.Second, "a new leader on the majority side", func() bool {
			for i, n := range tc.nodes {
				if int32(i+1) == victim {
					continue
				}
				ps, _ := n.Broker().State().Partition(topic, 0)
				if ps.Leader == victim || ps.Leader == cluster.NoLeader {
					return false
				}
			}
			return true
		})
		waitAcks(fmt.Sprintf("round %d: acknowledgements from the new leader", round), ackedCount()+200)

		tn.heal(victim)
		testutil.EventuallyWithin(t, 30*time.Second, "the healed broker to resume", func() bool { return !vb.QuorumLost() })
		// Leadership may move on (even back to the healed broker) before
		// every replica is in sync again.
		tc.waitState(fmt.Sprintf("round %d: ISR whole again", round), whole)
		waitAcks(fmt.Sprintf("round %d: acknowledgements after the heal", round), ackedCount()+100)
	}
	close(stop)
	wg.Wait()
	inflight.Wait()

	mu.Lock()
	n, nfailed := len(acked), failed
	mu.Unlock()
	t.Logf("%d records acknowledged, %d produce failures", n, nfailed)
	// Read back everything the topic has: acknowledged records and those
	// whose outcome the producer never learned.
	end := int64(0)
	for _, nd := range tc.nodes {
		if p, ok := nd.Broker().Partition(topic, 0); ok && nd.Broker().State() != nil {
			if lead, _ := p.IsLeader(); lead {
				end = p.HighWatermark()
			}
		}
	}
	got := tc.readAll(topic, int(end))
	seen := map[string]int{}
	for _, v := range got[0] {
		seen[v]++
	}
	for v, c := range seen {
		if c > 1 {
			t.Errorf("%s: got %d copies, want 1", v, c)
		}
	}
	lost := 0
	for v := range acked {
		if seen[v] == 0 {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("got %d acknowledged records missing, want 0", lost)
	}
}

// TestClusterBridgedBrokerFenced: a broker cut off from the controller
// only, while both still reach the third broker (a partial partition),
// steps down for lack of contact with the controller; gossip still
// reaches it through the third broker, so the failure detector never
// reports it failed. It reports itself cut off through gossip and the
// controller fences it, so the partition it led moves to the majority
// and takes writes again; after the heal it is registered and follows
// again.
func TestClusterBridgedBrokerFenced(t *testing.T) {
	tc, tn := startCutCluster(t, 3)
	const topic = "bridged"
	adm := kadm.NewClient(tc.client())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic); err != nil {
		t.Fatal(err)
	}
	tc.waitState("the topic with whole ISRs", func(st *cluster.State) bool {
		for p := range int32(3) {
			ps, ok := st.Partition(topic, p)
			if !ok || len(ps.ISR) != 3 || ps.Leader == cluster.NoLeader {
				return false
			}
		}
		return true
	})
	ctrl, ok := tc.nodes[0].cluster.ControllerID()
	if !ok {
		t.Fatal("no controller")
	}
	// The victim: a broker other than the controller that leads a
	// partition (the controller spreads three leaders over three brokers).
	st := tc.nodes[0].Broker().State()
	victim, part := int32(-1), int32(-1)
	for p := range int32(3) {
		ps, _ := st.Partition(topic, p)
		if ps.Leader != ctrl {
			victim, part = ps.Leader, p
			break
		}
	}
	if victim < 0 {
		t.Fatalf("got every partition led by the controller %d, want one led by another broker", ctrl)
	}
	t.Logf("cutting broker %d (leader of %s-%d) off from the controller %d only", victim, topic, part, ctrl)
	tn.cutPair(victim, ctrl)
	vb := tc.nodes[victim-1].Broker()
	testutil.EventuallyWithin(t, 30*time.Second, "the cut-off broker to step down", vb.QuorumLost)
	testutil.EventuallyWithin(t, 30*time.Second, "the cut-off broker fenced and its partition moved", func() bool {
		for i, n := range tc.nodes {
			if int32(i+1) == victim {
				continue
			}
			st := n.Broker().State()
			ps, _ := st.Partition(topic, part)
			if !st.Brokers[victim].Fenced || ps.Leader == victim || ps.Leader == cluster.NoLeader {
				return false
			}
		}
		return true
	})
	pcl := tc.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MetadataMinAge(100*time.Millisecond))
	if err := pcl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: part, Value: []byte("after the cut")}).FirstErr(); err != nil {
		t.Fatalf("produce to %s-%d while its old leader is cut off from the controller: %v", topic, part, err)
	}

	tn.healPair(victim, ctrl)
	testutil.EventuallyWithin(t, 30*time.Second, "the healed broker to resume", func() bool { return !vb.QuorumLost() })
	tc.waitState("the healed broker registered and back in every ISR", func(st *cluster.State) bool {
		if st.Brokers[victim].Fenced {
			return false
		}
		for p := range int32(3) {
			ps, _ := st.Partition(topic, p)
			if len(ps.ISR) != 3 {
				return false
			}
		}
		return true
	})
}

// rawProduce sends one acks=all record to broker id with a long timeout
// and returns the partition's error code.
func rawProduce(t *testing.T, cl *kgo.Client, id int32, topic string) int16 {
	t.Helper()
	now := time.Now().UnixMilli()
	batch := commitlog.AppendBatch(nil, commitlog.NoProducer(now), []kmsg.Record{{Value: []byte("probe")}})
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 60_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl.Broker(int(id)))
	if err != nil {
		t.Fatalf("produce to broker %d: %v", id, err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// rawFetch fetches partition 0 of topic from broker id as a consumer.
func rawFetch(t *testing.T, cl *kgo.Client, id int32, topic string) int16 {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.ReplicaID = -1
	req.MaxBytes = 1 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rp.CurrentLeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl.Broker(int(id)))
	if err != nil {
		t.Fatalf("fetch from broker %d: %v", id, err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// rawMetadata asks broker id for topic's partition 0 and returns the
// leader it names and the partition's error code.
func rawMetadata(t *testing.T, cl *kgo.Client, id int32, topic string) (int32, int16) {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl.Broker(int(id)))
	if err != nil {
		t.Fatalf("metadata from broker %d: %v", id, err)
	}
	sp := resp.Topics[0].Partitions[0]
	return sp.Leader, sp.ErrorCode
}
