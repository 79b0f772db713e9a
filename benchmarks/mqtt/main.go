// Command mqtt measures MQTT ingest at the edge: paho publishers against
// a `fluxo edge` process (forwarding to a `fluxo core` process), with its
// spool in the page cache (--spool-sync never) and fsynced before every
// PUBACK (--spool-sync always), next to two baselines in the same run: a
// bare mochi-mqtt server (the MQTT server inside the edge, with the
// allow-all hook and a TCP listener and nothing else; this program started
// again as `bare-mochi`) and Mosquitto (/usr/sbin/mosquitto, persistence
// off). The figure that matters is each target's ratio to the bare mochi
// server.
//
// Phases (-phases):
//
//   - throughput: for each QoS and target, -publishers paho clients (MQTT
//     3.1.1, one connection each) publish -payload-bytes payloads as fast
//     as their QoS allows for -warmup plus -duration; the rate is the
//     server's own count of PUBLISH packets over the timed window (the
//     edge's fluxo_edge_publishes_total, mochi's Info.MessagesReceived,
//     Mosquitto's $SYS/broker/publish/messages/received). QoS 1
//     publishers keep -inflight publishes unacknowledged each. Every
//     target is started fresh for each run and stopped after it.
//   - json: the edge (never) at QoS 1 with car telemetry JSON (the devices
//     package's CarTelemetry shape, about 155 B), then, once the uplink
//     has delivered everything, the uplink's bytes from /metrics against
//     the payload bytes published.
//   - latency: for --spool-sync never and always (those of them in
//     -targets, and the bare mochi server if there), -latency-devices devices
//     publish -latency-rate messages per second in total at QoS 1, a share
//     -alarm-share of them alarms on cars/{device}/alarm/engine-overheat
//     (core topic alarms), the rest telemetry on cars/{device}/telemetry;
//     a franz-go consumer of the core per topic reads it and measures
//     device → consumer latency from the send time in each payload. The
//     uplink's compression of that traffic is read from /metrics
//     afterwards. The same devices against the bare mochi server give the
//     PUBACK latency this machine and client manage without the edge.
//   - uplink (not in the default -phases): the edge's uplink
//     (bridge/uplink, in this process) drains a spool holding
//     -uplink-records car telemetry records to a `fluxo core` process of
//     its own that has two listeners, PLAINTEXT and SASL_SSL
//     (SCRAM-SHA-512 over TLS, the SCRAM user's ACLs checked); each of
//     -uplink-rounds rounds drains a freshly filled spool over PLAINTEXT,
//     then over SASL_SSL, and each SASL_SSL drain's records/s is divided
//     by the PLAINTEXT drain's of its round (uplinksec.go).
//   - registry (not in the default -phases): the device registry's cost,
//     an edge with --registry=false against one with it, each taught
//     -registry-devices devices, under a QoS 1 flood, with GET
//     /api/devices timed during it (registry.go).
//   - idle and storm (not in the default -phases): the RSS of silent
//     devices, at each count of -idle-conns (by default -idle-devices),
//     on each of -idle-targets (the edge, the edge without its registry,
//     the bare mochi server, Mosquitto, -peer servers); and the time
//     -idle-devices devices take to be back on a restarted edge, with and
//     without --max-connect-rate (idle.go). The edge gets --max-clients
//     above the largest count; the soft limit on open files is raised to
//     the hard one.
//
// Everything listens on 127.0.0.1 ports that were free at start; data
// goes to a temporary directory that is removed at the end. Every process
// started is stopped with SIGTERM (SIGQUIT, then SIGKILL, when it
// lingers; SIGKILL when this program dies), and the whole run is bounded
// by -timeout.
//
// The tables go to stdout in markdown; progress goes to stderr.
//
//	go run ./benchmarks/mqtt
//	go run ./benchmarks/mqtt -phases throughput -qos 1 -rounds 3
//	go run ./benchmarks/mqtt -in-process -cpuprofile cpu.out -phases throughput -targets edge-always -qos 1
//	go run ./benchmarks/mqtt -in-process -memprofile mem.out -phases throughput -targets edge-always -qos 1 -publishers 100
//	go run ./benchmarks/mqtt -in-process -trace trace.out -phases latency
//	go run ./benchmarks/mqtt -phases uplink -uplink-rounds 3
//	go run ./benchmarks/mqtt -phases registry -publishers 20 -rounds 3
//	go run ./benchmarks/mqtt -phases idle,storm -rounds 3
//	go run ./benchmarks/mqtt -phases idle -idle-devices 19000 -idle-targets edge
//	go run ./benchmarks/mqtt -phases idle -idle-conns 0,1000,5000 -idle-targets edge,mochi,nats -peer nats=/tmp/natsmqtt
//
// -peer NAME=PATH adds an MQTT server of another project as a target of
// -targets and -idle-targets (benchmarks/peers runs NATS this way), and
// -json FILE writes the figures for programs.
//
// With -in-process the edge runs in this process (edge.NewNode, built as
// `fluxo edge --allow-anonymous` builds it), so that -cpuprofile,
// -memprofile and -trace see it; the core stays a process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fluxo-io/fluxo/benchmarks/internal/harness"
	"github.com/fluxo-io/fluxo/benchmarks/internal/proc"
)

