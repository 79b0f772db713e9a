package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// wait is the generous deadline of every wait in these tests; nothing
// asserts on how long something takes.
const wait = 20 * time.Second

// broker is an in-process mochi MQTT server on 127.0.0.1 that lets every
// client in and records the filters subscribed to.
type broker struct {
	srv  *mqtt.Server
	url  string
	mu   sync.Mutex
	subs []string // filters subscribed, by any client, in order

	closeOnce sync.Once
}

// close stops the broker; mochi's Close may be called only once.
func (b *broker) close() { b.closeOnce.Do(func() { b.srv.Close() }) }

// subHook records SUBSCRIBE filters.
type subHook struct {
	mqtt.HookBase
	b *broker
}

func (h *subHook) ID() string { return "test-subscriptions" }

func (h *subHook) Provides(b byte) bool { return b == mqtt.OnSubscribed }

func (h *subHook) OnSubscribed(_ *mqtt.Client, pk packets.Packet, _ []byte) {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	for _, f := range pk.Filters {
		h.b.subs = append(h.b.subs, f.Filter)
	}
}

func (b *broker) subscriptions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.subs)
}

// inflight is the number of messages the broker holds unacknowledged for
// a client's session (-1: no such session).
func (b *broker) inflight(clientID string) int {
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok {
		return -1
	}
	return cl.State.Inflight.Len()
}

func startBroker(t *testing.T) *broker {
	t.Helper()
	b := &broker{}
	b.srv = mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := b.srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.AddHook(&subHook{b: b}, nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := b.srv.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.Serve(); err != nil {
		t.Fatal(err)
	}
	b.url = "tcp://" + tcp.Address()
	t.Cleanup(b.close)
	return b
}

// publisher is a paho client that publishes to the broker.
func publisher(t *testing.T, url string) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(url).SetClientID("publisher-" + t.Name()).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publisher connect: got %v, want connected", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c paho.Client, topic string, qos byte, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %s: got %v, want acknowledged", topic, tok.Error())
	}
}

// testConfig is a subscriber configuration for the broker with short
// timers.
func testConfig(t *testing.T, url string) Config {
	cfg := DefaultConfig()
	cfg.Source = url
	cfg.ClientID = "bridge-" + strings.ReplaceAll(t.Name(), "/", "-")
	cfg.BridgeID = "bridge-7"
	cfg.RetryBackoff = 20 * time.Millisecond
	cfg.MaxRetryBackoff = 200 * time.Millisecond
	cfg.KeepAlive = 5 * time.Second
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	return cfg
}

// runSubscriber runs a subscriber until the test ends or stop is called,
// and waits until it is subscribed.
func runSubscriber(t *testing.T, cfg Config, sink Sink) (s *Subscriber, stop func()) {
	t.Helper()
	s, err := New(cfg, sink)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: got %v, want nil", err)
				}
			case <-time.After(wait):
				t.Errorf("Run: got no return within %v of cancel, want one", wait)
			}
		})
	}
	t.Cleanup(stop)
	testutil.Eventually(t, "subscribed", s.Connected)
	return s, stop
}

