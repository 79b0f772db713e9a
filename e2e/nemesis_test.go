//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
	"github.com/fluxo-io/fluxo/internal/nemesis"
)

// The nemesis tests run three fluxo core processes, each in its own
// network namespace (internal/nemesis), under an idempotent acks=all
// producer, and break the network between them with iptables while the
// test process, outside the namespaces, keeps reaching every broker.
// Each scenario ends by healing, reading the whole topic back and
// matching every acknowledged record exactly once.
//
// make e2e runs the short set (FLUXO_NEMESIS unset): one 10 s cut of a
// partition leader, and a leader frozen with SIGSTOP. make nemesis runs
// the full set (FLUXO_NEMESIS=full) and prints the results table. Both
// need root, ip and iptables, and skip without them.

const (
	nemesisTopic      = "nemesis"
	nemesisPartitions = 3
	nemesisRate       = 500 // records per second
)

// nemesisFull reports whether FLUXO_NEMESIS=full asks for the long set.
func nemesisFull() bool { return os.Getenv("FLUXO_NEMESIS") == "full" }

// nemesisCluster is three fluxo core processes in the namespaces of one
// nemesis.Net.
type nemesisCluster struct {
	net   *nemesis.Net
	procs []*coreProc // procs[i-1] runs in node i
	seeds []string
}

// startNemesisCluster builds a network of three namespaces and starts a
// fluxo core in each, listening on the namespace's address with the
// default ports. Cleanup stops the processes, then removes the network.
func startNemesisCluster(t *testing.T, bin string) *nemesisCluster {
	t.Helper()
	if err := nemesis.Check(); err != nil {
		t.Skipf("skipping the network partition tests: %v", err)
	}
	if removed, err := nemesis.Sweep(zerolog.Nop()); err != nil || len(removed) > 0 {
		t.Logf("swept what dead runs left: %v (%v)", removed, err)
	}
	nw, err := nemesis.New(nemesis.DefaultConfig(), zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Errorf("remove the test network: %v", err)
		}
	})
	c := &nemesisCluster{net: nw}
	addr := func(i int, port string) string { return net.JoinHostPort(nw.Addr(i).String(), port) }
	var join []string
	for i := 1; i <= nw.Nodes(); i++ {
		join = append(join, addr(i, "7946"))
	}
	for i := 1; i <= nw.Nodes(); i++ {
		p := &coreProc{fluxoProc: &fluxoProc{name: fmt.Sprintf("fluxo core %d", i), bin: "ip", history: &syncBuffer{}},
			dataDir: t.TempDir(), kafka: addr(i, "9092")}
		p.http = addr(i, "8080")
		p.args = []string{"netns", "exec", nw.Namespace(i), bin, "core", "--node-id", strconv.Itoa(i),
			"--data-dir", p.dataDir, "--kafka-addr", p.kafka, "--http-addr", p.http,
			"--serf-addr", addr(i, "7946"), "--raft-addr", addr(i, "7947"),
			"--join", strings.Join(join, ","), "--bootstrap-expect", strconv.Itoa(nw.Nodes()),
			"--auto-create-topics=false", "--log-level", "info"}
		p.ready = fmt.Sprintf("fluxo core: Kafka on %s, HTTP on %s", p.kafka, p.http)
		c.procs = append(c.procs, p)
		c.seeds = append(c.seeds, p.kafka)
		t.Cleanup(func() {
			p.stopAtEnd(t)
			// FLUXO_NEMESIS_LOGS=DIR keeps every broker's output.
			if dir := os.Getenv("FLUXO_NEMESIS_LOGS"); dir != "" {
				name := fmt.Sprintf("%s-core%d.log", strings.ReplaceAll(t.Name(), "/", "-"), i)
				if err := os.WriteFile(filepath.Join(dir, name), []byte(p.history.String()), 0o644); err != nil {
					t.Error(err)
				}
			}
		})
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.procs))
	for i, p := range c.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.start()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.procs[i].name, err, c.procs[i].history.tail())
		}
	}
	return c
}

// controller asks the cluster which broker is the controller (the Raft
// leader).
func (c *nemesisCluster) controller(t *testing.T, cl *kgo.Client) int32 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		md, err := kadm.NewClient(cl).Metadata(ctx)
		cancel()
		if err == nil && md.Controller > 0 {
			return md.Controller
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the cluster names no controller")
	return -1
}

// others is every node but i.
func (c *nemesisCluster) others(i int) []int {
	var o []int
	for j := 1; j <= c.net.Nodes(); j++ {
		if j != i {
			o = append(o, j)
		}
	}
	return o
}

