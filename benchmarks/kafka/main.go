// Command kafka measures Kafka produce and consume against a real `fluxo
// core` process, with franz-go's kgo client, and compares every produce
// rate with the segment log's raw append rate measured in the same run.
//
// It builds cmd/fluxo, starts `fluxo core` on free loopback ports with its
// data in a temporary directory, and waits for /readyz. Each scenario
// (1 or 8 partitions; acks=1, or acks=all with idempotence) creates a
// topic, produces 1 KiB random values from one goroutine for a fixed time
// or count, then reads the whole topic back with a direct (groupless)
// consumer, then deletes the topic. The producer keeps kgo's defaults (10
// ms linger, batches up to 1 MB, 50 000 records buffered) except for
// compression, which is off: the values are incompressible. Latency is
// taken per record from the Produce call to its promise; the producer is
// never throttled, so it is mostly time spent in the client's buffer.
//
// The baseline then appends batches of the same values, with as many
// records per batch as the acks=1 producers sent on average, straight to a
// commitlog.Log (DefaultConfig, no fsync) in the same temporary directory,
// with the broker idle. The broker is stopped with SIGTERM at the end, and
// the whole run is bounded by -timeout.
//
// With -broker-addr the scenarios run against a broker this program did
// not start (benchmarks/peers points it at kfake), and -baseline 0 skips
// the baseline; -json writes the scenarios' figures for programs.
//
// With -security (security.go) it starts one core with two listeners,
// PLAINTEXT and SASL_SSL (SCRAM-SHA-512 over TLS, the authorizer checking
// the SCRAM user's ACLs), creates the SCRAM user, and runs one scenario
// (acks=all, one partition by default) -rounds times over each listener,
// alternating PLAINTEXT and SASL_SSL, so that each SASL_SSL run is
// compared with the PLAINTEXT run next to it; the table gives each ratio
// and their median and range.
//
// With -txn (txn.go) it runs one acks=all scenario (-txn-scenario, one
// partition by default) -rounds times on one core, each round an
// idempotent producer and a transactional one (kgo.TransactionalID, second
// in odd rounds, first in even ones) that
// flushes and commits every -txn-interval (100 ms) and begins the next
// transaction at once; the transactional run is read back read_committed.
// The table gives each round's ratio, their median and range, and the
// transactional runs' commits and mean time in Flush and EndTransaction.
//
// With -cluster it runs a cluster instead (cluster.go, failover.go): three
// `fluxo core` processes joined into one cluster with the default Serf and
// Raft timers, each with its own ports and data directory. The same
// produce and consume runs go against topics of 6 partitions, RF 1 with
// acks=1 and RF 3 with acks=all, and are compared with each other. Then
// the failover test: an idempotent acks=all producer writes steadily to a
// topic with 6 partitions and 3 replicas, the leader of a random partition
// is killed with SIGKILL and restarted, -kills times, each time measuring
// the time from the kill to the partition's next acknowledged write; in
// the end the topic is read back against every acknowledgement.
//
// With -many it compares one `fluxo core` process with a disk-backed
// kfake process over many partitions (many.go): produce throughput, disk
// and open files after a fill and an idle time, restart after SIGKILL,
// and a start with 10,000 partitions.
//
// The tables go to stdout in markdown; progress goes to stderr.
//
//	go run ./benchmarks/kafka
//	go run ./benchmarks/kafka -duration 5s -baseline 2s
//	go run ./benchmarks/kafka -in-process -cpuprofile cpu.out -scenarios p1-acks1
//	go run ./benchmarks/kafka -security -duration 10s -settle 5s -rounds 3
//	go run ./benchmarks/kafka -txn -duration 10s -settle 5s -rounds 3
//	go run ./benchmarks/kafka -cluster
//	go run ./benchmarks/kafka -many -duration 10s -settle 5s
//	go run ./benchmarks/kafka -cluster -cluster-scenarios= -metadata-min-age 250ms
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/fluxo-io/fluxo/benchmarks/internal/harness"
)

