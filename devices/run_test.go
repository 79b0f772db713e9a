package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

// schemas lists the fields of the message on each stream of each kind:
// always all of them, optional ones marked with a "?".
var schemas = map[string][]string{
	"sensors/telemetry":          {"device", "seq", "ts_ms", "temperature_c", "humidity_pct", "battery_pct"},
	"cars/telemetry":             {"device", "seq", "ts_ms", "lat", "lon", "speed_kmh", "heading_deg", "fuel_pct", "engine_temp_c"},
	"panels/status":              {"device", "seq", "ts_ms", "armed", "zones", "open_zones", "mains_power", "battery_pct"},
	"sensors/alarm/battery-low":  {"device", "seq", "ts_ms", "alarm", "battery_pct", "threshold_pct"},
	"cars/alarm/engine-overheat": {"device", "seq", "ts_ms", "alarm", "engine_temp_c", "threshold_c", "lat", "lon"},
	"panels/alarm/intrusion":     {"device", "seq", "ts_ms", "alarm", "zone"},
	"sensors/cmd/reply":          {"device", "seq", "ts_ms", "status", "cmd_id?", "error?"},
	"cars/cmd/reply":             {"device", "seq", "ts_ms", "status", "cmd_id?", "error?"},
	"panels/cmd/reply":           {"device", "seq", "ts_ms", "status", "cmd_id?", "error?"},
	"sensors/cmd":                nil, // sent by the tests
	"cars/cmd":                   nil,
	"panels/cmd":                 nil,
}

// checkMessage checks that m is on a topic of the scheme and carries the
// fields of its stream, with the device of its topic and a send time between
// from and to.
func checkMessage(t *testing.T, m received, from, to time.Time) {
	t.Helper()
	k, id, stream, ok := ParseTopic(m.topic)
	if !ok {
		t.Errorf("got topic %q, want {fleet}/{device}/{stream}", m.topic)
		return
	}
	want, ok := schemas[k.Fleet()+"/"+stream]
	if !ok {
		t.Errorf("got topic %q, want a known stream", m.topic)
		return
	}
	if want == nil {
		return
	}
	var fields map[string]any
	if err := json.Unmarshal(m.payload, &fields); err != nil {
		t.Errorf("%s: got invalid JSON %q: %v", m.topic, m.payload, err)
		return
	}
	for _, f := range want {
		name, optional := strings.CutSuffix(f, "?")
		if _, ok := fields[name]; !ok && !optional {
			t.Errorf("%s: got %s, want field %q", m.topic, m.payload, name)
		}
		delete(fields, name)
	}
	if len(fields) > 0 {
		t.Errorf("%s: got unexpected fields %v in %s", m.topic, slices.Sorted(maps.Keys(fields)), m.payload)
	}
	h := header(t, m)
	if h.Device != id {
		t.Errorf("%s: got device %q, want %q", m.topic, h.Device, id)
	}
	if ts := time.UnixMilli(h.TsMs); ts.Before(from.Add(-time.Second)) || ts.After(to.Add(time.Second)) {
		t.Errorf("%s: got ts_ms %d (%v), want between %v and %v", m.topic, h.TsMs, ts, from, to)
	}
}

