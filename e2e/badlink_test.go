//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/internal/faultlink"
)

// The bad link of these tests: 300 ms ± 100 ms each way (a round trip of
// about 600 ms, a poor cellular link), and 256 kbit/s each way shared by
// every connection of the edge.
const (
	badLatency   = 300 * time.Millisecond
	badJitter    = 100 * time.Millisecond
	badBandwidth = 256_000 / 8 // bytes/s
)

// badlinkSite is a fluxo core and a fluxo edge whose uplink reaches the
// core only through a fault-injecting link: the core advertises the
// link's address in Metadata (--kafka-advertise), so the edge's clients
// never learn the core's own address. The test's own clients dial the
// core directly (direct), past the link.
type badlinkSite struct {
	core *coreProc
	edge *edgeProc
	link *faultlink.Link
}

func startBadlinkSite(t *testing.T, bin string) *badlinkSite {
	t.Helper()
	core := newCoreProc(t, bin)
	var link *faultlink.Link
	for attempt := 1; ; attempt++ {
		var err error
		link, err = faultlink.Start(core.kafka, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		core.args = append(core.args, "--kafka-advertise", link.Addr())
		err = core.start()
		if err == nil {
			break
		}
		link.Close()
		if attempt < 5 && strings.Contains(core.logs.String(), "address already in use") {
			core.pickPorts(t)
			continue
		}
		t.Fatalf("%s: %v\n%s", core.name, err, core.history.tail())
	}
	t.Cleanup(link.Close)
	edge := startEdgeProc(t, bin, link.Addr())
	return &badlinkSite{core: core, edge: edge, link: link}
}

// direct are client options that reach the core past the link: the
// address the core advertises (the link's) is dialed as the core's own.
func (s *badlinkSite) direct() []kgo.Opt {
	link, core := s.link.Addr(), s.core.kafka
	return []kgo.Opt{kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		if host == link {
			host = core
		}
		var d net.Dialer
		return d.DialContext(ctx, network, host)
	})}
}

// endOffsets sums the end offsets of each topic, read past the link.
func (s *badlinkSite) endOffsets(t *testing.T, topics ...string) map[string]int64 {
	t.Helper()
	cl, err := kgo.NewClient(append(s.direct(), kgo.SeedBrokers(s.core.kafka))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	out := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			out[o.Topic] += o.Offset
		}
	})
	return out
}

// tailAlarms consumes the alarms topic past the link from its start and
// calls seen with the arrival time of each record.
func (s *badlinkSite) tailAlarms(t *testing.T, seen func(r *kgo.Record, at time.Time)) {
	t.Helper()
	cl, err := kgo.NewClient(append(s.direct(), kgo.SeedBrokers(s.core.kafka), kgo.ConsumeTopics("alarms"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) { seen(r, now) })
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		cl.Close()
	})
}

// linkPhase is one fault on the link while devices publish through the
// edge.
type linkPhase struct {
	name  string
	apply func(l *faultlink.Link) error // starts the fault
	every time.Duration                 // if set, tick runs this often during the phase
	tick  func(l *faultlink.Link) error
	dur   time.Duration
	devs  []*mqttDevice
}

