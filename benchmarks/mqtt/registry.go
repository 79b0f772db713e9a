package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fluxo-io/fluxo/benchmarks/internal/hist"
	"github.com/fluxo-io/fluxo/benchmarks/internal/proc"
)

// The registry phase (not in the default -phases): the cost of the
// edge's device registry. Each round starts a `fluxo edge` process
// (--spool-sync never) with --registry=false, then one with the registry
// on; each is first taught -registry-devices devices (one QoS 1 publish
// on cars/d-NNNNN/telemetry for each, from one connection), then flooded
// like the throughput phase at QoS 1 by -publishers publishers, each
// publishing as one of those devices. While the registry is on, a client
// asks GET /api/devices (the console's first page, sorted by last seen)
// every -registry-api-interval and times the answers. The edge's RSS is
// read from /proc at the end of the flood. The figures that matter are
// the ratios, registry on to off: RSS (goal ≤ 1.2) and ingest (goal ≥
// 0.95), with the edge's msg per server CPU-second beside the ingest
// rate: on a shared machine it says more steadily what the registry
// costs a publish.

// registryRun is one edge run of the registry phase.
type registryRun struct {
	registry bool
	load     loadResult
	taught   proc.Mem   // once the devices are taught, before the flood
	mem      proc.Mem   // at the end of the flood
	api      *hist.Hist // /api/devices answer times; nil without the registry
	apiN     int64
	apiErrs  int64
}

func (b *bench) registryPhase(ctx context.Context, rep *report) error {
	if b.o.inProcess {
		return errors.New("registry phase: the edge's RSS needs an edge process; drop -in-process")
	}
	pool := fixedPayloads(1024, b.o.payloadBytes, 1)
	next := make([]int, b.o.publishers)
	stride := max(1, b.o.registryDevices/b.o.publishers)
	spec := loadSpec{
		publishers: b.o.publishers, qos: 1, inflight: b.o.inflight, warmup: b.o.warmup, duration: b.o.duration,
		payload: func(p int, _ []byte) []byte {
			next[p]++
			return pool[(p*37+next[p])%len(pool)]
		},
		topic:   func(p int) string { return fmt.Sprintf("cars/d-%05d/telemetry", (p*stride)%b.o.registryDevices) },
		id:      func(p int) string { return fmt.Sprintf("c-%04d", p+1) },
		corePID: b.corePID(),
	}
	for round := range b.o.rounds {
		for _, on := range []bool{false, true} {
			sleep(ctx, b.o.settle)
			fmt.Fprintf(b.stderr, "round %d, registry %v: %d devices, then %d publishers for %v\n",
				round+1, on, b.o.registryDevices, b.o.publishers, b.o.warmup+b.o.duration)
			r, err := b.registryOnce(ctx, on, spec)
			if err != nil {
				return fmt.Errorf("registry %v: %w", on, err)
			}
			fmt.Fprintf(b.stderr, "  taught: RSS %.1f MiB (anon %.1f, file %.1f); %.0f msg/s, RSS %.1f MiB (anon %.1f, file %.1f)",
				mib(r.taught.RSS), mib(r.taught.Anon), mib(r.taught.File), r.load.rate(), mib(r.mem.RSS), mib(r.mem.Anon), mib(r.mem.File))
			if r.api != nil {
				fmt.Fprintf(b.stderr, ", /api/devices p50 %v p99 %v (%d requests)", r.api.Quantile(0.5), r.api.Quantile(0.99), r.apiN)
			}
			fmt.Fprintln(b.stderr)
			rep.registry = append(rep.registry, r)
		}
	}
	return nil
}

