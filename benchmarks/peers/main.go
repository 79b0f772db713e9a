// Command peers measures fluxo next to its peers on this machine, in one
// run, and writes the figures as JSON and PNG plots (make bench-peers):
//
//   - MQTT ingest, QoS 0 and 1: msg/s against publishers (-publishers,
//     1, 10, 100 and 1,000 by default) for `fluxo edge` with
//     --spool-sync never and always, a bare mochi-mqtt server (the MQTT
//     server inside the edge, nothing else), Mosquitto and NATS's MQTT
//     front with JetStream (cmd/natsmqtt, nats-server embedded);
//   - memory (RSS) against idle MQTT connections (-idle-conns) for the
//     same servers (one edge for both spool policies);
//   - Kafka produce and consume MB/s against partitions (-partitions) for
//     `fluxo core` and kfake (internal/kfakecmd, franz-go's fake cluster
//     as a process);
//   - the alarm trip's latency (device → edge → core → consumer) as a CDF,
//     with its floors measured in the same run: the Kafka hop alone, an
//     fdatasync, and the PUBACK of the bare mochi server.
//
// It does not measure anything itself: it builds benchmarks/mqtt and
// benchmarks/kafka and runs them with -json (their load generators,
// process runners and baselines), once per point, then reads their JSON,
// writes peers.json and the plots into -out, and prints the tables in
// markdown. Every point is bounded to a few seconds (-duration), so the
// whole run takes about a quarter of an hour.
//
//	go run . -out results                       # everything
//	go run . -phases idle -idle-conns 0,1000    # one phase, smaller
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
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
	out        string
	repo       string
	fluxo      string
	mosquitto  string
	phases     []string
	publishers []int
	idleConns  string
	partitions []int
	duration   time.Duration
	warmup     time.Duration
	settle     time.Duration
	records    int
	latencyDur time.Duration
	timeout    time.Duration
	replot     bool
}

func main() {
	var o options
	var phases, publishers, partitions string
	flag.StringVar(&o.out, "out", "results", "directory for peers.json, the per-phase JSON files and the PNG plots")
	flag.StringVar(&o.repo, "repo", "../..", "the fluxo repository (its root)")
	flag.StringVar(&o.fluxo, "fluxo", "", "fluxo binary (default: build ./cmd/fluxo)")
	flag.StringVar(&o.mosquitto, "mosquitto", "/usr/sbin/mosquitto", "Mosquitto binary")
	flag.StringVar(&phases, "phases", "ingest,idle,kafka,latency", "phases to run")
	flag.StringVar(&publishers, "publishers", "1,10,100,1000", "ingest: publisher counts")
	flag.StringVar(&o.idleConns, "idle-conns", "0,1000,5000,10000,19000", "idle: connection counts (the machine's hard limit on open files is 20,000)")
	flag.StringVar(&partitions, "partitions", "1,8,100,1000", "kafka: partition counts")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "timed window of each ingest point, and the longest produce of each Kafka point")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "ingest: publishing before each timed window")
	flag.DurationVar(&o.settle, "settle", time.Second, "pause between points")
	flag.IntVar(&o.records, "records", 300000, "kafka: at most this many 1 KiB records per point")
	flag.DurationVar(&o.latencyDur, "latency-duration", 15*time.Second, "latency: timed window of each alarm latency run")
	flag.DurationVar(&o.timeout, "timeout", 45*time.Minute, "bound on the whole run")
	flag.BoolVar(&o.replot, "replot", false, "measure nothing: read -out/peers.json, draw the plots and print the tables again")
	flag.Parse()
	var err error
	o.phases = strings.Split(phases, ",")
	if o.publishers, err = ints(publishers); err == nil {
		o.partitions, err = ints(partitions)
	}
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		ctx, cancel := context.WithTimeout(ctx, o.timeout)
		err = run(ctx, o, os.Stdout, os.Stderr)
		cancel()
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmarks/peers:", err)
		os.Exit(1)
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%q: want counts separated by commas", s)
		}
		out = append(out, v)
	}
	return out, nil
}

func (o options) has(p string) bool { return slices.Contains(o.phases, p) }

