//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The MQTT topics of the two devices of TestEdgeMQTTClients and where the
// default routes put them.
const (
	carTopic    = "cars/c-0001/telemetry"
	alarmTopic  = "sensors/s-0002/alarm/battery-low"
	carID       = "c-0001"
	sensorID    = "s-0002"
	mosquittoV5 = "mosq-v5"
)

// TestEdgeMQTTClients runs a fluxo core and a fluxo edge as processes and
// publishes to the edge with mosquitto_pub (MQTT 3.1.1 and 5) and paho at
// QoS 0, 1 and 2, then reads the core with franz-go: telemetry lands on
// "telemetry", alarms on "alarms", keyed by device id, with the edge's
// headers, each message once and in the order each client sent it. A
// command produced to the core's "commands" topic reaches mosquitto_sub
// subscribed on the edge.
func TestEdgeMQTTClients(t *testing.T) {
	t.Parallel()
	needMosquittoClients(t)
	bin := buildFluxo(t)
	core := startCoreProc(t, bin)
	edge := startEdgeProc(t, bin, core.kafka)

	t.Run("publish", func(t *testing.T) { testEdgePublish(t, core, edge) })
	t.Run("command", func(t *testing.T) { testEdgeCommand(t, core, edge) })
}

// sent is one message a test client published: its payload's sender
// label and number, the MQTT topic and the QoS.
type sent struct {
	label string
	seq   int
	topic string
	qos   int
}