// options are the command line.
type options struct {
	publishers      int
	duration        time.Duration
	warmup          time.Duration
	payloadBytes    int
	inflight        int
	targets         []string
	qos             []byte
	phases          []string
	rounds          int
	settle          time.Duration
	latencyDevices  int
	latencyRate     float64
	alarmShare      float64
	latencyDuration time.Duration
	latencyRounds   int
	dir             string
	fluxo           string
	mosquitto       string
	inProcess       bool
	cpuprofile      string
	memprofile      string
	trace           string
	timeout         time.Duration

	uplinkRecords    int
	uplinkRounds     int
	uplinkLinger     time.Duration
	uplinkPartitions int32

	registryDevices     int
	registryAPIInterval time.Duration

	peers     peerFlag
	json      string
	idleConns []int

	idleDevices int
	idleTargets []string
	idleSettle  time.Duration
	stormRate   float64
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == bareMochiCommand {
		if err := bareMochi(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bare-mochi:", err)
			os.Exit(1)
		}
		return
	}
	o := options{peers: peerFlag{}}
	var targets, qos, phases, idleConns string
	flag.IntVar(&o.publishers, "publishers", 100, "publishers (MQTT connections) in the throughput and json phases")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "timed window of each throughput and json run")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "publishing before each timed window")
	flag.IntVar(&o.payloadBytes, "payload-bytes", 256, "payload size in the throughput phase")
	flag.IntVar(&o.inflight, "inflight", 16, "QoS 1: unacknowledged publishes per publisher (1: wait for each PUBACK)")
	flag.StringVar(&targets, "targets", "edge-never,edge-always,mochi,mosquitto", "targets of the throughput phase, in the order run")
	flag.StringVar(&qos, "qos", "1,0", "QoS levels of the throughput phase")
	flag.StringVar(&phases, "phases", "throughput,json,latency", "phases to run")
	flag.IntVar(&o.rounds, "rounds", 1, "times the throughput phase runs every target (the table shows medians)")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "pause between runs")
	flag.IntVar(&o.latencyDevices, "latency-devices", 100, "devices in the latency phase")
	flag.Float64Var(&o.latencyRate, "latency-rate", 1000, "messages per second of all devices together in the latency phase")
	flag.Float64Var(&o.alarmShare, "alarm-share", 0.05, "fraction of the latency phase's messages that are alarms")
	flag.DurationVar(&o.latencyDuration, "latency-duration", 30*time.Second, "timed window of each latency run")
	flag.IntVar(&o.latencyRounds, "latency-rounds", 1, "times the latency phase runs each edge target (each run is a row)")
	flag.StringVar(&o.dir, "dir", os.TempDir(), "parent of the temporary directory holding the core's data, the spools and Mosquitto's configuration")
	flag.StringVar(&o.fluxo, "fluxo", "", "fluxo binary to run (default: build ./cmd/fluxo into the temporary directory)")
	flag.StringVar(&o.mosquitto, "mosquitto", "/usr/sbin/mosquitto", "Mosquitto binary")
	flag.BoolVar(&o.inProcess, "in-process", false, "run the edge node in this process (edge.NewNode) instead of as a fluxo edge process, for -cpuprofile")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of all phases to this file")
	flag.StringVar(&o.memprofile, "memprofile", "", "write an allocation profile of all phases to this file (go tool pprof -sample_index=alloc_space; with -in-process it shows what the edge allocates per message)")
	flag.StringVar(&o.trace, "trace", "", "write a Go execution trace of all phases to this file (go tool trace; with -in-process it shows where the edge's goroutines wait)")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole run")
	flag.IntVar(&o.uplinkRecords, "uplink-records", 1000000, "uplink phase: telemetry records in the spool each drain sends")
	flag.IntVar(&o.uplinkRounds, "uplink-rounds", 3, "uplink phase: rounds, each a PLAINTEXT drain then a SASL_SSL drain")
	flag.DurationVar(&o.uplinkLinger, "uplink-linger", 5*time.Millisecond, "uplink phase: the uplink's telemetry linger (a full backlog does not wait for it; only the last window does)")
	var uplinkPartitions int
	flag.IntVar(&uplinkPartitions, "uplink-partitions", 1, "uplink phase: partitions of the core's telemetry topic")
	flag.IntVar(&o.registryDevices, "registry-devices", 10000, "registry phase: devices the edge is taught before the flood")
	flag.DurationVar(&o.registryAPIInterval, "registry-api-interval", 100*time.Millisecond, "registry phase: how often GET /api/devices is asked during the flood")
	flag.Var(o.peers, "peer", "another MQTT server to measure, NAME=PATH, repeatable: PATH -addr HOST:PORT -stats-addr HOST:PORT must serve MQTT and /readyz and /stats as bare-mochi does; NAME can then be given to -targets and -idle-targets")
	flag.StringVar(&o.json, "json", "", "also write the figures as JSON to this file")
	var idleTargets string
	flag.IntVar(&o.idleDevices, "idle-devices", 10000, "storm phase: devices connected; idle phase: the count of idle connections when -idle-conns is not given")
	flag.StringVar(&idleConns, "idle-conns", "", "idle phase: counts of idle connections, ascending, at each of which every target's memory is read (default: -idle-devices alone)")
	flag.StringVar(&idleTargets, "idle-targets", "edge,edge-noregistry,mochi,mosquitto", "idle phase: targets, in the order run (edge, edge-noregistry, mochi, mosquitto, or a -peer NAME)")
	flag.DurationVar(&o.idleSettle, "idle-settle", 5*time.Second, "idle phase: wait between reaching a count of connections and the RSS reading")
	flag.Float64Var(&o.stormRate, "storm-rate", 1000, "storm phase: --max-connect-rate of the second storm (0: only the storm without)")
	flag.Parse()
	o.uplinkPartitions = int32(uplinkPartitions)

	err := o.parse(targets, qos, phases)
	if err == nil {
		err = o.parseIdle(idleTargets, idleConns)
	}
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		ctx, cancel := context.WithTimeout(ctx, o.timeout)
		err = run(ctx, o, os.Stdout, os.Stderr)
		cancel()
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmarks/mqtt:", err)
		os.Exit(1)
	}
}

