package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxo-io/fluxo/benchmarks/internal/harness"
)

// The idle and storm phases (not in the default -phases): what a silent
// device costs, and how fast a fleet comes back after an edge restart.
//
//   - idle: each of -idle-targets is started fresh and -idle-devices
//     devices connect to it (MQTT 3.1.1, clean session, keep alive 300 s,
//     64 connecting at a time) and stay silent; after -idle-settle the
//     server's RSS is read from /proc (VmRSS, RssAnon, RssFile). Targets:
//     edge (`fluxo edge --spool-sync never`, the registry on, as shipped),
//     edge-noregistry (--registry=false), mochi (the bare mochi server at
//     its defaults) and mosquitto. The figures that matter are the ratios
//     to the bare mochi server of the same round.
//   - storm: -idle-devices devices connect to an edge, the edge is
//     stopped (SIGTERM) and started again on the same addresses and spool,
//     and once it is ready every device reconnects at the same moment;
//     a refused device (CONNACK not accepted, or no connection) retries
//     after 100–500 ms. The figure is the time from that moment until the
//     last device has its CONNACK, with the refusals the devices saw. Run
//     once with the edge's defaults and once with -storm-rate as
//     --max-connect-rate.
//
// The devices are raw TCP connections that send a CONNECT and read the
// CONNACK, and nothing else: a paho client per device would cost the
// harness goroutines and timers for every one of 19,000 devices, and an
// idle device does nothing a raw connection does not.

// Idle targets.
const (
	idleEdge           = "edge"
	idleEdgeNoRegistry = "edge-noregistry"
	idleMochi          = "mochi"
	idleMosquitto      = "mosquitto"
)

// idleRun is one target's idle measurement.
type idleRun struct {
	target  string
	round   int
	devices int
	mem     memStatus
	connect time.Duration // connecting every device, 64 at a time
}

// stormRun is one connect storm.
type stormRun struct {
	rate     float64 // --max-connect-rate; 0: none
	devices  int
	back     time.Duration // until the last device had its CONNACK
	refused  int64         // CONNACKs refusing a device
	failed   int64         // connections that failed before a CONNACK
	refusals float64       // fluxo_edge_connections_refused_total after the storm
}

// idleConnect is an MQTT 3.1.1 CONNECT: clean session, keep alive 300 s.
func idleConnect(id string) []byte {
	vh := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 300 >> 8, 300 & 0xff}
	rem := len(vh) + 2 + len(id)
	p := []byte{0x10}
	for {
		b := byte(rem % 128)
		rem /= 128
		if rem > 0 {
			b |= 0x80
		}
		p = append(p, b)
		if rem == 0 {
			break
		}
	}
	p = append(p, vh...)
	p = append(p, byte(len(id)>>8), byte(len(id)))
	return append(p, id...)
}

// errRefused is a CONNACK that did not accept the device.
var errRefused = errors.New("connack: refused")