// TestBadLink puts a fault-injecting proxy (toxiproxy, in process)
// between a fluxo edge and its core, and runs paho devices (QoS 1)
// through the edge under each fault in turn: latency with jitter, a
// shared 256 kbit/s cap, connections reset every 2 s, connections that
// die after a few kilobytes in either direction (a request cut
// mid-batch, a response cut after the core wrote the batch), and a 15 s
// cut with the link slow on both sides. Every message the edge
// acknowledged is in the core exactly once, in each device's order. The
// cut also shows the alarm lane first: an alarm published at the end of
// the cut, behind the telemetry backlog the cut built, reaches the core
// while that backlog is still draining.
func TestBadLink(t *testing.T) {
	t.Parallel()
	bin := buildFluxo(t)
	s := startBadlinkSite(t, bin)
	l := s.link

	dev := func(id, stream string, rate float64) *mqttDevice {
		fleet := "cars"
		if strings.HasPrefix(id, "s-") {
			fleet = "sensors"
		}
		return newDevice(id, fleet+"/"+id+"/"+stream, s.edge.broker(), rate)
	}
	phaseDevs := func(p string) []*mqttDevice {
		return []*mqttDevice{
			dev("c-"+p+"1", "telemetry", 60), dev("c-"+p+"2", "telemetry", 60),
			dev("s-"+p+"3", "alarm/overheat", 5),
		}
	}
	phases := []linkPhase{
		{name: "latency", dur: 4 * time.Second, devs: phaseDevs("lat"),
			apply: func(l *faultlink.Link) error { return l.Latency(badLatency, badJitter) }},
		{name: "bandwidth", dur: 4 * time.Second, devs: phaseDevs("bw"),
			apply: func(l *faultlink.Link) error {
				return errors.Join(l.Latency(badLatency, badJitter), l.Bandwidth(badBandwidth))
			}},
		{name: "resets", dur: 7 * time.Second, devs: phaseDevs("rst"),
			apply: func(l *faultlink.Link) error { return l.Latency(badLatency/3, badJitter/3) },
			every: 2 * time.Second, tick: (*faultlink.Link).Reset},
		// toxiproxy's limit_data, then reset, every second: the open
		// connections die a few bytes later.
		{name: "limit_data up", dur: 4 * time.Second, devs: phaseDevs("lup"),
			// A produce request cut mid-batch, never handled by the core.
			apply: func(*faultlink.Link) error { return nil },
			every: time.Second, tick: limitDataThenReset(faultlink.Up, 300)},
		{name: "limit_data down", dur: 4 * time.Second, devs: phaseDevs("ldn"),
			// A produce response lost after the core wrote the
			// batches, which the uplink sends again: the core must
			// keep them once.
			apply: func(*faultlink.Link) error { return nil },
			every: time.Second, tick: limitDataThenReset(faultlink.Down, 40)},
	}
	var all []*mqttDevice
	for _, p := range phases {
		all = append(all, p.devs...)
		lost := runLinkPhase(t, s, p)
		if t.Failed() {
			return
		}
		if p.name == "limit_data down" && lost <= 0 {
			t.Errorf("limit_data down: got %v produce responses lost after the write, want some: the phase is meant to make the uplink resend batches the core has", lost)
		}
	}
	all = append(all, testCutAlarmFirst(t, s)...)
	if t.Failed() {
		return
	}

	must(t, l.Clear())
	got := readCoreWith(t, s.core.kafka, s.direct(), "telemetry", "alarms")
	for _, d := range all {
		topic := "telemetry"
		if strings.Contains(d.topic, "/alarm/") {
			topic = "alarms"
		}
		seqs := seqsOf(got[topic], d.id)
		checkOnce(t, d, seqs, nil)
		if d.resent > 0 {
			t.Errorf("%s: got %d resends, want 0 (the edge stayed up)", d.id, d.resent)
		}
		if !slices.IsSorted(seqs) {
			t.Errorf("%s: got its records out of order in the core, want the order published", d.id)
		}
	}
	deviceCounts(t, append(got["telemetry"], got["alarms"]...))
	if up := l.Bytes(faultlink.Up); up == 0 {
		t.Errorf("bytes through the link: got 0, want the uplink's traffic")
	}
	t.Logf("through the link: %d bytes up, %d down", l.Bytes(faultlink.Up), l.Bytes(faultlink.Down))
}

