package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fluxo-io/fluxo/benchmarks/internal/harness"
)

// clusterSize is how many brokers the cluster run starts.
const clusterSize = 3

// cluster is clusterSize `fluxo core` processes forming one cluster on
// loopback, with the default Serf and Raft timers. Node id i+1 is
// nodes[i]. Only the goroutine running the benchmark uses it.
type cluster struct{ nodes []*procBroker }

// startCluster starts the brokers, each on its own free loopback ports
// with its data in root/node-<id>, joined to the others'
// Serf addresses, and waits until every one answers /readyz.
func startCluster(ctx context.Context, bin, root string) (*cluster, error) {
	const n = clusterSize
	addrs, err := harness.FreeAddrs(4 * n)
	if err != nil {
		return nil, err
	}
	kafka, httpAddrs, serf, raft := addrs[:n], addrs[n:2*n], addrs[2*n:3*n], addrs[3*n:]
	c := &cluster{}
	for i := range n {
		id := strconv.Itoa(i + 1)
		c.nodes = append(c.nodes, newProcBroker("fluxo core "+id, bin, kafka[i], httpAddrs[i],
			"--node-id", id,
			"--data-dir", filepath.Join(root, "node-"+id),
			"--kafka-addr", kafka[i],
			"--http-addr", httpAddrs[i],
			"--serf-addr", serf[i],
			"--raft-addr", raft[i],
			"--join", strings.Join(serf, ","),
			"--bootstrap-expect", strconv.Itoa(n),
			"--auto-create-topics=false",
			"--shutdown-timeout", brokerShutdownTimeout.String(),
			"--log-level", "warn",
		))
	}
	// Together: each waits for the others to form the Raft cluster.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, b := range c.nodes {
		wg.Go(func() { errs[i] = b.start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	return c, nil
}

// seeds are the brokers' Kafka addresses.
func (c *cluster) seeds() []string {
	var out []string
	for _, b := range c.nodes {
		out = append(out, b.KafkaAddr())
	}
	return out
}

// node returns the broker with node id id.
func (c *cluster) node(id int32) (*procBroker, error) {
	if id < 1 || int(id) > len(c.nodes) {
		return nil, fmt.Errorf("no broker with node id %d", id)
	}
	return c.nodes[id-1], nil
}

// Stop stops every broker at once (SIGTERM, then SIGKILL after the
// shutdown timeout or when ctx ends).
func (c *cluster) Stop(ctx context.Context) error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, b := range c.nodes {
		wg.Go(func() { errs[i] = b.Stop(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func parseClusterScenarios(s string, partitions int32) ([]scenario, error) {
	if s == "" {
		return nil, nil
	}
	var out []scenario
	for name := range strings.SplitSeq(s, ",") {
		sc := scenario{partitions: partitions}
		var acks string
		if _, err := fmt.Sscanf(name, "rf%d-acks%s", &sc.replicas, &acks); err != nil || sc.replicas < 1 || sc.replicas > clusterSize || (acks != "1" && acks != "all") {
			return nil, fmt.Errorf("cluster scenario %q: want rf<1..%d>-acks<1|all>", name, clusterSize)
		}
		sc.acksAll = acks == "all"
		out = append(out, sc)
	}
	return out, nil
}

// runCluster is the -cluster run: it starts the cluster, runs the
// throughput scenarios one after the other, then the failover test, and
// prints a table for each.
func runCluster(ctx context.Context, o options, stdout, stderr io.Writer) (err error) {
	scenarios, err := parseClusterScenarios(o.clusterScenarios, int32(o.clusterPartitions))
	if err != nil {
		return err
	}
	switch {
	case o.inProcess || o.cpuprofile != "":
		return errors.New("-in-process and -cpuprofile run one node in this process; not with -cluster")
	case o.valueSize < 1 || o.valueSize > 512<<10 || o.duration <= 0:
		return errors.New("-duration must be positive, -value-bytes between 1 and 512 KiB")
	case o.clusterPartitions < 1 || o.kills < 0 || o.failoverRate < 1:
		return errors.New("-cluster-partitions and -failover-rate must be positive, -kills not negative")
	}
	root, err := os.MkdirTemp(o.dir, "fluxo-kafka-cluster-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	pool := newPool()

	bin := o.fluxo
	if bin == "" {
		fmt.Fprintln(stderr, "building cmd/fluxo")
		if bin, err = harness.BuildFluxo(ctx, root); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "starting %d fluxo core processes as one cluster\n", clusterSize)
	c, err := startCluster(ctx, bin, root)
	if err != nil {
		return err
	}
	stopped := false
	stopCluster := func() error {
		if stopped {
			return nil
		}
		stopped = true
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		return c.Stop(sctx)
	}
	defer func() {
		if serr := stopCluster(); serr != nil && err == nil {
			err = fmt.Errorf("stop cluster: %w", serr)
		}
	}()
	fmt.Fprintf(stderr, "brokers on %s, data under %s\n", strings.Join(c.seeds(), ", "), root)

	lim := limits{duration: o.duration, records: o.records, warmup: o.warmup}
	var results []result
	for i, s := range scenarios {
		if err := settle(ctx, o.settle); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "scenario %s: %d partitions, producing for %v\n", s.name(), s.partitions, o.duration)
		r, err := runScenario(ctx, c.seeds(), fmt.Sprintf("bench-%d-%s", i, s.name()), s, lim, pool, o.valueSize)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", s.name(), err)
		}
		fmt.Fprintf(stderr, "  produce %.1f MB/s (%d records, %.1f records/batch), p50 %v p99 %v; consume %.1f MB/s\n",
			r.mbps(), r.records, r.recordsPerBatch(), r.latency.Quantile(0.5), r.latency.Quantile(0.99), r.consumeMBps())
		results = append(results, r)
	}
	if len(results) > 0 {
		printClusterTable(stdout, o, results)
	}

	if o.kills > 0 {
		fr, ferr := runFailover(ctx, c, o, stderr)
		if ferr != nil {
			return fmt.Errorf("failover: %w", ferr)
		}
		printFailoverTable(stdout, o, fr)
		if fr.lost > 0 || fr.dup > 0 {
			err = fmt.Errorf("failover: lost %d acknowledged records, duplicated %d: want 0 and 0", fr.lost, fr.dup)
		}
	}
	if serr := stopCluster(); serr != nil && err == nil {
		err = fmt.Errorf("stop cluster: %w", serr)
	}
	fmt.Fprintf(stdout, "Machine: nproc %d, CPU %s, %s/%s, Linux %s, %s, temp dir on %s; %d brokers, the client and anything else on the machine share its CPUs.\n",
		runtime.NumCPU(), harness.CPUModel(), runtime.GOOS, runtime.GOARCH, harness.Kernel(), runtime.Version(), harness.FSType(o.dir), clusterSize)
	return err
}

// printClusterTable prints the throughput scenarios, each against the
// first one (rf1-acks1 by default).
func printClusterTable(w io.Writer, o options, results []result) {
	limit := fmt.Sprintf("%v per scenario", o.duration)
	if o.records > 0 {
		limit = fmt.Sprintf("at most %v or %d records per scenario", o.duration, o.records)
	}
	first := results[0]
	fmt.Fprintf(w, "%d `fluxo core` processes as one cluster, default timers; %d B values, %s. MB = 10^6 bytes of record values. Ratios are to %s.\n\n",
		clusterSize, o.valueSize, limit, first.name())
	fmt.Fprintln(w, "| Scenario | Partitions | Replicas | Acks | Produce MB/s | Records/s | p50 | p99 | Consume MB/s | Records/batch | MB/s ratio | p99 ratio |")
	fmt.Fprintln(w, "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %d | %d | %s | %.1f | %.0f | %s | %s | %.1f | %.1f | %.2f | %.2f |\n",
			r.name(), r.partitions, r.replicationFactor(), r.acks(), r.mbps(), r.recordsPerSec(),
			fmtLatency(r.latency.Quantile(0.5)), fmtLatency(r.latency.Quantile(0.99)),
			r.consumeMBps(), r.recordsPerBatch(), r.mbps()/first.mbps(),
			float64(r.latency.Quantile(0.99))/float64(first.latency.Quantile(0.99)))
	}
	fmt.Fprintln(w)
}

// printFailoverTable prints each kill, then the summary against the goal.
func printFailoverTable(w io.Writer, o options, fr failoverResult) {
	minAge := "kgo's default MetadataMinAge (5s)"
	if o.metadataMinAge > 0 {
		minAge = fmt.Sprintf("MetadataMinAge %v", o.metadataMinAge)
	}
	fmt.Fprintf(w, "Failover: topic with %d partitions, %d replicas; one idempotent acks=all kgo producer, %s, %d records/s of %d B, round robin over the partitions; the leader of a random partition killed with SIGKILL %d times. Goal: kill to next acknowledged write ≤ %v.\n\n",
		o.clusterPartitions, clusterSize, minAge, o.failoverRate, failoverValueBytes, o.kills, failoverGoal)
	fmt.Fprintln(w, "| Kill | Partition | Killed leader | Was controller | New leader | Kill → new leader in Metadata | Kill → next ack | Restart → ready | Restart → in every ISR |")
	fmt.Fprintln(w, "|---:|---:|---:|---|---:|---:|---:|---:|---:|")
	var acked []time.Duration
	missed := 0
	for i, k := range fr.kills {
		newLeader, moved, ack := "none", "none in 60 s", "none in 60 s"
		if k.newLeader >= 0 {
			newLeader, moved = strconv.Itoa(int(k.newLeader)), fmtSeconds(k.moved)
		}
		if k.acked >= 0 {
			ack = fmtSeconds(k.acked)
			acked = append(acked, k.acked)
			if k.acked > failoverGoal {
				ack = "**" + ack + "**"
			}
		}
		if k.acked < 0 || k.acked > failoverGoal {
			missed++
		}
		ctl := "no"
		if k.wasCtl {
			ctl = "yes"
		}
		fmt.Fprintf(w, "| %d | %d | %d | %s | %s | %s | %s | %s | %s |\n", i+1, k.partition, k.victim, ctl, newLeader, moved, ack, fmtSeconds(k.ready), fmtSeconds(k.back))
	}
	fmt.Fprintln(w)
	if len(acked) > 0 {
		slices.Sort(acked)
		fmt.Fprintf(w, "Kill → next ack: median %s, max %s over %d kills; %d of %d above the %v goal (or without an ack).\n",
			fmtSeconds(acked[len(acked)/2]), fmtSeconds(acked[len(acked)-1]), len(acked), missed, len(fr.kills), failoverGoal)
	}
	fmt.Fprintf(w, "Produce latency at that rate before the first kill (Produce call to promise, %v, %d records): p50 %s, p99 %s.\n",
		failoverSteady, fr.steady.Count(), fmtLatency(fr.steady.Quantile(0.5)), fmtLatency(fr.steady.Quantile(0.99)))
	fmt.Fprintf(w, "Records: sent %d, acknowledged %d, failed %d; read back %d: lost %d, duplicated %d (unacknowledged but in the topic: %d).\n\n",
		fr.sent, fr.acked, fr.failed, fr.inTopic, fr.lost, fr.dup, fr.extra)
}

// fmtSeconds prints d in seconds with two decimals.
func fmtSeconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