func openSpool(t *testing.T, dir string) *spool.Spool {
	t.Helper()
	cfg := spool.DefaultConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.MaxMessageBytes = 64 << 10
	cfg.MaxBytes = 16 << 20
	cfg.Sync = spool.SyncNever
	sp, err := spool.Open(dir, cfg)
	if err != nil {
		t.Fatalf("open spool: %v", err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// spooled returns every record of a lane of the spool, in order.
func spooled(t *testing.T, sp *spool.Spool, lane spool.Lane) []spool.Record {
	t.Helper()
	var out []spool.Record
	for off := int64(0); off < sp.End(lane); {
		recs, next, err := sp.Read(lane, off, 1<<20)
		if err != nil {
			t.Fatalf("read spool lane %s at %d: %v", lane, off, err)
		}
		out = append(out, recs...)
		if next <= off {
			break
		}
		off = next
	}
	return out
}

func header(hs []kmsg.Header, key string) (string, bool) {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// flakySink appends to a spool, or fails with err while err is set.
type flakySink struct {
	sp    *spool.Spool
	mu    sync.Mutex
	err   error
	calls int
}

func (s *flakySink) Append(msgs ...spool.Message) error {
	s.mu.Lock()
	s.calls++
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.sp.Append(msgs...)
}

func (s *flakySink) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *flakySink) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// TestBridgeToSpool publishes to a mochi broker with a paho client and
// reads the records back from the spool: core topic, lane, key, value,
// headers and per-device order as the edge writes them.
func TestBridgeToSpool(t *testing.T) {
	b := startBroker(t)
	sp := openSpool(t, t.TempDir())
	cfg := testConfig(t, b.url)
	s, _ := runSubscriber(t, cfg, sp)
	pub := publisher(t, b.url)

	const n = 50
	start := time.Now()
	for i := range n {
		publish(t, pub, "depot1/s-01/temp", 1, "s1-"+strconv.Itoa(i))
		publish(t, pub, "depot1/s-02/temp", 0, "s2-"+strconv.Itoa(i))
	}
	publish(t, pub, "depot1/p-09/alarm/smoke", 1, "fire")
	publish(t, pub, "depot1/c-03/cmd/reply", 1, "ok")
	publish(t, pub, "loose/topic", 1, "no device level")

	testutil.Eventually(t, "all messages spooled", func() bool { return s.Stats().Spooled == 2*n+3 })

	tele := spooled(t, sp, spool.Telemetry)
	alarm := spooled(t, sp, spool.Alarm)
	if len(tele) != 2*n+1 || len(alarm) != 2 {
		t.Fatalf("spooled records: got %d telemetry and %d alarm, want %d and 2", len(tele), len(alarm), 2*n+1)
	}
	byKey := map[string][]string{}
	for _, r := range tele {
		byKey[string(r.Key)] = append(byKey[string(r.Key)], string(r.Value))
		if r.Topic != "telemetry" {
			t.Errorf("record %q: got core topic %q, want telemetry", r.Value, r.Topic)
		}
	}
	for _, dev := range []string{"s-01", "s-02"} {
		var want []string
		for i := range n {
			want = append(want, "s"+dev[3:]+"-"+strconv.Itoa(i))
		}
		if !slices.Equal(byKey[dev], want) {
			t.Errorf("values of key %s in spool order: got %v, want %v", dev, byKey[dev], want)
		}
	}
	if got := byKey[cfg.ClientID]; !slices.Equal(got, []string{"no device level"}) {
		t.Errorf("values keyed by the bridge's client id: got %q, want [\"no device level\"]", got)
	}

	checks := []struct {
		rec             spool.Record
		topic, key, qos string
		mqttTopic       string
	}{
		{alarm[0], "alarms", "p-09", "1", "depot1/p-09/alarm/smoke"},
		{alarm[1], "command-acks", "c-03", "1", "depot1/c-03/cmd/reply"},
		{tele[0], "telemetry", "s-01", "1", "depot1/s-01/temp"},
		{tele[1], "telemetry", "s-02", "0", "depot1/s-02/temp"},
	}
	for _, c := range checks {
		r := c.rec
		if r.Topic != c.topic || string(r.Key) != c.key {
			t.Errorf("record %q: got core topic %q key %q, want %q and %q", r.Value, r.Topic, r.Key, c.topic, c.key)
		}
		want := map[string]string{
			route.HeaderTopic:  c.mqttTopic,
			route.HeaderQoS:    c.qos,
			route.HeaderEdgeID: "bridge-7",
		}
		for k, v := range want {
			if got, _ := header(r.Headers, k); got != v {
				t.Errorf("record %q: header %s: got %q, want %q", r.Value, k, got, v)
			}
		}
		ms, _ := header(r.Headers, route.HeaderReceivedMS)
		got, err := strconv.ParseInt(ms, 10, 64)
		if err != nil || got < start.UnixMilli() || got > time.Now().UnixMilli() {
			t.Errorf("record %q: header %s: got %q, want a unix time in ms since the test began", r.Value, route.HeaderReceivedMS, ms)
		}
		if v, ok := header(r.Headers, route.HeaderClient); ok {
			t.Errorf("record %q: header %s: got %q, want none (the publisher's client id is not known to a subscriber)", r.Value, route.HeaderClient, v)
		}
		if len(r.Headers) != 4 {
			t.Errorf("record %q: got %d headers %v, want 4", r.Value, len(r.Headers), r.Headers)
		}
	}
	st := s.Stats()
	if st.Received != 2*n+3 || st.Unrouted != 0 || st.Failed != 0 || st.Redelivered != 0 {
		t.Errorf("stats: got %+v, want %d received, none unrouted, failed or redelivered", st, 2*n+3)
	}
	testutil.Eventually(t, "no message unacknowledged at the broker", func() bool { return b.inflight(cfg.ClientID) == 0 })
}

// TestQoS2: a subscription at QoS 2 spools a QoS 2 message once, and the
// exchange completes (PUBREC after the append, then PUBREL/PUBCOMP).
func TestQoS2(t *testing.T) {
	b := startBroker(t)
	sp := openSpool(t, t.TempDir())
	cfg := testConfig(t, b.url)
	cfg.QoS = 2
	s, _ := runSubscriber(t, cfg, sp)
	pub := publisher(t, b.url)
	publish(t, pub, "depot1/s-01/temp", 2, "exactly")
	publish(t, pub, "depot1/s-01/temp", 1, "at least")
	testutil.Eventually(t, "two messages spooled", func() bool { return s.Stats().Spooled == 2 })
	testutil.Eventually(t, "no message unacknowledged at the broker", func() bool { return b.inflight(cfg.ClientID) == 0 })
	recs := spooled(t, sp, spool.Telemetry)
	if len(recs) != 2 {
		t.Fatalf("spooled records: got %d, want 2", len(recs))
	}
	for i, want := range []string{"2", "1"} {
		if got, _ := header(recs[i].Headers, route.HeaderQoS); got != want {
			t.Errorf("record %q: header %s: got %q, want %q", recs[i].Value, route.HeaderQoS, got, want)
		}
	}
}

// TestUnrouted: a message no route matches is counted, acknowledged and
// dropped; the next ones go on.
func TestUnrouted(t *testing.T) {
	b := startBroker(t)
	sp := openSpool(t, t.TempDir())
	cfg := testConfig(t, b.url)
	cfg.Routes = []route.Route{{Filter: "+/+/alarm/#", Topic: "alarms", Lane: spool.Alarm}}
	s, _ := runSubscriber(t, cfg, sp)
	pub := publisher(t, b.url)

	publish(t, pub, "depot1/s-01/temp", 1, "unrouted")
	publish(t, pub, "depot1/p-01/alarm/door", 1, "routed")
	testutil.Eventually(t, "one spooled, one unrouted", func() bool { st := s.Stats(); return st.Spooled == 1 && st.Unrouted == 1 })
	testutil.Eventually(t, "no message unacknowledged at the broker", func() bool { return b.inflight(cfg.ClientID) == 0 })
	if tele := spooled(t, sp, spool.Telemetry); len(tele) != 0 {
		t.Errorf("telemetry records: got %d, want 0", len(tele))
	}
	if alarm := spooled(t, sp, spool.Alarm); len(alarm) != 1 || string(alarm[0].Value) != "routed" {
		t.Errorf("alarm records: got %v, want the one routed message", alarm)
	}
}

// TestSinkFailureRedelivery: while the sink refuses (spool.ErrFull),
// nothing is acknowledged and the broker keeps the messages in the
// bridge's session; once the sink takes them again, the broker's
// redeliveries bring every message into the spool exactly once.
func TestSinkFailureRedelivery(t *testing.T) {
	b := startBroker(t)
	sink := &flakySink{sp: openSpool(t, t.TempDir())}
	cfg := testConfig(t, b.url)
	cfg.QoS = 1
	s, _ := runSubscriber(t, cfg, sink)
	pub := publisher(t, b.url)

	publish(t, pub, "depot1/s-01/temp", 1, "before")
	testutil.Eventually(t, "the first message spooled", func() bool { return s.Stats().Spooled == 1 })

	sink.setErr(fmt.Errorf("%w: test", spool.ErrFull))
	const n = 20
	for i := range n {
		publish(t, pub, "depot1/s-01/temp", 1, "during-"+strconv.Itoa(i))
	}
	testutil.Eventually(t, "several refused appends", func() bool { return sink.callCount() >= 3 && s.Stats().Reconnects >= 2 })
	// Unacknowledged, the messages stay in the bridge's session.
	testutil.Eventually(t, "the broker holding the messages", func() bool { return b.inflight(cfg.ClientID) == n })
	if got := s.Stats().Spooled; got != 1 {
		t.Fatalf("spooled while the sink refuses: got %d, want 1", got)
	}

	sink.setErr(nil)
	testutil.Eventually(t, "all messages spooled", func() bool { return s.Stats().Spooled == n+1 })
	testutil.Eventually(t, "no message unacknowledged at the broker", func() bool { return b.inflight(cfg.ClientID) == 0 })

	recs := spooled(t, sink.sp, spool.Telemetry)
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Value))
	}
	want := []string{"before"}
	for i := range n {
		want = append(want, "during-"+strconv.Itoa(i))
	}
	// mochi resends a session's unacknowledged messages sorted by the
	// second they were queued in, and in no fixed order within one
	// second; Mosquitto keeps their order (see the e2e test). Compare
	// them as a set, each exactly once.
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("spooled values: got %v, want %v, each once", got, want)
	}
	st := s.Stats()
	if st.Failed == 0 || st.Redelivered == 0 {
		t.Errorf("stats: got %+v, want some failed and some redelivered", st)
	}
	t.Logf("stats: %+v, sink calls %d", st, sink.callCount())
}

