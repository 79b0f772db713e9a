package cluster

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

// logBuffer collects a test's logs and prints them if the test failed.
// Writes after the test ended are dropped.
type logBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.buf.Write(p)
	}
	return len(p), nil
}

var showLogs = flag.Bool("logs", false, "print the members' logs (debug level) of every test, not only failed ones")

func testLogger(t *testing.T) zerolog.Logger {
	b := &logBuffer{}
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.done = true
		if t.Failed() || *showLogs {
			t.Logf("logs:\n%s", b.buf.String())
		}
	})
	level := zerolog.InfoLevel
	if *showLogs {
		level = zerolog.DebugLevel
	}
	return zerolog.New(b).Level(level).Hook(clock{})
}

// clock stamps each log line with milliseconds since the test began.
type clock struct{}

var testStart = time.Now()

func (clock) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Int64("ms", time.Since(testStart).Milliseconds())
}

// testConfig is a member on 127.0.0.1 with free ports and FastTimers.
func testConfig(t *testing.T, id int32, expect int, join ...string) Config {
	return Config{
		NodeID:          id,
		DataDir:         filepath.Join(t.TempDir(), fmt.Sprint(id)),
		SerfAddr:        "127.0.0.1:0",
		RaftAddr:        "127.0.0.1:0",
		KafkaAddr:       fmt.Sprintf("127.0.0.1:%d", 19000+id),
		Join:            join,
		BootstrapExpect: expect,
		Timers:          FastTimers(),
		Logger:          testLogger(t),
	}
}

