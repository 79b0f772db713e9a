package main

// The many-partitions run (-many): one `fluxo core` process and one kfake
// process (franz-go's fake Kafka, disk-backed with kfake.DataDir, run by
// internal/kfakecmd), each on its own data directory, measured side by
// side in the same run:
//
//  1. produce: -rounds rounds of the acks=all scenario over -many-partitions
//     partitions, against fluxo then kfake in odd rounds, kfake then fluxo
//     in even ones; the ratio of each round is fluxo's rate over kfake's;
//  2. fill: -many-partitions partitions get -many-fill-bytes of 1 KiB
//     records each (partition i gets records i, i+P, ...), then both
//     processes are left idle for -many-idle; disk used (du: allocated
//     blocks, not apparent sizes) and open files (/proc/PID/fd) are taken
//     right after the fill and after the idle time;
//  3. restart: -rounds times, each process is killed with SIGKILL and
//     started again on the same data; the time from the new process'
//     start to /readyz (fluxo) or to its "listening" line (kfake), and
//     fluxo's resident memory before the kill and 2 s after it is ready;
//  4. start with -many-start partitions (0: skipped): a fresh fluxo core
//     with --max-partitions-per-broker raised, one topic of that many
//     partitions created, then killed and restarted; the time to /readyz
//     and whether Metadata lists every partition.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/benchmarks/internal/harness"
)

// kfakeProc is internal/kfakecmd running as a child process.
type kfakeProc struct {
	bin, dataDir, listen string
	cmd                  *exec.Cmd
	exited               chan struct{}
}

// start runs kfakecmd and waits for its "listening on" line.
func (k *kfakeProc) start(ctx context.Context) error {
	cmd := exec.Command(k.bin, "--listen", k.listen, "--data-dir", k.dataDir)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	k.cmd, k.exited = cmd, make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				lines <- addr
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() {
		cmd.Wait()
		close(k.exited)
	}()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	select {
	case addr := <-lines:
		k.listen = addr
		return nil
	case <-k.exited:
		return errors.New("kfake exited before listening")
	case <-ctx.Done():
		k.kill()
		return fmt.Errorf("kfake: not listening: %w", ctx.Err())
	}
}

func (k *kfakeProc) kill() {
	if k.cmd != nil {
		k.cmd.Process.Kill()
		<-k.exited
	}
}

// stop sends SIGTERM and waits, killing after a minute.
func (k *kfakeProc) stop() {
	if k.cmd == nil {
		return
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.exited:
	case <-time.After(time.Minute):
		k.kill()
	}
}

func (k *kfakeProc) pid() int { return k.cmd.Process.Pid }

