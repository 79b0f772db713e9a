package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/benchmarks/internal/harness"
	"github.com/fluxo-io/fluxo/benchmarks/internal/proc"
	"github.com/fluxo-io/fluxo/benchmarks/internal/scrape"
	"github.com/fluxo-io/fluxo/devices"
)

// options configure one soak.
type options struct {
	Duration time.Duration `json:"duration"`
	Interval time.Duration `json:"interval"`
	Rate     int           `json:"rate"`    // messages per second, whole fleet
	Devices  int           `json:"devices"` // 40% sensors, 40% cars, 20% panels
	Fluxo    string        `json:"-"`
	Out      string        `json:"-"`
	Dir      string        `json:"-"`
	Bounds   bounds        `json:"bounds"`
}

// bounds are the leak thresholds; RSS in MiB of anonymous memory.
type bounds struct {
	RSS        bound `json:"rss_anon_mib"`
	Goroutines bound `json:"goroutines"`
	Files      bound `json:"open_files"`
}

// defaultOptions: the demo's fleet at 1,000 messages per second for 30
// minutes. The bounds: a process that holds a fixed fleet at a fixed
// rate should level off after its warm-up. Anonymous RSS (the heap and
// stacks; mapped segment pages are file RSS and grow with the data, as
// the page cache does) may drift 32 MiB/h, goroutines 100/h and open
// files 60/h, and only growth past 24 MiB, 50 goroutines or 20 files
// within the fitted window counts.
func defaultOptions() options {
	return options{
		Duration: 30 * time.Minute,
		Interval: 10 * time.Second,
		Rate:     1000,
		Devices:  500,
		Bounds: bounds{
			RSS:        bound{PerHour: 32, Floor: 24},
			Goroutines: bound{PerHour: 100, Floor: 50},
			Files:      bound{PerHour: 60, Floor: 20},
		},
	}
}

// coreTopics are the topics the edge writes and reads with its default
// routes; the soak creates them with three replicas.
var coreTopics = map[string]int32{"telemetry": 3, "alarms": 3, "commands": 1, "command-acks": 1}

// readTopics are the topics the devices' messages end in.
var readTopics = []string{"telemetry", "alarms"}

// node is a fluxo process that can be restarted with the same flags.
type node struct {
	name     string
	bin      string
	args     []string
	httpAddr string
	out      io.Writer // the process's output, across restarts

	mu sync.Mutex // guards p
	p  *proc.Proc // nil while the node is down
}

func (n *node) start(ctx context.Context) error {
	p, err := proc.StartTo(n.out, n.name, 45*time.Second, n.bin, n.args...)
	if err != nil {
		return err
	}
	if err := proc.WaitHTTP(ctx, p, "http://"+n.httpAddr+"/readyz"); err != nil {
		p.Kill()
		return fmt.Errorf("%s: %w", n.name, err)
	}
	n.mu.Lock()
	n.p = p
	n.mu.Unlock()
	return nil
}

func (n *node) stop(ctx context.Context) error {
	n.mu.Lock()
	p := n.p
	n.p = nil
	n.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Stop(ctx)
}

// pid is the running process's id, 0 while it is down.
func (n *node) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.p == nil {
		return 0
	}
	return n.p.PID()
}

// procSample is one process at one sample; Up is false while it was
// restarting (and the rest is zero).
type procSample struct {
	Up         bool    `json:"up"`
	RSSMiB     float64 `json:"rss_mib"`
	AnonMiB    float64 `json:"rss_anon_mib"`
	Goroutines float64 `json:"goroutines"`
	Files      float64 `json:"open_files"`
}

// sample is every process and the lags at one time, T seconds after the
// devices started.
type sample struct {
	T           float64               `json:"t_s"`
	Procs       map[string]procSample `json:"procs"`
	ConsumerLag float64               `json:"consumer_lag"` // records in the core topics not read yet by the soak's consumer
	UplinkLag   float64               `json:"uplink_lag"`   // records in the edge's spool not acknowledged by the core yet (-1: edge down)
	Acked       int64                 `json:"acked"`        // publishes the devices got a PUBACK for so far
}

// restart is one restart on the way.
type restart struct {
	Process string  `json:"process"`
	AtS     float64 `json:"at_s"`
	DownS   float64 `json:"down_s"` // SIGTERM → /readyz again
}