// TestSessionKeptAcrossRestart: what is published while the bridge is
// stopped waits in its persistent session and arrives when it starts
// again; what it spooled before stopping was acknowledged and does not
// come again.
func TestSessionKeptAcrossRestart(t *testing.T) {
	b := startBroker(t)
	sp := openSpool(t, t.TempDir())
	cfg := testConfig(t, b.url)
	pub := publisher(t, b.url)

	s, stop := runSubscriber(t, cfg, sp)
	for i := range 10 {
		publish(t, pub, "depot1/s-01/temp", 1, "first-"+strconv.Itoa(i))
	}
	testutil.Eventually(t, "first messages spooled", func() bool { return s.Stats().Spooled == 10 })
	stop()

	for i := range 10 {
		publish(t, pub, "depot1/s-01/temp", 1, "away-"+strconv.Itoa(i))
	}
	testutil.Eventually(t, "10 messages held in the stopped bridge's session", func() bool { return b.inflight(cfg.ClientID) == 10 })

	s2, _ := runSubscriber(t, cfg, sp)
	testutil.Eventually(t, "messages published while away spooled", func() bool { return s2.Stats().Spooled == 10 })
	var got []string
	for _, r := range spooled(t, sp, spool.Telemetry) {
		got = append(got, string(r.Value))
	}
	var want []string
	for _, p := range []string{"first-", "away-"} {
		for i := range 10 {
			want = append(want, p+strconv.Itoa(i))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("spooled values: got %v, want %v, each once", got, want)
	}
	if st := s2.Stats(); st.Received != 10 {
		t.Errorf("messages received after the restart: got %d, want 10 (the first ten were acknowledged)", st.Received)
	}
}

// TestSharedSubscription: two bridges of one shared group subscribe with
// $share/<group>/<filter>, and each message reaches one of them.
func TestSharedSubscription(t *testing.T) {
	b := startBroker(t)
	sp := openSpool(t, t.TempDir())
	var subs []*Subscriber
	for _, id := range []string{"a", "b"} {
		cfg := testConfig(t, b.url)
		cfg.ClientID += "-" + id
		cfg.SharedGroup = "fluxo"
		cfg.Filters = []string{"depot1/#"}
		s, _ := runSubscriber(t, cfg, sp)
		subs = append(subs, s)
	}
	if got, want := b.subscriptions(), []string{"$share/fluxo/depot1/#", "$share/fluxo/depot1/#"}; !slices.Equal(got, want) {
		t.Errorf("subscriptions at the broker: got %q, want %q", got, want)
	}
	pub := publisher(t, b.url)
	const n = 40
	for i := range n {
		publish(t, pub, "depot1/s-"+strconv.Itoa(i%4)+"/temp", 1, strconv.Itoa(i))
	}
	testutil.Eventually(t, "all messages spooled", func() bool { return subs[0].Stats().Spooled+subs[1].Stats().Spooled == n })
	var got []string
	for _, r := range spooled(t, sp, spool.Telemetry) {
		got = append(got, string(r.Value))
	}
	slices.Sort(got)
	var want []string
	for i := range n {
		want = append(want, strconv.Itoa(i))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("spooled values: got %v, want %v, each once", got, want)
	}
	t.Logf("spooled by a: %d, by b: %d", subs[0].Stats().Spooled, subs[1].Stats().Spooled)
}

// TestReconnectAfterBrokerRestart: the subscriber reconnects to a broker
// that went away and came back on the same address, and subscribes again
// (the new broker has no session).
func TestReconnectAfterBrokerRestart(t *testing.T) {
	b := startBroker(t)
	addr := strings.TrimPrefix(b.url, "tcp://")
	sp := openSpool(t, t.TempDir())
	cfg := testConfig(t, b.url)
	s, _ := runSubscriber(t, cfg, sp)
	b.close()
	testutil.Eventually(t, "the connection lost", func() bool { return !s.Connected() })

	b2 := &broker{}
	b2.srv = mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := b2.srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := b2.srv.AddHook(&subHook{b: b2}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b2.srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	if err := b2.srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b2.close)

	testutil.Eventually(t, "reconnected and subscribed", func() bool { return s.Connected() && len(b2.subscriptions()) == 1 })
	pub := publisher(t, b.url)
	publish(t, pub, "depot1/s-01/temp", 1, "after")
	testutil.Eventually(t, "the message spooled", func() bool { return s.Stats().Spooled == 1 })
	if st := s.Stats(); st.Reconnects < 1 {
		t.Errorf("reconnects: got %d, want at least 1", st.Reconnects)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // part of the error; "" for none
	}{
		{"default", func(*Config) {}, ""},
		{"ssl", func(c *Config) { c.Source = "ssl://broker:8883" }, ""},
		{"ws", func(c *Config) { c.Source = "ws://broker:9001/mqtt" }, ""},
		{"shared", func(c *Config) { c.SharedGroup = "fluxo" }, ""},
		{"qos 0", func(c *Config) { c.QoS = 0 }, ""},
		{"no source", func(c *Config) { c.Source = "" }, "no source"},
		{"bad scheme", func(c *Config) { c.Source = "http://broker:1883" }, "scheme"},
		{"no host", func(c *Config) { c.Source = "tcp://" }, "no host"},
		{"no filter", func(c *Config) { c.Filters = nil }, "no topic filter"},
		{"bad filter", func(c *Config) { c.Filters = []string{"a/#/b"} }, "invalid topic filter"},
		{"share in filter", func(c *Config) { c.Filters = []string{"$share/g/a"} }, "shared group"},
		{"duplicate filter", func(c *Config) { c.Filters = []string{"a", "a"} }, "twice"},
		{"qos 3", func(c *Config) { c.QoS = 3 }, "QoS 3"},
		{"no client id", func(c *Config) { c.ClientID = "" }, "client id"},
		{"password alone", func(c *Config) { c.Password = "x" }, "needs a username"},
		{"bad group", func(c *Config) { c.SharedGroup = "a/b" }, "shared group"},
		{"no routes", func(c *Config) { c.Routes = nil }, "no routes"},
		{"bad route", func(c *Config) { c.Routes = []route.Route{{Filter: "#", Topic: "a b"}} }, "not allowed"},
		{"keepalive", func(c *Config) { c.KeepAlive = time.Millisecond }, "keep-alive"},
		{"backoff", func(c *Config) { c.MaxRetryBackoff = c.RetryBackoff / 2 }, "backoff"},
		{"batch", func(c *Config) { c.MaxBatch = 0 }, "MaxBatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			c.Filters = slices.Clone(ok.Filters)
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: got %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	d := DefaultConfig()
	if d.QoS != 1 || !strings.HasPrefix(d.ClientID, "fluxo-bridge-") || !slices.Equal(d.Filters, []string{"#"}) {
		t.Errorf("DefaultConfig: got QoS %d, client id %q, filters %q; want 1, fluxo-bridge-<host>, [#]", d.QoS, d.ClientID, d.Filters)
	}
	s, err := New(Config{Source: "tcp://127.0.0.1:1", QoS: 1}, &flakySink{})
	if err != nil {
		t.Fatalf("New with zero settings: got %v, want nil", err)
	}
	if c := s.Config(); c.ClientID != d.ClientID || len(c.Routes) != len(route.DefaultRoutes()) || c.MaxBatch != DefaultMaxBatch {
		t.Errorf("zero settings: got client id %q, %d routes, MaxBatch %d; want the defaults", c.ClientID, len(c.Routes), c.MaxBatch)
	}
	if _, err := New(DefaultConfig(), nil); err == nil {
		t.Error("New with a nil sink: got nil error, want one")
	}
}

// TestRunTwice: a Subscriber runs once at a time.
func TestRunTwice(t *testing.T) {
	b := startBroker(t)
	s, _ := runSubscriber(t, testConfig(t, b.url), &flakySink{sp: openSpool(t, t.TempDir())})
	if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Run: got %v, want already running", err)
	}
}

// fakeMsg is a paho.Message that records its acknowledgement.
type fakeMsg struct {
	topic, payload string
	acks           *[]string
}

func (m fakeMsg) Duplicate() bool   { return false }
func (m fakeMsg) Qos() byte         { return 1 }
func (m fakeMsg) Retained() bool    { return false }
func (m fakeMsg) Topic() string     { return m.topic }
func (m fakeMsg) MessageID() uint16 { return 0 }
func (m fakeMsg) Payload() []byte   { return []byte(m.payload) }
func (m fakeMsg) Ack()              { *m.acks = append(*m.acks, m.payload) }

// recSink records the values it is given, or fails with err while set.
type recSink struct {
	err    error
	values []string
	calls  int
}

func (s *recSink) Append(msgs ...spool.Message) error {
	s.calls++
	if s.err != nil {
		return s.err
	}
	for _, m := range msgs {
		s.values = append(s.values, string(m.Value))
	}
	return nil
}

// TestProcessAcksAfterAppend drives the worker's batch step directly: a
// batch is acknowledged in arrival order only after the sink took it; a
// refused batch is not acknowledged and ends its connection, and what
// follows on that connection is neither appended nor acknowledged.
func TestProcessAcksAfterAppend(t *testing.T) {
	sink := &recSink{}
	cfg := DefaultConfig()
	cfg.Routes = []route.Route{{Filter: "site/+/temp", Topic: "telemetry"}}
	s, err := New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	var acks []string
	batch := func(c *conn, values ...string) []item {
		var out []item
		for _, v := range values {
			topic := "site/d-1/temp"
			if strings.HasPrefix(v, "unrouted") {
				topic = "elsewhere"
			}
			out = append(out, item{c: c, m: fakeMsg{topic: topic, payload: v, acks: &acks}, at: time.Now()})
		}
		return out
	}

	c1 := newConn()
	s.process(batch(c1, "a", "unrouted-1", "b"), nil)
	if want := []string{"a", "b"}; !slices.Equal(sink.values, want) {
		t.Errorf("appended: got %q, want %q", sink.values, want)
	}
	if want := []string{"a", "unrouted-1", "b"}; !slices.Equal(acks, want) {
		t.Errorf("acknowledged: got %q, want %q (arrival order, after the append)", acks, want)
	}

	sink.err = fmt.Errorf("%w: test", spool.ErrFull)
	s.process(batch(c1, "c", "d"), nil)
	if len(acks) != 3 {
		t.Errorf("acknowledged after a refused append: got %q, want only the first three", acks)
	}
	if !c1.ended() || !errors.Is(c1.why, spool.ErrFull) {
		t.Errorf("connection after a refused append: got ended %v (%v), want ended with spool.ErrFull", c1.ended(), c1.why)
	}

	sink.err = nil
	calls := sink.calls
	s.process(batch(c1, "e"), nil)
	if sink.calls != calls || len(acks) != 3 {
		t.Errorf("a message after the refused batch on the same connection: got %d appends and acks %q, want none", sink.calls-calls, acks)
	}

	c2 := newConn()
	s.process(batch(c2, "c", "d", "e"), nil)
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(sink.values, want) {
		t.Errorf("appended after the new connection: got %q, want %q", sink.values, want)
	}
	st := s.Stats()
	if st.Spooled != 5 || st.Unrouted != 1 || st.Failed != 2 || st.Discarded != 1 {
		t.Errorf("stats: got %+v, want 5 spooled, 1 unrouted, 2 failed, 1 discarded", st)
	}
}