func (o *options) parse(targets, qos, phases string) error {
	for t := range strings.SplitSeq(targets, ",") {
		switch t {
		case targetEdgeNever, targetEdgeAlways, targetMochi, targetMosquitto:
			o.targets = append(o.targets, t)
		case "":
		default:
			if _, ok := o.peers[t]; ok {
				o.targets = append(o.targets, t)
				targetLabels[t] = t
				continue
			}
			return fmt.Errorf("-targets: unknown target %q", t)
		}
	}
	for q := range strings.SplitSeq(qos, ",") {
		switch q {
		case "0", "1":
			o.qos = append(o.qos, q[0]-'0')
		default:
			return fmt.Errorf("-qos: %q is not 0 or 1", q)
		}
	}
	for p := range strings.SplitSeq(phases, ",") {
		switch p {
		case "throughput", "json", "latency", "uplink", "registry", "idle", "storm":
			o.phases = append(o.phases, p)
		default:
			return fmt.Errorf("-phases: unknown phase %q", p)
		}
	}
	switch {
	case o.publishers < 1 || o.inflight < 1 || o.rounds < 1 || o.latencyDevices < 1 || o.latencyRounds < 1:
		return fmt.Errorf("-publishers, -inflight, -rounds, -latency-devices and -latency-rounds must be at least 1")
	case o.uplinkRecords < 1 || o.uplinkRounds < 1 || o.uplinkPartitions < 1 || o.uplinkLinger < 0:
		return fmt.Errorf("-uplink-records, -uplink-rounds and -uplink-partitions must be at least 1, -uplink-linger not negative")
	case o.registryDevices < 1 || o.registryAPIInterval <= 0:
		return fmt.Errorf("-registry-devices must be at least 1, -registry-api-interval positive")
	case o.duration <= 0 || o.latencyDuration <= 0 || o.warmup < 0:
		return fmt.Errorf("-duration and -latency-duration must be positive")
	case o.payloadBytes < 1 || o.payloadBytes > 256<<10-1024:
		return fmt.Errorf("-payload-bytes must be between 1 and 255 KiB")
	case o.latencyRate <= 0 || o.latencyRate/float64(o.latencyDevices) > 1000:
		return fmt.Errorf("-latency-rate must be positive and at most 1000 per device")
	case o.alarmShare < 0 || o.alarmShare > 1:
		return fmt.Errorf("-alarm-share must be between 0 and 1")
	}
	return nil
}