func TestRunPublishes(t *testing.T) {
	for _, qos := range []byte{0, 1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			b := startBroker(t, "127.0.0.1:0")
			w := watch(t, b.url(), "#")
			cfg := testConfig(b.url())
			cfg.QoS = qos

			from := time.Now()
			st, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			to := time.Now()

			if st.Devices != 5 || st.Connected != 5 {
				t.Errorf("got %d devices, %d connected, want 5 and 5", st.Devices, st.Connected)
			}
			if st.Acked != st.Sent || st.Errors != 0 || st.Dropped != 0 {
				t.Errorf("got sent %d, acked %d, errors %d, dropped %d, want acked = sent and no errors or drops",
					st.Sent, st.Acked, st.Errors, st.Dropped)
			}
			if st.Elapsed < cfg.Duration {
				t.Errorf("got elapsed %v, want at least %v", st.Elapsed, cfg.Duration)
			}
			var sum Counts
			for _, k := range Kinds {
				sum.add(st.ByKind[k])
			}
			if sum != st.Counts {
				t.Errorf("got totals %+v, want the sum of the kinds %+v", st.Counts, sum)
			}

			// Every message sent and acknowledged reaches the watcher;
			// at QoS 0 the broker may drop some, but none here is
			// likely, so wait for them all only at QoS 1 and 2.
			var msgs []received
			if qos > 0 {
				w.waitFor(t, st.Sent)
				time.Sleep(50 * time.Millisecond) // let a duplicate show up, if any
				msgs = w.messages()
				if int64(len(msgs)) != st.Sent {
					t.Errorf("got %d messages at the watcher, want %d (Sent)", len(msgs), st.Sent)
				}
			} else {
				time.Sleep(200 * time.Millisecond)
				msgs = w.messages()
				if int64(len(msgs)) > st.Sent {
					t.Errorf("got %d messages at the watcher, want at most %d (Sent)", len(msgs), st.Sent)
				}
			}
			perFleet := make(map[string]int64)
			for _, m := range msgs {
				checkMessage(t, m, from, to)
				perFleet[strings.SplitN(m.topic, "/", 2)[0]]++
			}
			seqs := seqsByDevice(t, msgs)
			checkSeqs(t, seqs, qos > 0)
			if qos > 0 {
				for _, k := range Kinds {
					if got, want := perFleet[k.Fleet()], st.ByKind[k].Sent; got != want {
						t.Errorf("%s: got %d messages, want %d (ByKind.Sent)", k.Fleet(), got, want)
					}
				}
			}

			// About Rate × Duration messages per device.
			for _, k := range Kinds {
				rate, n := cfg.Rate, cfg.Sensors
				switch k {
				case Car:
					n = cfg.Cars
				case Panel:
					rate, n = cfg.PanelRate, cfg.Panels
				}
				want := rate * cfg.Duration.Seconds()
				for i := 1; i <= n; i++ {
					id := DeviceID(k, i)
					if got := float64(len(seqs[id])); got < want/2 || got > want*1.5 {
						t.Errorf("%s: got %v messages, want about %v", id, got, want)
					}
				}
			}
		})
	}
}

func TestRunAlarms(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	w := watch(t, b.url(), "+/+/alarm/#")
	cfg := testConfig(b.url())
	cfg.Sensors, cfg.Cars, cfg.Panels = 1, 1, 1
	cfg.Rate, cfg.PanelRate = 5, 1
	cfg.AlarmRate = 60 // 20 a second per device

	from := time.Now()
	st, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	to := time.Now()
	msgs := w.waitFor(t, st.Alarms)
	if int64(len(msgs)) != st.Alarms {
		t.Errorf("got %d alarms at the watcher, want %d (Alarms)", len(msgs), st.Alarms)
	}
	// 60 a second on average for one second: far more than 10 but for a
	// one-in-a-billion draw.
	if st.Alarms < 10 {
		t.Errorf("got %d alarms, want at least 10", st.Alarms)
	}
	counts := make(map[string]int)
	for _, m := range msgs {
		checkMessage(t, m, from, to)
		_, _, stream, _ := ParseTopic(m.topic)
		counts[stream]++
		switch stream {
		case StreamBatteryLow:
			var a BatteryLowAlarm
			json.Unmarshal(m.payload, &a)
			if a.Alarm != AlarmBatteryLow || a.BatteryPct >= BatteryLowPct || a.ThresholdPct != BatteryLowPct {
				t.Errorf("got %s, want a battery-low alarm below %v %%", m.payload, BatteryLowPct)
			}
		case StreamEngineOverheat:
			var a EngineOverheatAlarm
			json.Unmarshal(m.payload, &a)
			if a.Alarm != AlarmEngineOverheat || a.EngineTempC <= EngineOverheatC || a.ThresholdC != EngineOverheatC {
				t.Errorf("got %s, want an engine-overheat alarm above %v °C", m.payload, EngineOverheatC)
			}
		case StreamIntrusion:
			var a IntrusionAlarm
			json.Unmarshal(m.payload, &a)
			if a.Alarm != AlarmIntrusion || a.Zone < 1 || a.Zone > PanelZones {
				t.Errorf("got %s, want an intrusion alarm in zone 1 to %d", m.payload, PanelZones)
			}
		}
	}
	for _, stream := range []string{StreamBatteryLow, StreamEngineOverheat, StreamIntrusion} {
		if counts[stream] == 0 {
			t.Errorf("got no %s alarm, want some", stream)
		}
	}
	for _, k := range Kinds {
		if st.ByKind[k].Alarms == 0 {
			t.Errorf("%s: got no alarms counted, want some", k)
		}
	}
}

