// Command link measures the edge's uplink over a bad link: a `fluxo edge`
// process forwarding to a `fluxo core` process through a fault-injecting
// proxy (internal/faultlink: toxiproxy in this process). The core
// advertises the proxy's address, so the edge reaches it only through
// the link; this program reads the core past it.
//
// The link: 300 ms ± 100 ms of latency each way (a round trip of about
// 600 ms) and 256 kbit/s each way, shared by every connection (-latency,
// -jitter, -kbit).
//
// Phases (-phases):
//
//   - goodput: paho cars (-cars, QoS 1) fill the spool with
//     -backlog-records car telemetry messages while the link is cut, then
//     the link comes back and the edge drains the backlog. Goodput is the
//     compressed batch bytes the core acknowledged per second of the drain,
//     against the link's configured bytes per second; also the
//     uncompressed record and payload bytes per second, and the bytes the
//     link carried. Baseline in the same run: one TCP stream pushing
//     -baseline-bytes through an identical link to a sink (what the link
//     gives a bulk transfer). -rounds rounds, each on a fresh core, edge
//     and link.
//   - cut: the cars publish -rate messages per second in all for 20 s,
//     then the link is cut for -cut (10 minutes by default) while they go
//     on, an engine-overheat alarm is published every minute of the cut
//     and one 5 s before its end; then the link comes back (connections
//     older than the cut are dead: the link resets them as it heals) and
//     the cars go on for 30 s. Reported: when the alarms reached the core
//     after the link came back, how much telemetry was still spooled then,
//     how long the backlog took to drain, and, as in every phase, loss and
//     duplicates: everything the edge acknowledged is consumed from the
//     core and matched by device and seq.
//
// Everything listens on 127.0.0.1; data goes to a temporary directory
// removed at the end; every process started is stopped (SIGTERM, then
// SIGKILL) and dies with this one. The tables go to stdout in markdown,
// progress to stderr.
//
//	go run ./benchmarks/link
//	go run ./benchmarks/link -phases goodput -rounds 3
//	go run ./benchmarks/link -phases cut -cut 10m
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/benchmarks/internal/harness"
	"github.com/fluxo-io/fluxo/internal/faultlink"
)

type options struct {
	phases         []string
	latency        time.Duration
	jitter         time.Duration
	kbit           int64
	cars           int
	rate           float64
	backlogRecords int
	baselineBytes  int64
	rounds         int
	cut            time.Duration
	edgeArgs       []string
	dir, fluxo     string
	timeout        time.Duration
}

func (o options) bytesPerSec() int64 { return o.kbit * 1000 / 8 }

