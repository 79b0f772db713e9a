package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/benchmarks/internal/hist"
)

const (
	// failoverGoal is the goal for the time from killing a
	// partition's leader to the partition's next acknowledged write.
	failoverGoal = 5 * time.Second
	// failoverValueBytes is the size of the failover producer's values:
	// a 12-digit sequence number, padded.
	failoverValueBytes = 100
	// failoverWait bounds each wait of the failover test: for a new
	// leader, for an acknowledgement, for a restarted broker to rejoin.
	failoverWait = time.Minute
	// failoverRampUp and failoverSteady: the producer runs this long
	// before the first kill; its latency is taken over the second part.
	failoverRampUp = 2 * time.Second
	failoverSteady = 8 * time.Second
)

// killResult is what one kill measured.
type killResult struct {
	partition int32
	victim    int32         // the leader killed
	wasCtl    bool          // it was also the controller (the Raft leader)
	newLeader int32         // -1: no broker named another leader within failoverWait
	moved     time.Duration // kill to the first survivor's Metadata naming another leader
	acked     time.Duration // kill to the first ack of a record of the partition produced after the kill; -1: none within failoverWait
	ready     time.Duration // restart to /readyz answering 200
	back      time.Duration // restart to in the ISR of every partition, on every broker
}

// failoverResult is the failover test: every kill, then the check of the
// topic against what the producer had acknowledged.
type failoverResult struct {
	kills   []killResult
	sent    int64
	acked   int64
	failed  int64
	inTopic int64      // records read back
	lost    int64      // acknowledged, not read back
	dup     int64      // read back more than once: the extra copies
	extra   int64      // read back, not acknowledged (failed, or cut short by the final flush)
	steady  *hist.Hist // Produce call to promise, in the steady period before the first kill
}

// ackLog is what the producer's promises reported, and the watch on one
// partition for its first acknowledgement after a kill.
type ackLog struct {
	mu         sync.Mutex
	acked      map[int64]int32 // sequence number -> partition
	failed     int64
	firstErr   error
	steady     *hist.Hist // latency of the records produced from steadyFrom on and acknowledged before the first kill
	steadyTo   time.Time  // the first kill; zero before it
	steadyFrom time.Time

	watchPart  int32
	watchSince time.Time     // zero: no watch
	watchAt    time.Time     // when the watched ack came
	watchHit   chan struct{} // closed when it came
}

// watch arms the watch: the first acknowledgement of a record of
// partition p produced after since closes the channel returned.
func (a *ackLog) watch(p int32, since time.Time) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.watchPart, a.watchSince, a.watchAt, a.watchHit = p, since, time.Time{}, make(chan struct{})
	if a.steadyTo.IsZero() {
		a.steadyTo = since
	}
	return a.watchHit
}

// hit returns when the watched ack came, and disarms the watch.
func (a *ackLog) hit() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	at := a.watchAt
	a.watchSince = time.Time{}
	return at
}

// promise is the callback of the record with sequence number seq,
// produced at produced.
func (a *ackLog) promise(seq int64, produced time.Time) func(*kgo.Record, error) {
	return func(r *kgo.Record, err error) {
		now := time.Now()
		a.mu.Lock()
		defer a.mu.Unlock()
		if err != nil {
			a.failed++
			if a.firstErr == nil {
				a.firstErr = err
			}
			return
		}
		a.acked[seq] = r.Partition
		if !produced.Before(a.steadyFrom) && a.steadyTo.IsZero() {
			a.steady.Record(now.Sub(produced))
		}
		if !a.watchSince.IsZero() && a.watchAt.IsZero() && r.Partition == a.watchPart && !produced.Before(a.watchSince) {
			a.watchAt = now
			close(a.watchHit)
		}
	}
}

// failoverValue is record seq's value: its sequence number in 12 digits,
// padded to failoverValueBytes.
func failoverValue(seq int64) []byte {
	v := fmt.Appendf(make([]byte, 0, failoverValueBytes), "%012d", seq)
	for len(v) < failoverValueBytes {
		v = append(v, '.')
	}
	return v
}