// ackRecord is one acknowledged record: when it was produced and acked.
type ackRecord struct {
	partition     int32
	offset        int64
	produced, ack time.Time
}

// workload is the producer of a scenario: an idempotent acks=all
// franz-go producer with kgo's defaults but a short MetadataMinAge, at
// nemesisRate records per second, each record's value a unique id.
type workload struct {
	cl       *kgo.Client
	stop     chan struct{}
	done     chan struct{}
	attempts atomic.Int64

	mu     sync.Mutex
	acked  map[string]ackRecord
	failed int
	errs   map[string]int // error text -> count, for the log
}

func startWorkload(t *testing.T, seeds []string) *workload {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	w := &workload{cl: cl, stop: make(chan struct{}), done: make(chan struct{}), acked: map[string]ackRecord{}, errs: map[string]int{}}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		const perTick = nemesisRate / 100
		for seq := 0; ; {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			for range perTick {
				// Keys spread the records over every partition.
				r := &kgo.Record{Topic: nemesisTopic, Key: []byte(fmt.Sprintf("device-%d", seq%64)), Value: []byte(fmt.Sprintf("r%09d", seq))}
				seq++
				w.attempts.Add(1)
				produced := time.Now()
				w.cl.Produce(context.Background(), r, func(r *kgo.Record, err error) { w.ack(r, produced, err) })
			}
		}
	}()
	return w
}

func (w *workload) ack(r *kgo.Record, produced time.Time, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.failed++
		w.errs[err.Error()]++
		return
	}
	w.acked[string(r.Value)] = ackRecord{partition: r.Partition, offset: r.Offset, produced: produced, ack: time.Now()}
}

// firstAcks is, for each partition, how long after since the first
// record produced at or after since was acknowledged; a partition with
// none yet is missing.
func (w *workload) firstAcks(since time.Time) map[int32]time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	first := map[int32]time.Duration{}
	for _, a := range w.acked {
		if a.produced.Before(since) {
			continue
		}
		d := a.ack.Sub(since)
		if f, ok := first[a.partition]; !ok || d < f {
			first[a.partition] = d
		}
	}
	return first
}