// diskUsed is the space the files under dir take on disk (du).
func diskUsed(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// openFiles counts a process' open file descriptors.
func openFiles(pid int) int {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(fds)
}

// rss is a process' resident memory in bytes.
func rss(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return -1
}

// fill creates topic with partitions partitions and writes perPartition
// bytes of valueSize records into each, acks=all.
func fill(ctx context.Context, addr, topic string, partitions int32, perPartition int64, pool []byte, valueSize int) error {
	adm, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer adm.Close()
	cr, err := kadm.NewClient(adm).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = cr.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if err := waitTopic(ctx, []string{addr}, topic, partitions, 1); err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return err
	}
	defer cl.Close()
	var firstErr error
	records := perPartition / int64(valueSize) * int64(partitions)
	for i := range records {
		r := &kgo.Record{Value: poolValue(pool, int(i), valueSize), Partition: int32(i % int64(partitions))}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return firstErr
}

// manyResult is what the many-partitions run measured.
type manyResult struct {
	fluxoMBps, kfakeMBps       []float64
	fillBytes                  int64
	fluxoDisk, kfakeDisk       [2]int64 // right after the fill, after the idle time
	fluxoFiles, kfakeFiles     [2]int
	fluxoRestart, kfakeRestart []time.Duration
	rssBefore, rssAfter        []int64
	start                      *startResult
}

type startResult struct {
	partitions int32
	create     time.Duration
	restart    time.Duration
	listed     int
	files      int
	rss        int64
}

func runMany(ctx context.Context, o options, stdout, stderr io.Writer) error {
	root, err := os.MkdirTemp(o.dir, "fluxo-kafka-many-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	fmt.Fprintln(stderr, "building cmd/fluxo and internal/kfakecmd")
	bin := o.fluxo
	if bin == "" {
		if bin, err = harness.BuildFluxo(ctx, root); err != nil {
			return err
		}
	}
	kbin := filepath.Join(root, "kfakecmd")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", kbin, "github.com/fluxo-io/fluxo/internal/kfakecmd").CombinedOutput(); err != nil {
		return fmt.Errorf("go build kfakecmd: %w\n%s", err, out)
	}
	pool := newPool()
	parts := int32(o.manyPartitions)

	fdata := filepath.Join(root, "data-fluxo")
	fb, err := startManyBroker(ctx, bin, fdata, max(4000, 2*o.manyPartitions))
	if err != nil {
		return err
	}
	defer func() { fb.Stop(context.WithoutCancel(ctx)) }()
	kf := &kfakeProc{bin: kbin, dataDir: filepath.Join(root, "data-kfake"), listen: "127.0.0.1:0"}
	if err := kf.start(ctx); err != nil {
		return err
	}
	defer kf.stop()
	fmt.Fprintf(stderr, "fluxo on %s, kfake on %s, data under %s\n", fb.KafkaAddr(), kf.listen, root)

	var res manyResult
	lim := limits{duration: o.duration, records: o.records, warmup: o.warmup}
	sc := scenario{partitions: parts, acksAll: true}
	type target struct {
		name string
		addr string
		out  *[]float64
	}
	for round := range o.rounds {
		// The order alternates, so that neither always runs right after
		// the other's topic was deleted (and its data freed).
		targets := []target{{"fluxo", fb.KafkaAddr(), &res.fluxoMBps}, {"kfake", kf.listen, &res.kfakeMBps}}
		if round%2 == 1 {
			targets[0], targets[1] = targets[1], targets[0]
		}
		for _, target := range targets {
			if err := settle(ctx, o.settle); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "round %d: %s %s, producing for %v\n", round+1, target.name, sc.name(), o.duration)
			r, err := runScenario(ctx, []string{target.addr}, fmt.Sprintf("many-%d-%s", round, sc.name()), sc, lim, pool, o.valueSize)
			if err != nil {
				return fmt.Errorf("%s: %w", target.name, err)
			}
			fmt.Fprintf(stderr, "  produce %.1f MB/s (%.1f records/batch)\n", r.mbps(), r.recordsPerBatch())
			*target.out = append(*target.out, r.mbps())
		}
	}

	if o.manyFill <= 0 {
		// Produce only.
		if err := fb.Stop(ctx); err != nil {
			return fmt.Errorf("stop fluxo: %w", err)
		}
		kf.stop()
		printMany(stdout, o, res)
		return nil
	}
	res.fillBytes = o.manyFill * int64(parts)
	for _, t := range []struct{ name, addr string }{{"fluxo", fb.KafkaAddr()}, {"kfake", kf.listen}} {
		fmt.Fprintf(stderr, "fill: %d bytes into each of %d partitions of %s\n", o.manyFill, parts, t.name)
		if err := fill(ctx, t.addr, "fill", parts, o.manyFill, pool, o.valueSize); err != nil {
			return fmt.Errorf("fill %s: %w", t.name, err)
		}
	}
	res.fluxoDisk[0], res.kfakeDisk[0] = diskUsed(fdata), diskUsed(kf.dataDir)
	res.fluxoFiles[0], res.kfakeFiles[0] = openFiles(fb.cmd.Process.Pid), openFiles(kf.pid())
	fmt.Fprintf(stderr, "idle for %v\n", o.manyIdle)
	if err := settle(ctx, o.manyIdle); err != nil {
		return err
	}
	res.fluxoDisk[1], res.kfakeDisk[1] = diskUsed(fdata), diskUsed(kf.dataDir)
	res.fluxoFiles[1], res.kfakeFiles[1] = openFiles(fb.cmd.Process.Pid), openFiles(kf.pid())

	for round := range o.rounds {
		before := rss(fb.cmd.Process.Pid)
		if _, err := fb.Kill(); err != nil {
			return err
		}
		t0 := time.Now()
		if err := fb.start(ctx); err != nil {
			return err
		}
		took := time.Since(t0)
		if err := settle(ctx, 2*time.Second); err != nil {
			return err
		}
		after := rss(fb.cmd.Process.Pid)
		res.fluxoRestart = append(res.fluxoRestart, took)
		res.rssBefore, res.rssAfter = append(res.rssBefore, before), append(res.rssAfter, after)

		kf.kill()
		t0 = time.Now()
		if err := kf.start(ctx); err != nil {
			return err
		}
		res.kfakeRestart = append(res.kfakeRestart, time.Since(t0))
		fmt.Fprintf(stderr, "restart %d: fluxo %v (RSS %d MB before the kill, %d MB after), kfake %v\n",
			round+1, took.Round(time.Millisecond), before>>20, after>>20, res.kfakeRestart[round].Round(time.Millisecond))
	}
	if err := fb.Stop(ctx); err != nil {
		return fmt.Errorf("stop fluxo: %w", err)
	}
	kf.stop()

	if o.manyStart > 0 {
		if res.start, err = runStart(ctx, bin, filepath.Join(root, "data-start"), int32(o.manyStart), stderr); err != nil {
			return fmt.Errorf("start with %d partitions: %w", o.manyStart, err)
		}
	}
	printMany(stdout, o, res)
	return nil
}