// bins are the programs a run uses.
type bins struct {
	fluxo, mqtt, kafka, kfake, nats string
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if o.replot {
		data, err := os.ReadFile(filepath.Join(o.out, "peers.json"))
		if err != nil {
			return err
		}
		var rep report
		if err := json.Unmarshal(data, &rep); err != nil {
			return err
		}
		if err := plots(o.out, &rep); err != nil {
			return err
		}
		printTables(stdout, &rep)
		return nil
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "fluxo-peers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b, err := build(ctx, o, tmp, stderr)
	if err != nil {
		return err
	}
	rep := &report{Machine: machine(), Duration: o.duration.String(), Warmup: o.warmup.String(), Started: time.Now().UTC()}
	if o.has("ingest") {
		// One process per point: a point that fails (a server that does
		// not keep up and stops answering for its counts) is recorded as
		// failed, and the others still run.
		rep.Publishers = o.publishers
		for _, n := range o.publishers {
			for _, qos := range []string{"0", "1"} {
				for _, t := range mqttTargets {
					path := filepath.Join(o.out, fmt.Sprintf("mqtt-ingest-%d-qos%s-%s.json", n, qos, t.name))
					err := runJSON(ctx, stderr, path, &rep.Ingest, b.mqtt, "-phases", "throughput", "-qos", qos,
						"-targets", t.name, "-peer", "nats="+b.nats,
						"-publishers", strconv.Itoa(n), "-duration", o.duration.String(), "-warmup", o.warmup.String(),
						"-settle", o.settle.String(), "-fluxo", b.fluxo, "-mosquitto", o.mosquitto)
					if ctx.Err() != nil {
						return ctx.Err()
					}
					if err != nil {
						rep.fail(stderr, fmt.Sprintf("ingest, %s, QoS %s, %d publishers: %v", t.label, qos, n, err))
					}
				}
			}
		}
	}
	if o.has("idle") {
		err := runJSON(ctx, stderr, filepath.Join(o.out, "mqtt-idle.json"), &rep.Idle, b.mqtt, "-phases", "idle",
			"-idle-targets", "edge,mochi,mosquitto,nats", "-peer", "nats="+b.nats, "-idle-conns", o.idleConns, "-idle-settle", "2s",
			"-settle", o.settle.String(), "-fluxo", b.fluxo, "-mosquitto", o.mosquitto)
		if err != nil {
			rep.fail(stderr, fmt.Sprintf("idle: %v", err))
		}
	}
	if o.has("kafka") {
		var scen []string
		for _, p := range o.partitions {
			scen = append(scen, fmt.Sprintf("p%d-acks1", p))
		}
		args := []string{"-scenarios", strings.Join(scen, ","), "-duration", o.duration.String(),
			"-records", strconv.Itoa(o.records), "-settle", o.settle.String(), "-baseline", "0"}
		err := runJSON(ctx, stderr, filepath.Join(o.out, "kafka-fluxo.json"), &rep.KafkaFluxo, b.kafka,
			append([]string{"-fluxo", b.fluxo}, args...)...)
		if err != nil {
			rep.fail(stderr, fmt.Sprintf("kafka, fluxo core: %v", err))
		}
		kf, addr, err := startKfake(ctx, b.kfake)
		if err != nil {
			return err
		}
		err = runJSON(ctx, stderr, filepath.Join(o.out, "kafka-kfake.json"), &rep.KafkaKfake, b.kafka,
			append([]string{"-broker-addr", addr}, args...)...)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		kf.Stop(sctx)
		cancel()
		if err != nil {
			rep.fail(stderr, fmt.Sprintf("kafka, kfake: %v", err))
		}
	}
	if o.has("latency") {
		err := runJSON(ctx, stderr, filepath.Join(o.out, "alarm-latency.json"), &rep.Latency, b.mqtt, "-phases", "latency",
			"-targets", "edge-never,edge-always,mochi", "-latency-duration", o.latencyDur.String(),
			"-warmup", o.warmup.String(), "-settle", o.settle.String(), "-fluxo", b.fluxo)
		if err != nil {
			rep.fail(stderr, fmt.Sprintf("latency: %v", err))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	rep.Finished = time.Now().UTC()
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "peers.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	if err := plots(o.out, rep); err != nil {
		return err
	}
	printTables(stdout, rep)
	return nil
}

// build builds what the run needs into dir, from the repository.
func build(ctx context.Context, o options, dir string, stderr io.Writer) (bins, error) {
	b := bins{fluxo: o.fluxo}
	targets := []struct {
		out *string
		pkg string
		dir string
	}{
		{&b.mqtt, "./benchmarks/mqtt", o.repo},
		{&b.kafka, "./benchmarks/kafka", o.repo},
		{&b.kfake, "./internal/kfakecmd", o.repo},
		{&b.nats, "./cmd/natsmqtt", filepath.Join(o.repo, "benchmarks", "peers")},
	}
	if b.fluxo == "" {
		targets = append(targets, struct {
			out *string
			pkg string
			dir string
		}{&b.fluxo, "./cmd/fluxo", o.repo})
	}
	for _, t := range targets {
		*t.out = filepath.Join(dir, filepath.Base(t.pkg))
		fmt.Fprintf(stderr, "peers: building %s\n", t.pkg)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", *t.out, t.pkg)
		cmd.Dir = t.dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %w\n%s", t.pkg, err, out)
		}
	}
	return b, nil
}

// runJSON runs bin with args and -json path, its output to stderr, and
// decodes the file into dst: a pointer to a slice, to which it appends,
// or to anything else, which it fills.
func runJSON(ctx context.Context, stderr io.Writer, path string, dst any, bin string, args ...string) error {
	args = append(args, "-json", path)
	fmt.Fprintf(stderr, "peers: %s %s\n", filepath.Base(bin), strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	if err := cmd.Run(); err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if ds, ok := dst.(*[]mqttRun); ok {
		var r mqttRun
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		*ds = append(*ds, r)
		return nil
	}
	if err := json.Unmarshal(data, dst); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// startKfake starts kfakecmd on a free port and returns its address, which
// it prints on stdout once it listens.
func startKfake(ctx context.Context, bin string) (*proc.Proc, string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, "", err
	}
	p, err := proc.StartTo(w, "kfake", 10*time.Second, bin, "--listen", "127.0.0.1:0")
	w.Close()
	if err != nil {
		r.Close()
		return nil, "", err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				line <- a
				break
			}
		}
		close(line)
		io.Copy(io.Discard, r) // until kfake exits
		r.Close()
	}()
	select {
	case a, ok := <-line:
		if ok {
			return p, a, nil
		}
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	p.Kill()
	return nil, "", errors.New("kfake did not say where it listens")
}

func machine() string {
	return fmt.Sprintf("nproc %d, CPU %s, Linux %s", numCPU(), harness.CPUModel(), harness.Kernel())
}