// waitWritable waits until every partition has acknowledged a record
// produced at or after since, and returns the longest of those waits:
// how long until the whole topic took writes again.
func (w *workload) waitWritable(t *testing.T, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		first := w.firstAcks(since)
		if len(first) == nemesisPartitions {
			var worst time.Duration
			for _, d := range first {
				worst = max(worst, d)
			}
			return worst
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after %s, partitions with an acknowledged write: %v, want all %d", limit, since.Format("15:04:05.000"), first, nemesisPartitions)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stalls is, for each partition, the longest time between two
// acknowledgements (by when they came) after from, counting the time
// from the last one to until, and when that stall began.
func (w *workload) stalls(from, until time.Time) map[int32][2]time.Time {
	w.mu.Lock()
	times := map[int32][]time.Time{}
	for _, a := range w.acked {
		if !a.ack.Before(from) {
			times[a.partition] = append(times[a.partition], a.ack)
		}
	}
	w.mu.Unlock()
	out := map[int32][2]time.Time{}
	for p := range int32(nemesisPartitions) {
		ts := append(times[p], until)
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		prev, worst := from, [2]time.Time{from, from}
		for _, at := range ts {
			if at.Sub(prev) > worst[1].Sub(worst[0]) {
				worst = [2]time.Time{prev, at}
			}
			prev = at
		}
		out[p] = worst
	}
	return out
}

// finish stops producing and waits for every buffered record's promise.
func (w *workload) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := w.cl.Flush(ctx); err != nil {
		t.Errorf("flush the producer after healing: %v", err)
	}
}

// nemesisResult is one row of the results table.
type nemesisResult struct {
	scenario, faults string
	attempts         int64
	acked, failed    int
	lost, duplicated int
	within1s         int           // acked within a second of Produce
	recovery         time.Duration // worst time to the first ack after a fault began, every partition
	stall            time.Duration // longest time a partition acknowledged nothing
}

func (r nemesisResult) failureRate() float64 {
	if r.attempts == 0 {
		return 0
	}
	return float64(r.failed) / float64(r.attempts)
}

func (r nemesisResult) row() string {
	avail := 0.0
	if r.attempts > 0 {
		avail = 100 * float64(r.within1s) / float64(r.attempts)
	}
	return fmt.Sprintf("| %s | %s | %d | %d | %d | %d (%.2f%%) | %.1f%% | %.1f s | %.1f s |",
		r.scenario, r.faults, r.attempts, r.lost, r.duplicated, r.failed, 100*r.failureRate(), avail, r.recovery.Seconds(), r.stall.Seconds())
}

const nemesisTableHead = "| scenario | faults | records | lost | duplicated | failed (rate) | acked within 1 s | first write after a fault | longest stall |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"

// nemesisRun is one scenario in progress: its cluster, workload and
// what its faults measured.
type nemesisRun struct {
	t          *testing.T
	c          *nemesisCluster
	adm        *kgo.Client
	w          *workload
	recoveries []time.Duration
	forbidden  []string // values that must not be in the topic
}

// leader is the broker leading partition p of the topic.
func (r *nemesisRun) leader(p int32) int {
	return int(leaderOf(r.t, r.adm, nemesisTopic, p))
}

// fault runs apply at once, measures how long until every partition took
// a write again, keeps the fault for hold, heals and waits until every
// partition takes writes again.
func (r *nemesisRun) fault(what string, hold time.Duration, apply func() error) {
	t := r.t
	t.Helper()
	if err := apply(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	at := time.Now() // every rule is in place
	writable := r.w.waitWritable(t, at, hold+time.Minute)
	r.recoveries = append(r.recoveries, writable)
	t.Logf("%s: every partition took a write %v after it began", what, writable.Round(time.Millisecond))
	if rest := hold - time.Since(at); rest > 0 {
		time.Sleep(rest)
	}
	r.heal(what)
}

// heal removes every rule and waits until every partition takes writes.
func (r *nemesisRun) heal(what string) {
	t := r.t
	t.Helper()
	healed := time.Now()
	if err := r.c.net.Heal(); err != nil {
		t.Fatalf("heal after %s: %v", what, err)
	}
	d := r.w.waitWritable(t, healed, time.Minute)
	t.Logf("%s healed: every partition took a write %v later", what, d.Round(time.Millisecond))
}

// nemesisScenario is a named fault schedule.
type nemesisScenario struct {
	name, faults string
	full         bool // only in the full set
	maxFailures  float64
	run          func(r *nemesisRun)
}

// nemesisScenarios is the set; the short one keeps those with full false.
func nemesisScenarios() []nemesisScenario {
	cutHold, cuts := 10*time.Second, 1
	if nemesisFull() {
		cutHold, cuts = 30*time.Second, 2
	}
	return []nemesisScenario{
		{name: "leader-cut", faults: fmt.Sprintf("leader of partition 0 cut off from the other brokers (clients still reach it), %d × %v", cuts, cutHold),
			maxFailures: 0.15,
			run: func(r *nemesisRun) {
				for k := range cuts {
					if k > 0 {
						time.Sleep(10 * time.Second)
					}
					l := r.leader(0)
					r.fault(fmt.Sprintf("cut %d: broker %d, leader of partition 0, isolated", k+1, l), cutHold, func() error { return r.c.net.Isolate(l) })
				}
			}},
		{name: "controller-cut", faults: "controller (Raft leader) cut off, 30 s", full: true,
			run: func(r *nemesisRun) {
				l := int(r.c.controller(r.t, r.adm))
				r.fault(fmt.Sprintf("controller %d isolated", l), 30*time.Second, func() error { return r.c.net.Isolate(l) })
			}},
		{name: "one-way", faults: "leader of partition 0 drops every packet from the other brokers (its own still go out), 30 s", full: true,
			run: func(r *nemesisRun) {
				l := r.leader(0)
				r.fault(fmt.Sprintf("broker %d drops inbound", l), 30*time.Second, func() error { return r.c.net.DropInbound(l, r.c.others(l)...) })
			}},
		{name: "bridge", faults: "brokers 1 and 3 cannot see each other, both see 2, 30 s", full: true,
			run: func(r *nemesisRun) {
				r.fault("1 and 3 cut", 30*time.Second, func() error { return r.c.net.Cut(1, 3) })
			}},
		{name: "flapping", faults: "a random broker isolated for 2–5 s, then healed for 2–5 s, for 60 s", full: true,
			run: func(r *nemesisRun) {
				rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 17))
				end := time.Now().Add(time.Minute)
				for k := 1; time.Now().Before(end); k++ {
					victim := 1 + rng.IntN(r.c.net.Nodes())
					if err := r.c.net.Isolate(victim); err != nil {
						r.t.Fatal(err)
					}
					at := time.Now()
					time.Sleep(time.Duration(2000+rng.IntN(3000)) * time.Millisecond)
					if err := r.c.net.Heal(); err != nil {
						r.t.Fatal(err)
					}
					time.Sleep(time.Duration(2000+rng.IntN(3000)) * time.Millisecond)
					// A flap shorter than failure detection may leave some
					// partition waiting; count how long each took to write
					// again after its flap began.
					first := r.w.firstAcks(at)
					worst := time.Duration(0)
					for _, d := range first {
						worst = max(worst, d)
					}
					r.recoveries = append(r.recoveries, worst)
					r.t.Logf("flap %d: broker %d isolated; partitions writable again after %v", k, victim, first)
				}
				r.heal("flapping")
			}},
		{name: "packet-loss", faults: "20% of packets between brokers dropped at random, each way, 30 s", full: true,
			run: func(r *nemesisRun) {
				r.fault("random loss", 30*time.Second, func() error { return r.c.net.Loss(0.2) })
			}},
		{name: "paused-leader", faults: "leader of partition 0 frozen with SIGSTOP until another leads, then a produce sent to it before SIGCONT",
			run: func(r *nemesisRun) { r.pausedLeader() }},
	}
}