func TestRunCommands(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	w := watch(t, b.url(), "+/+/cmd/reply")
	cfg := testConfig(b.url())
	cfg.Duration = 0
	cfg.Rate, cfg.PanelRate = 2, 2
	var live liveStats
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		st  Stats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := Run(ctx, cfg, live.observe)
		done <- result{st, err}
	}()
	testutil.Eventually(t, "5 devices to connect", func() bool { return live.get().Connected == 5 })

	commands := []struct {
		kind            Kind
		device, payload string
		wantID          string // the reply's cmd_id, as JSON; "" for none
		wantStatus      string
	}{
		{Sensor, "s-0001", `{"id":"a-1","cmd":"reboot"}`, `"a-1"`, StatusOK},
		{Car, "c-0002", `{"id":42,"cmd":"lock","args":{"doors":"all"}}`, `42`, StatusOK},
		{Panel, "p-0001", `{"cmd":"arm"}`, "", StatusOK},
		{Sensor, "s-0002", `reboot now`, "", StatusError},
		{Car, "c-0001", `{"id":"x\"y"}`, `"x\"y"`, StatusOK},
	}
	for _, c := range commands {
		w.publish(t, Topic(c.kind, c.device, StreamCommand), c.payload)
	}
	replies := w.waitFor(t, int64(len(commands)))
	cancel()
	res := <-done
	if res.err != nil {
		t.Fatalf("Run: %v", res.err)
	}

	byDevice := make(map[string]Reply)
	for _, m := range replies {
		checkMessage(t, m, time.Now().Add(-time.Minute), time.Now())
		var r Reply
		if err := json.Unmarshal(m.payload, &r); err != nil {
			t.Fatalf("%s: invalid reply %q: %v", m.topic, m.payload, err)
		}
		if _, id, _, _ := ParseTopic(m.topic); id != r.Device {
			t.Errorf("got reply from %s on %s", r.Device, m.topic)
		}
		byDevice[r.Device] = r
	}
	for _, c := range commands {
		r, ok := byDevice[c.device]
		if !ok {
			t.Errorf("%s: got no reply to %s", c.device, c.payload)
			continue
		}
		if string(r.CmdID) != c.wantID || r.Status != c.wantStatus {
			t.Errorf("%s: got cmd_id %s, status %q, want cmd_id %s, status %q", c.device, r.CmdID, r.Status, c.wantID, c.wantStatus)
		}
		if (r.Error != "") != (c.wantStatus == StatusError) {
			t.Errorf("%s: got error %q with status %q", c.device, r.Error, r.Status)
		}
	}
	if got := res.st.Commands; got != int64(len(commands)) {
		t.Errorf("got %d commands answered, want %d", got, len(commands))
	}
}

func TestRunReconnects(t *testing.T) {
	addr := freeAddr(t)
	b := startBroker(t, addr)
	w1 := watch(t, b.url(), "+/+/telemetry")
	cfg := testConfig(b.url())
	cfg.Sensors, cfg.Cars, cfg.Panels = 2, 1, 0
	cfg.Duration = 0
	// A device may reconnect to the closing broker in the instant before
	// its listener is gone, and then wait this long for a CONNACK.
	cfg.ConnectTimeout = time.Second
	var live liveStats
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		st  Stats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := Run(ctx, cfg, live.observe)
		done <- result{st, err}
	}()
	testutil.Eventually(t, "10 acknowledged messages", func() bool { return live.get().Acked >= 10 })

	b.close()
	testutil.Eventually(t, "the devices to notice the broker is gone", func() bool { return live.get().Online == 0 })
	before := live.get()
	lastSeq := make(map[string]uint64) // per device, on the first broker
	for dev, seqs := range seqsByDevice(t, w1.messages()) {
		lastSeq[dev] = seqs[len(seqs)-1]
	}

	b2 := startBroker(t, addr)
	w := watch(t, b2.url(), "+/+/telemetry")
	testutil.Eventually(t, "3 reconnects", func() bool { return live.get().Reconnects >= 3 })
	after := live.get()
	testutil.Eventually(t, "20 more acknowledged messages", func() bool { return live.get().Acked >= after.Acked+20 })
	msgs := w.waitFor(t, 3)

	// The devices subscribed again on the new broker, which knew nothing
	// of their sessions.
	cw := watch(t, b2.url(), "sensors/s-0001/cmd/reply")
	cw.publish(t, "sensors/s-0001/cmd", `{"id":"after-restart"}`)
	replies := cw.waitFor(t, 1)

	cancel()
	res := <-done
	if res.err != nil {
		t.Fatalf("Run: %v", res.err)
	}
	st := res.st
	if st.Reconnects < 3 {
		t.Errorf("got %d reconnects, want at least 3", st.Reconnects)
	}
	if st.Sent <= before.Sent {
		t.Errorf("got %d sent in all, %d before the restart, want more after it", st.Sent, before.Sent)
	}
	// Seqs go on where they were: the devices kept counting. (The first
	// seqs on the new broker may repeat the last ones on the old: QoS 1
	// messages not yet acknowledged when it closed are sent again.)
	after2 := seqsByDevice(t, msgs)
	checkSeqs(t, after2, false)
	both := 0
	for dev, seqs := range after2 {
		if last, ok := lastSeq[dev]; ok {
			both++
			if newest := seqs[len(seqs)-1]; newest <= last {
				t.Errorf("%s: got seq %d after the restart, want more than %d (the last before it)", dev, newest, last)
			}
			if last > 3 && seqs[0] == 1 {
				t.Errorf("%s: got seq 1 after the restart, %d before it, want it to go on", dev, last)
			}
		}
	}
	if both == 0 {
		t.Errorf("got no device seen on both brokers, want some")
	}
	var r Reply
	if err := json.Unmarshal(replies[0].payload, &r); err != nil || string(r.CmdID) != `"after-restart"` {
		t.Errorf("got reply %s, want cmd_id \"after-restart\" (err %v)", replies[0].payload, err)
	}
	if st.Sent != st.Acked+st.Errors+st.Unacked() {
		t.Errorf("got sent %d, want acked %d + errors %d + unacked %d", st.Sent, st.Acked, st.Errors, st.Unacked())
	}
}