func testEdgePublish(t *testing.T, core *coreProc, edge *edgeProc) {
	const (
		mosqTelemetry = 50
		mosqAlarms    = 20
		pahoTelemetry = 300
		pahoAlarms    = 30
	)
	host, port := edge.hostPort(t)
	start := time.Now().Add(-time.Second)
	var want []sent

	// mosquitto_pub -l publishes each line of its input as one message,
	// in order, over one connection.
	for qos := range 3 {
		for _, m := range []struct {
			topic string
			n     int
		}{{carTopic, mosqTelemetry}, {alarmTopic, mosqAlarms}} {
			label := fmt.Sprintf("mosq-q%d-%s", qos, strings.SplitN(m.topic, "/", 2)[0])
			var in bytes.Buffer
			for i := range m.n {
				fmt.Fprintf(&in, "%s %d\n", label, i)
				want = append(want, sent{label, i, m.topic, qos})
			}
			run(t, 30*time.Second, bytes.NewReader(in.Bytes()), "mosquitto_pub", "-h", host, "-p", port,
				"-i", label, "-q", strconv.Itoa(qos), "-t", m.topic, "-l")
		}
	}
	// MQTT 5 with user properties: kept as headers, except those that
	// would forge the edge's own.
	run(t, 30*time.Second, nil, "mosquitto_pub", "-h", host, "-p", port, "-V", "5", "-i", mosquittoV5,
		"-q", "1", "-t", alarmTopic, "-m", mosquittoV5+" 0",
		"-D", "publish", "user-property", "site", "depot-7",
		"-D", "publish", "user-property", "edge.id", "forged")
	want = append(want, sent{mosquittoV5, 0, alarmTopic, 1})

	// paho: one client, QoS cycling 0, 1, 2, up to 50 messages in flight.
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(edge.broker()).SetClientID("paho-e2e").
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("paho connect to %s: got %v, want connected", edge.mqtt, tok.Error())
	}
	var toks []mqtt.Token
	flush := func() {
		for _, tok := range toks {
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("paho publish: got %v, want acknowledged within 10s", tok.Error())
			}
		}
		toks = toks[:0]
	}
	for _, m := range []struct {
		topic string
		n     int
	}{{carTopic, pahoTelemetry}, {alarmTopic, pahoAlarms}} {
		label := "paho-" + strings.SplitN(m.topic, "/", 2)[0]
		for i := range m.n {
			qos := i % 3
			toks = append(toks, c.Publish(m.topic, byte(qos), false, fmt.Sprintf("%s %d", label, i)))
			want = append(want, sent{label, i, m.topic, qos})
			if len(toks) == 50 {
				flush()
			}
		}
	}
	flush()
	// A last QoS 1 message: once it is acknowledged, the edge has read
	// (and spooled) every QoS 0 message sent before it on the connection.
	if tok := c.Publish(carTopic, 1, false, fmt.Sprintf("paho-cars %d", pahoTelemetry)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("paho publish: got %v, want acknowledged within 10s", tok.Error())
	}
	want = append(want, sent{"paho-cars", pahoTelemetry, carTopic, 1})
	c.Disconnect(1000)

	edge.waitSpoolEmpty(t, 30*time.Second)
	end := time.Now().Add(time.Second)
	got := readCore(t, core.kafka, "telemetry", "alarms")

	routes := map[string]struct{ coreTopic, key string }{
		carTopic:   {"telemetry", carID},
		alarmTopic: {"alarms", sensorID},
	}
	wantBy := map[string]sent{} // "label seq" → message
	for _, w := range want {
		wantBy[fmt.Sprintf("%s %d", w.label, w.seq)] = w
	}
	seen := map[string]int{}
	for _, topic := range []string{"telemetry", "alarms"} {
		last := map[string]int{}        // label → last seq seen, for the order
		partition := map[string]int32{} // key → partition
		for _, r := range got[topic] {
			where := fmt.Sprintf("%s/%d@%d %q", r.Topic, r.Partition, r.Offset, r.Value)
			w, ok := wantBy[string(r.Value)]
			if !ok {
				t.Errorf("%s: got a record nobody published, want none", where)
				continue
			}
			seen[string(r.Value)]++
			route := routes[w.topic]
			if topic != route.coreTopic {
				t.Errorf("%s: got it on topic %q, want %q (MQTT topic %s)", where, topic, route.coreTopic, w.topic)
			}
			if r.Key != route.key {
				t.Errorf("%s: got key %q, want %q", where, r.Key, route.key)
			}
			if p, ok := partition[r.Key]; ok && p != r.Partition {
				t.Errorf("%s: got partition %d, want %d as the key's other records", where, r.Partition, p)
			}
			partition[r.Key] = r.Partition
			if prev, ok := last[w.label]; ok && w.seq <= prev {
				t.Errorf("%s: got %s %d after %s %d, want the order the client published in", where, w.label, w.seq, w.label, prev)
			}
			last[w.label] = w.seq
			checkHeader(t, where, r, "mqtt.topic", w.topic)
			checkHeader(t, where, r, "mqtt.qos", strconv.Itoa(w.qos))
			checkHeader(t, where, r, "edge.id", edgeID)
			ms := r.header("edge.received_ms")
			if len(ms) != 1 {
				t.Errorf("%s: got edge.received_ms %q, want one value", where, ms)
			} else if v, err := strconv.ParseInt(ms[0], 10, 64); err != nil || v < start.UnixMilli() || v > end.UnixMilli() {
				t.Errorf("%s: got edge.received_ms %q, want a unix time in ms between %d and %d", where, ms[0], start.UnixMilli(), end.UnixMilli())
			}
			if w.label == mosquittoV5 {
				checkHeader(t, where, r, "site", "depot-7")
			}
		}
	}
	missing := 0
	for k := range wantBy {
		switch n := seen[k]; {
		case n == 0:
			if missing++; missing <= 10 {
				t.Errorf("message %q: got it 0 times in the core, want once", k)
			}
		case n > 1:
			t.Errorf("message %q: got it %d times in the core, want once", k, n)
		}
	}
	if missing > 10 {
		t.Errorf("messages missing from the core: got %d missing, want 0", missing)
	}
	t.Logf("%d messages published, %d telemetry and %d alarm records in the core", len(want), len(got["telemetry"]), len(got["alarms"]))
}

