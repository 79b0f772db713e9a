package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/benchmarks/internal/hist"
)

// scenario is one produce run followed by one consume run on a fresh topic.
type scenario struct {
	partitions int32
	replicas   int16 // 0 on a single node (one replica, named p<n>-acks<a>); else named rf<r>-acks<a>
	acksAll    bool  // acks=all with idempotence; otherwise acks=1 without
	txn        bool  // acks=all, transactional (named p<n>-txn); read back read_committed
}

func (s scenario) acks() string {
	if s.acksAll {
		return "all"
	}
	return "1"
}

func (s scenario) name() string {
	if s.txn {
		return fmt.Sprintf("p%d-txn", s.partitions)
	}
	if s.replicas > 0 {
		return fmt.Sprintf("rf%d-acks%s", s.replicas, s.acks())
	}
	return fmt.Sprintf("p%d-acks%s", s.partitions, s.acks())
}

// replicationFactor is the topic's replication factor.
func (s scenario) replicationFactor() int16 { return max(s.replicas, 1) }

// limits bound a produce run: it stops at whichever comes first.
type limits struct {
	duration time.Duration
	records  int64 // 0: no count limit
	warmup   int   // records produced and flushed before the clock starts

	txnInterval time.Duration // transactional scenarios: a commit this often
}

// result is what one scenario measured.
type result struct {
	scenario
	records     int64 // acknowledged in the timed part
	valueBytes  int64
	elapsed     time.Duration // first Produce call to the last acknowledgement
	latency     *hist.Hist    // Produce call to promise, per record
	batches     int64         // produce batches written, timed part and warm-up
	batchRecs   int64         // records in those batches
	consumed    int64         // records read back (warm-up included)
	consumeB    int64
	consumeTime time.Duration // client creation to the last record
	txn         txnStats      // transactional scenarios only
}

func (r result) mbps() float64 { return float64(r.valueBytes) / r.elapsed.Seconds() / 1e6 }

func (r result) recordsPerSec() float64 { return float64(r.records) / r.elapsed.Seconds() }

func (r result) consumeMBps() float64 { return float64(r.consumeB) / r.consumeTime.Seconds() / 1e6 }

func (r result) recordsPerBatch() float64 {
	if r.batches == 0 {
		return 0
	}
	return float64(r.batchRecs) / float64(r.batches)
}

// batchHook counts the batches the producer writes.
type batchHook struct{ batches, records atomic.Int64 }

func (h *batchHook) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	h.batches.Add(1)
	h.records.Add(int64(m.NumRecords))
}

// endpoint is where a scenario's producer and consumer connect: seed
// brokers and the options that go with them (TLS, SASL).
type endpoint struct {
	seeds []string
	opts  []kgo.Opt
}

// runScenario creates the topic, waits until every broker in seeds has
// it with all its replicas in sync, produces to it, reads it all back and
// deletes it (so the disk holds one scenario's data at a time).
func runScenario(ctx context.Context, seeds []string, topic string, s scenario, lim limits, pool []byte, valueSize int) (result, error) {
	return runScenarioVia(ctx, seeds, endpoint{seeds: seeds}, topic, s, lim, pool, valueSize)
}

// runScenarioVia is runScenario with the producer and the consumer on ep,
// while the topic is created, checked and deleted through seeds.
func runScenarioVia(ctx context.Context, seeds []string, ep endpoint, topic string, s scenario, lim limits, pool []byte, valueSize int) (result, error) {
	res := result{scenario: s, latency: new(hist.Hist)}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return res, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	cr, err := adm.CreateTopic(ctx, s.partitions, s.replicationFactor(), nil, topic)
	if err == nil {
		err = cr.Err
	}
	if err != nil {
		return res, fmt.Errorf("create topic %s: %w", topic, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		adm.DeleteTopic(dctx, topic)
	}()

	if err := waitTopic(ctx, seeds, topic, s.partitions, int(s.replicationFactor())); err != nil {
		return res, err
	}
	produceFn := produce
	if s.txn {
		produceFn = produceTxn
	}
	if err := produceFn(ctx, ep, topic, s, lim, pool, valueSize, &res); err != nil {
		return res, fmt.Errorf("produce: %w", err)
	}
	var want int64
	if s.txn {
		// The end offsets count the transaction markers too; a
		// read_committed consumer gets every record, all committed.
		want = int64(lim.warmup) + res.records
		ep.opts = append(slices.Clip(ep.opts), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	} else {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return res, fmt.Errorf("list end offsets: %w", err)
		}
		ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	}
	if err := consume(ctx, ep, topic, want, &res); err != nil {
		return res, fmt.Errorf("consume: %w", err)
	}
	return res, nil
}

// produce runs the warm-up, then produces records until the limits are
// reached, and waits for every acknowledgement.
func produce(ctx context.Context, ep endpoint, topic string, s scenario, lim limits, pool []byte, valueSize int, res *result) error {
	hook := new(batchHook)
	opts := []kgo.Opt{
		kgo.SeedBrokers(ep.seeds...),
		kgo.DefaultProduceTopic(topic),
		// The values are random, so compression could only cost time;
		// the baseline's batches are uncompressed too.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.WithHooks(hook),
	}
	opts = append(opts, ep.opts...)
	if !s.acksAll {
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	var (
		failed   atomic.Int64
		firstErr atomic.Pointer[error]
		acked    atomic.Int64
	)
	onErr := func(err error) {
		failed.Add(1)
		firstErr.CompareAndSwap(nil, &err)
	}
	n := 0
	for range lim.warmup {
		cl.Produce(ctx, &kgo.Record{Value: poolValue(pool, n, valueSize)}, func(_ *kgo.Record, err error) {
			if err != nil {
				onErr(err)
			}
		})
		n++
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if failed.Load() > 0 {
		return fmt.Errorf("%d warm-up records failed, first: %w", failed.Load(), *firstErr.Load())
	}

	start := time.Now()
	deadline := start.Add(lim.duration)
	var sent int64
	for ; lim.records == 0 || sent < lim.records; sent++ {
		if sent%256 == 0 && (time.Now().After(deadline) || ctx.Err() != nil) {
			break
		}
		t0 := time.Now()
		cl.Produce(ctx, &kgo.Record{Value: poolValue(pool, n, valueSize)}, func(_ *kgo.Record, err error) {
			now := time.Now()
			if err != nil {
				onErr(err)
				return
			}
			res.latency.Record(now.Sub(t0))
			acked.Add(1)
		})
		n++
	}
	// Flush returns once every promise has been called.
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	res.elapsed = time.Since(start)
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed.Load() > 0 {
		return fmt.Errorf("%d of %d records failed, first: %w", failed.Load(), sent, *firstErr.Load())
	}
	res.records = acked.Load()
	res.valueBytes = res.records * int64(valueSize)
	res.batches = hook.batches.Load()
	res.batchRecs = hook.records.Load()
	return nil
}

// consume reads the topic from the start with a direct (groupless)
// consumer until it has seen want records.
func consume(ctx context.Context, ep endpoint, topic string, want int64, res *result) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(ep.seeds...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, ep.opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for res.consumed < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %d of %d records: %w", res.consumed, want, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("%s[%d]: %w", t, p, err))
		})
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			res.consumed++
			res.consumeB += int64(len(r.Value))
		})
	}
	res.consumeTime = time.Since(start)
	return nil
}