// startManyBroker starts `fluxo core` as startProcBroker does, with room
// for maxParts partition replicas.
func startManyBroker(ctx context.Context, bin, dataDir string, maxParts int) (*procBroker, error) {
	addrs, err := harness.FreeAddrs(4)
	if err != nil {
		return nil, err
	}
	b := newProcBroker("fluxo core", bin, addrs[0], addrs[1],
		"--data-dir", dataDir,
		"--kafka-addr", addrs[0],
		"--http-addr", addrs[1],
		"--serf-addr", addrs[2],
		"--raft-addr", addrs[3],
		"--auto-create-topics=false",
		"--max-partitions-per-broker", strconv.Itoa(maxParts),
		"--shutdown-timeout", brokerShutdownTimeout.String(),
		"--log-level", "warn",
	)
	if err := b.start(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// runStart creates one topic of n partitions on a fresh broker, kills
// it, starts it again and checks that Metadata lists every partition.
func runStart(ctx context.Context, bin, dataDir string, n int32, stderr io.Writer) (*startResult, error) {
	b, err := startManyBroker(ctx, bin, dataDir, int(2*n))
	if err != nil {
		return nil, err
	}
	defer func() { b.Stop(context.WithoutCancel(ctx)) }()
	res := &startResult{partitions: n}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()))
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	cr, err := kadm.NewClient(cl).CreateTopic(ctx, n, 1, nil, "wide")
	if err == nil {
		err = cr.Err
	}
	cl.Close()
	if err != nil {
		return nil, fmt.Errorf("create topic: %w", err)
	}
	if err := waitTopic(ctx, []string{b.KafkaAddr()}, "wide", n, 1); err != nil {
		return nil, err
	}
	res.create = time.Since(t0)
	fmt.Fprintf(stderr, "start: topic of %d partitions created in %v\n", n, res.create.Round(time.Millisecond))
	if _, err := b.Kill(); err != nil {
		return nil, err
	}
	t0 = time.Now()
	if err := b.start(ctx); err != nil {
		return nil, err
	}
	res.restart = time.Since(t0)
	m, err := newMetaClient(b.KafkaAddr())
	if err != nil {
		return nil, err
	}
	parts, _, err := m.topic(ctx, "wide")
	m.Close()
	if err != nil {
		return nil, err
	}
	res.listed = len(parts)
	res.files = openFiles(b.cmd.Process.Pid)
	res.rss = rss(b.cmd.Process.Pid)
	fmt.Fprintf(stderr, "start: restarted to ready in %v, Metadata lists %d partitions, %d open files\n",
		res.restart.Round(time.Millisecond), res.listed, res.files)
	return res, nil
}

