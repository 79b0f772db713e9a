package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/fluxo-io/fluxo/benchmarks/internal/proc"
)

// peerFlag is -peer NAME=PATH, repeatable: an MQTT server to measure
// next to the others, run as PATH -addr HOST:PORT -stats-addr HOST:PORT,
// which must serve MQTT on -addr and, on -stats-addr, /readyz and /stats
// (the number of PUBLISH packets received so far), as `bare-mochi` does.
// benchmarks/peers runs NATS's MQTT front this way.
type peerFlag map[string]string

func (p peerFlag) String() string {
	var s []string
	for k, v := range p {
		s = append(s, k+"="+v)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

func (p peerFlag) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("want NAME=PATH, got %q", v)
	}
	switch name {
	case targetEdgeNever, targetEdgeAlways, targetMochi, targetMosquitto:
		return fmt.Errorf("%q is a built-in target", name)
	}
	p[name] = path
	return nil
}

// startPeer starts a -peer server; it is measured as the bare mochi
// server is.
func startPeer(ctx context.Context, name, bin string) (*mochiTarget, error) {
	return startMochiBin(ctx, name, bin)
}

// raiseFileLimit raises this process's soft limit on open files to its
// hard limit; the servers it starts inherit it.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	return l.Cur, nil
}

// idleRun is one target's memory against idle connections.
type idleRun struct {
	target string
	conns  []int
	mem    []proc.Mem
}

// idlePhase starts each target fresh, opens MQTT connections that then
// stay idle (CONNECT, CONNACK, nothing more; keep alive 10 minutes) up to
// each count of -idle-conns in turn, and reads the server's memory from
// /proc 2 s after each count is reached.
func (b *bench) idlePhase(ctx context.Context, rep *report) error {
	limit, err := raiseFileLimit()
	if err != nil {
		return fmt.Errorf("idle: raise the open files limit: %w", err)
	}
	if want := uint64(slices.Max(b.o.idleConns)) + 200; limit < want {
		return fmt.Errorf("idle: open files limit %d, want at least %d for -idle-conns", limit, want)
	}
	// The edge refuses devices past --max-clients (10,000 by default).
	b.edgeFlags = []string{"--max-clients", strconv.Itoa(slices.Max(b.o.idleConns) + 100)}
	defer func() { b.edgeFlags = nil }()
	for _, name := range b.o.targets {
		if name == targetEdgeAlways && slices.Contains(b.o.targets, targetEdgeNever) {
			continue // the same process; the spool's policy does not change idle memory
		}
		sleep(ctx, b.o.settle)
		if err := b.idleTarget(ctx, rep, name); err != nil {
			return fmt.Errorf("idle (%s): %w", name, err)
		}
	}
	return nil
}

func (b *bench) idleTarget(ctx context.Context, rep *report, name string) (err error) {
	t, err := b.start(ctx, name)
	if err != nil {
		return err
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		if serr := b.stop(ctx, name, t); serr != nil && err == nil {
			err = serr
		}
	}()
	if t.PID() == 0 {
		return fmt.Errorf("%s runs in this process: its memory cannot be told apart", name)
	}
	run := idleRun{target: name}
	for _, n := range b.o.idleConns {
		fmt.Fprintf(b.stderr, "idle: %s, %d connections\n", name, n)
		more, err := openIdle(ctx, t.MQTTAddr(), fmt.Sprintf("idle-%s-", name), len(conns), n-len(conns))
		conns = append(conns, more...)
		if err != nil {
			return err
		}
		sleep(ctx, 2*time.Second)
		m, err := proc.ReadMem(t.PID())
		if err != nil {
			return err
		}
		fmt.Fprintf(b.stderr, "  RSS %.1f MiB (anonymous %.1f)\n", mib(m.RSS), mib(m.Anon))
		run.conns = append(run.conns, n)
		run.mem = append(run.mem, m)
	}
	rep.idle = append(rep.idle, run)
	return nil
}

// openIdle opens n MQTT 3.1.1 connections to addr, client ids prefix
// followed by from, from+1, …, 32 at a time, each CONNECT answered by a
// CONNACK that accepts it (paho's packet codec).
func openIdle(ctx context.Context, addr, prefix string, from, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conns[i], errs[i] = connectIdle(ctx, addr, prefix+strconv.Itoa(from+i))
		})
	}
	wg.Wait()
	var open []net.Conn
	var first error
	for i, c := range conns {
		if c != nil {
			open = append(open, c)
		} else if first == nil {
			first = errs[i]
		}
	}
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	if first != nil {
		return open, fmt.Errorf("%d of %d connections failed, first: %w", n-len(open), n, first)
	}
	return open, nil
}

