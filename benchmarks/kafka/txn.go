package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/benchmarks/internal/harness"
)

// txnStats is what a transactional produce run measured besides a
// result's figures.
type txnStats struct {
	commits int64         // transactions committed in the timed part
	flush   time.Duration // time in Flush before the commits, summed
	end     time.Duration // time in EndTransaction (EndTxn, markers), summed
}

// txnRun is one produce run of the -txn comparison.
type txnRun struct {
	round int
	result
}

// runTxn runs, -rounds times on one core, the idempotent scenario (acks=all)
// and the same scenario with a transactional producer that commits every
// -txn-interval, in turn, and compares each transactional run with the
// idempotent run of its round.
func runTxn(ctx context.Context, o options, stdout, stderr io.Writer) (err error) {
	scenarios, err := parseScenarios(o.txnScenario)
	if err != nil {
		return err
	}
	if len(scenarios) != 1 || !scenarios[0].acksAll {
		return fmt.Errorf("-txn-scenario: want one acks=all scenario, got %q", o.txnScenario)
	}
	idem := scenarios[0]
	txn := idem
	txn.txn = true
	if o.valueSize < 1 || o.valueSize > 512<<10 || o.duration <= 0 || o.rounds < 1 || o.txnInterval <= 0 {
		return fmt.Errorf("-duration and -txn-interval must be positive, -rounds at least 1, -value-bytes between 1 and 512 KiB")
	}
	root, err := os.MkdirTemp(o.dir, "fluxo-kafka-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)

	var b broker
	if o.inProcess {
		fmt.Fprintln(stderr, "starting a core node in process")
		if b, err = startNodeBroker(filepath.Join(root, "data")); err != nil {
			return err
		}
	} else {
		bin := o.fluxo
		if bin == "" {
			fmt.Fprintln(stderr, "building cmd/fluxo")
			if bin, err = harness.BuildFluxo(ctx, root); err != nil {
				return err
			}
		}
		fmt.Fprintln(stderr, "starting fluxo core")
		if b, err = startProcBroker(ctx, bin, filepath.Join(root, "data")); err != nil {
			return err
		}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if serr := b.Stop(sctx); serr != nil && err == nil {
			err = fmt.Errorf("stop broker: %w", serr)
		}
	}()
	fmt.Fprintf(stderr, "broker on %s, data under %s\n", b.KafkaAddr(), root)

	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	seeds := []string{b.KafkaAddr()}
	lim := limits{duration: o.duration, records: o.records, warmup: o.warmup, txnInterval: o.txnInterval}
	pool := newPool()
	var runs []txnRun
	for round := range o.rounds {
		// Odd rounds run the transactional producer second, even ones
		// first, so that neither gains from always following the other.
		order := []scenario{idem, txn}
		if round%2 == 1 {
			order = []scenario{txn, idem}
		}
		for _, s := range order {
			if err := settle(ctx, o.settle); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "round %d, %s: producing for %v\n", round+1, s.name(), o.duration)
			topic := fmt.Sprintf("bench-%d-%s", round, s.name())
			r, err := runScenario(ctx, seeds, topic, s, lim, pool, o.valueSize)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round+1, s.name(), err)
			}
			fmt.Fprintf(stderr, "  produce %.1f MB/s (%d records, %.1f records/batch), p50 %v p99 %v; consume %.1f MB/s\n",
				r.mbps(), r.records, r.recordsPerBatch(), r.latency.Quantile(0.5), r.latency.Quantile(0.99), r.consumeMBps())
			if s.txn {
				fmt.Fprintf(stderr, "  %d commits; mean flush %v, mean EndTransaction %v\n",
					r.txn.commits, r.txn.meanFlush(), r.txn.meanEnd())
			}
			runs = append(runs, txnRun{round: round + 1, result: r})
		}
	}
	if o.cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	printTxnTable(stdout, o, idem, runs)
	return nil
}

func (s txnStats) meanFlush() time.Duration {
	if s.commits == 0 {
		return 0
	}
	return (s.flush / time.Duration(s.commits)).Round(10 * time.Microsecond)
}

func (s txnStats) meanEnd() time.Duration {
	if s.commits == 0 {
		return 0
	}
	return (s.end / time.Duration(s.commits)).Round(10 * time.Microsecond)
}