// parseIdle parses -idle-targets and -idle-conns (empty: -idle-devices
// alone) after the -peer flags.
func (o *options) parseIdle(targets, conns string) error {
	if o.idleDevices < 1 {
		return fmt.Errorf("-idle-devices %d below 1", o.idleDevices)
	}
	for t := range strings.SplitSeq(targets, ",") {
		switch t {
		case idleEdge, idleEdgeNoRegistry, idleMochi, idleMosquitto:
		default:
			if _, ok := o.peers[t]; !ok {
				return fmt.Errorf("-idle-targets: unknown target %q", t)
			}
		}
		o.idleTargets = append(o.idleTargets, t)
	}
	if conns == "" {
		conns = strconv.Itoa(o.idleDevices)
	}
	return o.parseIdleConns(conns)
}

// parseIdleConns parses -idle-conns: counts, ascending, none negative.
func (o *options) parseIdleConns(s string) error {
	for n := range strings.SplitSeq(s, ",") {
		v, err := strconv.Atoi(n)
		if err != nil || v < 0 || (len(o.idleConns) > 0 && v < o.idleConns[len(o.idleConns)-1]) {
			return fmt.Errorf("-idle-conns: want ascending counts, got %q", s)
		}
		o.idleConns = append(o.idleConns, v)
	}
	return nil
}

func (o options) has(phase string) bool { return slices.Contains(o.phases, phase) }

// report is everything a run measured, for the tables.
type report struct {
	throughput  map[string][]loadResult // by runKey, one per round
	json        *loadResult
	compression []compressionResult
	latency     []latencyRun
	floors      *floors
	uplink      []uplinkDrain
	registry    []registryRun
	idle        []idleRun
	storm       []stormRun
	killed      []string // targets that did not stop on SIGTERM
}

func runKey(target string, qos byte) string { return target + "/" + strconv.Itoa(int(qos)) }

type latencyRun struct {
	target string
	latencyResult
}