func (b *bench) registryOnce(ctx context.Context, on bool, spec loadSpec) (res registryRun, err error) {
	res.registry = on
	b.runs++
	name := "edge-registry-" + strconv.FormatBool(on)
	dir := filepath.Join(b.root, fmt.Sprintf("run-%d-%s", b.runs, name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	t, err := startEdgeWith(ctx, b.bin, false, b.core.kafkaAddr, dir, "never", "--registry="+strconv.FormatBool(on))
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := b.stop(ctx, name, t); serr != nil && err == nil {
			err = serr
		}
	}()
	if err := populate(ctx, t.MQTTAddr(), b.o.registryDevices); err != nil {
		return res, err
	}
	// The registry writes its devices every second.
	sleep(ctx, 2*time.Second)
	if res.taught, err = proc.ReadMem(t.PID()); err != nil {
		return res, err
	}
	actx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if on {
		res.api = &hist.Hist{}
		wg.Go(func() {
			res.apiN, res.apiErrs = pollAPI(actx, "http://"+t.httpAddr+"/api/devices?sort=last_seen", b.o.registryAPIInterval, res.api)
		})
	}
	res.load, err = runLoad(ctx, t, spec)
	stop()
	wg.Wait()
	if err != nil {
		return res, err
	}
	res.mem, err = proc.ReadMem(t.PID())
	return res, err
}

// populate publishes once (QoS 1) as each of n devices, from one
// connection, 256 in flight at a time.
func populate(ctx context.Context, addr string, n int) error {
	cs, err := connect(ctx, addr, []string{"populate"})
	if err != nil {
		return err
	}
	defer disconnect(cs)
	c := cs[0]
	toks := make([]paho.Token, 0, 256)
	flush := func() error {
		for _, tok := range toks {
			if err := waitToken(tok, 30*time.Second); err != nil {
				return fmt.Errorf("populate: %w", err)
			}
		}
		toks = toks[:0]
		return nil
	}
	for i := range n {
		toks = append(toks, c.Publish(fmt.Sprintf("cars/d-%05d/telemetry", i), 1, false, []byte(`{"hello":1}`)))
		if len(toks) == cap(toks) {
			if err := flush(); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return flush()
}

// pollAPI GETs url every interval until ctx ends, recording each answer's
// time (the body read to the end) in h.
func pollAPI(ctx context.Context, url string, interval time.Duration, h *hist.Hist) (n, errs int64) {
	cl := &http.Client{Timeout: 30 * time.Second}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return n, errs
		case <-t.C:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		t0 := time.Now()
		resp, err := cl.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				errs++
			}
			continue
		}
		h.Record(time.Since(t0))
		n++
	}
}

// printRegistry prints the registry phase's table: each round's runs and
// the median ratios, registry on to off.
func printRegistry(w io.Writer, o options, runs []registryRun) {
	if len(runs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### Device registry: %d devices, %d publishers at QoS 1 (%d in flight each), %d B payloads, %v window, `fluxo edge --spool-sync never`\n\n",
		o.registryDevices, o.publishers, o.inflight, o.payloadBytes, o.duration)
	fmt.Fprintln(w, "RSS in MiB, as /proc reports it (VmRSS, of which RssAnon and RssFile): once the devices are taught (before the flood), and at the end of the flood. File pages are mostly the spool's segments and grow with what the flood ingested; bbolt's file is among them.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Server CPU is the edge process's, in cores over the timed window; msg per server CPU-second is the steadier figure of what the registry costs per publish on a shared machine (the /api/devices requests included).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| round | registry | taught RSS | anon | file | ingest msg/s | server CPU | msg per server CPU-second | end RSS | anon | file | /api/devices p50 | p99 | requests |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var rssR, anonR, endR, rateR, effR []float64
	perCPU := func(r registryRun) float64 {
		if r.load.serverCPU <= 0 {
			return 0
		}
		return float64(r.load.msgs) / r.load.serverCPU.Seconds()
	}
	for i, r := range runs {
		api := "| – | – | – |"
		if r.api != nil {
			api = fmt.Sprintf("| %s | %s | %d (%d failed) |", fmtLatency(r.api.Quantile(0.5)), fmtLatency(r.api.Quantile(0.99)), r.apiN, r.apiErrs)
		}
		fmt.Fprintf(w, "| %d | %v | %.1f | %.1f | %.1f | %.0f | %.2f | %.0f | %.1f | %.1f | %.1f %s\n", i/2+1, r.registry,
			mib(r.taught.RSS), mib(r.taught.Anon), mib(r.taught.File), r.load.rate(), cores(r.load.serverCPU, r.load.elapsed), perCPU(r),
			mib(r.mem.RSS), mib(r.mem.Anon), mib(r.mem.File), api)
		if r.registry && i > 0 && !runs[i-1].registry {
			off := runs[i-1]
			rssR = append(rssR, float64(r.taught.RSS)/float64(off.taught.RSS))
			anonR = append(anonR, float64(r.mem.Anon)/float64(off.mem.Anon))
			endR = append(endR, float64(r.mem.RSS)/float64(off.mem.RSS))
			rateR = append(rateR, r.load.rate()/off.load.rate())
			if perCPU(off) > 0 {
				effR = append(effR, perCPU(r)/perCPU(off))
			}
		}
	}
	if len(rssR) > 0 {
		med := func(xs []float64) float64 { slices.Sort(xs); return xs[(len(xs)-1)/2] }
		fmt.Fprintf(w, "\nRegistry on / off (median of %d rounds): RSS once taught %.2f× (goal ≤ 1.20), ingest %.2f× (goal ≥ 0.95); at the end of the flood, RSS %.2f×, anonymous RSS %.2f×.\n",
			len(rssR), med(rssR), med(rateR), med(endR), med(anonR))
		if len(effR) > 0 {
			lo, hi := slices.Min(effR), slices.Max(effR)
			fmt.Fprintf(w, "Msg per server CPU-second, registry on / off: median %.2f× (rounds %.2f–%.2f).\n", med(effR), lo, hi)
		}
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