func main() {
	var o options
	var phases, edgeArgs string
	flag.StringVar(&phases, "phases", "goodput,cut", "phases to run")
	flag.DurationVar(&o.latency, "latency", 300*time.Millisecond, "link latency, each way")
	flag.DurationVar(&o.jitter, "jitter", 100*time.Millisecond, "link jitter, each way (±)")
	flag.Int64Var(&o.kbit, "kbit", 256, "link bandwidth, each way, in kbit/s (shared by all connections)")
	flag.IntVar(&o.cars, "cars", 20, "paho publishers (cars), one MQTT connection each")
	flag.Float64Var(&o.rate, "rate", 20, "cut phase: telemetry messages per second, all cars together")
	flag.IntVar(&o.backlogRecords, "backlog-records", 15000, "goodput phase: messages spooled behind the cut before the drain")
	flag.Int64Var(&o.baselineBytes, "baseline-bytes", 320_000, "goodput phase: bytes of the baseline TCP stream")
	flag.IntVar(&o.rounds, "rounds", 3, "goodput phase: rounds")
	flag.DurationVar(&o.cut, "cut", 10*time.Minute, "cut phase: how long the link is down")
	flag.StringVar(&edgeArgs, "edge-args", "", "extra fluxo edge flags, space-separated (e.g. \"--batch-bytes 262144\")")
	flag.StringVar(&o.dir, "dir", os.TempDir(), "parent of the temporary directory (core data, spools)")
	flag.StringVar(&o.fluxo, "fluxo", "", "fluxo binary to run (default: build ./cmd/fluxo into the temporary directory)")
	flag.DurationVar(&o.timeout, "timeout", 40*time.Minute, "bound on the whole run")
	flag.Parse()
	o.phases = strings.Split(phases, ",")
	o.edgeArgs = strings.Fields(edgeArgs)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	err := run(ctx, o, os.Stdout, os.Stderr)
	cancel()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmarks/link:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp(o.dir, "fluxo-bench-link-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := o.fluxo
	if bin == "" {
		fmt.Fprintln(stderr, "building fluxo")
		if bin, err = harness.BuildFluxo(ctx, dir); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "# fluxo edge over a bad link\n\nlink: %v ± %v each way, %d kbit/s (%d B/s) each way shared by all connections; %d paho cars at QoS 1; %s, Linux %s, %d CPUs\n\n",
		o.latency, o.jitter, o.kbit, o.bytesPerSec(), o.cars, harness.CPUModel(), harness.Kernel(), runtime.NumCPU())
	var errs []error
	if slices.Contains(o.phases, "goodput") {
		errs = append(errs, goodputPhase(ctx, o, bin, dir, stdout, stderr))
	}
	if slices.Contains(o.phases, "cut") {
		errs = append(errs, cutPhase(ctx, o, bin, dir, stdout, stderr))
	}
	return errors.Join(errs...)
}

// site is a core and an edge with the link between them.
type site struct {
	core, edge *server
	kafka      string // the core's own address (the test side dials it)
	mqtt       string
	link       *faultlink.Link
}

func startSite(ctx context.Context, o options, bin, dir string) (*site, error) {
	addrs, err := harness.FreeAddrs(7)
	if err != nil {
		return nil, err
	}
	link, err := faultlink.Start(addrs[0], zerolog.Nop())
	if err != nil {
		return nil, err
	}
	s := &site{kafka: addrs[0], mqtt: addrs[4], link: link}
	dataDir, err := os.MkdirTemp(dir, "core-")
	if err != nil {
		s.stop()
		return nil, err
	}
	s.core, err = startServer(ctx, "fluxo core", addrs[1], bin, "core", "--data-dir", dataDir,
		"--kafka-addr", addrs[0], "--kafka-advertise", link.Addr(), "--http-addr", addrs[1],
		"--serf-addr", addrs[2], "--raft-addr", addrs[3], "--default-partitions", "3", "--log-level", "warn")
	if err != nil {
		s.stop()
		return nil, err
	}
	spoolDir := filepath.Join(dataDir, "spool")
	s.edge, err = startServer(ctx, "fluxo edge", addrs[5], bin, append([]string{"edge", "--mqtt-addr", addrs[4], "--http-addr", addrs[5],
		"--core", link.Addr(), "--spool-dir", spoolDir, "--allow-anonymous", "--spool-sync", "never",
		"--edge-id", "bench-edge", "--log-level", "warn"}, o.edgeArgs...)...)
	if err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *site) stop() {
	if s.edge != nil {
		s.edge.stop()
	}
	if s.core != nil {
		s.core.stop()
	}
	s.link.Close()
}

func (s *site) badLink(o options) error {
	return errors.Join(s.link.Latency(o.latency, o.jitter), s.link.Bandwidth(o.bytesPerSec()))
}

// direct are client options that reach the core past the link.
func (s *site) direct() []kgo.Opt {
	link, core := s.link.Addr(), s.kafka
	return []kgo.Opt{kgo.SeedBrokers(core), kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		if host == link {
			host = core
		}
		var d net.Dialer
		return d.DialContext(ctx, network, host)
	})}
}

