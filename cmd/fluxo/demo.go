package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/core"
	"github.com/fluxo-io/fluxo/devices"
	"github.com/fluxo-io/fluxo/edge"
)

func init() { register(newDemoCmd) }

type demoFlowOptions struct {
	sensors, cars, panels int
	rate, alarmRate       float64
	duration              time.Duration
	keep                  bool
}

func newDemoCmd() *cobra.Command {
	var o demoFlowOptions
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole flow in one process: devices → edge → core → consumer",
		Long: `Run the demo, with no configuration, in one process on loopback ports and a
temporary data directory:

  simulated devices (sensors, cars, alarm panels; paho, MQTT QoS 1)
    → an edge node (MQTT server, spool fsynced before each acknowledgement,
      snappy batches forwarded by an idempotent producer)
    → a core broker (Kafka protocol, segment logs)
    → a consumer group reading telemetry, alarms and command answers,
      and a backend sending a command to a car every few seconds.

A live view shows messages per second per topic, alarm latency from the device
to the consumer (p50/p99), the spool backlog and the uplink's batches and
compression. Ctrl-C stops it cleanly and prints the totals.

'fluxo demo core' shows the core alone (a producer, a consumer group and a
restart); 'fluxo demo crash' shows the segment log surviving a SIGKILL and a
power cut.`,
		Example: `  fluxo demo
  fluxo demo --duration 0          # until Ctrl-C
  fluxo demo --cars 200 --rate 10 --duration 30s
  fluxo demo core
  fluxo demo crash`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runFlowDemo(cmd.Context(), o, logger(cmd), cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.IntVar(&o.sensors, "sensors", 20, "simulated sensors")
	f.IntVar(&o.cars, "cars", 20, "simulated cars")
	f.IntVar(&o.panels, "panels", 10, "simulated alarm panels")
	f.Float64Var(&o.rate, "rate", 5, "messages per second per sensor and car")
	f.Float64Var(&o.alarmRate, "alarm-rate", 2, "alarms per second across the fleet")
	f.DurationVar(&o.duration, "duration", 30*time.Second, "how long to run (0: until Ctrl-C)")
	f.BoolVar(&o.keep, "keep", false, "keep the data directory")
	c.AddCommand(newDemoCoreCmd(), newDemoCrashCmd())
	return c
}

func runFlowDemo(ctx context.Context, o demoFlowOptions, log zerolog.Logger, out io.Writer) error {
	// Devices stop at the duration or Ctrl-C; the consumer and the
	// backend go on until what the devices sent has come through.
	devCtx := ctx
	if o.duration > 0 {
		var cancel context.CancelFunc
		devCtx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	ctx, stopConsumers := context.WithCancel(context.Background())
	defer stopConsumers()
	dir, err := os.MkdirTemp("", "fluxo-demo-")
	if err != nil {
		return err
	}
	if o.keep {
		defer fmt.Fprintf(out, "data kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	// The parts log warnings only: the live view is the demo's output.
	quiet := log.Level(max(log.GetLevel(), zerolog.WarnLevel))

	cc := core.DefaultConfig()
	cc.DataDir = filepath.Join(dir, "core")
	cc.KafkaAddr, cc.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cc.Broker.DefaultPartitions = 4
	cc.Group.InitialRebalanceDelay = 100 * time.Millisecond
	cc.Logger = quiet
	coreNode, err := core.New(cc)
	if err != nil {
		return err
	}
	if err := coreNode.Start(); err != nil {
		return err
	}
	defer coreNode.Shutdown(context.Background())

	ec := edge.DefaultNodeConfig()
	ec.Edge.MQTTAddr = "127.0.0.1:0"
	ec.Edge.AllowAnonymous = true
	ec.Edge.EdgeID = "demo-edge"
	ec.Edge.StateDir = filepath.Join(dir, "edge", "mqtt")
	ec.SpoolDir = filepath.Join(dir, "edge")
	ec.Spool.Sync = spool.SyncAlways
	ec.Uplink.Brokers = []string{coreNode.KafkaAddr()}
	ec.HTTPAddr = "127.0.0.1:0"
	ec.Logger = quiet
	if err := os.MkdirAll(ec.Edge.StateDir, 0o755); err != nil {
		return err
	}
	edgeNode, err := edge.NewNode(ec)
	if err != nil {
		return err
	}
	if err := edgeNode.Start(); err != nil {
		return err
	}
	defer edgeNode.Shutdown(context.Background())

	view := newDemoView(out, o, edgeNode, coreNode)
	var wg sync.WaitGroup
	consumeErr := make(chan error, 1)
	wg.Add(2)
	go func() { defer wg.Done(); consumeErr <- view.consume(ctx, coreNode.KafkaAddr()) }()
	go func() { defer wg.Done(); view.sendCommands(ctx, coreNode.KafkaAddr()) }()

	dc := devices.DefaultConfig()
	dc.Broker = "tcp://" + edgeNode.MQTTAddr()
	dc.Sensors, dc.Cars, dc.Panels = o.sensors, o.cars, o.panels
	dc.Rate, dc.AlarmRate, dc.QoS = o.rate, o.alarmRate, 1
	dc.ReportInterval = time.Second
	dc.Logger = quiet
	stats, derr := devices.Run(devCtx, dc, view.devicesTick)
	view.drain()
	stopConsumers()
	wg.Wait()
	view.final(stats)
	select {
	case err := <-consumeErr:
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	default:
	}
	if derr != nil && !errors.Is(derr, context.Canceled) && !errors.Is(derr, context.DeadlineExceeded) {
		return derr
	}
	return nil
}

// demoView gathers what the consumer sees and draws the live view.
type demoView struct {
	out   io.Writer
	tty   bool
	o     demoFlowOptions
	edge  *edge.Node
	core  *core.Node
	start time.Time

	mu        sync.Mutex // guards the fields below
	total     map[string]int
	last      map[string]int
	lastAt    time.Time
	latencies []float64 // alarm latencies, ms
	commands  int
	lines     int
}

func newDemoView(out io.Writer, o demoFlowOptions, e *edge.Node, c *core.Node) *demoView {
	tty := false
	if f, ok := out.(*os.File); ok {
		tty = isatty.IsTerminal(f.Fd())
	}
	v := &demoView{out: out, tty: tty, o: o, edge: e, core: c, start: time.Now(),
		total: map[string]int{}, last: map[string]int{}, lastAt: time.Now()}
	fmt.Fprintf(out, "fluxo demo: %d sensors, %d cars, %d panels at %g msg/s → edge %s (metrics http://%s/metrics) → core %s\n",
		o.sensors, o.cars, o.panels, o.rate, e.MQTTAddr(), e.HTTPAddr(), c.KafkaAddr())
	fmt.Fprintf(out, "consoles: edge http://%s/  core http://%s/\n\n", e.HTTPAddr(), c.HTTPAddr())
	return v
}

// consume reads every topic the edge writes, as a group, measuring alarm
// latency from the device's send time in the payload.
func (v *demoView) consume(ctx context.Context, addr string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("demo-dashboard"),
		kgo.ConsumeTopics("telemetry", "alarms", "command-acks"), kgo.AllowAutoTopicCreation(),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		now := time.Now()
		v.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			v.total[r.Topic]++
			if r.Topic == "alarms" {
				var m struct {
					TsMs int64 `json:"ts_ms"`
				}
				if json.Unmarshal(r.Value, &m) == nil && m.TsMs > 0 {
					v.latencies = append(v.latencies, float64(now.UnixMicro()-m.TsMs*1000)/1000)
				}
			}
		})
		v.mu.Unlock()
	}
	return ctx.Err()
}

// sendCommands plays the backend: every few seconds a command to a car.
func (v *demoView) sendCommands(ctx context.Context, addr string) {
	if v.o.cars == 0 {
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		return
	}
	defer cl.Close()
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		car := devices.DeviceID(devices.Car, 1+i%v.o.cars)
		rec := &kgo.Record{Topic: "commands", Key: []byte(car),
			Value:   []byte(fmt.Sprintf(`{"id":"%d","cmd":"flash-lights"}`, i)),
			Headers: []kgo.RecordHeader{{Key: "fleet", Value: []byte("cars")}}}
		if cl.ProduceSync(ctx, rec).FirstErr() == nil {
			v.mu.Lock()
			v.commands++
			v.mu.Unlock()
		}
	}
}

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// devicesTick is called every second by the device fleet: redraw.
func (v *demoView) devicesTick(ds devices.Stats) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := time.Now()
	dt := now.Sub(v.lastAt).Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "%-14s %9s %9s\n", "core topic", "msg/s", "total")
	for _, t := range []string{"telemetry", "alarms", "command-acks"} {
		rate := float64(v.total[t]-v.last[t]) / max(dt, 0.001)
		fmt.Fprintf(&b, "%-14s %9.1f %9d\n", t, rate, v.total[t])
		v.last[t] = v.total[t]
	}
	v.lastAt = now
	fmt.Fprintf(&b, "alarm latency device → consumer: p50 %.2f ms, p99 %.2f ms (%d alarms)\n",
		percentile(v.latencies, 0.50), percentile(v.latencies, 0.99), len(v.latencies))
	sp := v.edge.Spool().Stats()
	var batches, recs, raw, sent int64
	for _, s := range v.edge.Uplink().Stats() {
		batches += s.Batches
		recs += s.Records
		raw += s.RawBytes
		sent += s.SentBytes
	}
	avg, ratio := 0.0, 0.0
	if batches > 0 {
		avg = float64(recs) / float64(batches)
	}
	if sent > 0 {
		ratio = float64(raw) / float64(sent)
	}
	fmt.Fprintf(&b, "edge spool backlog: telemetry %d, alarm %d   uplink: %d batches, %.1f records/batch, snappy %.1fx\n",
		sp[spool.Telemetry].Spool, sp[spool.Alarm].Spool, batches, avg, ratio)
	fmt.Fprintf(&b, "devices: %d online, sent %d, acknowledged %d, errors %d   commands sent %d   %s\n",
		ds.Online, ds.Sent, ds.Acked, ds.Errors, v.commands, time.Since(v.start).Round(time.Second))
	text := b.String()
	if v.tty {
		if v.lines > 0 {
			fmt.Fprintf(v.out, "\033[%dA", v.lines)
		}
		for _, l := range strings.SplitAfter(text, "\n") {
			if l != "" {
				fmt.Fprintf(v.out, "\033[2K%s", l)
			}
		}
		v.lines = strings.Count(text, "\n")
		return
	}
	if int(time.Since(v.start).Seconds())%5 == 0 {
		fmt.Fprintln(v.out, text)
	}
}

