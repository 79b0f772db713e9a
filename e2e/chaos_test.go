//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// chaosKills is how many times TestChaosKillLeaders kills a leader:
// FLUXO_CHAOS_KILLS (make chaos sets 10), 3 by default so that make e2e
// stays short.
func chaosKills(t *testing.T) int {
	if v := os.Getenv("FLUXO_CHAOS_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("FLUXO_CHAOS_KILLS=%q: want a positive number", v)
		}
		return n
	}
	return 3
}

// startCoreCluster starts n fluxo core processes forming one cluster, with
// the default Serf and Raft timers, and stops them when the test ends.
func startCoreCluster(t *testing.T, bin string, n int) []*coreProc {
	t.Helper()
	return startCoreClusterWith(t, bin, n, func(c *coreProc) []string { return []string{"--kafka-addr", c.kafka} })
}

// startCoreClusterWith is startCoreCluster with the Kafka listener flags
// that listeners gives each broker (c.kafka is its client address).
func startCoreClusterWith(t *testing.T, bin string, n int, listeners func(c *coreProc) []string) []*coreProc {
	t.Helper()
	serf := make([]string, n)
	for i := range serf {
		serf[i] = freeAddr(t)
	}
	procs := make([]*coreProc, n)
	for i := range procs {
		c := &coreProc{fluxoProc: &fluxoProc{name: fmt.Sprintf("fluxo core %d", i+1), bin: bin, history: &syncBuffer{}}, dataDir: t.TempDir()}
		c.kafka, c.http = freeAddr(t), freeAddr(t)
		c.args = []string{"core", "--node-id", strconv.Itoa(i + 1), "--data-dir", c.dataDir,
			"--http-addr", c.http,
			"--serf-addr", serf[i], "--raft-addr", freeAddr(t),
			"--join", strings.Join(serf, ","), "--bootstrap-expect", strconv.Itoa(n),
			"--auto-create-topics=false", "--log-level", "info"}
		c.args = append(c.args, listeners(c)...)
		c.ready = fmt.Sprintf("fluxo core: Kafka on %s, HTTP on %s", c.kafka, c.http)
		procs[i] = c
		t.Cleanup(func() { c.stopAtEnd(t) })
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, c := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.start()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v\n%s", procs[i].name, err, procs[i].history.tail())
		}
	}
	return procs
}

// ackLog is what the producers know: per partition, the values acked, in
// the order their promises ran (for one producer, the log's order).
type ackLog struct {
	mu     sync.Mutex
	acked  map[string]int32 // value -> partition
	last   map[int32]time.Time
	end    map[int32]int64 // partition -> highest acknowledged offset + 1
	failed int
}

func (a *ackLog) ack(r *kgo.Record, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.failed++
		return
	}
	a.acked[string(r.Value)] = r.Partition
	a.last[r.Partition] = time.Now()
	a.end[r.Partition] = max(a.end[r.Partition], r.Offset+1)
}

// firstAckAfter waits until partition p has an ack after since and
// returns how long after since it came.
func (a *ackLog) firstAckAfter(p int32, since time.Time, limit time.Duration) (time.Duration, bool) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		last := a.last[p]
		a.mu.Unlock()
		if last.After(since) {
			return last.Sub(since), true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, false
}