// pausedLeader freezes the leader of partition 0 with SIGSTOP (as a
// partition would cut it off, but the client's connection stays up): the
// controller fences it and another replica takes over. A produce with
// acks=all that reached the frozen broker's socket meanwhile must not be
// acknowledged when it wakes up, and its record must not be in the topic
// in the end.
func (r *nemesisRun) pausedLeader() {
	t := r.t
	leader := r.leader(0)
	frozen := r.c.procs[leader-1]
	at := time.Now()
	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	continued := false
	defer func() {
		if !continued {
			frozen.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	r.recoveries = append(r.recoveries, r.w.waitWritable(t, at, time.Minute))
	deadline := time.Now().Add(30 * time.Second)
	for r.leader(0) == leader {
		if time.Now().After(deadline) {
			t.Fatalf("broker %d frozen: no new leader of partition 0 within 30s", leader)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A produce straight to the frozen broker: the kernel accepts the
	// connection and buffers the request until it runs again.
	direct, err := kgo.NewClient(kgo.SeedBrokers(frozen.kafka), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	const value = "to-the-frozen-leader"
	r.forbidden = append(r.forbidden, value)
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 3000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = nemesisTopic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = commitlog.AppendBatch(nil, commitlog.NoProducer(time.Now().UnixMilli()), []kmsg.Record{{Value: []byte(value)}})
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	type answer struct {
		resp kmsg.Response
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := direct.SeedBrokers()[0].Request(ctx, req)
		answered <- answer{resp, err}
	}()
	time.Sleep(500 * time.Millisecond) // the request is in the socket
	frozen.cmd.Process.Signal(syscall.SIGCONT)
	continued = true
	a := <-answered
	if a.err == nil {
		code := a.resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
		if code == 0 {
			t.Fatalf("the frozen former leader acknowledged an acks=all write after waking up")
		}
		t.Logf("the frozen former leader answered %v", kerr.ErrorForCode(code))
	} else {
		t.Logf("the frozen former leader answered no produce: %v", a.err)
	}
	d := r.w.waitWritable(t, time.Now(), time.Minute)
	t.Logf("broker %d woke up: every partition took a write %v later", leader, d.Round(time.Millisecond))
}

// TestNemesis runs the network partition scenarios (the short set, or
// the full one with FLUXO_NEMESIS=full) and logs the results table; with
// FLUXO_NEMESIS_REPORT=FILE it also writes the table there.
func TestNemesis(t *testing.T) {
	if err := nemesis.Check(); err != nil {
		t.Skipf("skipping the network partition tests: %v", err)
	}
	bin := buildFluxo(t)
	var results []nemesisResult
	for _, sc := range nemesisScenarios() {
		if sc.full && !nemesisFull() {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			res := runNemesisScenario(t, bin, sc)
			res.scenario, res.faults = sc.name, sc.faults
			results = append(results, res)
			t.Log(res.row())
		})
	}
	table := nemesisTableHead + "\n"
	for _, r := range results {
		table += r.row() + "\n"
	}
	t.Logf("network partitions:\n%s", table)
	if f := os.Getenv("FLUXO_NEMESIS_REPORT"); f != "" {
		if err := os.WriteFile(f, []byte(table), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// runNemesisScenario starts a cluster in namespaces, creates the topic
// (RF 3, min.insync.replicas 2), produces for a few seconds, runs the
// scenario's faults, heals, and checks the topic against the
// acknowledgements.
func runNemesisScenario(t *testing.T, bin string, sc nemesisScenario) nemesisResult {
	c := startNemesisCluster(t, bin)
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.seeds...), kgo.MetadataMinAge(250*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	minISR := "2"
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, nemesisPartitions, 3, map[string]*string{"min.insync.replicas": &minISR}, nemesisTopic); err != nil {
		t.Fatal(err)
	}
	w := startWorkload(t, c.seeds)
	start := time.Now()
	w.waitWritable(t, start, time.Minute)
	time.Sleep(3 * time.Second)
	r := &nemesisRun{t: t, c: c, adm: adm, w: w}
	faults := time.Now()
	sc.run(r)
	time.Sleep(2 * time.Second) // writes after the last heal
	healed := time.Now()
	w.finish(t)

	w.mu.Lock()
	res := nemesisResult{attempts: w.attempts.Load(), acked: len(w.acked), failed: w.failed}
	for _, a := range w.acked {
		if a.ack.Sub(a.produced) <= time.Second {
			res.within1s++
		}
	}
	errs := maps2lines(w.errs)
	w.mu.Unlock()
	if errs != "" {
		t.Logf("produce errors:\n%s", errs)
	}
	for _, d := range r.recoveries {
		res.recovery = max(res.recovery, d)
	}
	for p, st := range w.stalls(faults, healed) {
		d := st[1].Sub(st[0])
		res.stall = max(res.stall, d)
		t.Logf("partition %d: longest stall %v, from %v to %v after the faults began", p, d.Round(time.Millisecond),
			st[0].Sub(faults).Round(time.Millisecond), st[1].Sub(faults).Round(time.Millisecond))
	}
	res.lost, res.duplicated = checkNemesisTopic(t, c.seeds, w, r.forbidden)
	t.Logf("%s: %d attempts, %d acknowledged, %d failed, %d lost, %d duplicated; first write after a fault %v",
		sc.name, res.attempts, res.acked, res.failed, res.lost, res.duplicated, r.recoveries)
	if res.lost != 0 || res.duplicated != 0 {
		t.Errorf("lost %d, duplicated %d: want 0 and 0", res.lost, res.duplicated)
	}
	if sc.maxFailures > 0 && res.failureRate() > sc.maxFailures {
		t.Errorf("produce failures: got %d of %d (%.1f%%), want at most %.0f%%", res.failed, res.attempts, 100*res.failureRate(), 100*sc.maxFailures)
	}
	return res
}

// maps2lines prints an error count map, most frequent first.
func maps2lines(m map[string]int) string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int { return b.v - a.v })
	var b strings.Builder
	for _, e := range all {
		fmt.Fprintf(&b, "%6d  %s\n", e.v, e.k)
	}
	return b.String()
}

// checkNemesisTopic waits until every partition's end offset reaches the
// acknowledged records (a new leader learns its followers' ends a moment
// after it takes over), reads the whole topic from the start
// (read_uncommitted) and returns how many acknowledged records are
// missing and how many records are there more than once. A forbidden
// value in the topic fails the test.
func checkNemesisTopic(t *testing.T, seeds []string, w *workload, forbidden []string) (lost, dup int) {
	t.Helper()
	rd, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(nemesisTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	end := map[int32]int64{}
	w.mu.Lock()
	for _, a := range w.acked {
		end[a.partition] = max(end[a.partition], a.offset+1)
	}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var ends kadm.ListedOffsets
	for {
		ends, err = kadm.NewClient(rd).ListEndOffsets(ctx, nemesisTopic)
		behind := ""
		if err == nil {
			ends.Each(func(o kadm.ListedOffset) {
				if o.Err != nil || o.Offset < end[o.Partition] {
					behind += fmt.Sprintf(" %d: end %d (%v), acknowledged up to %d;", o.Partition, o.Offset, o.Err, end[o.Partition])
				}
			})
		}
		if err == nil && behind == "" {
			break
		}
		if ctx.Err() != nil {
			t.Errorf("after a minute, partitions behind their acknowledged records: %v%s", err, behind)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	seen := map[string]int{}
	for n := int64(0); n < total; {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records back", n, total)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			seen[string(r.Value)]++
		})
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for v, a := range w.acked {
		if seen[v] == 0 {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged %s (partition %d offset %d) is missing", v, a.partition, a.offset)
			}
		}
	}
	for v, n := range seen {
		if n > 1 {
			dup += n - 1
			if dup <= 5 {
				t.Errorf("%s is in the topic %d times", v, n)
			}
		}
	}
	for _, v := range forbidden {
		if seen[v] > 0 {
			t.Errorf("%s is in the topic: got %d copies, want none", v, seen[v])
		}
	}
	return lost, dup
}