// runLinkPhase applies the phase's fault, runs its devices for its
// duration, clears the fault and waits until the edge has delivered
// everything. It returns how many produce responses the link lost after
// the core had handled the request.
func runLinkPhase(t *testing.T, s *badlinkSite, p linkPhase) (lost float64) {
	t.Helper()
	start := time.Now()
	core0, edge0 := s.core.mustMetrics(t), s.edge.mustMetrics(t)
	t.Logf("%s: from %s", p.name, start.UTC().Format("15:04:05.000"))
	must(t, p.apply(s.link))
	stopFault := make(chan struct{})
	faultErr := make(chan error, 1)
	go func() {
		if p.every == 0 {
			faultErr <- nil
			return
		}
		tick := time.NewTicker(p.every)
		defer tick.Stop()
		for {
			select {
			case <-stopFault:
				faultErr <- nil
				return
			case <-tick.C:
				if err := p.tick(s.link); err != nil {
					faultErr <- err
					return
				}
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stop := make(chan struct{})
	wait := runDevices(ctx, stop, p.devs...)
	time.Sleep(p.dur)
	close(stop)
	wait(t, 20*time.Second) // the devices talk to the edge, not through the link
	close(stopFault)
	must(t, <-faultErr)
	m := s.edge.mustMetrics(t)
	t.Logf("%s: after %v of the fault: %v telemetry and %v alarms still spooled, %v uplink retries", p.name,
		time.Since(start).Round(time.Millisecond), m[spoolRecords("telemetry")], m[spoolRecords("alarm")],
		sumPrefix(m, "fluxo_edge_uplink_retries_total")-sumPrefix(edge0, "fluxo_edge_uplink_retries_total"))
	must(t, s.link.Clear())
	s.edge.waitSpoolEmpty(t, 30*time.Second)
	// The core handled a Produce request for every send the edge saw
	// acknowledged, plus one for every send whose response the link lost
	// after the core wrote it: those were sent again, and the core must
	// have kept their records once (checked at the end).
	core1, edge1 := s.core.mustMetrics(t), s.edge.mustMetrics(t)
	handled := core1[produceRequests] - core0[produceRequests]
	acked := sumPrefix(edge1, "fluxo_edge_uplink_requests_total") - sumPrefix(edge0, "fluxo_edge_uplink_requests_total")
	t.Logf("%s: the core handled %v Produce requests, the edge saw %v acknowledged: %v responses lost after the core wrote the batches",
		p.name, handled, acked, handled-acked)
	return handled - acked
}

const produceRequests = `fluxo_kafka_requests_total{api="Produce"}`

// testCutAlarmFirst cuts a slow link (badLatency, badBandwidth) for 15 s
// while cars publish incompressible telemetry, publishes one alarm just
// before the link comes back, and checks that the alarm reaches the core
// while the telemetry backlog is still being sent, and that nothing
// crossed the link during the cut (the edge has no way around it).
func testCutAlarmFirst(t *testing.T, s *badlinkSite) []*mqttDevice {
	t.Helper()
	const cut = 15 * time.Second
	l := s.link
	must(t, l.Latency(badLatency, badJitter))
	must(t, l.Bandwidth(badBandwidth))

	var cars []*mqttDevice
	for i := range 2 {
		d := newDevice(fmt.Sprintf("c-cut%d", i+1), fmt.Sprintf("cars/c-cut%d/telemetry", i+1), s.edge.broker(), 20)
		d.noise = 300 // about 12 kB/s of telemetry in all: 180 kB held by the cut, several seconds of the link
		cars = append(cars, d)
	}
	alarm := newDevice("s-cut9", "sensors/s-cut9/alarm/intrusion", s.edge.broker(), 50)
	alarm.limit = 1

	var mu sync.Mutex
	var alarmAt time.Time
	var spooledAtAlarm float64 = -1
	s.tailAlarms(t, func(r *kgo.Record, at time.Time) {
		if id, _, err := parsePayload(r.Value); err != nil || id != alarm.id {
			return
		}
		m, err := s.edge.metrics()
		mu.Lock()
		defer mu.Unlock()
		alarmAt = at
		if err == nil {
			spooledAtAlarm = m[spoolRecords("telemetry")]
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stop := make(chan struct{})
	wait := runDevices(ctx, stop, cars...)
	time.Sleep(time.Second)
	must(t, l.Cut())
	cutAt := time.Now()
	time.Sleep(time.Second)
	before := s.endOffsets(t, "telemetry", "alarms")
	time.Sleep(cut - 3*time.Second)
	alarmStop := make(chan struct{})
	alarmWait := runDevices(ctx, alarmStop, alarm)
	alarmWait(t, 10*time.Second) // acknowledged by the edge: spooled
	close(stop)
	wait(t, 10*time.Second)
	time.Sleep(time.Until(cutAt.Add(cut)))
	during := s.endOffsets(t, "telemetry", "alarms")
	m := s.edge.mustMetrics(t)
	backlog := m[spoolRecords("telemetry")]
	healAt := time.Now()
	must(t, l.Heal())
	t.Logf("cut for %v: %v telemetry records spooled behind it", healAt.Sub(cutAt).Round(time.Millisecond), backlog)
	for topic, n := range during {
		if n != before[topic] {
			t.Errorf("%s end offset during the cut: got %d, then %d, want no change (the uplink reaches the core only through the link)", topic, before[topic], n)
		}
	}
	if backlog == 0 {
		t.Errorf("telemetry spooled at the end of the cut: got 0, want a backlog")
	}

	s.edge.waitSpoolEmpty(t, 60*time.Second)
	drainedAt := time.Now()
	mu.Lock()
	defer mu.Unlock()
	switch {
	case alarmAt.IsZero():
		t.Errorf("alarm after the cut: got none in the core, want it")
	default:
		t.Logf("alarm in the core %v after the link came back (round trip about %v); backlog drained after %v; %v of %v telemetry records still spooled when the alarm arrived",
			alarmAt.Sub(healAt).Round(time.Millisecond), 2*badLatency, drainedAt.Sub(healAt).Round(time.Millisecond), spooledAtAlarm, backlog)
		if spooledAtAlarm <= 0 {
			t.Errorf("telemetry still spooled when the alarm reached the core: got %v, want some of the %v the cut left (the alarm goes first)", spooledAtAlarm, backlog)
		}
	}
	return append(cars, alarm)
}

// limitDataThenReset returns a fault that lets n more bytes through each
// open connection in direction d (and n bytes through new ones), closes
// them after those, and 300 ms later lifts the limit.
func limitDataThenReset(d faultlink.Direction, n int64) func(l *faultlink.Link) error {
	return func(l *faultlink.Link) error {
		if err := l.LimitData(d, n); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		return l.Remove("limit")
	}
}

func sumPrefix(m map[string]float64, prefix string) float64 {
	var n float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
