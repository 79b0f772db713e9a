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
	"github.com/fluxo-io/fluxo/benchmarks/internal/proc"
)

// The idle and storm phases (not in the default -phases): what a silent
// device costs, and how fast a fleet comes back after an edge restart.
//
//   - idle: in each of -rounds, each of -idle-targets is started fresh
//     and devices connect to it (MQTT 3.1.1, clean session, keep alive
//     300 s, 64 connecting at a time) and stay silent, up to each count
//     of -idle-conns in turn (by default -idle-devices alone); -idle-settle
//     after each count is reached, the server's RSS is read from /proc
//     (VmRSS, RssAnon, RssFile). Targets: edge (`fluxo edge --spool-sync
//     never`, the registry on, as shipped), edge-noregistry
//     (--registry=false), mochi (the bare mochi server at its defaults),
//     mosquitto, and any -peer server (benchmarks/peers runs NATS this
//     way). The figures that matter are the ratios to the bare mochi
//     server at the same count in the same round. The soft limit on open
//     files is raised to the hard one first.
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

// idleRun is one target's idle measurement in one round: its memory
// at each count of connections, and the time the connections added for
// that count took to connect.
type idleRun struct {
	target  string
	round   int
	conns   []int
	mem     []proc.Mem
	connect []time.Duration
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

// connectDevices connects n devices, ids from deviceID(from) on, 64 at a
// time, and returns their connections; any failure fails them all.
func connectDevices(ctx context.Context, addr string, from, n int) ([]net.Conn, error) {
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
				c, err := dialDevice(ctx, addr, deviceID(from+i))
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
	if err := b.fileLimit(slices.Max(b.o.idleConns)); err != nil {
		return fmt.Errorf("idle phase: %w", err)
	}
	for round := range b.o.rounds {
		for _, name := range b.o.idleTargets {
			sleep(ctx, b.o.settle)
			fmt.Fprintf(b.stderr, "round %d, idle %s: %v connections\n", round+1, name, b.o.idleConns)
			r, err := b.idleOnce(ctx, name)
			if err != nil {
				return fmt.Errorf("idle %s: %w", name, err)
			}
			r.round = round + 1
			rep.idle = append(rep.idle, r)
		}
	}
	return nil
}

// fileLimit raises the soft limit on open files to the hard one (the
// servers started next inherit it) and checks that n connections fit.
func (b *bench) fileLimit(n int) error {
	limit, err := raiseFileLimit()
	if err != nil {
		return fmt.Errorf("raise the open files limit: %w", err)
	}
	if want := uint64(n) + 200; limit < want {
		return fmt.Errorf("open files limit %d, want at least %d for %d connections", limit, want, n)
	}
	return nil
}

// idleEdgeFlags are the flags of the edge in the idle and storm phases:
// room for every device.
func (b *bench) idleEdgeFlags(extra ...string) []string {
	n := max(b.o.idleDevices, slices.Max(b.o.idleConns))
	return append([]string{"--max-clients", strconv.Itoa(n + 100)}, extra...)
}

func (b *bench) idleOnce(ctx context.Context, name string) (res idleRun, err error) {
	res.target = name
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
	default:
		bin, ok := b.o.peers[name]
		if !ok {
			return res, fmt.Errorf("unknown idle target %q", name)
		}
		t, err = startPeer(ctx, name, bin)
	}
	if err != nil {
		return res, err
	}
	var conns []net.Conn
	defer func() {
		closeAll(conns)
		if serr := b.stop(ctx, "idle-"+name, t); serr != nil && err == nil {
			err = serr
		}
	}()
	for _, n := range b.o.idleConns {
		t0 := time.Now()
		more, err := connectDevices(ctx, t.MQTTAddr(), len(conns), n-len(conns))
		if err != nil {
			return res, fmt.Errorf("%d connections: %w", n, err)
		}
		conns = append(conns, more...)
		connect := time.Since(t0)
		sleep(ctx, b.o.idleSettle)
		m, err := proc.ReadMem(t.PID())
		if err != nil {
			return res, err
		}
		fmt.Fprintf(b.stderr, "  %d connections (the last %d in %v): RSS %.1f MiB (anon %.1f, file %.1f)\n",
			n, len(more), connect.Round(time.Millisecond), mib(m.RSS), mib(m.Anon), mib(m.File))
		res.conns = append(res.conns, n)
		res.mem = append(res.mem, m)
		res.connect = append(res.connect, connect)
	}
	return res, nil
}

// stormPhase runs a connect storm with the edge's defaults, then one
// with -storm-rate as --max-connect-rate, -rounds times.
func (b *bench) stormPhase(ctx context.Context, rep *report) error {
	if b.o.inProcess {
		return errors.New("storm phase: the edge restarts as a process; drop -in-process")
	}
	if err := b.fileLimit(b.o.idleDevices); err != nil {
		return fmt.Errorf("storm phase: %w", err)
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
	res.refusals = m.Sum("fluxo_edge_connections_refused_total", "")
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

// printIdle prints the idle phase's table: every target's memory at
// every count of connections in every round, and its ratio to the bare
// mochi server's at the same count in the same round.
func printIdle(w io.Writer, o options, runs []idleRun) {
	fmt.Fprintf(w, "\n### Idle devices: %v MQTT 3.1.1 connections (clean session, keep alive 300 s), silent\n\n", o.idleConns)
	fmt.Fprintf(w, "RSS in MiB from /proc (VmRSS, of which RssAnon and RssFile) %v after each count was reached; KiB per device is RSS over devices, the process's own base included. Connect time is that of the connections added for the count, 64 at a time. Edge: `fluxo edge --spool-sync never`, registry on unless noted. Mochi: the bare mochi server at its defaults.\n\n", o.idleSettle)
	fmt.Fprintln(w, "| round | target | connections | RSS | anon | file | KiB per device | ratio to mochi | connect time |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|")
	type key struct{ round, conns int }
	mochi := map[key]int64{}
	for _, r := range runs {
		if r.target == idleMochi {
			for i, n := range r.conns {
				mochi[key{r.round, n}] = r.mem[i].RSS
			}
		}
	}
	top := slices.Max(o.idleConns)
	ratios := map[string][]float64{}
	for _, r := range runs {
		for i, n := range r.conns {
			m := r.mem[i]
			ratio := "–"
			if base := mochi[key{r.round, n}]; base > 0 {
				x := float64(m.RSS) / float64(base)
				if n == top {
					ratios[r.target] = append(ratios[r.target], x)
				}
				ratio = fmt.Sprintf("%.2f", x)
			}
			per := "–"
			if n > 0 {
				per = fmt.Sprintf("%.1f", float64(m.RSS)/1024/float64(n))
			}
			fmt.Fprintf(w, "| %d | %s | %d | %.1f | %.1f | %.1f | %s | %s | %v |\n", r.round, r.target, n,
				mib(m.RSS), mib(m.Anon), mib(m.File), per, ratio, r.connect[i].Round(time.Millisecond))
		}
	}
	var lines []string
	for _, t := range o.idleTargets {
		if xs := ratios[t]; len(xs) > 0 && t != idleMochi {
			lines = append(lines, fmt.Sprintf("%s %.2f–%.2f×", t, slices.Min(xs), slices.Max(xs)))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "\nRSS over the bare mochi server's at %d connections, range over rounds: %s.\n", top, strings.Join(lines, ", "))
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