// options are the command line.
type options struct {
	duration        time.Duration
	records         int64
	warmup          int
	baseline        time.Duration
	baselineRecords int
	settle          time.Duration
	valueSize       int
	scenarios       string
	dir             string
	fluxo           string
	inProcess       bool
	cpuprofile      string
	timeout         time.Duration

	cluster           bool
	clusterScenarios  string
	clusterPartitions int
	kills             int
	failoverRate      int
	metadataMinAge    time.Duration
	clientLog         bool

	security         bool
	securityScenario string
	rounds           int

	many           bool
	manyPartitions int
	manyFill       int64
	manyIdle       time.Duration
	manyStart      int

	brokerAddr string
	json       string

	txn         bool
	txnScenario string
	txnInterval time.Duration
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "produce time per scenario")
	flag.Int64Var(&o.records, "records", 0, "records per scenario (0: no limit; the run stops at -duration or -records, whichever comes first)")
	flag.IntVar(&o.warmup, "warmup", 5000, "records produced and flushed before each scenario's clock starts")
	flag.DurationVar(&o.baseline, "baseline", 5*time.Second, "time of the raw append baseline")
	flag.IntVar(&o.baselineRecords, "baseline-records", 0, "records per baseline batch (0: the mean of the producer's batches in the acks=1 scenarios)")
	flag.DurationVar(&o.settle, "settle", 30*time.Second, "pause before each scenario and before the baseline, so that each starts after the memory the previous one freed has gone back to the host")
	flag.IntVar(&o.valueSize, "value-bytes", 1024, "size of each record value")
	flag.StringVar(&o.scenarios, "scenarios", "p1-acks1,p8-acks1,p1-acksall,p8-acksall", "comma-separated scenarios to run, named p<partitions>-acks<1|all>")
	flag.StringVar(&o.dir, "dir", os.TempDir(), "parent of the temporary directory holding the broker's data and the baseline's log")
	flag.StringVar(&o.fluxo, "fluxo", "", "fluxo binary to run (default: build ./cmd/fluxo into the temporary directory)")
	flag.BoolVar(&o.inProcess, "in-process", false, "run the core node in this process instead of as a fluxo core process (for -cpuprofile)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the produce and consume runs to this file")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "bound on the whole run")
	flag.BoolVar(&o.cluster, "cluster", false, "instead of the single-node scenarios and the baseline, start 3 fluxo core processes as one cluster and run the -cluster-scenarios, then the failover test")
	flag.StringVar(&o.clusterScenarios, "cluster-scenarios", "rf1-acks1,rf3-acksall", "with -cluster: comma-separated scenarios, named rf<replicas>-acks<1|all>; ratios are to the first (empty: failover test only)")
	flag.IntVar(&o.clusterPartitions, "cluster-partitions", 6, "with -cluster: partitions of every topic")
	flag.IntVar(&o.kills, "kills", 5, "with -cluster: partition leaders killed in the failover test (0: no failover test)")
	flag.IntVar(&o.failoverRate, "failover-rate", 2000, "with -cluster: records per second the failover test's producer sends")
	flag.DurationVar(&o.metadataMinAge, "metadata-min-age", 0, "with -cluster: kgo.MetadataMinAge of the failover test's producer (0: kgo's default, 5s)")
	flag.BoolVar(&o.clientLog, "client-log", false, "with -cluster: log what the failover test's producer does (kgo, info level) to stderr")
	flag.BoolVar(&o.security, "security", false, "instead of the single-node scenarios and the baseline, run -security-scenario -rounds times over each of two listeners of one core, PLAINTEXT and SASL_SSL (SCRAM-SHA-512, ACLs), alternating, and compare them")
	flag.StringVar(&o.securityScenario, "security-scenario", "p1-acksall", "with -security: the scenario run over both listeners")
	flag.IntVar(&o.rounds, "rounds", 3, "with -security: rounds, each a PLAINTEXT run then a SASL_SSL run; with -many: rounds of the produce run and of the restart; with -txn: rounds, each an idempotent run then a transactional run")
	flag.BoolVar(&o.many, "many", false, "instead of the single-node scenarios and the baseline, run the many-partitions comparison (many.go) of a fluxo core process with a disk-backed kfake process")
	flag.IntVar(&o.manyPartitions, "many-partitions", 1000, "with -many: partitions of the produce and fill topics")
	flag.Int64Var(&o.manyFill, "many-fill-bytes", 300_000, "with -many: bytes of values written into each partition before the idle time and the restarts (0: produce runs only)")
	flag.DurationVar(&o.manyIdle, "many-idle", 80*time.Second, "with -many: how long both brokers stay idle after the fill before disk and open files are measured again (fluxo closes a partition idle for 1 min, checked every 10 s)")
	flag.IntVar(&o.manyStart, "many-start", 10000, "with -many: partitions of the topic of the start test (0: skip it)")
	flag.StringVar(&o.brokerAddr, "broker-addr", "", "run the single-node scenarios against this Kafka broker (any broker, e.g. kfake) instead of starting a fluxo core")
	flag.StringVar(&o.json, "json", "", "also write the single-node scenarios' figures as JSON to this file")
	flag.BoolVar(&o.txn, "txn", false, "instead of the single-node scenarios and the baseline, run -txn-scenario -rounds times on one core with an idempotent producer and with a transactional one committing every -txn-interval, alternating, and compare them")
	flag.StringVar(&o.txnScenario, "txn-scenario", "p1-acksall", "with -txn: the acks=all scenario run with both producers")
	flag.DurationVar(&o.txnInterval, "txn-interval", 100*time.Millisecond, "with -txn: time between the transactional producer's commits")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchmarks/kafka:", err)
		cancel()
		stop()
		os.Exit(1)
	}
}