// dialDevice connects one device and waits for its CONNACK.
func dialDevice(ctx context.Context, addr, id string) (net.Conn, error) {
	var d net.Dialer
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := d.DialContext(cctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(idleConnect(id)); err != nil {
		c.Close()
		return nil, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("connack: %w", err)
	}
	if ack[0] != 0x20 || ack[1] != 2 {
		c.Close()
		return nil, fmt.Errorf("connack: got %x, want a CONNACK", ack)
	}
	if ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("%w: return code %d", errRefused, ack[3])
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// connectDevices connects n devices, 64 at a time, and returns their
// connections; any failure fails them all.
func connectDevices(ctx context.Context, addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	errs := make(chan error, 1)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				c, err := dialDevice(ctx, addr, deviceID(i))
				if err != nil {
					select {
					case errs <- fmt.Errorf("device %d of %d: %w", i+1, n, err):
					default:
					}
					next.Store(int64(n))
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		closeAll(conns)
		return nil, err
	default:
	}
	if err := ctx.Err(); err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

func deviceID(i int) string { return fmt.Sprintf("idle-%05d", i) }

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

func (b *bench) idlePhase(ctx context.Context, rep *report) error {
	if b.o.inProcess {
		return errors.New("idle phase: the RSS needs server processes; drop -in-process")
	}
	for round := range b.o.rounds {
		for _, name := range b.o.idleTargets {
			sleep(ctx, b.o.settle)
			fmt.Fprintf(b.stderr, "round %d, idle %s: %d devices\n", round+1, name, b.o.idleDevices)
			r, err := b.idleOnce(ctx, name)
			if err != nil {
				return fmt.Errorf("idle %s: %w", name, err)
			}
			r.round = round + 1
			fmt.Fprintf(b.stderr, "  connected in %v; RSS %.1f MiB (anon %.1f, file %.1f)\n",
				r.connect.Round(time.Millisecond), mib(r.mem.rss), mib(r.mem.anon), mib(r.mem.file))
			rep.idle = append(rep.idle, r)
		}
	}
	return nil
}

// idleEdgeFlags are the flags of the edge in the idle and storm phases:
// room for every device.
func (b *bench) idleEdgeFlags(extra ...string) []string {
	return append([]string{"--max-clients", strconv.Itoa(b.o.idleDevices + 100)}, extra...)
}

func (b *bench) idleOnce(ctx context.Context, name string) (res idleRun, err error) {
	res.target, res.devices = name, b.o.idleDevices
	b.runs++
	dir := filepath.Join(b.root, fmt.Sprintf("run-%d-idle-%s", b.runs, name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	var t target
	switch name {
	case idleEdge:
		t, err = startEdgeWith(ctx, b.bin, false, b.core.kafkaAddr, dir, "never", b.idleEdgeFlags()...)
	case idleEdgeNoRegistry:
		t, err = startEdgeWith(ctx, b.bin, false, b.core.kafkaAddr, dir, "never", b.idleEdgeFlags("--registry=false")...)
	case idleMochi:
		t, err = startMochi(ctx)
	case idleMosquitto:
		t, err = startMosquitto(ctx, b.o.mosquitto, dir)
	}
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := b.stop(ctx, "idle-"+name, t); serr != nil && err == nil {
			err = serr
		}
	}()
	t0 := time.Now()
	conns, err := connectDevices(ctx, t.MQTTAddr(), b.o.idleDevices)
	if err != nil {
		return res, err
	}
	defer closeAll(conns)
	res.connect = time.Since(t0)
	sleep(ctx, b.o.idleSettle)
	res.mem, err = readMem(t.PID())
	return res, err
}

// stormPhase runs a connect storm with the edge's defaults, then one
// with -storm-rate as --max-connect-rate, -rounds times.
func (b *bench) stormPhase(ctx context.Context, rep *report) error {
	if b.o.inProcess {
		return errors.New("storm phase: the edge restarts as a process; drop -in-process")
	}
	rates := []float64{0}
	if b.o.stormRate > 0 {
		rates = append(rates, b.o.stormRate)
	}
	for round := range b.o.rounds {
		for _, rate := range rates {
			sleep(ctx, b.o.settle)
			fmt.Fprintf(b.stderr, "round %d, storm: %d devices, --max-connect-rate %v\n", round+1, b.o.idleDevices, rate)
			r, err := b.stormOnce(ctx, rate)
			if err != nil {
				return fmt.Errorf("storm: %w", err)
			}
			fmt.Fprintf(b.stderr, "  all back in %v; %d refused, %d failed connections; edge counted %.0f refusals\n",
				r.back.Round(time.Millisecond), r.refused, r.failed, r.refusals)
			rep.storm = append(rep.storm, r)
		}
	}
	return nil
}

func (b *bench) stormOnce(ctx context.Context, rate float64) (res stormRun, err error) {
	res.rate, res.devices = rate, b.o.idleDevices
	b.runs++
	dir := filepath.Join(b.root, fmt.Sprintf("run-%d-storm", b.runs))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	addrs, err := harness.FreeAddrs(2)
	if err != nil {
		return res, err
	}
	flags := b.idleEdgeFlags("--max-connect-rate", strconv.FormatFloat(rate, 'f', -1, 64))
	t, err := startEdgeAt(ctx, b.bin, b.core.kafkaAddr, dir, "never", addrs, flags...)
	if err != nil {
		return res, err
	}
	// The first edge accepts the devices at its own pace: a device
	// refused by the rate retries.
	conns := make([]net.Conn, b.o.idleDevices)
	if _, _, err := reconnectAll(ctx, t.MQTTAddr(), conns, nil); err != nil {
		b.stop(ctx, "storm-first", t)
		return res, err
	}
	defer func() { closeAll(conns) }()
	// Named so that stop keeps the spool for the second edge.
	if err := b.stop(ctx, "storm-first", t); err != nil {
		return res, err
	}
	closeAll(conns)
	clear(conns)
	if t, err = startEdgeAt(ctx, b.bin, b.core.kafkaAddr, dir, "never", addrs, flags...); err != nil {
		return res, err
	}
	defer func() {
		if serr := b.stop(ctx, "storm", t); serr != nil && err == nil {
			err = serr
		}
	}()
	start := make(chan struct{})
	var back time.Duration
	go func() {
		time.Sleep(100 * time.Millisecond) // every device waits on start
		close(start)
	}()
	t0 := time.Now()
	res.refused, res.failed, err = reconnectAll(ctx, t.MQTTAddr(), conns, start)
	back = time.Since(t0) - 100*time.Millisecond
	if err != nil {
		return res, err
	}
	res.back = back
	m, err := t.Metrics(ctx)
	if err != nil {
		return res, err
	}
	res.refusals = m.sum("fluxo_edge_connections_refused_total", "")
	return res, nil
}

// reconnectAll connects every device (one goroutine each, all starting
// when start closes, if set), each retrying after 100–500 ms when
// refused or not connected, for at most a minute; conns receives the
// connections.
func reconnectAll(ctx context.Context, addr string, conns []net.Conn, start <-chan struct{}) (refused, failed int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var nRefused, nFailed atomic.Int64
	var wg sync.WaitGroup
	var sem chan struct{}
	if start == nil {
		sem = make(chan struct{}, 64) // the first connection: a few at a time
	}
	for i := range conns {
		wg.Go(func() {
			if start != nil {
				select {
				case <-start:
				case <-ctx.Done():
					return
				}
			}
			for ctx.Err() == nil {
				if sem != nil {
					sem <- struct{}{}
				}
				c, err := dialDevice(ctx, addr, deviceID(i))
				if sem != nil {
					<-sem
				}
				if err == nil {
					conns[i] = c
					return
				}
				if errors.Is(err, errRefused) {
					nRefused.Add(1)
				} else {
					nFailed.Add(1)
				}
				select {
				case <-time.After(time.Duration(100+rand.IntN(400)) * time.Millisecond):
				case <-ctx.Done():
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		n := 0
		for _, c := range conns {
			if c != nil {
				n++
			}
		}
		return nRefused.Load(), nFailed.Load(), fmt.Errorf("%d of %d devices back after a minute", n, len(conns))
	}
	return nRefused.Load(), nFailed.Load(), nil
}

func printIdle(w io.Writer, o options, runs []idleRun) {
	fmt.Fprintf(w, "\n### Idle devices: %d MQTT 3.1.1 connections (clean session, keep alive 300 s), silent\n\n", o.idleDevices)
	fmt.Fprintf(w, "RSS in MiB from /proc (VmRSS, of which RssAnon and RssFile) %v after the last device connected; KiB per device is RSS over devices, the process's own base included. Edge: `fluxo edge --spool-sync never`, registry on unless noted. Mochi: the bare mochi server at its defaults.\n\n", o.idleSettle)
	fmt.Fprintln(w, "| round | target | RSS | anon | file | KiB per device | ratio to mochi | connect time |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|")
	mochi := map[int]int64{}
	for _, r := range runs {
		if r.target == idleMochi {
			mochi[r.round] = r.mem.rss
		}
	}
	ratios := map[string][]float64{}
	for _, r := range runs {
		ratio := "–"
		if m := mochi[r.round]; m > 0 {
			x := float64(r.mem.rss) / float64(m)
			ratios[r.target] = append(ratios[r.target], x)
			ratio = fmt.Sprintf("%.2f", x)
		}
		fmt.Fprintf(w, "| %d | %s | %.1f | %.1f | %.1f | %.1f | %s | %v |\n", r.round, r.target,
			mib(r.mem.rss), mib(r.mem.anon), mib(r.mem.file), float64(r.mem.rss)/1024/float64(r.devices), ratio, r.connect.Round(time.Millisecond))
	}
	var lines []string
	for _, t := range o.idleTargets {
		if xs := ratios[t]; len(xs) > 0 && t != idleMochi {
			lines = append(lines, fmt.Sprintf("%s %.2f–%.2f×", t, slices.Min(xs), slices.Max(xs)))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "\nRSS over the bare mochi server's, range over rounds: %s.\n", strings.Join(lines, ", "))
	}
}

func printStorm(w io.Writer, o options, runs []stormRun) {
	fmt.Fprintf(w, "\n### Connect storm: %d devices reconnect at once to a restarted edge\n\n", o.idleDevices)
	fmt.Fprintln(w, "Time from the moment every device dials again until the last has its CONNACK; a refused device retries after 100–500 ms.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| --max-connect-rate | all back in | CONNACKs refused | connections failed | edge's refusal count |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|")
	for _, r := range runs {
		rate := "none"
		if r.rate > 0 {
			rate = fmt.Sprintf("%.0f/s", r.rate)
		}
		fmt.Fprintf(w, "| %s | %.2f s | %d | %d | %.0f |\n", rate, r.back.Seconds(), r.refused, r.failed, r.refusals)
	}
}

func (o *options) parseIdle(targets string) error {
	for t := range strings.SplitSeq(targets, ",") {
		switch t {
		case idleEdge, idleEdgeNoRegistry, idleMochi, idleMosquitto:
			o.idleTargets = append(o.idleTargets, t)
		default:
			return fmt.Errorf("-idle-targets: unknown target %q", t)
		}
	}
	if o.idleDevices < 1 {
		return fmt.Errorf("-idle-devices %d below 1", o.idleDevices)
	}
	return nil
}