func connectIdle(ctx context.Context, addr, id string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName = "MQTT"
	cp.ProtocolVersion = 4
	cp.CleanSession = true
	cp.Keepalive = 600
	cp.ClientIdentifier = id
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if err := cp.Write(c); err != nil {
		c.Close()
		return nil, err
	}
	p, err := packets.ReadPacket(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	ack, ok := p.(*packets.ConnackPacket)
	if !ok || ack.ReturnCode != packets.Accepted {
		c.Close()
		return nil, fmt.Errorf("CONNACK: got %v, want an accepted CONNACK", p)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// jsonReport is what -json writes: the figures of every phase that ran,
// for programs (benchmarks/peers plots them).
type jsonReport struct {
	Publishers   int              `json:"publishers"`
	PayloadBytes int              `json:"payload_bytes"`
	Inflight     int              `json:"inflight"`
	Warmup       string           `json:"warmup"`
	Duration     string           `json:"duration"`
	Throughput   []jsonThroughput `json:"throughput,omitempty"`
	Latency      []jsonLatency    `json:"latency,omitempty"`
	Floors       []jsonLatency    `json:"floors,omitempty"`
	Idle         []jsonIdle       `json:"idle,omitempty"`
	Killed       []string         `json:"killed,omitempty"`
}

// jsonThroughput is one target at one QoS: msg/s in each round.
type jsonThroughput struct {
	Target string    `json:"target"`
	QoS    int       `json:"qos"`
	Rates  []float64 `json:"msgs_per_s"`
	Median float64   `json:"median_msgs_per_s"`
	Errors int64     `json:"errors"`
}

// jsonLatency is a latency distribution as quantiles.
type jsonLatency struct {
	Target    string         `json:"target"`
	What      string         `json:"what"`
	Count     int64          `json:"count"`
	Quantiles []jsonQuantile `json:"quantiles"`
}

type jsonQuantile struct {
	Q  float64 `json:"q"`
	Ms float64 `json:"ms"`
}

// jsonIdle is a target's memory at each count of idle connections.
type jsonIdle struct {
	Target  string    `json:"target"`
	Conns   []int     `json:"conns"`
	RSSMiB  []float64 `json:"rss_mib"`
	AnonMiB []float64 `json:"rss_anon_mib"`
}

// cdfQuantiles are the quantiles -json gives of every distribution.
var cdfQuantiles = []float64{0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999}

func quantiles(h interface {
	Quantile(float64) time.Duration
	Count() int64
}, target, what string) jsonLatency {
	l := jsonLatency{Target: target, What: what, Count: h.Count()}
	for _, q := range cdfQuantiles {
		l.Quantiles = append(l.Quantiles, jsonQuantile{Q: q, Ms: float64(h.Quantile(q)) / float64(time.Millisecond)})
	}
	return l
}

// writeJSON writes rep to path.
func writeJSON(path string, o options, rep report) error {
	j := jsonReport{Publishers: o.publishers, PayloadBytes: o.payloadBytes, Inflight: o.inflight,
		Warmup: o.warmup.String(), Duration: o.duration.String(), Killed: rep.killed}
	for _, q := range o.qos {
		for _, name := range o.targets {
			rs := rep.throughput[runKey(name, q)]
			if len(rs) == 0 {
				continue
			}
			t := jsonThroughput{Target: name, QoS: int(q), Median: median(rs).rate()}
			for _, r := range rs {
				t.Rates = append(t.Rates, r.rate())
				t.Errors += r.errors
			}
			j.Throughput = append(j.Throughput, t)
		}
	}
	for _, l := range rep.latency {
		j.Latency = append(j.Latency, quantiles(l.alarmAck, l.target, "alarm PUBACK"))
		if l.alarmE2E.Count() > 0 {
			j.Latency = append(j.Latency, quantiles(l.alarmE2E, l.target, "alarm device to consumer"))
		}
	}
	if rep.floors != nil {
		j.Floors = append(j.Floors, quantiles(rep.floors.kafka, "", "Kafka hop (franz-go to core to franz-go)"),
			quantiles(rep.floors.fsync, "", "fdatasync"))
	}
	for _, r := range rep.idle {
		ji := jsonIdle{Target: r.target, Conns: r.conns}
		for _, m := range r.mem {
			ji.RSSMiB = append(ji.RSSMiB, mib(m.RSS))
			ji.AnonMiB = append(ji.AnonMiB, mib(m.Anon))
		}
		j.Idle = append(j.Idle, ji)
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// printIdle prints the idle phase's table.
func printIdle(w io.Writer, runs []idleRun) {
	if len(runs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### Memory against idle connections\n\nRSS in MiB (anonymous in parentheses), as /proc reports it 2 s after the count is reached.\n\n| Target |")
	for _, n := range runs[0].conns {
		fmt.Fprintf(w, " %d |", n)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---:|", len(runs[0].conns)))
	for _, r := range runs {
		fmt.Fprintf(w, "| %s |", targetLabels[r.target])
		for _, m := range r.mem {
			fmt.Fprintf(w, " %.1f (%.1f) |", mib(m.RSS), mib(m.Anon))
		}
		fmt.Fprintln(w)
	}
}