// TestChaosKillLeaders: three fluxo core processes, secured as a site
// runs them (mutual TLS between brokers, SASL_SSL SCRAM for clients, the
// authorizer on); idempotent acks=all
// producers write without pause to a topic with 6 partitions and 3
// replicas while a consumer group reads it; the leader of a random
// partition is killed with SIGKILL and restarted, again and again. In the
// end every acknowledged record is in the topic exactly once, each
// producer's records in order per partition, and the group kept reading.
func TestChaosKillLeaders(t *testing.T) {
	kills := chaosKills(t)
	bin := buildFluxo(t)
	site := startSecureSite(t, bin, 3)
	procs := site.procs
	sec := site.addUser(t, "chaos", "chaos-secret", []string{"chaos"}, []string{"chaos-readers"})
	seeds := func() []string {
		var out []string
		for _, c := range procs {
			out = append(out, c.kafka)
		}
		return out
	}
	adm, err := kgo.NewClient(sec.opts(kgo.SeedBrokers(seeds()...))...)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "chaos"
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, 6, 3, nil, topic); err != nil {
		t.Fatal(err)
	}

	acks := &ackLog{acked: map[string]int32{}, last: map[int32]time.Time{}, end: map[int32]int64{}}
	const producers = 2
	stop := make(chan struct{})
	var pwg sync.WaitGroup
	var sent atomic.Int64
	for pi := range producers {
		cl, err := kgo.NewClient(sec.opts(kgo.SeedBrokers(seeds()...), kgo.ProducerLinger(5*time.Millisecond))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					cl.Flush(context.Background())
					return
				default:
				}
				r := &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("device-%d", seq%48)), Value: []byte(fmt.Sprintf("p%d-%08d", pi, seq))}
				sent.Add(1)
				cl.Produce(context.Background(), r, acks.ack)
				if seq%200 == 199 {
					time.Sleep(10 * time.Millisecond) // bounded load
				}
			}
		}()
	}

	var consumed atomic.Int64
	gctx, gcancel := context.WithCancel(context.Background())
	defer gcancel()
	group, err := kgo.NewClient(sec.opts(kgo.SeedBrokers(seeds()...), kgo.ConsumerGroup("chaos-readers"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer group.Close()
	gdone := make(chan struct{})
	go func() {
		defer close(gdone)
		for gctx.Err() == nil {
			fs := group.PollFetches(gctx)
			consumed.Add(int64(fs.NumRecords()))
		}
	}()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var failovers []time.Duration
	time.Sleep(2 * time.Second)
	for k := range kills {
		time.Sleep(time.Duration(500+rng.IntN(2000)) * time.Millisecond)
		p := int32(rng.IntN(6))
		leader := leaderOf(t, adm, topic, p)
		victim := procs[leader-1]
		before := consumed.Load()
		at := time.Now()
		victim.kill()
		took, ok := acks.firstAckAfter(p, at, 30*time.Second)
		if !ok {
			t.Fatalf("kill %d: partition %d took no acknowledged write within 30s of killing its leader %d", k+1, p, leader)
		}
		failovers = append(failovers, took)
		t.Logf("kill %d: leader %d of partition %d; next acknowledged write %v later", k+1, leader, p, took.Round(time.Millisecond))
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond)
		victim.mustStart(t)
		if consumed.Load() == before {
			deadline := time.Now().Add(30 * time.Second)
			for consumed.Load() == before && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if consumed.Load() == before {
				t.Fatalf("kill %d: the consumer group read nothing in the 30s after it", k+1)
			}
		}
	}
	close(stop)
	pwg.Wait()

	// Read the whole topic back with a direct consumer.
	acks.mu.Lock()
	want := len(acks.acked)
	failed := acks.failed
	acks.mu.Unlock()
	rd, err := kgo.NewClient(sec.opts(kgo.SeedBrokers(seeds()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	// Every acknowledged record is below its partition's high watermark
	// on the leader that acknowledged it; a leader elected since may
	// learn the followers' log ends (and so its high watermark) a moment
	// later. Read once every partition's end has come up to the highest
	// acknowledged offset; one that does not within a minute lost records.
	lctx, lcancel := context.WithTimeout(context.Background(), time.Minute)
	defer lcancel()
	radm := kadm.NewClient(rd)
	var ends kadm.ListedOffsets
	settle := time.Now()
	for {
		ends, err = radm.ListEndOffsets(lctx, topic)
		if err != nil && lctx.Err() != nil {
			t.Fatalf("list end offsets: %v", err)
		}
		behind := ""
		if err == nil {
			acks.mu.Lock()
			ends.Each(func(o kadm.ListedOffset) {
				if o.Err != nil || o.Offset < acks.end[o.Partition] {
					behind += fmt.Sprintf(" %d: end %d (%v), acknowledged up to %d;", o.Partition, o.Offset, o.Err, acks.end[o.Partition])
				}
			})
			acks.mu.Unlock()
		}
		if err == nil && behind == "" {
			break
		}
		if lctx.Err() != nil {
			t.Errorf("after a minute, partitions behind their acknowledged records:%s", behind)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("end offsets reached the acknowledged ones %v after the producers stopped", time.Since(settle).Round(time.Millisecond))
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	seen := map[string]int{}
	order := map[string][]int{} // producer/partition -> sequence numbers in log order
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	for n := int64(0); n < total; {
		fs := rd.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("read %d of %d records back", n, total)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			v := string(r.Value)
			seen[v]++
			seq, _ := strconv.Atoi(v[3:])
			k := fmt.Sprintf("%s/%d", v[:2], r.Partition)
			order[k] = append(order[k], seq)
		})
	}
	lost, dup := 0, 0
	acks.mu.Lock()
	for v, p := range acks.acked {
		if seen[v] == 0 {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged %s (partition %d) is missing", v, p)
			}
		}
	}
	acks.mu.Unlock()
	for v, c := range seen {
		if c > 1 {
			dup += c - 1
			if dup <= 5 {
				t.Errorf("%s is in the topic %d times", v, c)
			}
		}
	}
	for k, seqs := range order {
		if !sort.IntsAreSorted(seqs) {
			t.Errorf("%s: records out of order", k)
		}
	}
	gcancel()
	<-gdone
	slices.Sort(failovers)
	var sum time.Duration
	for _, d := range failovers {
		sum += d
	}
	report := fmt.Sprintf("chaos: %d kills; sent %d, acked %d, not acked %d, in topic %d, lost %d, duplicated %d; group read %d; kill to next acked write: median %v, max %v, mean %v",
		kills, sent.Load(), want, failed, total, lost, dup, consumed.Load(),
		failovers[len(failovers)/2].Round(time.Millisecond), failovers[len(failovers)-1].Round(time.Millisecond), (sum / time.Duration(len(failovers))).Round(time.Millisecond))
	t.Log(report)
	if dir := os.Getenv("FLUXO_CHAOS_REPORT"); dir != "" {
		os.WriteFile(filepath.Join(dir, "chaos.txt"), []byte(report+"\n"), 0o644)
	}
	if lost != 0 || dup != 0 {
		t.Fatalf("lost %d, duplicated %d: want 0 and 0", lost, dup)
	}
}

// leaderOf asks the cluster which broker leads partition p.
func leaderOf(t *testing.T, cl *kgo.Client, topic string, p int32) int32 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		md, err := kadm.NewClient(cl).Metadata(ctx, topic)
		cancel()
		if err == nil {
			if pd, ok := md.Topics[topic].Partitions[p]; ok && pd.Leader >= 0 {
				return pd.Leader
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("partition %d has no leader", p)
	return -1
}

// clusterSecurity is what a client of a secured cluster needs: the TLS
// configuration trusting the site's CA and its SCRAM credentials.
type clusterSecurity struct {
	tls        *tls.Config
	user, pass string
}

// opts returns the client options of a SCRAM-SHA-512 user over TLS
// followed by opts.
func (s clusterSecurity) opts(opts ...kgo.Opt) []kgo.Opt {
	return append([]kgo.Opt{kgo.DialTLSConfig(s.tls.Clone()),
		kgo.SASL(scram.Auth{User: s.user, Pass: s.pass}.AsSha512Mechanism())}, opts...)
}