// checkHeader wants exactly one header key with the value want.
func checkHeader(t *testing.T, where string, r coreRecord, key, want string) {
	t.Helper()
	if vs := r.header(key); len(vs) != 1 || vs[0] != want {
		t.Errorf("%s: got header %s %q, want [%q]", where, key, vs, want)
	}
}

// testEdgeCommand subscribes mosquitto_sub to a car's command topic on the
// edge, produces a command for the car to the core's "commands" topic with
// franz-go (key = device id, header fleet), and wants mosquitto_sub to
// receive it.
func testEdgeCommand(t *testing.T, core *coreProc, edge *edgeProc) {
	const command = "unlock-42"
	host, port := edge.hostPort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	out := &syncBuffer{}
	// stdbuf: mosquitto_sub's output is a pipe, which libc would buffer
	// until exit; the test must see the SUBACK line when it comes.
	sub := exec.CommandContext(ctx, "stdbuf", "-oL", "mosquitto_sub", "-h", host, "-p", port, "-i", "mosq-sub-"+carID,
		"-t", "cars/"+carID+"/cmd", "-q", "1", "-C", "1", "-W", "30", "-d", "-F", "CMD %t %p")
	sub.Stdout, sub.Stderr = out, out
	sub.WaitDelay = 5 * time.Second
	if err := sub.Start(); err != nil {
		t.Fatalf("start mosquitto_sub: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- sub.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	// mosquitto_sub -d prints the SUBACK: from then on it is subscribed.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "received SUBACK") {
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto_sub: got no SUBACK within 10s, want one\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(core.kafka), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	defer cl.Close()
	rec := &kgo.Record{Topic: "commands", Key: []byte(carID), Value: []byte(command),
		Headers: []kgo.RecordHeader{{Key: "fleet", Value: []byte("cars")}}}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatalf("produce the command to commands: %v", err)
	}
	produced := time.Now()

	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("mosquitto_sub: got %v, want exit status 0 after one message\n%s", err, out.String())
		}
	case <-ctx.Done():
		t.Fatalf("mosquitto_sub: got no command within 40s, want %q\n%s", command, out.String())
	}
	want := "CMD cars/" + carID + "/cmd " + command
	if !slices.Contains(strings.Split(out.String(), "\n"), want) {
		t.Fatalf("mosquitto_sub output: got\n%s\nwant a line %q", out.String(), want)
	}
	t.Logf("command reached mosquitto_sub %v after it was produced", time.Since(produced).Round(time.Millisecond))
}