func printTxnTable(w io.Writer, o options, s scenario, runs []txnRun) {
	broker := "`fluxo core` process"
	if o.inProcess {
		broker = "core node in process"
	}
	fmt.Fprintf(w, "%d partition(s), acks=all, %d B values, %v per run, %s; an idempotent producer and a transactional one committing every %v (read back read_committed), in turn (the idempotent one first in odd rounds, second in even ones), %d rounds. MB = 10^6 bytes of record values.\n\n",
		s.partitions, o.valueSize, o.duration, broker, o.txnInterval, o.rounds)
	fmt.Fprintln(w, "| Round | Producer | Produce MB/s | Records/s | p50 | p99 | Consume MB/s | Records/batch | Commits | Mean flush | Mean EndTransaction | Produce ratio |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var ratios []float64
	idem := map[int]*txnRun{}
	for i := range runs {
		if !runs[i].scenario.txn {
			idem[runs[i].round] = &runs[i]
		}
	}
	for i := range runs {
		r := &runs[i]
		ratio, commits, flush, end := "", "", "", ""
		if r.scenario.txn {
			commits = fmt.Sprint(r.result.txn.commits)
			flush, end = fmtLatency(r.result.txn.meanFlush()), fmtLatency(r.result.txn.meanEnd())
			if base := idem[r.round]; base != nil {
				pr := r.mbps() / base.mbps()
				ratios = append(ratios, pr)
				ratio = fmt.Sprintf("%.2f", pr)
			}
		}
		kind := "idempotent"
		if r.scenario.txn {
			kind = "transactional"
		}
		fmt.Fprintf(w, "| %d | %s | %.1f | %.0f | %s | %s | %.1f | %.1f | %s | %s | %s | %s |\n",
			r.round, kind, r.mbps(), r.recordsPerSec(),
			fmtLatency(r.latency.Quantile(0.5)), fmtLatency(r.latency.Quantile(0.99)),
			r.consumeMBps(), r.recordsPerBatch(), commits, flush, end, ratio)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "transactional / idempotent produce: median %s (over %d rounds).\n\n", spread(ratios), len(ratios))
	fmt.Fprintf(w, "Machine: nproc %d, CPU %s, %s/%s, Linux %s, %s, temp dir on %s.\n",
		runtime.NumCPU(), harness.CPUModel(), runtime.GOOS, runtime.GOARCH, harness.Kernel(), runtime.Version(), harness.FSType(o.dir))
}

// produceTxn is produce with a transactional producer: the warm-up in one
// transaction, then a commit (Flush, then EndTransaction) due every
// lim.txnInterval, each followed at once by the next transaction.
func produceTxn(ctx context.Context, ep endpoint, topic string, s scenario, lim limits, pool []byte, valueSize int, res *result) error {
	hook := new(batchHook)
	opts := []kgo.Opt{
		kgo.SeedBrokers(ep.seeds...),
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.WithHooks(hook),
		kgo.TransactionalID("bench-" + topic),
	}
	opts = append(opts, ep.opts...)
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
	commit := func() error {
		t0 := time.Now()
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		t1 := time.Now()
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		res.txn.flush += t1.Sub(t0)
		res.txn.end += time.Since(t1)
		return nil
	}
	if err := cl.BeginTransaction(); err != nil {
		return err
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
	if err := commit(); err != nil {
		return err
	}
	res.txn = txnStats{}
	if failed.Load() > 0 {
		return fmt.Errorf("%d warm-up records failed, first: %w", failed.Load(), *firstErr.Load())
	}

	start := time.Now()
	deadline := start.Add(lim.duration)
	// Commits are due every lim.txnInterval from the start, the time
	// spent committing included; one that falls behind moves the next
	// one a whole interval on.
	due := start.Add(lim.txnInterval)
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	var sent int64
	for ; lim.records == 0 || sent < lim.records; sent++ {
		if sent%64 == 0 {
			now := time.Now()
			if now.After(deadline) || ctx.Err() != nil {
				break
			}
			if !now.Before(due) {
				if err := commit(); err != nil {
					return err
				}
				res.txn.commits++
				if err := cl.BeginTransaction(); err != nil {
					return err
				}
				due = due.Add(lim.txnInterval)
				if now := time.Now(); due.Before(now) {
					due = now.Add(lim.txnInterval)
				}
			}
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
	if err := commit(); err != nil {
		return err
	}
	res.txn.commits++
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