func TestRunNoBroker(t *testing.T) {
	cfg := testConfig("tcp://" + freeAddr(t))
	cfg.ConnectTimeout = 300 * time.Millisecond
	start := time.Now()
	st, err := Run(context.Background(), cfg, nil)
	if !errors.Is(err, ErrNoConnection) {
		t.Fatalf("got error %v, want ErrNoConnection", err)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("got error %q, want the reason (connection refused)", err)
	}
	if st.Connected != 0 || st.Sent != 0 {
		t.Errorf("got %d connected, %d sent, want 0 and 0", st.Connected, st.Sent)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("got Run returning after %v, want about ConnectTimeout (%v)", el, cfg.ConnectTimeout)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	cfg := testConfig(b.url())
	cfg.Duration = 0
	ctx, cancel := context.WithCancel(context.Background())
	var live liveStats
	go func() {
		for live.get().Sent < 5 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	st, err := Run(ctx, cfg, live.observe)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Sent < 5 || st.Acked != st.Sent {
		t.Errorf("got sent %d, acked %d, want at least 5, all acknowledged", st.Sent, st.Acked)
	}
	// The devices disconnected: the broker has no client left.
	testutil.Eventually(t, "the devices to disconnect", func() bool { return atomic.LoadInt64(&b.srv.Info.ClientsConnected) == 0 })
}

func TestRunWebsocket(t *testing.T) {
	addr := freeAddr(t)
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv.AddHook(new(auth.AllowHook), nil)
	if err := srv.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: addr})); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := testConfig("ws://" + addr + "/mqtt")
	cfg.Sensors, cfg.Cars, cfg.Panels = 1, 0, 0
	cfg.Duration = 300 * time.Millisecond
	// The listener starts serving in the background: the devices retry
	// until it does.
	st, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Sent == 0 || st.Acked != st.Sent {
		t.Errorf("got sent %d, acked %d, want some, all acknowledged", st.Sent, st.Acked)
	}
}

func TestRunManyDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 devices")
	}
	b := startBroker(t, "127.0.0.1:0")
	cfg := testConfig(b.url())
	cfg.Sensors, cfg.Cars, cfg.Panels = 500, 400, 100
	cfg.Rate, cfg.PanelRate = 2, 2
	cfg.Duration = 2 * time.Second
	cfg.ConnectTimeout = 20 * time.Second
	st, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Connected != 1000 {
		t.Errorf("got %d connected, want 1000", st.Connected)
	}
	want := 1000 * cfg.Rate * cfg.Duration.Seconds()
	if got := float64(st.Acked); math.Abs(got-want) > want/4 {
		t.Errorf("got %v acknowledged, want about %v", got, want)
	}
	if st.Errors != 0 || st.Dropped != 0 {
		t.Errorf("got %d errors, %d dropped, want none", st.Errors, st.Dropped)
	}
}

func TestRunInvalidConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.QoS = 3
	if _, err := Run(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "qos 3") {
		t.Errorf("got error %v, want one about qos 3", err)
	}
}
