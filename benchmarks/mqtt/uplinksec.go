package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/benchmarks/internal/harness"
	"github.com/fluxo-io/fluxo/benchmarks/internal/proc"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/bridge/uplink"
)

// The uplink phase: the edge's uplink (bridge/uplink, in this process)
// drains a spool of -uplink-records telemetry records to a `fluxo core`
// process of its own, over the core's PLAINTEXT listener and over its
// SASL_SSL listener (SCRAM-SHA-512 over TLS, the SCRAM user's ACLs
// checked), one after the other in every round.

const (
	uplinkPlain  = "PLAINTEXT"
	uplinkSecure = "SASL_SSL"
	// uplinkFill is how many messages one spool.Append takes while the
	// spool is filled (untimed).
	uplinkFill = 256
)

// uplinkDrain is one drain of the spool over one listener.
type uplinkDrain struct {
	round     int
	listener  string
	records   int64         // acknowledged by the core (the uplink's count)
	raw, sent int64         // bytes before and after compression
	elapsed   time.Duration // Run called to the spool empty
	selfCPU   time.Duration // this process (the uplink) over elapsed
	coreCPU   time.Duration // the core over elapsed
}

func (d uplinkDrain) recordsPerSec() float64 { return float64(d.records) / d.elapsed.Seconds() }
func (d uplinkDrain) sentMBps() float64      { return float64(d.sent) / d.elapsed.Seconds() / 1e6 }

// cpuPerRecord is the uplink's (this process's) CPU per record, in µs.
func (d uplinkDrain) cpuPerRecord() float64 {
	return float64(d.selfCPU.Microseconds()) / float64(d.records)
}

// uplinkRun starts a core with both listeners, creates the SCRAM user,
// then, -uplink-rounds times, drains a freshly filled spool over each
// listener, PLAINTEXT first.
func (b *bench) uplinkRun(ctx context.Context, rep *report) (err error) {
	dir := filepath.Join(b.root, "uplink")
	sec, err := harness.NewSecurity(filepath.Join(dir, "tls"))
	if err != nil {
		return err
	}
	addrs, err := harness.FreeAddrs(5)
	if err != nil {
		return err
	}
	plainAddr, secureAddr := addrs[0], addrs[1]
	fmt.Fprintf(b.stderr, "uplink: starting fluxo core with %s on %s and %s on %s\n", uplinkPlain, plainAddr, uplinkSecure, secureAddr)
	args := append([]string{"core",
		"--data-dir", filepath.Join(dir, "core"),
		"--http-addr", addrs[2],
		"--serf-addr", addrs[3],
		"--raft-addr", addrs[4],
		"--auto-create-topics=false",
		"--shutdown-timeout", "10s",
		"--log-level", "warn",
	}, sec.CoreArgs(plainAddr, secureAddr)...)
	core, err := proc.Start("fluxo core (uplink)", 15*time.Second, b.bin, args...)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if serr := core.Stop(sctx); serr != nil && err == nil {
			err = fmt.Errorf("stop fluxo core (uplink): %w", serr)
		}
	}()
	if err := proc.WaitHTTP(ctx, core, "http://"+addrs[2]+"/readyz"); err != nil {
		return err
	}
	if err := createTopicsN(ctx, plainAddr, b.o.uplinkPartitions, []string{"telemetry"}); err != nil {
		return err
	}
	if err := sec.AddUser(ctx, plainAddr, secureAddr, "telemetry"); err != nil {
		return err
	}

	for round := range b.o.uplinkRounds {
		for _, listener := range []string{uplinkPlain, uplinkSecure} {
			sleep(ctx, b.o.settle)
			cfg := uplink.DefaultConfig()
			cfg.Brokers = []string{plainAddr}
			if listener == uplinkSecure {
				cfg.Brokers = []string{secureAddr}
				cfg.TLS = sec.ClientTLS()
				cfg.SASL = sec.SASL()
			}
			cfg.Linger = b.o.uplinkLinger
			runDir := filepath.Join(dir, fmt.Sprintf("run-%d-%s", round+1, listener))
			fmt.Fprintf(b.stderr, "uplink round %d, %s: draining %d records\n", round+1, listener, b.o.uplinkRecords)
			d, err := drainSpool(ctx, runDir, cfg, b.o.uplinkRecords, core.PID())
			os.RemoveAll(runDir)
			if err != nil {
				return fmt.Errorf("uplink round %d, %s: %w", round+1, listener, err)
			}
			d.round, d.listener = round+1, listener
			fmt.Fprintf(b.stderr, "  %.0f records/s, %.2f MB/s sent (%d records, %d B sent, %d B raw) in %v\n",
				d.recordsPerSec(), d.sentMBps(), d.records, d.sent, d.raw, d.elapsed.Round(time.Millisecond))
			rep.uplink = append(rep.uplink, d)
		}
	}
	return nil
}