// compressionResult compares what the uplink sent with what devices
// published, per lane.
type compressionResult struct {
	run              string
	msgs, payload    [2]int64   // acknowledged publishes and their payload bytes, [telemetry, alarm]
	raw, sent        [2]float64 // fluxo_edge_uplink_{raw,sent}_bytes_total
	records, batches [2]float64 // fluxo_edge_uplink_{records,batches}_total
	// estimates: the telemetry records of the window re-encoded in
	// batches of the uplink's mean size (latency runs only).
	estimates []codecEstimate
	sample    int
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) (err error) {
	root, err := os.MkdirTemp(o.dir, "fluxo-mqtt-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)

	needCore := o.has("json") || o.has("latency") || o.has("registry") || o.has("storm") ||
		(o.has("idle") && (slices.Contains(o.idleTargets, idleEdge) || slices.Contains(o.idleTargets, idleEdgeNoRegistry)))
	for _, t := range o.targets {
		needCore = needCore || (o.has("throughput") && strings.HasPrefix(t, "edge-"))
	}
	var core *coreProc
	bin := o.fluxo
	if bin == "" && o.has("uplink") && !needCore {
		fmt.Fprintln(stderr, "building cmd/fluxo")
		if bin, err = harness.BuildFluxo(ctx, root); err != nil {
			return err
		}
	}
	if needCore {
		if bin == "" {
			fmt.Fprintln(stderr, "building cmd/fluxo")
			if bin, err = harness.BuildFluxo(ctx, root); err != nil {
				return err
			}
		}
		fmt.Fprintln(stderr, "starting fluxo core")
		if core, err = startCore(ctx, bin, filepath.Join(root, "core")); err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if serr := core.Stop(sctx); serr != nil && err == nil {
				err = fmt.Errorf("stop fluxo core: %w", serr)
			}
		}()
		fmt.Fprintf(stderr, "core on %s, data under %s\n", core.kafkaAddr, root)
	}

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

	if o.trace != "" {
		f, err := os.Create(o.trace)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return err
		}
		defer trace.Stop()
	}

	b := &bench{o: o, root: root, bin: bin, core: core, stderr: stderr}
	rep := report{throughput: map[string][]loadResult{}}
	if o.has("throughput") {
		if err := b.throughput(ctx, &rep); err != nil {
			return err
		}
	}
	if o.has("json") {
		if err := b.jsonRun(ctx, &rep); err != nil {
			return err
		}
	}
	if o.has("latency") {
		if slices.Contains(o.targets, targetMochi) {
			if err := b.latencyRun(ctx, &rep, targetMochi); err != nil {
				return err
			}
		}
		if slices.Contains(o.targets, targetEdgeNever) || slices.Contains(o.targets, targetEdgeAlways) {
			if err := b.measureFloors(ctx, &rep); err != nil {
				return err
			}
		}
		for range o.latencyRounds {
			for _, name := range []string{targetEdgeNever, targetEdgeAlways} {
				if !slices.Contains(o.targets, name) {
					continue
				}
				if err := b.latencyRun(ctx, &rep, name); err != nil {
					return err
				}
			}
		}
	}
	if o.has("uplink") {
		if err := b.uplinkRun(ctx, &rep); err != nil {
			return err
		}
	}
	if o.has("registry") {
		if err := b.registryPhase(ctx, &rep); err != nil {
			return err
		}
	}
	if o.has("idle") {
		if err := b.idlePhase(ctx, &rep); err != nil {
			return err
		}
	}
	if o.has("storm") {
		if err := b.stormPhase(ctx, &rep); err != nil {
			return err
		}
	}
	if o.cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	if o.trace != "" {
		trace.Stop()
	}
	if o.memprofile != "" {
		if err := writeAllocs(o.memprofile); err != nil {
			return err
		}
	}
	rep.killed = b.killed
	printReport(stdout, o, rep)
	if o.json != "" {
		return writeJSON(o.json, o, rep)
	}
	return nil
}

// bench runs the phases.
type bench struct {
	o      options
	root   string
	bin    string
	core   *coreProc
	stderr io.Writer
	runs   int // targets started so far, for fresh directories
	killed []string
}

func (b *bench) corePID() int {
	if b.core == nil {
		return 0
	}
	return b.core.PID()
}