// readBack is what the final read of the core topics found.
type readBack struct {
	Records    int64 `json:"records"`
	Unique     int64 `json:"unique"`     // distinct (device, seq)
	Duplicates int64 `json:"duplicates"` // records beyond the first of a (device, seq)
	Gaps       int64 `json:"gaps"`       // seqs below a device's highest that are missing
	Foreign    int64 `json:"foreign"`    // records that are not a device's message
	// Twice lists the first duplicated messages: where each copy is and
	// when the edge received it.
	Twice []duplicate `json:"twice,omitempty"`
}

// duplicate is a message found twice.
type duplicate struct {
	Device string    `json:"device"`
	Seq    int64     `json:"seq"`
	First  string    `json:"first"` // topic/partition@offset
	Again  string    `json:"again"` // topic/partition@offset
	At     time.Time `json:"at"`    // the second copy's record timestamp
	AtS    float64   `json:"at_s"`  // the same, seconds after the devices started
}

// maxTwice bounds readBack.Twice.
const maxTwice = 20

// fleetCounts are the devices' final counters.
type fleetCounts struct {
	Sent, Acked, Errors, Unacked, Dropped, Reconnects int64
}

// result is one soak, as soak.json holds it.
type result struct {
	Options  options     `json:"options"`
	Start    time.Time   `json:"start"`
	Samples  []sample    `json:"samples"`
	Restarts []restart   `json:"restarts"`
	Fits     []fit       `json:"fits"`
	FitFromS float64     `json:"fit_from_s"`
	Fleet    fleetCounts `json:"fleet"`
	Read     readBack    `json:"read"`
}

// Err is nil when the soak passed: no leak, nothing lost, nothing twice.
func (r *result) Err() error {
	var errs []error
	for _, f := range r.Fits {
		if f.Leak {
			errs = append(errs, fmt.Errorf("leak: %v", f))
		}
	}
	if r.Fleet.Acked == 0 {
		errs = append(errs, errors.New("no message was acknowledged"))
	}
	if r.Read.Unique < r.Fleet.Acked {
		errs = append(errs, fmt.Errorf("lost: %d messages acknowledged, %d distinct ones in the core", r.Fleet.Acked, r.Read.Unique))
	}
	if maybe := r.Fleet.Errors + r.Fleet.Unacked; r.Read.Gaps > maybe {
		errs = append(errs, fmt.Errorf("lost: %d seqs missing in the core, more than the %d publishes that failed or were never acknowledged", r.Read.Gaps, maybe))
	}
	if r.Read.Duplicates > 0 {
		errs = append(errs, fmt.Errorf("duplicated: %d records are there twice", r.Read.Duplicates))
	}
	if r.Read.Foreign > 0 {
		errs = append(errs, fmt.Errorf("%d records in the core are not the devices' messages", r.Read.Foreign))
	}
	return errors.Join(errs...)
}