// produceSteady produces rate records per second, round robin over
// partitions, until stop is closed, then flushes (for at most
// failoverWait). It returns how many records it produced.
func produceSteady(ctx context.Context, cl *kgo.Client, rate int, partitions int32, acks *ackLog, stop <-chan struct{}) int64 {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var seq int64
loop:
	for {
		select {
		case <-stop:
			break loop
		case <-ctx.Done():
			break loop
		case now := <-tick.C:
			for due := int64(now.Sub(start).Seconds() * float64(rate)); seq < due; seq++ {
				r := &kgo.Record{Partition: int32(seq % int64(partitions)), Value: failoverValue(seq)}
				cl.Produce(ctx, r, acks.promise(seq, time.Now()))
			}
		}
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failoverWait)
	defer cancel()
	cl.Flush(fctx)
	return seq
}

// runFailover creates a topic with a replica on every broker, produces to
// it steadily, and o.kills times kills the leader of a random partition,
// measures how long the partition goes without acknowledgements, and
// restarts the broker. Then it reads the topic back.
func runFailover(ctx context.Context, c *cluster, o options, stderr io.Writer) (failoverResult, error) {
	var res failoverResult
	const topic = "failover"
	partitions := int32(o.clusterPartitions)
	seeds := c.seeds()

	metas := make([]*metaClient, len(c.nodes))
	for i, b := range c.nodes {
		m, err := newMetaClient(b.KafkaAddr())
		if err != nil {
			return res, err
		}
		defer m.Close()
		metas[i] = m
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return res, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	cr, err := adm.CreateTopic(ctx, partitions, clusterSize, nil, topic)
	if err == nil {
		err = cr.Err
	}
	if err != nil {
		return res, fmt.Errorf("create topic %s: %w", topic, err)
	}
	if err := waitTopic(ctx, seeds, topic, partitions, clusterSize); err != nil {
		return res, err
	}

	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}
	if o.metadataMinAge > 0 {
		opts = append(opts, kgo.MetadataMinAge(o.metadataMinAge))
	}
	if o.clientLog {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(stderr, kgo.LogLevelInfo, func() string {
			return time.Now().Format("15:04:05.000 ")
		})))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return res, err
	}
	defer cl.Close()
	acks := &ackLog{acked: map[int64]int32{}, steady: new(hist.Hist), steadyFrom: time.Now().Add(failoverRampUp)}
	res.steady = acks.steady
	stop := make(chan struct{})
	produced := make(chan int64, 1)
	go func() { produced <- produceSteady(ctx, cl, o.failoverRate, partitions, acks, stop) }()
	stopped := false
	stopProducer := func() {
		if !stopped {
			stopped = true
			close(stop)
			res.sent = <-produced
		}
	}
	defer stopProducer()

	fmt.Fprintf(stderr, "failover: producing %d records/s to %d partitions, %d kills\n", o.failoverRate, partitions, o.kills)
	if err := settle(ctx, failoverRampUp+failoverSteady); err != nil {
		return res, err
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for k := range o.kills {
		kr, err := killOne(ctx, c, metas, acks, topic, int32(rng.IntN(int(partitions))), partitions)
		if err != nil {
			return res, fmt.Errorf("kill %d: %w", k+1, err)
		}
		res.kills = append(res.kills, kr)
		fmt.Fprintf(stderr, "  kill %d: partition %d, leader %d killed (controller: %v); new leader %d in Metadata after %v; next ack after %v; restarted, ready after %v, back in every ISR after %v\n",
			k+1, kr.partition, kr.victim, kr.wasCtl, kr.newLeader, kr.moved.Round(time.Millisecond), kr.acked.Round(time.Millisecond), kr.ready.Round(time.Millisecond), kr.back.Round(time.Millisecond))
		if err := settle(ctx, time.Second); err != nil {
			return res, err
		}
	}
	stopProducer()

	acks.mu.Lock()
	res.acked, res.failed = int64(len(acks.acked)), acks.failed
	firstErr := acks.firstErr
	acked := maps.Clone(acks.acked) // promises cut short by the flush's bound may still run
	acks.mu.Unlock()
	if firstErr != nil {
		fmt.Fprintf(stderr, "  %d records failed, the first with: %v\n", res.failed, firstErr)
	}
	fmt.Fprintf(stderr, "failover: reading the topic back\n")
	if err := readBack(ctx, seeds, topic, acked, &res); err != nil {
		return res, fmt.Errorf("read back: %w", err)
	}
	return res, nil
}