func printMany(w io.Writer, o options, r manyResult) {
	fmt.Fprintf(w, "%d partitions, %d B values, acks=all with idempotence, %v per produce run, %d rounds; fill: %d KB into each partition; kfake with its data on disk (kfake.DataDir), both as processes. Ranges are min–max over the rounds.\n\n",
		o.manyPartitions, o.valueSize, o.duration, o.rounds, o.manyFill/1000)
	fmt.Fprintln(w, "| What | fluxo | kfake | fluxo / kfake |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	var ratios []float64
	for i := range r.fluxoMBps {
		ratios = append(ratios, r.fluxoMBps[i]/r.kfakeMBps[i])
	}
	fmt.Fprintf(w, "| produce MB/s over %d partitions | %s | %s | %s |\n", o.manyPartitions,
		rangeOf(r.fluxoMBps, "%.0f"), rangeOf(r.kfakeMBps, "%.0f"), rangeOf(ratios, "%.2f"))
	if r.fillBytes == 0 {
		return
	}
	mb := func(b int64) float64 { return float64(b) / 1e6 }
	fmt.Fprintf(w, "| disk used right after the fill (%.0f MB of values) | %.0f MB | %.0f MB | |\n", mb(r.fillBytes), mb(r.fluxoDisk[0]), mb(r.kfakeDisk[0]))
	fmt.Fprintf(w, "| disk used after %v idle | %.0f MB | %.0f MB | |\n", o.manyIdle, mb(r.fluxoDisk[1]), mb(r.kfakeDisk[1]))
	fmt.Fprintf(w, "| open files right after the fill | %d | %d | |\n", r.fluxoFiles[0], r.kfakeFiles[0])
	fmt.Fprintf(w, "| open files after %v idle | %d | %d | |\n", o.manyIdle, r.fluxoFiles[1], r.kfakeFiles[1])
	var fr, kr, rb, ra, rr []float64
	for i := range r.fluxoRestart {
		fr = append(fr, r.fluxoRestart[i].Seconds())
		kr = append(kr, r.kfakeRestart[i].Seconds())
		rb = append(rb, float64(r.rssBefore[i]>>20))
		ra = append(ra, float64(r.rssAfter[i]>>20))
		rr = append(rr, float64(r.rssAfter[i])/float64(r.rssBefore[i]))
	}
	fmt.Fprintf(w, "| SIGKILL, restart to ready (s) | %s | %s | |\n", rangeOf(fr, "%.2f"), rangeOf(kr, "%.2f"))
	fmt.Fprintf(w, "| fluxo RSS before the kill / 2 s after ready (MiB) | %s / %s | | |\n", rangeOf(rb, "%.0f"), rangeOf(ra, "%.0f"))
	fmt.Fprintf(w, "| fluxo RSS after / before | %s | | |\n", rangeOf(rr, "%.2f"))
	if s := r.start; s != nil {
		fmt.Fprintf(w, "\nStart with %d partitions (one topic, fresh broker, --max-partitions-per-broker %d): created in %.1f s; after SIGKILL, ready again in %.1f s with Metadata listing %d partitions, %d open files, RSS %d MiB.\n",
			s.partitions, 2*s.partitions, s.create.Seconds(), s.restart.Seconds(), s.listed, s.files, s.rss>>20)
	}
}

// rangeOf formats the smallest and largest of vs, or the one value.
func rangeOf(vs []float64, format string) string {
	if len(vs) == 0 {
		return "–"
	}
	lo, hi := vs[0], vs[0]
	for _, v := range vs {
		lo, hi = min(lo, v), max(hi, v)
	}
	if fmt.Sprintf(format, lo) == fmt.Sprintf(format, hi) {
		return fmt.Sprintf(format, lo)
	}
	return fmt.Sprintf(format+"–"+format, lo, hi)
}