// waitDrained waits until the edge's spool is empty in both lanes and
// every accepted message was delivered.
func (s *site) waitDrained(ctx context.Context, limit time.Duration) (metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		m, err := s.edge.metrics(ctx)
		if err == nil && drained(m) {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return m, fmt.Errorf("edge spool not drained within %v: telemetry %v, alarms %v spooled", limit,
				m.lane("fluxo_edge_spool_records", "telemetry"), m.lane("fluxo_edge_spool_records", "alarm"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func drained(m metrics) bool {
	for _, lane := range []string{"alarm", "telemetry"} {
		if n, ok := m[`fluxo_edge_spool_records{lane="`+lane+`"}`]; !ok || n != 0 {
			return false
		}
		acc := m[`fluxo_edge_messages_total{lane="`+lane+`",outcome="accepted"}`]
		del := m[`fluxo_edge_messages_total{lane="`+lane+`",outcome="delivered"}`]
		if del < acc {
			return false
		}
	}
	return true
}

// readAll consumes the topics from the core (past the link) below their
// end offsets and counts device → seq.
func (s *site) readAll(ctx context.Context, topics ...string) (map[string]map[uint64]int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	admin, err := kgo.NewClient(s.direct()...)
	if err != nil {
		return nil, err
	}
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, topics...)
	admin.Close()
	if err != nil {
		return nil, err
	}
	assign := map[string]map[int32]kgo.Offset{}
	want := map[string]int64{}
	left := 0
	ends.Each(func(lo kadm.ListedOffset) {
		if lo.Err != nil || lo.Offset == 0 {
			return
		}
		if assign[lo.Topic] == nil {
			assign[lo.Topic] = map[int32]kgo.Offset{}
		}
		assign[lo.Topic][lo.Partition] = kgo.NewOffset().AtStart()
		want[fmt.Sprintf("%s/%d", lo.Topic, lo.Partition)] = lo.Offset
		left++
	})
	got := map[string]map[uint64]int{}
	if left == 0 {
		return got, nil
	}
	cl, err := kgo.NewClient(append(s.direct(), kgo.ConsumePartitions(assign), kgo.FetchMaxWait(200*time.Millisecond))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read the core: %w (%d partitions not read to their end)", ctx.Err(), left)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end := want[fmt.Sprintf("%s/%d", r.Topic, r.Partition)]
			if r.Offset >= end {
				return
			}
			if id, seq, ok := parseIDSeq(r.Value); ok {
				if got[id] == nil {
					got[id] = map[uint64]int{}
				}
				got[id][seq]++
			}
			if r.Offset == end-1 {
				left--
			}
		})
	}
	return got, nil
}

// baseline pushes n bytes through a link like the site's to a sink and
// returns the bytes per second the sink received (first byte to last).
func baseline(o options, n int64) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	type result struct {
		rate float64
		err  error
	}
	res := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		var got int64
		var first time.Time
		for got < n {
			k, err := c.Read(buf)
			if k > 0 && first.IsZero() {
				first = time.Now()
			}
			got += int64(k)
			if err != nil {
				res <- result{err: fmt.Errorf("sink: %d of %d bytes: %w", got, n, err)}
				return
			}
		}
		res <- result{rate: float64(n) / time.Since(first).Seconds()}
	}()
	link, err := faultlink.Start(ln.Addr().String(), zerolog.Nop())
	if err != nil {
		return 0, err
	}
	defer link.Close()
	if err := errors.Join(link.Latency(o.latency, o.jitter), link.Bandwidth(o.bytesPerSec())); err != nil {
		return 0, err
	}
	c, err := net.Dial("tcp", link.Addr())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	go c.Write(make([]byte, n))
	select {
	case r := <-res:
		return r.rate, r.err
	case <-time.After(time.Duration(3*n/o.bytesPerSec())*time.Second + time.Minute):
		return 0, errors.New("baseline: the sink did not get every byte in time")
	}
}

type goodputRow struct {
	baseline                   float64 // B/s of one TCP stream through the link
	drain                      time.Duration
	records                    int
	sent, raw, payload, linkUp float64 // bytes over the drain
	requests                   float64
	lost, dups, failed         int
}