func parseScenarios(s string) ([]scenario, error) {
	var out []scenario
	for name := range strings.SplitSeq(s, ",") {
		var sc scenario
		var acks string
		if _, err := fmt.Sscanf(name, "p%d-acks%s", &sc.partitions, &acks); err != nil || sc.partitions < 1 || (acks != "1" && acks != "all") {
			return nil, fmt.Errorf("scenario %q: want p<partitions>-acks<1|all>", name)
		}
		sc.acksAll = acks == "all"
		out = append(out, sc)
	}
	return out, nil
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) (err error) {
	if o.cluster {
		return runCluster(ctx, o, stdout, stderr)
	}
	if o.security {
		return runSecurity(ctx, o, stdout, stderr)
	}
	if o.many {
		return runMany(ctx, o, stdout, stderr)
	}
	if o.txn {
		return runTxn(ctx, o, stdout, stderr)
	}
	scenarios, err := parseScenarios(o.scenarios)
	if err != nil {
		return err
	}
	if o.valueSize < 1 || o.valueSize > 512<<10 || o.duration <= 0 || o.baseline < 0 {
		return fmt.Errorf("-duration must be positive, -baseline not negative, -value-bytes between 1 and 512 KiB")
	}
	root, err := os.MkdirTemp(o.dir, "fluxo-kafka-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)

	pool := newPool()

	var b broker
	if o.brokerAddr != "" {
		b = externalBroker(o.brokerAddr)
	} else if o.inProcess {
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
	stopped := false
	stopBroker := func() error {
		if stopped {
			return nil
		}
		stopped = true
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		return b.Stop(sctx)
	}
	defer func() {
		if serr := stopBroker(); serr != nil && err == nil {
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

	lim := limits{duration: o.duration, records: o.records, warmup: o.warmup}
	var results []result
	for i, s := range scenarios {
		if err := settle(ctx, o.settle); err != nil {
			return err
		}
		if o.records > 0 {
			fmt.Fprintf(stderr, "scenario %s: producing %d records, for at most %v\n", s.name(), o.records, o.duration)
		} else {
			fmt.Fprintf(stderr, "scenario %s: producing for %v\n", s.name(), o.duration)
		}
		r, err := runScenario(ctx, []string{b.KafkaAddr()}, fmt.Sprintf("bench-%d-%s", i, s.name()), s, lim, pool, o.valueSize)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", s.name(), err)
		}
		fmt.Fprintf(stderr, "  produce %.1f MB/s (%d records, %.1f records/batch), p50 %v p99 %v; consume %.1f MB/s\n",
			r.mbps(), r.records, r.recordsPerBatch(), r.latency.Quantile(0.5), r.latency.Quantile(0.99), r.consumeMBps())
		results = append(results, r)
	}
	if o.cpuprofile != "" {
		pprof.StopCPUProfile()
	}

	// The baseline appends batches shaped like the producer's: as many
	// records per batch as the acks=1 scenarios averaged (all scenarios if
	// none ran), unless -baseline-records says otherwise. It runs after the
	// scenarios, with the broker idle and their topics deleted.
	if o.baseline == 0 {
		// No baseline: the figures alone, for programs.
		if err := stopBroker(); err != nil {
			return fmt.Errorf("stop broker: %w", err)
		}
		printTable(stdout, o, results, baselineResult{})
		return writeJSON(o, results)
	}
	shape := o.baselineRecords
	if shape <= 0 {
		shape = batchShape(results)
	}
	if err := settle(ctx, o.settle); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "baseline: raw append of %d-record batches for %v\n", shape, o.baseline)
	base, err := runBaseline(ctx, filepath.Join(root, "baseline"), pool, o.valueSize, shape, o.baseline)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	fmt.Fprintf(stderr, "  %.1f MB/s\n", base.mbps())
	if err := stopBroker(); err != nil {
		return fmt.Errorf("stop broker: %w", err)
	}
	printTable(stdout, o, results, base)
	return writeJSON(o, results)
}

// externalBroker is a broker this program did not start (-broker-addr).
type externalBroker string

func (b externalBroker) KafkaAddr() string        { return string(b) }
func (externalBroker) Stop(context.Context) error { return nil }

// jsonScenario is one scenario's figures in -json's file.
type jsonScenario struct {
	Scenario       string  `json:"scenario"`
	Partitions     int32   `json:"partitions"`
	Acks           string  `json:"acks"`
	ProduceMBps    float64 `json:"produce_mb_per_s"`
	RecordsPerSec  float64 `json:"records_per_s"`
	ConsumeMBps    float64 `json:"consume_mb_per_s"`
	P50Ms          float64 `json:"p50_ms"`
	P99Ms          float64 `json:"p99_ms"`
	RecordsBatch   float64 `json:"records_per_batch"`
	Records        int64   `json:"records"`
	ValueBytes     int     `json:"value_bytes"`
	ConsumedRecord int64   `json:"consumed_records"`
}

// writeJSON writes the scenarios' figures to -json's file, if any.
func writeJSON(o options, results []result) error {
	if o.json == "" {
		return nil
	}
	var out []jsonScenario
	for _, r := range results {
		out = append(out, jsonScenario{Scenario: r.name(), Partitions: r.partitions, Acks: r.acks(),
			ProduceMBps: r.mbps(), RecordsPerSec: r.recordsPerSec(), ConsumeMBps: r.consumeMBps(),
			P50Ms: float64(r.latency.Quantile(0.5)) / 1e6, P99Ms: float64(r.latency.Quantile(0.99)) / 1e6,
			RecordsBatch: r.recordsPerBatch(), Records: r.records, ValueBytes: o.valueSize, ConsumedRecord: r.consumed})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(o.json, append(b, '\n'), 0o644)
}

// settle waits d, or until ctx ends. It puts every phase on the same
// footing on virtual machines that hand freed memory back to their host
// (virtio-balloon free page reporting, a few hundred MiB/s, starting a few
// seconds after the free): there, writing a page cache page the guest has
// reported costs a host page fault, and writing one freed a moment ago
// does not. Without the pause, a phase that follows another would write
// its first gigabytes into the pages of the topic just deleted and look
// faster for that reason alone. Elsewhere it only costs time.
func settle(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// batchShape is the mean number of records per produce batch over the
// acks=1 scenarios, or over all of them if none was acks=1.
func batchShape(results []result) int {
	var batches, recs int64
	for _, all := range []bool{false, true} {
		for _, r := range results {
			if !r.acksAll || all {
				batches += r.batches
				recs += r.batchRecs
			}
		}
		if batches > 0 {
			break
		}
	}
	if batches == 0 {
		return 1
	}
	return max(int((recs+batches/2)/batches), 1)
}

func printTable(w io.Writer, o options, results []result, base baselineResult) {
	limit := fmt.Sprintf("%v per scenario", o.duration)
	if o.records > 0 {
		limit = fmt.Sprintf("at most %v or %d records per scenario", o.duration, o.records)
	}
	broker := "`fluxo core` process"
	switch {
	case o.brokerAddr != "":
		broker = "the broker at " + o.brokerAddr
	case o.inProcess:
		broker = "core node in process"
	}
	if base.elapsed == 0 {
		fmt.Fprintf(w, "%d B values, %s, %s, no baseline. MB = 10^6 bytes of record values.\n\n", o.valueSize, limit, broker)
		fmt.Fprintln(w, "| Scenario | Partitions | Acks | Produce MB/s | Records/s | p50 | p99 | Consume MB/s | Records/batch |")
		fmt.Fprintln(w, "|---|---:|---|---:|---:|---:|---:|---:|---:|")
		for _, r := range results {
			fmt.Fprintf(w, "| %s | %d | %s | %.1f | %.0f | %s | %s | %.1f | %.1f |\n",
				r.name(), r.partitions, r.acks(), r.mbps(), r.recordsPerSec(),
				fmtLatency(r.latency.Quantile(0.5)), fmtLatency(r.latency.Quantile(0.99)),
				r.consumeMBps(), r.recordsPerBatch())
		}
	} else {
		fmt.Fprintf(w, "%d B values, %s, %s; baseline: %v of commitlog appends of %d-record batches (%d B), no fsync. MB = 10^6 bytes of record values.\n\n",
			o.valueSize, limit, broker, o.baseline, base.batchRecords, base.batchBytes)
		fmt.Fprintln(w, "| Scenario | Partitions | Acks | Produce MB/s | Records/s | p50 | p99 | Consume MB/s | Records/batch | Ratio to raw append |")
		fmt.Fprintln(w, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
		fmt.Fprintf(w, "| raw append (baseline) | | | %.1f | %.0f | | | | %d | 1.00 |\n",
			base.mbps(), base.recordsPerSec(), base.batchRecords)
		for _, r := range results {
			fmt.Fprintf(w, "| %s | %d | %s | %.1f | %.0f | %s | %s | %.1f | %.1f | %.2f |\n",
				r.name(), r.partitions, r.acks(), r.mbps(), r.recordsPerSec(),
				fmtLatency(r.latency.Quantile(0.5)), fmtLatency(r.latency.Quantile(0.99)),
				r.consumeMBps(), r.recordsPerBatch(), r.mbps()/base.mbps())
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Machine: nproc %d, CPU %s, %s/%s, Linux %s, %s, temp dir on %s.\n",
		runtime.NumCPU(), harness.CPUModel(), runtime.GOOS, runtime.GOARCH, harness.Kernel(), runtime.Version(), harness.FSType(o.dir))
}

// fmtLatency prints d in milliseconds with three significant digits.
func fmtLatency(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.2f ms", ms)
	}
}

// newPool returns the bytes record values are cut from: random, so that
// neither the client nor the disk could compress them.
func newPool() []byte {
	pool := make([]byte, 16<<20)
	rand.NewChaCha8([32]byte{1}).Read(pool)
	return pool
}

// poolValue returns the i-th record value: size bytes of pool, at a
// position that moves by more than size from one record to the next, so
// the values in a batch do not repeat until it passes len(pool) bytes.
func poolValue(pool []byte, i, size int) []byte {
	off := (i * (size + 7)) % (len(pool) - size)
	return pool[off : off+size]
}