// drain waits (up to 10 s) until the spool is empty and the consumer has
// read everything the edge delivered.
func (v *demoView) drain() {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		sp := v.edge.Spool().Stats()
		delivered := sp[spool.Telemetry].Delivered + sp[spool.Alarm].Delivered
		v.mu.Lock()
		read := v.total["telemetry"] + v.total["alarms"] + v.total["command-acks"]
		v.mu.Unlock()
		if sp[spool.Telemetry].Spool == 0 && sp[spool.Alarm].Spool == 0 && int64(read) >= delivered {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// final prints the totals once the devices have stopped.
func (v *demoView) final(ds devices.Stats) {
	v.mu.Lock()
	defer v.mu.Unlock()
	fmt.Fprintf(v.out, "\ntotals after %s:\n", time.Since(v.start).Round(time.Second))
	fmt.Fprintf(v.out, "  devices sent %d messages (%d alarms), %d acknowledged by the edge, %d errors, %d reconnects\n",
		ds.Sent, ds.Alarms, ds.Acked, ds.Errors, ds.Reconnects)
	for _, s := range v.edge.Spool().Stats() {
		fmt.Fprintf(v.out, "  edge spool %-9s accepted %d, delivered %d, evicted %d, expired %d, still spooled %d\n",
			s.Lane.String()+":", s.Accepted, s.Delivered, s.Evicted, s.Expired, s.Spool)
	}
	fmt.Fprintf(v.out, "  consumer read telemetry %d, alarms %d, command answers %d (of %d commands sent)\n",
		v.total["telemetry"], v.total["alarms"], v.total["command-acks"], v.commands)
	fmt.Fprintf(v.out, "  alarm latency device → consumer: p50 %.2f ms, p99 %.2f ms over %d alarms\n",
		percentile(v.latencies, 0.50), percentile(v.latencies, 0.99), len(v.latencies))
}