func goodputPhase(ctx context.Context, o options, bin, dir string, stdout, stderr io.Writer) error {
	var rows []goodputRow
	for round := 1; round <= o.rounds; round++ {
		fmt.Fprintf(stderr, "goodput round %d/%d\n", round, o.rounds)
		r, err := goodputRound(ctx, o, bin, dir, stderr)
		if err != nil {
			return fmt.Errorf("goodput round %d: %w", round, err)
		}
		rows = append(rows, r)
	}
	bps := float64(o.bytesPerSec())
	fmt.Fprintf(stdout, "## goodput: draining %d messages spooled behind a cut\n\n", o.backlogRecords)
	fmt.Fprintln(stdout, "| round | drain | compressed B/s | ÷ link | baseline TCP B/s | ÷ baseline | records B/s | payload B/s | link up B/s | records/request | lost | dups |")
	fmt.Fprintln(stdout, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i, r := range rows {
		s := r.drain.Seconds()
		fmt.Fprintf(stdout, "| %d | %.1f s | %.0f | %.2f | %.0f | %.2f | %.0f | %.0f | %.0f | %.0f | %d | %d |\n", i+1, s,
			r.sent/s, r.sent/s/bps, r.baseline, r.sent/s/r.baseline, r.raw/s, r.payload/s, r.linkUp/s, float64(r.records)/max(r.requests, 1), r.lost, r.dups)
	}
	lo, hi := 10.0, 0.0
	for _, r := range rows {
		v := r.sent / r.drain.Seconds() / bps
		lo, hi = min(lo, v), max(hi, v)
	}
	fmt.Fprintf(stdout, "\ngoodput ÷ link bandwidth: %.2f–%.2f over %d rounds\n\n", lo, hi, len(rows))
	return nil
}

func goodputRound(ctx context.Context, o options, bin, dir string, stderr io.Writer) (goodputRow, error) {
	var row goodputRow
	var err error
	if row.baseline, err = baseline(o, o.baselineBytes); err != nil {
		return row, err
	}
	s, err := startSite(ctx, o, bin, dir)
	if err != nil {
		return row, err
	}
	defer s.stop()
	if err := s.badLink(o); err != nil {
		return row, err
	}
	f, err := startFleet(s.mqtt, o.cars)
	if err != nil {
		return row, err
	}
	// Topics and producers first, then the cut: the drain measures
	// records, not the first connection.
	for _, c := range f {
		if err := c.publish(ctx, false); err != nil {
			return row, err
		}
	}
	if _, err := s.waitDrained(ctx, time.Minute); err != nil {
		return row, err
	}
	_, payloadPre, _ := f.acked()
	if err := s.link.Cut(); err != nil {
		return row, err
	}
	for i := 0; i < o.backlogRecords; i++ {
		if err := f[i%len(f)].publish(ctx, false); err != nil {
			return row, err
		}
	}
	f.close()
	m0, err := s.edge.metrics(ctx)
	if err != nil {
		return row, err
	}
	up0 := s.link.Bytes(faultlink.Up)
	fmt.Fprintf(stderr, "  %v telemetry records spooled; link back\n", m0.lane("fluxo_edge_spool_records", "telemetry"))
	// A short cut: the connections survive it (Heal without a reset).
	t0 := time.Now()
	if err := s.link.Heal(); err != nil {
		return row, err
	}
	m1, err := s.waitDrained(ctx, 20*time.Minute)
	if err != nil {
		return row, err
	}
	row.drain = time.Since(t0)
	row.linkUp = float64(s.link.Bytes(faultlink.Up) - up0)
	_, payload1, failed := f.acked()
	row.records, row.failed = int(m1.lane("fluxo_edge_uplink_records_total", "telemetry")-m0.lane("fluxo_edge_uplink_records_total", "telemetry")), failed
	row.sent = m1.lane("fluxo_edge_uplink_sent_bytes_total", "telemetry") - m0.lane("fluxo_edge_uplink_sent_bytes_total", "telemetry")
	row.raw = m1.lane("fluxo_edge_uplink_raw_bytes_total", "telemetry") - m0.lane("fluxo_edge_uplink_raw_bytes_total", "telemetry")
	row.requests = m1.lane("fluxo_edge_uplink_requests_total", "telemetry") - m0.lane("fluxo_edge_uplink_requests_total", "telemetry")
	row.payload = float64(payload1 - payloadPre) // the backlog's payloads, all acknowledged before the drain
	if err := s.link.Clear(); err != nil {
		return row, err
	}
	got, err := s.readAll(ctx, "telemetry", "alarms")
	if err != nil {
		return row, err
	}
	row.lost, row.dups = f.check(got)
	fmt.Fprintf(stderr, "  drained in %v: %.0f compressed B/s; lost %d, duplicates %d, unacknowledged publishes %d\n",
		row.drain.Round(time.Millisecond), row.sent/row.drain.Seconds(), row.lost, row.dups, row.failed)
	return row, nil
}

func cutPhase(ctx context.Context, o options, bin, dir string, stdout, stderr io.Writer) error {
	fmt.Fprintf(stderr, "cut phase: %v cut\n", o.cut)
	s, err := startSite(ctx, o, bin, dir)
	if err != nil {
		return err
	}
	defer s.stop()
	if err := s.badLink(o); err != nil {
		return err
	}
	f, err := startFleet(s.mqtt, o.cars)
	if err != nil {
		return err
	}
	defer f.close()
	alarmCar := f[0]

	// Arrival of each alarm in the core, past the link.
	var mu sync.Mutex
	arrived := map[uint64]time.Time{}
	spooledAt := map[uint64]float64{}
	tail, err := kgo.NewClient(append(s.direct(), kgo.ConsumeTopics("alarms"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50*time.Millisecond), kgo.MetadataMinAge(time.Second))...)
	if err != nil {
		return err
	}
	tailCtx, stopTail := context.WithCancel(ctx)
	var tailDone sync.WaitGroup
	tailDone.Add(1)
	go func() {
		defer tailDone.Done()
		for tailCtx.Err() == nil {
			fs := tail.PollFetches(tailCtx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				id, seq, ok := parseIDSeq(r.Value)
				if !ok || id != alarmCar.id {
					return
				}
				m, _ := s.edge.metrics(tailCtx)
				mu.Lock()
				arrived[seq] = now
				spooledAt[seq] = m.lane("fluxo_edge_spool_records", "telemetry")
				mu.Unlock()
			})
		}
	}()
	defer func() {
		stopTail()
		tailDone.Wait()
		tail.Close()
	}()

	runCtx, stopCars := context.WithCancel(ctx)
	var carsDone sync.WaitGroup
	for _, c := range f {
		carsDone.Add(1)
		go func() {
			defer carsDone.Done()
			c.run(runCtx, o.rate/float64(len(f)))
		}()
	}
	defer func() {
		stopCars()
		carsDone.Wait()
	}()
	sleep(ctx, 20*time.Second)
	if err := s.link.Cut(); err != nil {
		return err
	}
	cutAt := time.Now()
	fmt.Fprintf(stderr, "  link cut at %s\n", cutAt.Format(time.TimeOnly))
	var alarms []uint64
	alarm := func() {
		alarmCar.mu.Lock()
		seq := alarmCar.next
		alarmCar.mu.Unlock()
		if alarmCar.publish(ctx, true) == nil {
			alarms = append(alarms, seq)
		}
	}
	for next := cutAt.Add(time.Minute); next.Before(cutAt.Add(o.cut - 5*time.Second)); next = next.Add(time.Minute) {
		sleep(ctx, time.Until(next))
		alarm()
	}
	sleep(ctx, time.Until(cutAt.Add(o.cut-5*time.Second)))
	alarm()
	last := alarms[len(alarms)-1]
	sleep(ctx, time.Until(cutAt.Add(o.cut)))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	m, err := s.edge.metrics(ctx)
	if err != nil {
		return err
	}
	backlog := m.lane("fluxo_edge_spool_records", "telemetry")
	backlogBytes := m.lane("fluxo_edge_spool_bytes", "telemetry")
	// After a long cut the connections are dead at both ends: the link
	// resets them as it comes back.
	if err := s.link.Reset(); err != nil {
		return err
	}
	healAt := time.Now()
	if err := s.link.Heal(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "  link back at %s: %v telemetry records (%v bytes) spooled\n", healAt.Format(time.TimeOnly), backlog, backlogBytes)
	sleep(ctx, 30*time.Second)
	stopCars()
	carsDone.Wait()
	if _, err := s.waitDrained(ctx, 30*time.Minute); err != nil {
		return err
	}
	drainedAt := time.Now()
	if err := s.link.Clear(); err != nil {
		return err
	}
	f.close()
	got, err := s.readAll(ctx, "telemetry", "alarms")
	if err != nil {
		return err
	}
	lost, dups := f.check(got)
	n, _, failed := f.acked()

	mu.Lock()
	defer mu.Unlock()
	var firstAt, lastAt time.Time
	for _, seq := range alarms {
		at, ok := arrived[seq]
		if !ok {
			continue
		}
		if firstAt.IsZero() || at.Before(firstAt) {
			firstAt = at
		}
		if at.After(lastAt) {
			lastAt = at
		}
	}
	fmt.Fprintf(stdout, "## cut: %v without a link, %.0f messages/s of telemetry, alarms every minute of it\n\n", o.cut, o.rate)
	fmt.Fprintln(stdout, "| measure | value |\n|---|---:|")
	fmt.Fprintf(stdout, "| telemetry spooled when the link came back | %.0f records, %.0f bytes |\n", backlog, backlogBytes)
	fmt.Fprintf(stdout, "| alarms spooled during the cut | %d |\n", len(alarms))
	if lastAt.IsZero() {
		fmt.Fprintln(stdout, "| alarms in the core | none arrived |")
	} else {
		rtt := 2 * o.latency
		fmt.Fprintf(stdout, "| first alarm of the cut in the core after the link came back | %v (%.1f round trips) |\n", firstAt.Sub(healAt).Round(time.Millisecond), firstAt.Sub(healAt).Seconds()/rtt.Seconds())
		fmt.Fprintf(stdout, "| last alarm (published 5 s before the end) in the core after the link came back | %v (%.1f round trips) |\n", arrived[last].Sub(healAt).Round(time.Millisecond), arrived[last].Sub(healAt).Seconds()/rtt.Seconds())
		fmt.Fprintf(stdout, "| telemetry still spooled when the last alarm arrived | %.0f records |\n", spooledAt[last])
	}
	fmt.Fprintf(stdout, "| backlog drained after the link came back (cars publishing on for 30 s) | %v |\n", drainedAt.Sub(healAt).Round(time.Second))
	fmt.Fprintf(stdout, "| messages acknowledged by the edge | %d (%d publishes without PUBACK) |\n", n, failed)
	fmt.Fprintf(stdout, "| lost (acknowledged, not in the core) | %d |\n| duplicates in the core | %d |\n\n", lost, dups)
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