// run starts the cluster and the edge, runs the fleet for o.Duration with
// the restarts and the sampling, reads everything back and writes the
// files. It returns an error when the soak could not run; whether it
// passed is the result's Err.
func run(ctx context.Context, o options, log io.Writer) (res *result, err error) {
	res = &result{Options: o}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(o.Dir, "fluxo-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	logs, err := newLogs(filepath.Join(o.Out, "logs"))
	if err != nil {
		return nil, err
	}
	defer logs.close()
	bin := o.Fluxo
	if bin == "" {
		fmt.Fprintln(log, "soak: building cmd/fluxo")
		if bin, err = harness.BuildFluxo(ctx, root); err != nil {
			return nil, err
		}
	}

	cores, kafka, err := startCores(ctx, bin, root, logs)
	var all []*node
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		for _, n := range all {
			if serr := n.stop(sctx); serr != nil {
				fmt.Fprintf(log, "soak: stop %s: %v\n", n.name, serr)
			}
		}
	}()
	all = append(all, cores...)
	if err != nil {
		return nil, err
	}
	if err := createTopics(ctx, kafka); err != nil {
		return nil, err
	}
	addrs, err := harness.FreeAddrs(2)
	if err != nil {
		return nil, err
	}
	edge := &node{name: "edge", bin: bin, httpAddr: addrs[1], out: logs.open("edge"), args: []string{"edge",
		"--allow-anonymous", "--mqtt-addr", addrs[0], "--http-addr", addrs[1],
		"--core", strings.Join(kafka, ","), "--spool-dir", filepath.Join(root, "spool"),
		"--edge-id", "soak", "--log-level", "warn"}}
	if err := edge.start(ctx); err != nil {
		return nil, err
	}
	all = append(all, edge)
	fmt.Fprintf(log, "soak: logs in %s\n", logs.dir)
	fmt.Fprintf(log, "soak: 3 cores (%s), edge on %s; %d devices at %d msg/s for %v\n",
		strings.Join(kafka, ", "), addrs[0], o.Devices, o.Rate, o.Duration)

	lag, err := newLagReader(ctx, kafka)
	if err != nil {
		return nil, err
	}
	defer lag.close()

	// The fleet.
	dc := devices.DefaultConfig()
	dc.Broker = "tcp://" + addrs[0]
	dc.Panels = max(1, o.Devices/5)
	dc.Sensors = max(1, (o.Devices-dc.Panels)/2)
	dc.Cars = max(1, o.Devices-dc.Panels-dc.Sensors)
	dc.Rate = 0.9 * float64(o.Rate) / float64(dc.Sensors+dc.Cars)
	dc.PanelRate = 0.1 * float64(o.Rate) / float64(dc.Panels)
	dc.AlarmRate = 2
	dc.QoS = 1
	dc.Duration = o.Duration
	dc.MaxReconnectInterval = 2 * time.Second
	dc.DrainTimeout = 10 * time.Second
	dc.Seed = 15
	var acked struct {
		sync.Mutex
		n int64
	}
	fleetDone := make(chan devices.Stats, 1)
	fleetErr := make(chan error, 1)
	start := time.Now()
	res.Start = start
	go func() {
		st, err := devices.Run(ctx, dc, func(s devices.Stats) {
			acked.Lock()
			acked.n = s.Acked
			acked.Unlock()
		})
		fleetErr <- err
		fleetDone <- st
	}()

	// Sampling, and the restarts in the first fifth of the run.
	sctx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex // guards res.Samples, res.Restarts
	wg.Go(func() {
		tick := time.NewTicker(o.Interval)
		defer tick.Stop()
		for {
			s := takeSample(sctx, cores, edge, lag)
			s.T = time.Since(start).Seconds()
			acked.Lock()
			s.Acked = acked.n
			acked.Unlock()
			mu.Lock()
			res.Samples = append(res.Samples, s)
			mu.Unlock()
			fmt.Fprintf(log, "soak: %5.0fs acked %d, lag %0.f, uplink lag %.0f, edge %.0f MiB anon %.0f goroutines %.0f files\n",
				s.T, s.Acked, s.ConsumerLag, s.UplinkLag, s.Procs["edge"].AnonMiB, s.Procs["edge"].Goroutines, s.Procs["edge"].Files)
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	restartErr := make(chan error, 1)
	wg.Go(func() {
		var errs []error
		for _, r := range []struct {
			n  *node
			at float64
		}{{cores[1], 0.1}, {edge, 0.2}} {
			waitCtx(sctx, time.Until(start.Add(time.Duration(r.at*float64(o.Duration)))))
			if sctx.Err() != nil {
				break
			}
			t0 := time.Now()
			fmt.Fprintf(log, "soak: restarting %s\n", r.n.name)
			err := r.n.stop(sctx)
			if err == nil {
				err = r.n.start(sctx)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("restart %s: %w", r.n.name, err))
				break
			}
			mu.Lock()
			res.Restarts = append(res.Restarts, restart{Process: r.n.name, AtS: t0.Sub(start).Seconds(), DownS: time.Since(t0).Seconds()})
			mu.Unlock()
		}
		restartErr <- errors.Join(errs...)
	})

	var stats devices.Stats
	select {
	case stats = <-fleetDone:
	case <-ctx.Done():
		stats = <-fleetDone
	}
	if err := <-fleetErr; err != nil {
		stopSampling()
		wg.Wait()
		return nil, fmt.Errorf("devices: %w", err)
	}
	res.Fleet = fleetCounts{Sent: stats.Sent, Acked: stats.Acked, Errors: stats.Errors, Unacked: stats.Unacked(),
		Dropped: stats.Dropped, Reconnects: stats.Reconnects}
	fmt.Fprintf(log, "soak: fleet done: %+v\n", res.Fleet)
	stopSampling()
	wg.Wait()
	if err := <-restartErr; err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	// Everything spooled reaches the core, then the core topics are read.
	if err := waitUplink(ctx, edge); err != nil {
		return nil, err
	}
	if res.Read, err = readAll(ctx, kafka, start); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "soak: read back %+v\n", res.Read)

	res.FitFromS = o.Duration.Seconds() / 3
	res.Fits = fits(res.Samples, res.FitFromS, o.Bounds)
	for _, f := range res.Fits {
		fmt.Fprintf(log, "soak: %v\n", f)
	}
	if err := write(o.Out, res); err != nil {
		return nil, err
	}
	return res, nil
}

// startCores starts three fluxo core processes forming one cluster and
// waits until all three are ready; it returns their Kafka addresses.
func startCores(ctx context.Context, bin, root string, logs *logFiles) ([]*node, []string, error) {
	const n = 3
	a, err := harness.FreeAddrs(4 * n)
	if err != nil {
		return nil, nil, err
	}
	serf := []string{a[2], a[6], a[10]}
	var cores []*node
	var kafka []string
	for i := range n {
		id := strconv.Itoa(i + 1)
		kafka = append(kafka, a[4*i])
		cores = append(cores, &node{name: "core-" + id, bin: bin, httpAddr: a[4*i+1], out: logs.open("core-" + id), args: []string{"core",
			"--node-id", id, "--data-dir", filepath.Join(root, "core-"+id),
			"--kafka-addr", a[4*i], "--http-addr", a[4*i+1], "--serf-addr", a[4*i+2], "--raft-addr", a[4*i+3],
			"--join", strings.Join(serf, ","), "--bootstrap-expect", strconv.Itoa(n),
			"--auto-create-topics=false", "--log-level", "warn"}})
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, c := range cores {
		wg.Go(func() { errs[i] = c.start(ctx) })
	}
	wg.Wait()
	return cores, kafka, errors.Join(errs...)
}

func createTopics(ctx context.Context, kafka []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for topic, partitions := range coreTopics {
		resp, err := adm.CreateTopic(ctx, partitions, 3, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	return nil
}

// takeSample reads every process's memory, goroutines and files, and the
// lags.
func takeSample(ctx context.Context, cores []*node, edge *node, lag *lagReader) sample {
	s := sample{Procs: map[string]procSample{}, UplinkLag: -1}
	for _, n := range append(append([]*node{}, cores...), edge) {
		pid := n.pid()
		if pid == 0 {
			s.Procs[n.name] = procSample{}
			continue
		}
		var ps procSample
		mem, err1 := proc.ReadMem(pid)
		files, err2 := proc.OpenFiles(pid)
		m, err3 := scrape.Scrape(ctx, "http://"+n.httpAddr+"/metrics")
		if err := errors.Join(err1, err2, err3); err != nil {
			s.Procs[n.name] = procSample{}
			continue
		}
		ps = procSample{Up: true, RSSMiB: mib(mem.RSS), AnonMiB: mib(mem.Anon), Goroutines: m.Sum("go_goroutines", ""), Files: float64(files)}
		s.Procs[n.name] = ps
		if n == edge {
			s.UplinkLag = m.Sum("fluxo_edge_uplink_lag_records", "")
		}
	}
	s.ConsumerLag = lag.lag(ctx)
	return s
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// fits judges every process's anonymous RSS, goroutines and open files
// over the samples from from seconds on.
func fits(samples []sample, from float64, b bounds) []fit {
	var out []fit
	for _, name := range []string{"edge", "core-1", "core-2", "core-3"} {
		t := make([]float64, len(samples))
		rss := make([]float64, len(samples))
		gor := make([]float64, len(samples))
		fds := make([]float64, len(samples))
		for i, s := range samples {
			t[i] = s.T
			p := s.Procs[name]
			if !p.Up {
				rss[i], gor[i], fds[i] = math.NaN(), math.NaN(), math.NaN()
				continue
			}
			rss[i], gor[i], fds[i] = p.AnonMiB, p.Goroutines, p.Files
		}
		out = append(out,
			judge(name, "anonymous RSS (MiB)", t, rss, from, b.RSS),
			judge(name, "goroutines", t, gor, from, b.Goroutines),
			judge(name, "open files", t, fds, from, b.Files))
	}
	return out
}

// waitUplink waits, at most three minutes, until the edge's spool has
// nothing the core has not acknowledged.
func waitUplink(ctx context.Context, edge *node) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		m, err := scrape.Scrape(ctx, "http://"+edge.httpAddr+"/metrics")
		if err == nil && m.Sum("fluxo_edge_uplink_lag_records", "") == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the edge's uplink still has records to send after three minutes (%v)", err)
		}
		waitCtx(ctx, 200*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// lagReader reads the core topics as a consumer would during the soak,
// and knows how far behind their ends it is.
type lagReader struct {
	cl     *kgo.Client
	adm    *kadm.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex                 // guards pos
	pos map[string]map[int32]int64 // next offset to read
}

func newLagReader(ctx context.Context, kafka []string) (*lagReader, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka...), kgo.ConsumeTopics(readTopics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &lagReader{cl: cl, adm: kadm.NewClient(cl), cancel: cancel, done: make(chan struct{}), pos: map[string]map[int32]int64{}}
	go func() {
		defer close(l.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachPartition(func(p kgo.FetchTopicPartition) {
				if len(p.Records) == 0 {
					return
				}
				l.mu.Lock()
				if l.pos[p.Topic] == nil {
					l.pos[p.Topic] = map[int32]int64{}
				}
				l.pos[p.Topic][p.Partition] = p.Records[len(p.Records)-1].Offset + 1
				l.mu.Unlock()
			})
		}
	}()
	return l, nil
}

// lag is the records in the core topics the reader has not read, NaN if
// the end offsets cannot be listed.
func (l *lagReader) lag(ctx context.Context) float64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ends, err := l.adm.ListEndOffsets(ctx, readTopics...)
	if err != nil || ends.Error() != nil {
		return math.NaN()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var lag int64
	ends.Each(func(o kadm.ListedOffset) {
		lag += max(0, o.Offset-l.pos[o.Topic][o.Partition])
	})
	return float64(lag)
}

func (l *lagReader) close() {
	l.cancel()
	<-l.done
	l.cl.Close()
}

// readAll reads the core topics from their start to their current end
// and counts each device's messages by seq.
func readAll(ctx context.Context, kafka []string, start time.Time) (readBack, error) {
	var rb readBack
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka...), kgo.ConsumeTopics(readTopics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return rb, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, readTopics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return rb, fmt.Errorf("list end offsets: %w", err)
	}
	left := map[string]map[int32]int64{}
	remaining := 0
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			if left[o.Topic] == nil {
				left[o.Topic] = map[int32]int64{}
			}
			left[o.Topic][o.Partition] = o.Offset
			remaining++
		}
	})
	seen := map[string][]uint8{}  // device → count by seq
	first := map[string][]int64{} // device → where its seq was first seen: topic<<56 | partition<<40 | offset
	var msg struct {
		Device string `json:"device"`
		Seq    int64  `json:"seq"`
	}
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return rb, fmt.Errorf("read back: %d partitions not read to their end: %w", remaining, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Topic][r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if r.Offset == end-1 {
				delete(left[r.Topic], r.Partition)
				remaining--
			}
			rb.Records++
			msg.Device, msg.Seq = "", 0
			if json.Unmarshal(r.Value, &msg) != nil || msg.Device == "" || msg.Seq < 1 || msg.Seq > 1<<24 {
				rb.Foreign++
				return
			}
			c, loc := seen[msg.Device], first[msg.Device]
			if int64(len(c)) <= msg.Seq {
				grow := int(msg.Seq) + 1 - len(c) + len(c)/2
				c = append(c, make([]uint8, grow)...)
				loc = append(loc, make([]int64, grow)...)
				seen[msg.Device], first[msg.Device] = c, loc
			}
			topic := int64(slices.Index(readTopics, r.Topic))
			if c[msg.Seq] == 0 {
				loc[msg.Seq] = topic<<56 | int64(r.Partition)<<40 | r.Offset
			} else if len(rb.Twice) < maxTwice {
				l := loc[msg.Seq]
				rb.Twice = append(rb.Twice, duplicate{Device: msg.Device, Seq: msg.Seq,
					First: fmt.Sprintf("%s/%d@%d", readTopics[l>>56], l>>40&0xffff, l&(1<<40-1)),
					Again: fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset),
					At:    r.Timestamp, AtS: r.Timestamp.Sub(start).Seconds()})
			}
			if c[msg.Seq] < 255 {
				c[msg.Seq]++
			}
		})
	}
	for _, c := range seen {
		top := 0
		for seq, n := range c {
			if n > 0 {
				top = seq
				rb.Unique++
				rb.Duplicates += int64(n) - 1
			}
		}
		for seq := 1; seq < top; seq++ {
			if c[seq] == 0 {
				rb.Gaps++
			}
		}
	}
	return rb, nil
}

// logFiles are the processes' output files, one per process, kept open
// across its restarts.
type logFiles struct {
	dir   string
	files []*os.File
}

func newLogs(dir string) (*logFiles, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &logFiles{dir: dir}, nil
}

// open returns name's log file; should it not open, the output goes to
// stderr.
func (l *logFiles) open(name string) io.Writer {
	f, err := os.Create(filepath.Join(l.dir, name+".log"))
	if err != nil {
		return os.Stderr
	}
	l.files = append(l.files, f)
	return f
}

func (l *logFiles) close() {
	for _, f := range l.files {
		f.Close()
	}
}