// killOne kills the leader of partition p and measures the failover, then
// restarts the broker and waits until it is back in every ISR.
func killOne(ctx context.Context, c *cluster, metas []*metaClient, acks *ackLog, topic string, p, partitions int32) (killResult, error) {
	kr := killResult{partition: p, victim: -1, newLeader: -1, acked: -1}
	wctx, cancel := context.WithTimeout(ctx, failoverWait)
	defer cancel()
	err := pollUntil(wctx, 50*time.Millisecond, func() bool {
		for _, m := range metas {
			if parts, ctl, err := m.topic(wctx, topic); err == nil && parts[p].leader > 0 {
				kr.victim, kr.wasCtl = parts[p].leader, parts[p].leader == ctl
				return true
			}
		}
		return false
	})
	if err != nil {
		return kr, fmt.Errorf("partition %d has no leader: %w", p, err)
	}
	victim, err := c.node(kr.victim)
	if err != nil {
		return kr, err
	}

	hit := acks.watch(p, time.Now())
	at, err := victim.Kill()
	if err != nil {
		return kr, err
	}
	// Meanwhile, ask the survivors until one names another leader.
	var moved sync.WaitGroup
	moved.Go(func() {
		pollUntil(wctx, 20*time.Millisecond, func() bool {
			for i, m := range metas {
				if int32(i+1) == kr.victim {
					continue
				}
				if parts, _, err := m.topic(wctx, topic); err == nil && parts[p].leader > 0 && parts[p].leader != kr.victim {
					kr.moved, kr.newLeader = time.Since(at), parts[p].leader
					return true
				}
			}
			return false
		})
	})
	select {
	case <-hit:
		kr.acked = acks.hit().Sub(at)
	case <-wctx.Done():
		acks.hit()
	}
	moved.Wait()
	if err := ctx.Err(); err != nil {
		return kr, err
	}

	restart := time.Now()
	if err := victim.start(ctx); err != nil {
		return kr, fmt.Errorf("restart: %w", err)
	}
	kr.ready = time.Since(restart)
	rctx, rcancel := context.WithTimeout(ctx, failoverWait)
	defer rcancel()
	err = pollUntil(rctx, 50*time.Millisecond, func() bool {
		for _, m := range metas {
			if parts, _, err := m.topic(rctx, topic); err != nil || !complete(parts, partitions, clusterSize, kr.victim) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return kr, fmt.Errorf("broker %d not back in the ISR of every partition %v after its restart: %w", kr.victim, failoverWait, err)
	}
	kr.back = time.Since(restart)
	return kr, nil
}

// readBack reads the whole topic with a direct consumer and compares it
// with what was acknowledged.
func readBack(ctx context.Context, seeds []string, topic string, acked map[int64]int32, res *failoverResult) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return err
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	seen := make(map[int64]int, len(acked))
	var bad error
	for res.inTopic < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %d of %d records: %w", res.inTopic, want, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			res.inTopic++
			if len(r.Value) < 12 {
				bad = fmt.Errorf("partition %d offset %d: value %q is not one of ours", r.Partition, r.Offset, r.Value)
				return
			}
			seq, err := strconv.ParseInt(string(r.Value[:12]), 10, 64)
			if err != nil {
				bad = fmt.Errorf("partition %d offset %d: value %q is not one of ours", r.Partition, r.Offset, r.Value)
				return
			}
			seen[seq]++
		})
	}
	if bad != nil {
		return bad
	}
	for seq := range acked {
		if seen[seq] == 0 {
			res.lost++
		}
	}
	for seq, n := range seen {
		if n > 1 {
			res.dup += int64(n - 1)
		}
		if _, ok := acked[seq]; !ok {
			res.extra++
		}
	}
	return nil
}