func open(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	c, err := Open(cfg)
	if err != nil {
		t.Fatalf("open node %d: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// reopen starts a member again on the same data dir and ports.
func reopen(t *testing.T, old *Cluster, join ...string) *Cluster {
	t.Helper()
	cfg := old.cfg
	cfg.SerfAddr, cfg.RaftAddr = old.SerfAddr(), old.RaftAddr()
	cfg.Join = join
	return open(t, cfg)
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// startCluster starts n members that bootstrap together and waits until
// all are ready.
func startCluster(t *testing.T, n int) []*Cluster {
	t.Helper()
	first := open(t, testConfig(t, 1, n))
	nodes := []*Cluster{first}
	for id := 2; id <= n; id++ {
		nodes = append(nodes, open(t, testConfig(t, int32(id), n, first.SerfAddr())))
	}
	ctx := ctxFor(t, 20*time.Second)
	for _, c := range nodes {
		if err := c.WaitReady(ctx); err != nil {
			t.Fatalf("node %d: %v", c.NodeID(), err)
		}
	}
	return nodes
}

func controllerOf(t *testing.T, nodes []*Cluster) *Cluster {
	t.Helper()
	var ctrl *Cluster
	testutil.EventuallyWithin(t, 10*time.Second, "one controller", func() bool {
		ctrl = nil
		for _, c := range nodes {
			if c.IsController() {
				if ctrl != nil {
					return false
				}
				ctrl = c
			}
		}
		return ctrl != nil
	})
	return ctrl
}

// sameState waits until every node has applied the same state and
// returns it.
func sameState(t *testing.T, nodes []*Cluster, what string, cond func(*State) bool) *State {
	t.Helper()
	var s *State
	testutil.EventuallyWithin(t, 10*time.Second, what, func() bool {
		s = nodes[0].State()
		if !cond(s) {
			return false
		}
		for _, c := range nodes[1:] {
			if !reflect.DeepEqual(c.State(), s) {
				return false
			}
		}
		return true
	})
	return s
}

func TestSingleNode(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t, 7, 0)
	cfg.Registerer = reg
	c := open(t, cfg)
	ctx := ctxFor(t, 10*time.Second)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if id, ok := c.ControllerID(); !ok || id != 7 || !c.IsController() || c.RaftState() != "leader" {
		t.Fatalf("got controller %d, %v, state %s, want 7, leader", id, ok, c.RaftState())
	}
	if _, err := c.Apply(ctx, CreateTopic{Name: "a", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	s := c.State()
	ts := s.Topics["a"]
	if ts == nil || len(ts.Partitions) != 2 || ts.ID == ([16]byte{}) || !reflect.DeepEqual(ts.Partitions[1].Replicas, ids(7)) {
		t.Fatalf("got topic %+v, want 2 partitions on broker 7 with a random id", ts)
	}
	if _, err := c.Apply(ctx, CreateTopic{Name: "a", Partitions: 2}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("got %v, want ErrTopicExists", err)
	}
	res, err := c.Apply(ctx, AllocateProducerIDs{N: 10})
	if err != nil || res.FirstProducerID != 1000 {
		t.Fatalf("got %d, %v, want 1000, nil", res.FirstProducerID, err)
	}
	if got := c.Members(); len(got) != 1 || got[0].ID != 7 || got[0].Status != "alive" || got[0].RaftRole != "leader" || got[0].KafkaAddr != cfg.KafkaAddr {
		t.Fatalf("got members %+v, want 7 alive leader", got)
	}
	if got := promtest.ToFloat64(mustGauge(t, reg, "fluxo_cluster_is_controller", nil)); got != 1 {
		t.Fatalf("got is_controller %v, want 1", got)
	}
	if got := promtest.ToFloat64(mustGauge(t, reg, "fluxo_cluster_brokers", map[string]string{"state": "live"})); got != 1 {
		t.Fatalf("got live brokers %v, want 1", got)
	}
	// Fencing an alive broker by hand: the controller registers it again
	// at its next reconcile, and it leads its partitions again.
	if _, err := c.Apply(ctx, FenceBroker{ID: 7}); err != nil {
		t.Fatal(err)
	}
	if got := c.State().Topics["a"].Partitions[0].Leader; got != NoLeader {
		t.Fatalf("got leader %d after fencing, want none", got)
	}
	testutil.EventuallyWithin(t, 5*time.Second, "broker 7 registered again", func() bool {
		p, _ := c.State().Partition("a", 0)
		return p.Leader == 7
	})
	elections, err := promtest.GatherAndCount(reg, "fluxo_cluster_leader_elections_total")
	if err != nil || elections != 1 {
		t.Fatalf("got %d series, %v, want the counter", elections, err)
	}
	if got := counterValue(t, reg, "fluxo_cluster_leader_elections_total"); got != 4 {
		t.Fatalf("got %v leader changes, want 4 (2 partitions lost and regained a leader)", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, DeleteTopic{Name: "a"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: got %v, want ErrClosed", err)
	}
	// The state survives a restart (no second bootstrap).
	c = reopen(t, c)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if c.State().Topics["a"] == nil {
		t.Fatalf("after restart: topic a missing")
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// mustGauge returns the metric of name with labels from reg, as a
// collector testutil can read.
func mustGauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name})
			g.Set(m.GetGauge().GetValue())
			return g
		}
	}
	t.Fatalf("metric %s %v not found", name, labels)
	return nil
}

func TestNoControllerTimesOut(t *testing.T) {
	// Expecting 3 but alone: no controller ever.
	c := open(t, testConfig(t, 1, 3))
	_, err := c.Apply(ctxFor(t, 300*time.Millisecond), AllocateProducerIDs{N: 1})
	if !errors.Is(err, ErrNoController) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrNoController wrapping the deadline", err)
	}
	if err := c.WaitReady(ctxFor(t, 100*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
}

// TestThreeNodes walks one 3-member cluster through forwarding, a broker
// crash and restart, and the controller's crash.
func TestThreeNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	ctrl := controllerOf(t, nodes)
	for _, c := range nodes {
		if id, ok := c.ControllerID(); !ok || id != ctrl.NodeID() {
			t.Fatalf("node %d: got controller %d, %v, want %d", c.NodeID(), id, ok, ctrl.NodeID())
		}
	}
	s := sameState(t, nodes, "3 live brokers everywhere", func(s *State) bool { return len(s.Live()) == 3 })
	for _, c := range nodes {
		b := s.Brokers[c.NodeID()]
		if b.RaftAddr != c.RaftAddr() || b.SerfAddr != c.SerfAddr() || b.KafkaAddr != c.cfg.KafkaAddr {
			t.Fatalf("got broker %+v, want the addresses of node %d", b, c.NodeID())
		}
	}
	var follower *Cluster
	for _, c := range nodes {
		if c != ctrl {
			follower = c
			break
		}
	}
	ctx := ctxFor(t, 30*time.Second)

	// A follower's Apply is forwarded; errors come back as themselves.
	if _, err := follower.Apply(ctx, CreateTopic{Name: "a", Partitions: 3, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	s = sameState(t, nodes, "topic a everywhere", func(s *State) bool { return s.Topics["a"] != nil })
	leaders := map[int32]bool{}
	for _, p := range s.Topics["a"].Partitions {
		leaders[p.Leader] = true
		if len(p.ISR) != 3 {
			t.Fatalf("got %+v, want 3 replicas in sync", p)
		}
	}
	if len(leaders) != 3 {
		t.Fatalf("got leaders %v, want each broker leading one partition", leaders)
	}
	if _, err := follower.Apply(ctx, CreateTopic{Name: "a", Partitions: 1}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("got %v, want ErrTopicExists", err)
	}
	p0 := s.Topics["a"].Partitions[0]
	_, err := follower.Apply(ctx, AlterPartition{Topic: "a", Broker: p0.Leader, LeaderEpoch: p0.LeaderEpoch + 1, PartitionEpoch: p0.PartitionEpoch, ISR: p0.ISR})
	if !errors.Is(err, ErrFencedLeaderEpoch) {
		t.Fatalf("got %v, want ErrFencedLeaderEpoch", err)
	}
	res, err := follower.Apply(ctx, AlterPartition{Topic: "a", Broker: p0.Leader, LeaderEpoch: p0.LeaderEpoch, PartitionEpoch: p0.PartitionEpoch, ISR: p0.ISR})
	if err != nil || res.Partition.PartitionEpoch != p0.PartitionEpoch+1 {
		t.Fatalf("got %+v, %v, want partition epoch %d", res.Partition, err, p0.PartitionEpoch+1)
	}

	// Crash the follower: it leads a partition; the others fence it and
	// move its leadership.
	victim := follower
	vid := victim.NodeID()
	before := ctrl.State()
	start := time.Now()
	victim.Close()
	rest := slices.DeleteFunc(slices.Clone(nodes), func(c *Cluster) bool { return c == victim })
	s = sameState(t, rest, "the crashed broker fenced", func(s *State) bool { return s.Brokers[vid].Fenced })
	t.Logf("crashed broker fenced after %v", time.Since(start))
	for i, p := range s.Topics["a"].Partitions {
		old := before.Topics["a"].Partitions[i]
		if p.Leader == vid || p.Leader == NoLeader || p.InISR(vid) || !p.InISR(p.Leader) {
			t.Fatalf("partition %d: got %+v, want a leader other than %d from the ISR, %d out of the ISR", i, p, vid, vid)
		}
		if old.Leader == vid && p.LeaderEpoch != old.LeaderEpoch+1 {
			t.Fatalf("partition %d: got leader epoch %d, want %d", i, p.LeaderEpoch, old.LeaderEpoch+1)
		}
		if p.PartitionEpoch <= old.PartitionEpoch {
			t.Fatalf("partition %d: got partition epoch %d, want above %d", i, p.PartitionEpoch, old.PartitionEpoch)
		}
	}
	if m := memberOf(ctrl, vid); m.Status != "failed" {
		t.Fatalf("got member %+v, want failed", m)
	}

	// Restart it on the same data dir and ports: it comes back registered
	// and unfenced (and does not bootstrap again).
	victim = reopen(t, victim, ctrl.SerfAddr())
	if err := victim.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	nodes = append(rest, victim)
	sameState(t, nodes, "the restarted broker unfenced everywhere", func(s *State) bool { return len(s.Live()) == 3 })

	// Crash the controller: another is elected and fences it.
	cid := ctrl.NodeID()
	start = time.Now()
	ctrl.Close()
	rest = slices.DeleteFunc(slices.Clone(nodes), func(c *Cluster) bool { return c == ctrl })
	newCtrl := controllerOf(t, rest)
	if newCtrl.NodeID() == cid {
		t.Fatalf("got the dead controller as controller")
	}
	s = sameState(t, rest, "the dead controller fenced", func(s *State) bool { return s.Brokers[cid].Fenced })
	t.Logf("controller %d replaced by %d and fenced after %v", cid, newCtrl.NodeID(), time.Since(start))
	for i, p := range s.Topics["a"].Partitions {
		if p.Leader == cid || p.Leader == NoLeader {
			t.Fatalf("partition %d: got %+v, want a live leader", i, p)
		}
	}
	// The survivors still serve Apply, from either.
	for _, c := range rest {
		if _, err := c.Apply(ctx, AllocateProducerIDs{N: 1}); err != nil {
			t.Fatalf("node %d: %v", c.NodeID(), err)
		}
	}
}

func memberOf(c *Cluster, id int32) Member {
	for _, m := range c.Members() {
		if m.ID == id {
			return m
		}
	}
	return Member{}
}

// TestLeaveAndRemove: the controller leaves gracefully (its partitions
// and the controller role move first), then the others remove it.
func TestLeaveAndRemove(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := ctxFor(t, 30*time.Second)
	ctrl := controllerOf(t, nodes)
	if _, err := ctrl.Apply(ctx, CreateTopic{Name: "a", Partitions: 3, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	cid := ctrl.NodeID()
	rest := slices.DeleteFunc(slices.Clone(nodes), func(c *Cluster) bool { return c == ctrl })
	if err := ctrl.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	// Before it stops, its partitions and the controller role have moved.
	s := ctrl.State()
	if !s.Brokers[cid].Fenced {
		t.Fatalf("after Leave: got broker %+v, want fenced", s.Brokers[cid])
	}
	for i, p := range s.Topics["a"].Partitions {
		if p.Leader == cid || p.Leader == NoLeader {
			t.Fatalf("after Leave: partition %d: got %+v, want another leader", i, p)
		}
	}
	if ctrl.IsController() {
		t.Fatalf("after Leave: still the controller")
	}
	ctrl.Close()
	newCtrl := controllerOf(t, rest)
	testutil.EventuallyWithin(t, 10*time.Second, "the member seen as left", func() bool { return memberOf(newCtrl, cid).Status == "left" })
	// A few reconciles later it is still fenced, not registered again.
	time.Sleep(3 * newCtrl.cfg.Timers.ReconcileInterval)
	if !newCtrl.State().Brokers[cid].Fenced {
		t.Fatalf("got broker %+v after leaving, want fenced", newCtrl.State().Brokers[cid])
	}

	// Remove it from a node that is not the controller (forwarded).
	other := rest[0]
	if other == newCtrl {
		other = rest[1]
	}
	if err := other.Remove(ctx, cid); err != nil {
		t.Fatal(err)
	}
	sameState(t, rest, "the broker removed", func(s *State) bool { _, ok := s.Brokers[cid]; return !ok })
	if m := memberOf(other, cid); m.ID == cid {
		t.Fatalf("got member %+v after Remove, want none", m)
	}
	f := newCtrl.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if got := len(f.Configuration().Servers); got != 2 {
		t.Fatalf("got %d raft servers, want 2", got)
	}
	if err := other.Remove(ctx, other.NodeID()); err == nil {
		t.Fatal("removing self: got nil, want an error")
	}
}

func TestSerfKey(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 16)
	cfgA := testConfig(t, 1, 0)
	cfgA.SerfKey = key
	a := open(t, cfgA)
	cfgB := testConfig(t, 2, 5, a.SerfAddr())
	cfgB.SerfKey = key
	b := open(t, cfgB)
	testutil.EventuallyWithin(t, 10*time.Second, "b to join a", func() bool {
		return memberOf(a, 2).Status == "alive" && memberOf(b, 1).Status == "alive"
	})
	cfgC := testConfig(t, 3, 5)
	cfgC.SerfKey = bytes.Repeat([]byte{2}, 16)
	c := open(t, cfgC)
	if n, err := c.serf.Join([]string{a.SerfAddr()}, true); err == nil || n != 0 {
		t.Fatalf("joining with another key: got %d, %v, want an error", n, err)
	}
	cfgD := testConfig(t, 4, 5)
	d := open(t, cfgD)
	if n, err := d.serf.Join([]string{a.SerfAddr()}, true); err == nil || n != 0 {
		t.Fatalf("joining without a key: got %d, %v, want an error", n, err)
	}
	if m := memberOf(a, 3); m.ID != 0 {
		t.Fatalf("got member %+v, want none", m)
	}
	// The refusals are counted, on the member refusing and on the one
	// refused.
	testutil.EventuallyWithin(t, 10*time.Second, "key errors counted", func() bool {
		return promtest.ToFloat64(a.keyErrors) > 0 && promtest.ToFloat64(c.keyErrors) > 0 && promtest.ToFloat64(d.keyErrors) > 0
	})
	if got := promtest.ToFloat64(b.keyErrors); got != 0 {
		t.Fatalf("got %v key errors on a member with the right key, want 0", got)
	}
}

func TestIsKeyError(t *testing.T) {
	for line, want := range map[string]bool{
		"memberlist: Decrypt packet failed: no installed keys could decrypt the message from=127.0.0.1:1":     true,
		"memberlist: Failed to read remote state: Encryption is configured but remote state is not encrypted": true,
		"memberlist: Push/Pull with x failed: remote state is encrypted and encryption is not configured":     true,
		"memberlist: Failed to encrypt local state: boom":                                                     false,
		"serf: EventMemberJoin: fluxo-2 127.0.0.1":                                                            false,
	} {
		if got := isKeyError(line); got != want {
			t.Errorf("isKeyError(%q): got %v, want %v", line, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := testConfig(t, 1, 0)
	if err := good.Validate(); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	for name, f := range map[string]func(*Config){
		"negative id":   func(c *Config) { c.NodeID = -1 },
		"no data dir":   func(c *Config) { c.DataDir = "" },
		"bad key":       func(c *Config) { c.SerfKey = []byte("short") },
		"bad address":   func(c *Config) { c.RaftAddr = "nope" },
		"lease":         func(c *Config) { c.Timers.RaftLeaderLease = 2 * c.Timers.RaftHeartbeat },
		"probe timeout": func(c *Config) { c.Timers.SerfProbeTimeout = c.Timers.SerfProbeInterval },
		"big tags":      func(c *Config) { c.KafkaAddr = strings.Repeat("k", 500) },
	} {
		cfg := good
		f(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: got nil, want an error", name)
		}
	}
	if _, err := Open(Config{}); err == nil {
		t.Fatal("Open of an empty config: got nil, want an error")
	}
}

// TestCloseStopsGoroutines: after Close, the goroutines of the Cluster,
// raft, serf and memberlist are gone.
func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	nodes := startCluster(t, 2)
	if _, err := nodes[1].Apply(ctxFor(t, 10*time.Second), CreateTopic{Name: "a", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for _, c := range nodes {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	testutil.EventuallyNoError(t, "goroutines to end after Close", func() error {
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("got %d goroutines, want %d:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}

// TestCutOffMemberFenced: a member that reports itself cut off from the
// controller (its broker stepped down) is fenced although Serf sees it
// alive, its partitions move, it is not registered again while it keeps
// the tag, and it is once it clears it. The controller ignores its own
// stale tag.
func TestCutOffMemberFenced(t *testing.T) {
	nodes := startCluster(t, 3)
	ctrl := controllerOf(t, nodes)
	var cut *Cluster
	for _, c := range nodes {
		if c != ctrl {
			cut = c
			break
		}
	}
	id := cut.NodeID()
	ctx := ctxFor(t, 30*time.Second)
	if _, err := ctrl.Apply(ctx, CreateTopic{Name: "t", Partitions: 3, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	sameState(t, nodes, "topic t, 3 live brokers", func(s *State) bool { return s.Topics["t"] != nil && len(s.Live()) == 3 })

	ctrl.ReportCutOff(true)
	cut.ReportCutOff(true)
	s := sameState(t, nodes, "the cut-off broker fenced", func(s *State) bool { return s.Brokers[id].Fenced })
	if s.Brokers[ctrl.NodeID()].Fenced {
		t.Fatalf("got the controller fenced for its own cutoff tag, want it live")
	}
	for i, p := range s.Topics["t"].Partitions {
		if p.Leader == id || slices.Contains(p.ISR, id) {
			t.Fatalf("partition %d: got leader %d, ISR %v, want broker %d in neither", i, p.Leader, p.ISR, id)
		}
	}
	if m := memberOf(ctrl, id); m.Status != "alive" {
		t.Fatalf("got serf status %q of the cut-off member, want alive", m.Status)
	}
	// Still tagged: reconciliations (every ReconcileInterval) leave it
	// fenced.
	time.Sleep(3 * FastTimers().ReconcileInterval)
	if !ctrl.State().Brokers[id].Fenced {
		t.Fatalf("got the cut-off broker registered again while it reports itself cut off, want it fenced")
	}
	cut.ReportCutOff(false)
	sameState(t, nodes, "the broker registered again", func(s *State) bool { return !s.Brokers[id].Fenced })
	ctrl.ReportCutOff(false)
}

// The Raft transport replicates without a pipeline: hashicorp/raft's
// pipeline can deadlock when a leader steps down with it full.
func TestRaftReplicatesWithoutPipeline(t *testing.T) {
	nodes := startCluster(t, 2)
	peer := nodes[1]
	_, err := nodes[0].trans.AppendEntriesPipeline(raft.ServerID(strconv.Itoa(int(peer.NodeID()))), raft.ServerAddress(peer.RaftAddr()))
	if !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		t.Fatalf("AppendEntriesPipeline: got %v, want %v", err, raft.ErrPipelineReplicationNotSupported)
	}
}