// start starts a fresh target in its own directory.
func (b *bench) start(ctx context.Context, name string) (target, error) {
	b.runs++
	dir := filepath.Join(b.root, fmt.Sprintf("run-%d-%s", b.runs, name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	switch name {
	case targetEdgeNever:
		return startEdgeWith(ctx, b.bin, b.o.inProcess, b.core.kafkaAddr, dir, "never")
	case targetEdgeAlways:
		return startEdgeWith(ctx, b.bin, b.o.inProcess, b.core.kafkaAddr, dir, "always")
	case targetMochi:
		return startMochi(ctx)
	case targetMosquitto:
		return startMosquitto(ctx, b.o.mosquitto, dir)
	}
	if bin, ok := b.o.peers[name]; ok {
		return startPeer(ctx, name, bin)
	}
	return nil, fmt.Errorf("unknown target %q", name)
}

// stop stops a target and removes its directory.
func (b *bench) stop(ctx context.Context, name string, t target) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	err := t.Stop(sctx)
	os.RemoveAll(filepath.Join(b.root, fmt.Sprintf("run-%d-%s", b.runs, name)))
	if errors.Is(err, proc.ErrKilled) {
		// What it measured stands; the table says how often this happened.
		fmt.Fprintf(b.stderr, "  warning: %v\n", err)
		b.killed = append(b.killed, name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

func (b *bench) throughput(ctx context.Context, rep *report) error {
	pool := fixedPayloads(1024, b.o.payloadBytes, 1)
	next := make([]int, b.o.publishers)
	spec := loadSpec{
		publishers: b.o.publishers, inflight: b.o.inflight, warmup: b.o.warmup, duration: b.o.duration,
		payload: func(p int, _ []byte) []byte {
			next[p]++
			return pool[(p*37+next[p])%len(pool)]
		},
		topic:   func(p int) string { return fmt.Sprintf("cars/c-%04d/telemetry", p+1) },
		id:      func(p int) string { return fmt.Sprintf("c-%04d", p+1) },
		corePID: b.corePID(),
	}
	for round := range b.o.rounds {
		for _, q := range b.o.qos {
			for _, name := range b.o.targets {
				spec.qos = q
				sleep(ctx, b.o.settle)
				fmt.Fprintf(b.stderr, "round %d, QoS %d, %s: %d publishers for %v\n", round+1, q, name, b.o.publishers, b.o.warmup+b.o.duration)
				r, err := b.load(ctx, name, spec, nil)
				if err != nil {
					return fmt.Errorf("%s QoS %d: %w", name, q, err)
				}
				rep.throughput[runKey(name, q)] = append(rep.throughput[runKey(name, q)], r)
			}
		}
	}
	return nil
}

// load starts the target, runs the flood, calls after (if any) with the
// target still up, and stops the target.
func (b *bench) load(ctx context.Context, name string, spec loadSpec, after func(target) error) (res loadResult, err error) {
	t, err := b.start(ctx, name)
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := b.stop(ctx, name, t); serr != nil && err == nil {
			err = serr
		}
	}()
	if !strings.HasPrefix(name, "edge-") {
		spec.corePID = 0
	}
	res, err = runLoad(ctx, t, spec)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(b.stderr, "  %.0f msg/s (client side %.0f/s), server %.2f cores, core %.2f, client %.2f\n",
		res.rate(), float64(res.client)/res.elapsed.Seconds(), cores(res.serverCPU, res.elapsed),
		cores(res.coreCPU, res.elapsed), cores(res.clientCPU, res.elapsed))
	if after != nil {
		err = after(t)
	}
	return res, err
}

func cores(cpu, elapsed time.Duration) float64 { return cpu.Seconds() / elapsed.Seconds() }

func (b *bench) jsonRun(ctx context.Context, rep *report) error {
	cars := make([]*car, b.o.publishers)
	for i := range cars {
		cars[i] = newCar(i, 2)
	}
	var msgs, bytes counter
	spec := loadSpec{
		publishers: b.o.publishers, qos: 1, inflight: b.o.inflight, warmup: b.o.warmup, duration: b.o.duration,
		payload: func(p int, buf []byte) []byte {
			buf = cars[p].telemetry(buf, time.Now().UnixNano(), false)
			msgs.Add(1)
			bytes.Add(int64(len(buf)))
			return buf
		},
		topic:   func(p int) string { return cars[p].topic("telemetry") },
		id:      func(p int) string { return cars[p].id },
		corePID: b.corePID(),
	}
	sleep(ctx, b.o.settle)
	fmt.Fprintf(b.stderr, "json: edge (never), QoS 1, %d publishers of car telemetry for %v\n", b.o.publishers, b.o.warmup+b.o.duration)
	r, err := b.load(ctx, targetEdgeNever, spec, func(t target) error {
		c, err := compression(ctx, t.(*edgeTarget), "json, QoS 1 flood (never)")
		if err != nil {
			return err
		}
		// Every publish was acknowledged (runLoad failed otherwise), so
		// the payloads made are the payloads the edge accepted.
		c.msgs[laneTelemetry], c.payload[laneTelemetry] = msgs.Load(), bytes.Load()
		rep.compression = append(rep.compression, c)
		return nil
	})
	if err != nil {
		return fmt.Errorf("json: %w", err)
	}
	rep.json = &r
	return nil
}

// measureFloors measures, with the core and nothing else running, the
// latency of the Kafka hop (franz-go → core → franz-go) and of an fdatasync
// in the spools' file system, at the alarm rate for at most 10 s each.
func (b *bench) measureFloors(ctx context.Context, rep *report) error {
	sleep(ctx, b.o.settle)
	rate := b.o.latencyRate * b.o.alarmShare
	if rate <= 0 {
		rate = 50
	}
	interval := time.Duration(float64(time.Second) / rate)
	n := max(100, int(min(b.o.latencyDuration, 10*time.Second)/interval))
	fmt.Fprintf(b.stderr, "floors: %d records franz-go → core → franz-go, %d fdatasyncs, one every %v\n", n, n, interval)
	kafka, err := measureKafkaFloor(ctx, b.core.kafkaAddr, n, interval)
	if err != nil {
		return err
	}
	fsync, err := measureFsyncFloor(ctx, b.root, n, interval)
	if err != nil {
		return err
	}
	rep.floors = &floors{kafka: kafka, fsync: fsync}
	fmt.Fprintf(b.stderr, "  kafka hop p50 %v p99 %v; fdatasync p50 %v p99 %v\n",
		kafka.Quantile(0.5), kafka.Quantile(0.99), fsync.Quantile(0.5), fsync.Quantile(0.99))
	return nil
}

// latencyRun runs the latency scenario against a fresh target: an edge
// (device → consumer latency and the uplink's compression), or the bare
// mochi server (PUBACK latency only: the floor of this machine and
// client).
func (b *bench) latencyRun(ctx context.Context, rep *report, name string) (err error) {
	sleep(ctx, b.o.settle)
	fmt.Fprintf(b.stderr, "latency: %s, %d devices, %.0f msg/s, %.0f%% alarms, for %v\n",
		name, b.o.latencyDevices, b.o.latencyRate, 100*b.o.alarmShare, b.o.warmup+b.o.latencyDuration)
	t, err := b.start(ctx, name)
	if err != nil {
		return err
	}
	defer func() {
		if serr := b.stop(ctx, name, t); serr != nil && err == nil {
			err = serr
		}
	}()
	et, isEdge := t.(*edgeTarget)
	coreAddr := ""
	if isEdge {
		coreAddr = b.core.kafkaAddr
	}
	r, err := runLatency(ctx, t, coreAddr, latencySpec{
		devices: b.o.latencyDevices, rate: b.o.latencyRate, alarmShare: b.o.alarmShare,
		warmup: b.o.warmup, duration: b.o.latencyDuration, seed: 3,
	})
	if err != nil {
		return fmt.Errorf("latency (%s): %w", name, err)
	}
	fmt.Fprintf(b.stderr, "  alarms %d: device → consumer p50 %v p99 %v; PUBACK p50 %v p99 %v; telemetry p50 %v p99 %v\n",
		r.alarmsSent, r.alarmE2E.Quantile(0.5), r.alarmE2E.Quantile(0.99), r.alarmAck.Quantile(0.5), r.alarmAck.Quantile(0.99),
		r.telemetryE2E.Quantile(0.5), r.telemetryE2E.Quantile(0.99))
	rep.latency = append(rep.latency, latencyRun{target: name, latencyResult: r})
	if !isEdge {
		return nil
	}
	c, err := compression(ctx, et, fmt.Sprintf("latency, %.0f msg/s (%s)", b.o.latencyRate, strings.TrimPrefix(name, "edge-")))
	if err != nil {
		return err
	}
	c.msgs, c.payload = r.msgs, r.bytes
	if err := checkHeaders(r.telemetry); err != nil {
		return err
	}
	if c.batches[laneTelemetry] > 0 {
		perBatch := int(c.records[laneTelemetry]/c.batches[laneTelemetry] + 0.5)
		if c.estimates, err = estimateCompression(r.telemetry, perBatch); err != nil {
			return err
		}
		c.sample = len(r.telemetry)
	}
	rep.compression = append(rep.compression, c)
	return nil
}

// compression waits (at most two minutes) until the edge's uplink has
// delivered everything, then reads its byte counters.
func compression(ctx context.Context, t *edgeTarget, run string) (compressionResult, error) {
	c := compressionResult{run: run}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		m, err := t.Metrics(ctx)
		if err != nil {
			return c, err
		}
		if m.Sum("fluxo_edge_uplink_lag_records", "") == 0 {
			for lane, l := range []string{`lane="telemetry"`, `lane="alarm"`} {
				c.raw[lane] = m.Sum("fluxo_edge_uplink_raw_bytes_total", l)
				c.sent[lane] = m.Sum("fluxo_edge_uplink_sent_bytes_total", l)
				c.records[lane] = m.Sum("fluxo_edge_uplink_records_total", l)
				c.batches[lane] = m.Sum("fluxo_edge_uplink_batches_total", l)
			}
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return c, fmt.Errorf("%s: the uplink still has %.0f records to send after two minutes", run, m.Sum("fluxo_edge_uplink_lag_records", ""))
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// writeAllocs writes the allocation profile of the run so far.
func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