// TestEdgeCoreOutage stops the core (SIGTERM) for 4 seconds while paho
// devices publish at QoS 1 (about 260 messages/s in total) and starts it
// again on the same data directory and port: the edge goes on
// acknowledging while the core is away, and every acknowledged message
// reaches the core exactly once, in each device's order.
func TestEdgeCoreOutage(t *testing.T) {
	t.Parallel()
	bin := buildFluxo(t)
	core := startCoreProc(t, bin)
	edge := startEdgeProc(t, bin, core.kafka)

	devs := []*mqttDevice{
		newDevice("c-0101", "cars/c-0101/telemetry", edge.broker(), 80),
		newDevice("c-0102", "cars/c-0102/telemetry", edge.broker(), 80),
		newDevice("c-0103", "cars/c-0103/telemetry", edge.broker(), 80),
		newDevice("s-0104", "sensors/s-0104/alarm/overheat", edge.broker(), 20),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stop := make(chan struct{})
	wait := runDevices(ctx, stop, devs...)

	time.Sleep(1500 * time.Millisecond)
	core.stop(t)
	down := time.Now()
	time.Sleep(4 * time.Second)
	up := time.Now()
	core.mustStart(t)
	t.Logf("core down for %v", up.Sub(down).Round(time.Millisecond))
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wait(t, 30*time.Second)
	if t.Failed() {
		return
	}

	edge.waitSpoolEmpty(t, 30*time.Second)
	got := readCore(t, core.kafka, "telemetry", "alarms")
	for _, d := range devs {
		topic := "telemetry"
		if strings.Contains(d.topic, "/alarm/") {
			topic = "alarms"
		}
		acked := d.ackedSeqs()
		during := 0
		for _, at := range acked {
			if at.After(down) && at.Before(up) {
				during++
			}
		}
		if during == 0 {
			t.Errorf("%s: got 0 messages acknowledged while the core was down, want some (the edge spools them)", d.id)
		}
		if d.resent > 0 {
			t.Errorf("%s: got %d resends, want 0 (the edge stayed up)", d.id, d.resent)
		}
		seqs := seqsOf(got[topic], d.id)
		checkOnce(t, d, seqs, nil)
		if !slices.IsSorted(seqs) {
			t.Errorf("%s: got its records out of order in the core, want the order published", d.id)
		}
	}
	deviceCounts(t, append(got["telemetry"], got["alarms"]...))
}

// checkOnce checks the seqs of one device found in the core: every
// acknowledged message is there, nothing that was never published is,
// and a message is there once, or at most once more per edge kill at
// which it was pending (allowed: may be nil).
func checkOnce(t *testing.T, d *mqttDevice, seqs []int, allowed map[int]int) {
	t.Helper()
	count := map[int]int{}
	for _, s := range seqs {
		count[s]++
	}
	acked := d.ackedSeqs()
	published := d.published()
	var missing, extra []int
	dups := 0
	for s := range published {
		n := count[s]
		if _, ok := acked[s]; ok && n == 0 {
			missing = append(missing, s)
		}
		if n > 1 {
			dups++
			if n > 1+allowed[s] {
				extra = append(extra, s)
				if len(extra) <= 10 {
					t.Errorf("%s seq %d: got it %d times in the core, want once, at most %d with the device's resends after %d edge kills at which it was pending",
						d.id, s, n, 1+allowed[s], allowed[s])
				}
			}
		}
	}
	for s := range count {
		if s < 0 || s >= published {
			t.Errorf("%s seq %d: got it in the core, want only the %d published seqs", d.id, s, published)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s: got %d acknowledged messages missing from the core (first %v), want 0", d.id, len(missing), missing[:min(10, len(missing))])
	}
	if len(extra) > 10 {
		t.Errorf("%s: got %d messages duplicated without a resend to account for them, want 0", d.id, len(extra))
	}
	t.Logf("%s: %d published, %d acknowledged, %d records in the core, %d distinct, %d seqs twice or more (allowed: pending at a kill)",
		d.id, published, len(acked), len(seqs), len(count), dups)
}

// TestEdgeCrash kills the edge with SIGKILL at 10 random moments while
// paho devices publish at QoS 1 (about 320 messages/s in total), and
// restarts it each time on the same spool directory and port; the devices
// connect again and resend what was not acknowledged. Once the spool is
// drained, every acknowledged message is in the core, and a message is
// there twice only if its device resent it: it was pending (published, not
// acknowledged) at a kill. The uplink itself makes no duplicates across
// crashes. Under --spool-sync always and never: with never the spool and
// the uplink's state live in the page cache, which a killed process does
// not lose.
func TestEdgeCrash(t *testing.T) {
	t.Parallel()
	for _, sync := range []string{"always", "never"} {
		t.Run(sync, func(t *testing.T) { testEdgeCrash(t, sync) })
	}
}

func testEdgeCrash(t *testing.T, sync string) {
	const kills = 10
	bin := buildFluxo(t)
	core := startCoreProc(t, bin)
	edge := startEdgeProc(t, bin, core.kafka, "--spool-sync", sync)

	var devs []*mqttDevice
	for i := range 4 {
		id := fmt.Sprintf("c-02%02d", i+1)
		devs = append(devs, newDevice(id, "cars/"+id+"/telemetry", edge.broker(), 75))
	}
	devs = append(devs, newDevice("s-0205", "sensors/s-0205/alarm/door-open", edge.broker(), 25))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stop := make(chan struct{})
	wait := runDevices(ctx, stop, devs...)

	seed := uint64(time.Now().UnixNano())
	t.Logf("kill times seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for k := range kills {
		time.Sleep(200*time.Millisecond + time.Duration(rng.Int64N(int64(800*time.Millisecond))))
		edge.kill()
		pending := 0
		for _, d := range devs {
			pending += d.markKill()
		}
		t.Logf("kill %d: %d messages pending", k+1, pending)
		edge.mustStart(t)
	}
	time.Sleep(time.Second)
	close(stop)
	wait(t, 30*time.Second)
	if t.Failed() {
		return
	}

	edge.waitSpoolEmpty(t, 30*time.Second)
	got := readCore(t, core.kafka, "telemetry", "alarms")
	for _, d := range devs {
		topic := "telemetry"
		if strings.Contains(d.topic, "/alarm/") {
			topic = "alarms"
		}
		seqs := seqsOf(got[topic], d.id)
		checkOnce(t, d, seqs, d.atKill) // the devices are done: no lock needed
	}
	deviceCounts(t, append(got["telemetry"], got["alarms"]...))

	// After all those crashes, a clean stop: SIGTERM, exit status 0.
	edge.stop(t)
}

// seqsOf returns the seqs of the device's messages among the records, in
// their order.
func seqsOf(recs []coreRecord, device string) []int {
	var seqs []int
	for _, r := range recs {
		if id, seq, err := parsePayload(r.Value); err == nil && id == device {
			seqs = append(seqs, seq)
		}
	}
	return seqs
}

// TestEdgeSpoolFull fills the spool of an edge whose core is down: a 32
// MiB budget (the smallest the flags allow: 4 segments of the spool's 8
// MiB) and about 80 MiB of telemetry from two cars, with alarms in
// between. Then the core starts: every alarm arrives, of each car's
// telemetry only a block of its oldest undelivered messages is missing
// (oldest evicted first, the newest kept), nothing twice, and the edge
// counts as evicted exactly the telemetry it accepted and did not deliver.
// Twice: with a core that was never up, and with one that goes away
// (SIGTERM) while the uplink is busy, so the uplink has a producer and a
// window in flight when the oldest telemetry is evicted.
func TestEdgeSpoolFull(t *testing.T) {
	t.Parallel()
	bin := buildFluxo(t)
	t.Run("core never up", func(t *testing.T) { testSpoolFull(t, bin, false) })
	t.Run("core gone while sending", func(t *testing.T) { testSpoolFull(t, bin, true) })
}

func testSpoolFull(t *testing.T, bin string, coreFirst bool) {
	const (
		budget   = 32 << 20
		pad      = 60 << 10
		perCar   = 680
		alarms   = 40
		carRate  = 300
		alarmHz  = 20
		inflight = 8
	)
	core := newCoreProc(t, bin)
	if coreFirst {
		core.mustStart(t)
	}
	edge := startEdgeProc(t, bin, core.kafka, "--spool-max-bytes", strconv.Itoa(budget))

	var devs []*mqttDevice
	for _, id := range []string{"c-0301", "c-0302"} {
		d := newDevice(id, "cars/"+id+"/telemetry", edge.broker(), carRate)
		d.limit, d.pad, d.inflight = perCar, pad, inflight
		devs = append(devs, d)
	}
	alarm := newDevice("s-0303", "sensors/s-0303/alarm/smoke", edge.broker(), alarmHz)
	alarm.limit = alarms
	devs = append(devs, alarm)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := runDevices(ctx, nil, devs...)
	if coreFirst {
		time.Sleep(500 * time.Millisecond)
		m := edge.mustMetrics(t)
		core.stop(t)
		t.Logf("core stopped after %v telemetry delivered", m[laneMessages("telemetry", "delivered")])
	}
	wait(t, 60*time.Second)
	if t.Failed() {
		return
	}
	before := edge.mustMetrics(t)
	t.Logf("before the core starts: telemetry accepted %v, delivered %v, evicted %v, spooled %v; alarms spooled %v",
		before[laneMessages("telemetry", "accepted")], before[laneMessages("telemetry", "delivered")],
		before[laneMessages("telemetry", "evicted")], before[spoolRecords("telemetry")], before[spoolRecords("alarm")])
	if before[laneMessages("telemetry", "evicted")] == 0 {
		t.Errorf("telemetry evicted before the core starts: got 0, want some (%d MiB sent to a %d MiB budget)",
			2*perCar*pad>>20, budget>>20)
	}

	core.mustStart(t)
	edge.waitSpoolEmpty(t, 60*time.Second)
	m := edge.mustMetrics(t)
	got := readCore(t, core.kafka, "telemetry", "alarms")

	// Alarms: every one, once.
	checkOnce(t, alarm, seqsOf(got["alarms"], alarm.id), nil)

	// Telemetry: of each car, one block of its messages missing, the
	// newest there, nothing twice.
	counts := deviceCounts(t, got["telemetry"])
	acceptedByCars := 0
	for _, d := range devs[:2] {
		if d.resent > 0 {
			t.Errorf("%s: got %d resends, want 0 (the edge stayed up)", d.id, d.resent)
		}
		acceptedByCars += len(d.ackedSeqs())
		c := counts[d.id]
		var missing []int
		for seq := range perCar {
			if c[seq] == 0 {
				missing = append(missing, seq)
			}
		}
		for seq, n := range c {
			if n != 1 {
				t.Errorf("%s seq %d: got it %d times in the core, want once", d.id, seq, n)
			}
		}
		switch {
		case c[perCar-1] == 0:
			t.Errorf("%s: got its newest message (seq %d) missing from the core, want it there (the oldest go first)", d.id, perCar-1)
		case len(missing) == 0:
			t.Logf("%s: all %d messages in the core", d.id, perCar)
		case missing[len(missing)-1]-missing[0]+1 != len(missing):
			t.Errorf("%s: got seqs %v... missing (%d, from %d to %d), want one block of the oldest undelivered (evicted oldest first)",
				d.id, missing[:min(10, len(missing))], len(missing), missing[0], missing[len(missing)-1])
		default:
			t.Logf("%s: seqs %d..%d of 0..%d evicted, the rest in the core", d.id, missing[0], missing[len(missing)-1], perCar-1)
		}
	}

	accepted := m[laneMessages("telemetry", "accepted")]
	delivered := m[laneMessages("telemetry", "delivered")]
	evicted := m[laneMessages("telemetry", "evicted")]
	expired := m[laneMessages("telemetry", "expired")]
	t.Logf("edge telemetry: accepted %v, delivered %v, evicted %v, expired %v; %d records in the core",
		accepted, delivered, evicted, expired, len(got["telemetry"]))
	if evicted != accepted-delivered || evicted == 0 {
		t.Errorf("fluxo_edge_messages_total telemetry: got evicted %v, want accepted - delivered = %v - %v = %v, above 0",
			evicted, accepted, delivered, accepted-delivered)
	}
	if int(accepted) != acceptedByCars {
		t.Errorf("telemetry accepted: got %v on /metrics, want %d (the PUBACKs the cars got)", accepted, acceptedByCars)
	}
	if int(delivered) != len(got["telemetry"]) {
		t.Errorf("telemetry delivered: got %v on /metrics, want %d (the records in the core)", delivered, len(got["telemetry"]))
	}
	if a := m[laneMessages("alarm", "evicted")]; a != 0 {
		t.Errorf("alarms evicted: got %v, want 0", a)
	}
}

func needMosquittoClients(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s: got %v, want it installed (apt-get install mosquitto-clients; .ci/run does it)", bin, err)
		}
	}
}