// drainSpool fills a spool in dir with n telemetry records of 100 cars,
// as the edge writes them (car JSON payloads, the edge's headers), then
// runs an uplink with cfg until the core has acknowledged all of them.
func drainSpool(ctx context.Context, dir string, cfg uplink.Config, n int, corePID int) (uplinkDrain, error) {
	var d uplinkDrain
	scfg := spool.DefaultConfig()
	scfg.Sync = spool.SyncNever
	scfg.MaxBytes = 8 << 30
	sp, err := spool.Open(filepath.Join(dir, "spool"), scfg)
	if err != nil {
		return d, err
	}
	defer sp.Close()
	if err := fillSpool(sp, n); err != nil {
		return d, err
	}
	end := sp.End(spool.Telemetry)

	cfg.StateDir = dir
	u, err := uplink.New(cfg, sp)
	if err != nil {
		return d, err
	}
	defer u.Close()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	selfStart, _ := proc.CPUTime(0)
	coreStart, _ := proc.CPUTime(corePID)
	start := time.Now()
	go func() { u.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()

	limit := time.NewTimer(5 * time.Minute)
	defer limit.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for sp.Start(spool.Telemetry) < end {
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-limit.C:
			return d, fmt.Errorf("spool not drained after 5 minutes: %d of %d records left", end-sp.Start(spool.Telemetry), n)
		case <-tick.C:
		}
	}
	d.elapsed = time.Since(start)
	selfEnd, _ := proc.CPUTime(0)
	coreEnd, _ := proc.CPUTime(corePID)
	d.selfCPU, d.coreCPU = selfEnd-selfStart, coreEnd-coreStart
	for _, s := range u.Stats() {
		if s.Lane != spool.Telemetry {
			continue
		}
		if s.Parked {
			return d, fmt.Errorf("telemetry lane parked: %s: %s", s.ParkReason, s.ParkError)
		}
		d.records, d.raw, d.sent = s.Records, s.RawBytes, s.SentBytes
	}
	if d.records != int64(n) {
		return d, fmt.Errorf("core acknowledged %d records, want %d", d.records, n)
	}
	return d, nil
}

// fillSpool appends n telemetry records, round robin over 100 cars, the
// same records on every call.
func fillSpool(sp *spool.Spool, n int) error {
	const cars = 100
	fleet := make([]*car, cars)
	for i := range fleet {
		fleet[i] = newCar(i, 7)
	}
	now := time.Now()
	ms := []byte(strconv.FormatInt(now.UnixMilli(), 10))
	batch := make([]spool.Message, 0, uplinkFill)
	for i := range n {
		c := fleet[i%cars]
		batch = append(batch, spool.Message{
			Lane:  spool.Telemetry,
			Topic: "telemetry",
			Key:   []byte(c.id),
			Value: c.telemetry(nil, now.UnixNano(), false),
			Headers: []kmsg.Header{
				{Key: "mqtt.topic", Value: []byte(c.topic("telemetry"))},
				{Key: "mqtt.qos", Value: []byte("1")},
				{Key: "edge.id", Value: []byte("edge-bench")},
				{Key: "edge.received_ms", Value: ms},
			},
			Time: now,
		})
		if len(batch) == cap(batch) || i == n-1 {
			if err := sp.Append(batch...); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

func printUplink(w io.Writer, o options, ds []uplinkDrain) {
	fmt.Fprintf(w, "Uplink over TLS: bridge/uplink in the harness's process drains a spool (--spool-sync never, filled untimed) of %d telemetry records (car JSON, the edge's four headers, 100 devices) to its own `fluxo core` process, topic telemetry with %d partition(s); %s, then %s (SCRAM-SHA-512 over TLS, ACLs checked) in each of %d rounds; uplink defaults (snappy, 1000 KiB windows) with %v linger. Time from Run to the spool empty; MB = 10^6 bytes sent (compressed batches). CPU in cores over that time, and the uplink's CPU per record (this process's, less noisy than the rate on a shared machine). Target: %s / %s records/s ≥ 0.8.\n\n",
		o.uplinkRecords, o.uplinkPartitions, uplinkPlain, uplinkSecure, o.uplinkRounds, o.uplinkLinger, uplinkSecure, uplinkPlain)
	fmt.Fprintln(w, "| Round | Listener | Records/s | Sent MB/s | Raw MB/s | Time | Uplink CPU | Core CPU | Uplink CPU µs/record | Ratio (records/s) | Ratio (CPU/record) |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var ratios, cpuRatios []float64
	var plain *uplinkDrain
	for i := range ds {
		d := &ds[i]
		ratio, cpuRatio := "", ""
		if d.listener == uplinkPlain {
			plain = d
		} else if plain != nil && plain.round == d.round {
			r := d.recordsPerSec() / plain.recordsPerSec()
			c := d.cpuPerRecord() / plain.cpuPerRecord()
			ratios, cpuRatios = append(ratios, r), append(cpuRatios, c)
			ratio, cpuRatio = fmt.Sprintf("%.2f", r), fmt.Sprintf("%.2f", c)
		}
		fmt.Fprintf(w, "| %d | %s | %.0f | %.2f | %.2f | %v | %.2f | %.2f | %.2f | %s | %s |\n",
			d.round, d.listener, d.recordsPerSec(), d.sentMBps(), float64(d.raw)/d.elapsed.Seconds()/1e6,
			d.elapsed.Round(time.Millisecond), cores(d.selfCPU, d.elapsed), cores(d.coreCPU, d.elapsed),
			d.cpuPerRecord(), ratio, cpuRatio)
	}
	fmt.Fprintln(w)
	if len(ratios) > 0 {
		fmt.Fprintf(w, "%s / %s records/s: median %s; uplink CPU per record: median %s (over %d rounds).\n\n",
			uplinkSecure, uplinkPlain, medianSpread(ratios), medianSpread(cpuRatios), len(ratios))
	}
}

// medianSpread prints the median of xs and their range.
func medianSpread(xs []float64) string {
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", med, s[0], s[len(s)-1])
}
