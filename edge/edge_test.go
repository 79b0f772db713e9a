package edge

import (
	"strconv"
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

func TestPublishReachesSink(t *testing.T) { eachSink(t, testPublishReachesSink) }

func testPublishReachesSink(t *testing.T, sink *recSink, s Sink) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	cfg.Registerer = reg
	e := startEdge(t, cfg, s)
	c := mustConnect3(t, tcpURL(e.Addr()), "client-1", nil)

	before := time.Now()
	for q := byte(0); q <= 2; q++ {
		topic := "fleet-a/car-7/speed" + strconv.Itoa(int(q))
		if err := publish3(t, c, topic, q, false, "v"+strconv.Itoa(int(q))); err != nil {
			t.Fatalf("publish qos %d: %v", q, err)
		}
	}
	msgs := sink.waitMsgs(t, 3)
	for q := 0; q <= 2; q++ {
		m := byMQTTTopic(t, msgs, "fleet-a/car-7/speed"+strconv.Itoa(q))
		if m.Topic != "telemetry" || m.Lane != spool.Telemetry {
			t.Errorf("qos %d: got %s on %s lane, want telemetry on telemetry lane", q, m.Topic, m.Lane)
		}
		if string(m.Key) != "car-7" {
			t.Errorf("qos %d: key got %q, want car-7", q, m.Key)
		}
		if string(m.Value) != "v"+strconv.Itoa(q) {
			t.Errorf("qos %d: value got %q, want v%d", q, m.Value, q)
		}
		if got := header(m, route.HeaderQoS); got != strconv.Itoa(q) {
			t.Errorf("qos %d: %s header got %q, want %d", q, route.HeaderQoS, got, q)
		}
		if got := header(m, route.HeaderEdgeID); got != "edge-test" {
			t.Errorf("%s header got %q, want edge-test", route.HeaderEdgeID, got)
		}
		if got := header(m, route.HeaderClient); got != "client-1" {
			t.Errorf("%s header got %q, want client-1", route.HeaderClient, got)
		}
		ms, err := strconv.ParseInt(header(m, route.HeaderReceivedMS), 10, 64)
		if err != nil || ms != m.Time.UnixMilli() || m.Time.Before(before.Truncate(time.Millisecond)) {
			t.Errorf("%s header got %q (%v), want the receive time %v in unix ms", route.HeaderReceivedMS, header(m, route.HeaderReceivedMS), err, m.Time)
		}
	}
	for q := range 3 {
		if got := metricValue(t, reg, "fluxo_edge_publishes_total", map[string]string{"qos": strconv.Itoa(q)}); got != 1 {
			t.Errorf("fluxo_edge_publishes_total{qos=%d}: got %v, want 1", q, got)
		}
	}
	if got := metricValue(t, reg, "fluxo_edge_clients_connected", nil); got != 1 {
		t.Errorf("fluxo_edge_clients_connected: got %v, want 1", got)
	}
	if got := metricValue(t, reg, "fluxo_edge_bytes_received_total", nil); got <= 0 {
		t.Errorf("fluxo_edge_bytes_received_total: got %v, want > 0", got)
	}
}

func TestAlarmRouting(t *testing.T) {
	sink := &recSink{}
	e := startEdge(t, testConfig(t), sink)
	c := mustConnect3(t, tcpURL(e.Addr()), "panel-3", nil)
	for _, topic := range []string{"site-1/panel-3/alarm/fire", "site-1/panel-3/cmd/reply", "status"} {
		if err := publish3(t, c, topic, 1, false, "x"); err != nil {
			t.Fatal(err)
		}
	}
	msgs := sink.waitMsgs(t, 3)
	tests := []struct {
		mqtt, topic string
		lane        spool.Lane
		key         string
	}{
		{"site-1/panel-3/alarm/fire", "alarms", spool.Alarm, "panel-3"},
		{"site-1/panel-3/cmd/reply", "command-acks", spool.Alarm, "panel-3"},
		{"status", "telemetry", spool.Telemetry, "panel-3"}, // short topic: client id
	}
	for _, tt := range tests {
		m := byMQTTTopic(t, msgs, tt.mqtt)
		if m.Topic != tt.topic || m.Lane != tt.lane || string(m.Key) != tt.key {
			t.Errorf("%s: got %s/%s key %q, want %s/%s key %q", tt.mqtt, m.Topic, m.Lane, m.Key, tt.topic, tt.lane, tt.key)
		}
	}
}

func TestUserPropertiesBecomeHeaders(t *testing.T) {
	sink := &recSink{}
	e := startEdge(t, testConfig(t), sink)
	c := mustConnect5(t, e.Addr(), &paho5.Connect{ClientID: "v5", CleanStart: true})
	_, err := c.Publish(ctxWait(t), &paho5.Publish{
		Topic: "fleet/dev/t", QoS: 1, Payload: []byte("1"),
		Properties: &paho5.PublishProperties{User: paho5.UserProperties{
			{Key: "unit", Value: "celsius"},
			{Key: "edge.id", Value: "forged"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := sink.waitMsgs(t, 1)[0]
	if got := header(m, "unit"); got != "celsius" {
		t.Errorf("unit header: got %q, want celsius", got)
	}
	n := 0
	for _, h := range m.Headers {
		if h.Key == route.HeaderEdgeID {
			n++
		}
	}
	if n != 1 || header(m, route.HeaderEdgeID) != "edge-test" {
		t.Errorf("edge.id headers: got %d (%q), want only the edge's", n, header(m, route.HeaderEdgeID))
	}
}

func TestSpoolFullMQTT5(t *testing.T) { eachSink(t, testSpoolFullMQTT5) }

func testSpoolFullMQTT5(t *testing.T, sink *recSink, s Sink) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	cfg.Registerer = reg
	e := startEdge(t, cfg, s)
	c := mustConnect5(t, e.Addr(), &paho5.Connect{ClientID: "v5", CleanStart: true})

	sink.setErr(spool.ErrFull)
	for _, q := range []byte{1, 2} {
		pr, err := c.Publish(ctxWait(t), &paho5.Publish{Topic: "fleet/dev/t", QoS: q, Payload: []byte("x")})
		if pr == nil {
			t.Fatalf("qos %d: got no publish response (%v), want reason code 0x97", q, err)
		}
		if pr.ReasonCode != 0x97 {
			t.Errorf("qos %d: reason code got %#x, want 0x97 (quota exceeded)", q, pr.ReasonCode)
		}
	}
	if _, err := c.Publish(ctxWait(t), &paho5.Publish{Topic: "fleet/dev/t", QoS: 0, Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the qos 0 failure", func() bool {
		return metricValue(t, reg, "fluxo_edge_spool_failures_total", map[string]string{"qos": "0"}) == 1
	})
	for _, q := range []string{"1", "2"} {
		if got := metricValue(t, reg, "fluxo_edge_spool_failures_total", map[string]string{"qos": q}); got != 1 {
			t.Errorf("fluxo_edge_spool_failures_total{qos=%s}: got %v, want 1", q, got)
		}
	}

	// Other spool errors map to other codes.
	sink.setErr(spool.ErrTooLarge)
	pr, _ := c.Publish(ctxWait(t), &paho5.Publish{Topic: "fleet/dev/t", QoS: 1, Payload: []byte("x")})
	if pr == nil || pr.ReasonCode != 0x83 {
		t.Errorf("ErrTooLarge: got %+v, want reason code 0x83", pr)
	}
	sink.setErr(spool.ErrClosed)
	pr, _ = c.Publish(ctxWait(t), &paho5.Publish{Topic: "fleet/dev/t", QoS: 1, Payload: []byte("x")})
	if pr == nil || pr.ReasonCode != 0x80 {
		t.Errorf("ErrClosed: got %+v, want reason code 0x80", pr)
	}

	// The client stays connected; once the spool has room, publishes go through.
	sink.setErr(nil)
	pr, err := c.Publish(ctxWait(t), &paho5.Publish{Topic: "fleet/dev/t", QoS: 1, Payload: []byte("ok")})
	if err != nil || pr.ReasonCode != 0 {
		t.Fatalf("after recovery: got %+v, %v, want success", pr, err)
	}
	if msgs := sink.waitMsgs(t, 1); len(msgs) != 1 || string(msgs[0].Value) != "ok" {
		t.Fatalf("sink: got %d messages, want only the one accepted", len(msgs))
	}
}

func TestSpoolFullMQTT311Disconnects(t *testing.T) { eachSink(t, testSpoolFullMQTT311Disconnects) }

func testSpoolFullMQTT311Disconnects(t *testing.T, sink *recSink, s Sink) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	cfg.Registerer = reg
	e := startEdge(t, cfg, s)

	for _, q := range []byte{1, 2} {
		lost := make(chan error, 1)
		c := mustConnect3(t, tcpURL(e.Addr()), "v3-"+strconv.Itoa(int(q)), func(o *paho.ClientOptions) {
			o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
		})
		sink.setErr(spool.ErrFull)
		err := publish3(t, c, "fleet/dev/t", q, false, "x")
		if err == nil {
			t.Fatalf("qos %d: publish acknowledged, want the connection closed without an acknowledgement", q)
		}
		select {
		case <-lost:
		case <-time.After(wait):
			t.Fatalf("qos %d: connection not lost", q)
		}
		sink.setErr(nil)
	}
	if n := len(sink.all()); n != 0 {
		t.Fatalf("sink: got %d messages, want none", n)
	}
	for _, q := range []string{"1", "2"} {
		if got := metricValue(t, reg, "fluxo_edge_spool_failures_total", map[string]string{"qos": q}); got != 1 {
			t.Errorf("fluxo_edge_spool_failures_total{qos=%s}: got %v, want 1", q, got)
		}
	}
	// The edge lives on.
	c := mustConnect3(t, tcpURL(e.Addr()), "v3-after", nil)
	if err := publish3(t, c, "fleet/dev/t", 1, false, "ok"); err != nil {
		t.Fatal(err)
	}
	sink.waitMsgs(t, 1)
}

func TestUnroutedRefused(t *testing.T) { eachSink(t, testUnroutedRefused) }

func testUnroutedRefused(t *testing.T, sink *recSink, s Sink) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	cfg.Registerer = reg
	cfg.Routes = []route.Route{{Filter: "fleet/#", Topic: "fleet"}}
	e := startEdge(t, cfg, s)
	c := mustConnect5(t, e.Addr(), &paho5.Connect{ClientID: "v5", CleanStart: true})
	pr, _ := c.Publish(ctxWait(t), &paho5.Publish{Topic: "elsewhere/x", QoS: 1, Payload: []byte("x")})
	if pr == nil || pr.ReasonCode != 0x90 {
		t.Fatalf("got %+v, want reason code 0x90 (topic name invalid)", pr)
	}
	pr, err := c.Publish(ctxWait(t), &paho5.Publish{Topic: "fleet/x/y", QoS: 1, Payload: []byte("x")})
	if err != nil || pr.ReasonCode != 0 {
		t.Fatalf("routed publish: got %+v, %v, want success", pr, err)
	}
	if msgs := sink.waitMsgs(t, 1); len(msgs) != 1 || msgs[0].Topic != "fleet" {
		t.Fatalf("sink: got %+v, want the one routed message", msgs)
	}
	if got := metricValue(t, reg, "fluxo_edge_unrouted_total", nil); got != 1 {
		t.Errorf("fluxo_edge_unrouted_total: got %v, want 1", got)
	}
}

func TestAuthentication(t *testing.T) {
	sink := &recSink{}
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	cfg.AllowAnonymous = false
	cfg.Registerer = reg
	cfg.Users = testUsers(t, User{Username: "dev-1", Password: hash(t, "secret"), ACL: DefaultUserACL()})
	e := startEdge(t, cfg, sink)
	broker := tcpURL(e.Addr())

	// MQTT 3.1.1
	if _, err := connect3(t, broker, "c1", func(o *paho.ClientOptions) { o.SetUsername("dev-1").SetPassword("wrong") }); err == nil {
		t.Errorf("3.1.1 wrong password: connected, want refused")
	}
	if _, err := connect3(t, broker, "c2", func(o *paho.ClientOptions) { o.SetUsername("nobody").SetPassword("secret") }); err == nil {
		t.Errorf("3.1.1 unknown user: connected, want refused")
	}
	if _, err := connect3(t, broker, "c3", nil); err == nil {
		t.Errorf("3.1.1 anonymous: connected, want refused")
	}
	c := mustConnect3(t, broker, "c4", func(o *paho.ClientOptions) { o.SetUsername("dev-1").SetPassword("secret") })
	if err := publish3(t, c, "fleet/dev-1/t", 1, false, "x"); err != nil {
		t.Fatal(err)
	}
	sink.waitMsgs(t, 1)

	// MQTT 5 reason codes
	tests := []struct {
		name string
		cp   paho5.Connect
		want byte
	}{
		{"wrong password", paho5.Connect{ClientID: "c5", Username: "dev-1", UsernameFlag: true, Password: []byte("no"), PasswordFlag: true}, 0x86},
		{"unknown user", paho5.Connect{ClientID: "c6", Username: "x", UsernameFlag: true, Password: []byte("secret"), PasswordFlag: true}, 0x86},
		{"anonymous", paho5.Connect{ClientID: "c7"}, 0x87},
	}
	for _, tt := range tests {
		cp := tt.cp
		cp.CleanStart = true
		_, ca, err := connect5(t, e.Addr(), &cp)
		if err == nil {
			t.Errorf("5 %s: connected, want refused", tt.name)
			continue
		}
		if ca == nil || ca.ReasonCode != tt.want {
			t.Errorf("5 %s: got connack %+v (%v), want reason code %#x", tt.name, ca, err, tt.want)
		}
	}
	if got := metricValue(t, reg, "fluxo_edge_denials_total", map[string]string{"reason": "credentials"}); got != 4 {
		t.Errorf("denials{credentials}: got %v, want 4", got)
	}
	if got := metricValue(t, reg, "fluxo_edge_denials_total", map[string]string{"reason": "anonymous"}); got != 2 {
		t.Errorf("denials{anonymous}: got %v, want 2", got)
	}
}

func TestACLPublishAndSubscribe(t *testing.T) {
	sink := &recSink{}
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	cfg.AllowAnonymous = false
	cfg.Registerer = reg
	cfg.Users = testUsers(t, User{
		Username: "dev-1", Password: hash(t, "pw"),
		ACL: ACL{Publish: []string{"+/%u/#", "clients/%c/out"}, Subscribe: []string{"+/%u/cmd/#", "clients/%c/in"}},
	})
	e := startEdge(t, cfg, sink)
	login := func(id string) *paho5.Connect {
		return &paho5.Connect{ClientID: id, CleanStart: true, Username: "dev-1", UsernameFlag: true, Password: []byte("pw"), PasswordFlag: true}
	}
	c := mustConnect5(t, e.Addr(), login("cli-9"))

	pub := []struct {
		topic string
		want  byte
	}{
		{"fleet/dev-1/t", 0},
		{"clients/cli-9/out", 0},
		{"fleet/dev-2/t", 0x87},
		{"clients/cli-8/out", 0x87},
	}
	for _, tt := range pub {
		pr, _ := c.Publish(ctxWait(t), &paho5.Publish{Topic: tt.topic, QoS: 1, Payload: []byte("x")})
		if pr == nil || pr.ReasonCode != tt.want {
			t.Errorf("publish %s: got %+v, want reason code %#x", tt.topic, pr, tt.want)
		}
	}
	// QoS 2 denial answers with a PUBREC.
	pr, _ := c.Publish(ctxWait(t), &paho5.Publish{Topic: "fleet/dev-2/t", QoS: 2, Payload: []byte("x")})
	if pr == nil || pr.ReasonCode != 0x87 {
		t.Errorf("publish qos 2 denied: got %+v, want reason code 0x87", pr)
	}
	msgs := sink.waitMsgs(t, 2)
	for _, m := range msgs {
		if h := header(m, route.HeaderTopic); h != "fleet/dev-1/t" && h != "clients/cli-9/out" {
			t.Errorf("sink holds a denied publish on %s", h)
		}
	}

	sub := []struct {
		filter string
		want   byte
	}{
		{"fleet/dev-1/cmd/#", 1},
		{"clients/cli-9/in", 1},
		{"fleet/dev-2/cmd/#", 0x87},
		{"fleet/#", 0x87},
		{"clients/cli-8/in", 0x87},
	}
	for _, tt := range sub {
		sa, _ := c.Subscribe(ctxWait(t), &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: tt.filter, QoS: 1}}})
		if sa == nil || len(sa.Reasons) != 1 || sa.Reasons[0] != tt.want {
			t.Errorf("subscribe %s: got %+v, want reason code %#x", tt.filter, sa, tt.want)
		}
	}
	if got := metricValue(t, reg, "fluxo_edge_denials_total", map[string]string{"reason": "publish"}); got != 3 {
		t.Errorf("denials{publish}: got %v, want 3", got)
	}
	if got := metricValue(t, reg, "fluxo_edge_denials_total", map[string]string{"reason": "subscribe"}); got != 3 {
		t.Errorf("denials{subscribe}: got %v, want 3", got)
	}

	// A will on a topic the user may not publish on is refused at CONNECT.
	cp := login("cli-10")
	cp.WillMessage = &paho5.WillMessage{Topic: "fleet/dev-2/status", Payload: []byte("gone")}
	if _, ca, err := connect5(t, e.Addr(), cp); err == nil || ca == nil || ca.ReasonCode != 0x87 {
		t.Errorf("forbidden will: got %+v, %v, want reason code 0x87", ca, err)
	}

	// MQTT 3.1.1 has no negative PUBACK: a denied QoS 1 publish closes the connection.
	lost := make(chan error, 1)
	c3 := mustConnect3(t, tcpURL(e.Addr()), "cli-3", func(o *paho.ClientOptions) {
		o.SetUsername("dev-1").SetPassword("pw")
		o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	})
	if err := publish3(t, c3, "fleet/dev-2/t", 1, false, "x"); err == nil {
		t.Errorf("3.1.1 denied publish: acknowledged, want the connection closed")
	}
	select {
	case <-lost:
	case <-time.After(wait):
		t.Fatalf("3.1.1 denied publish: connection not lost")
	}
}

func TestRetainedMessage(t *testing.T) { eachSink(t, testRetainedMessage) }

func testRetainedMessage(t *testing.T, sink *recSink, s Sink) {
	e := startEdge(t, testConfig(t), s)
	pub := mustConnect3(t, tcpURL(e.Addr()), "pub", nil)
	if err := publish3(t, pub, "fleet/dev/state", 1, true, "on"); err != nil {
		t.Fatal(err)
	}
	got := make(chan paho.Message, 2)
	sub := mustConnect3(t, tcpURL(e.Addr()), "sub", nil)
	tok := sub.Subscribe("fleet/+/state", 1, func(_ paho.Client, m paho.Message) { got <- m })
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	// The publisher's PUBACK may come before mochi has handed the message
	// to the subscribers it has: a subscriber that arrives in between gets
	// the live copy as well as the retained one, in either order.
	for retained := false; !retained; {
		select {
		case m := <-got:
			if string(m.Payload()) != "on" {
				t.Fatalf("got %q retained=%v, want \"on\"", m.Payload(), m.Retained())
			}
			retained = m.Retained()
		case <-time.After(wait):
			t.Fatal("retained message not delivered")
		}
	}
	if n := len(sink.waitMsgs(t, 1)); n != 1 {
		t.Errorf("sink: got %d messages, want the publish once", n)
	}
}

func TestDownlinkToOfflineSessionMQTT5(t *testing.T) {
	sink := &recSink{}
	e := startEdge(t, testConfig(t), sink)
	cp := func(clean bool) *paho5.Connect {
		return &paho5.Connect{ClientID: "car-5", CleanStart: clean, Properties: &paho5.ConnectProperties{SessionExpiryInterval: u32(3600)}}
	}
	c := mustConnect5(t, e.Addr(), cp(true))
	sa, err := c.Subscribe(ctxWait(t), &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "fleet/car-5/cmd/#", QoS: 1}}})
	if err != nil || sa.Reasons[0] != 1 {
		t.Fatalf("subscribe: %+v, %v", sa, err)
	}
	if err := c.Disconnect(&paho5.Disconnect{ReasonCode: 0}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the session to go offline", func() bool {
		cl, ok := e.srv.Clients.Get("car-5")
		return ok && cl.Closed()
	})
	if err := e.Publish("fleet/car-5/cmd/unlock", []byte("now"), 1, false); err != nil {
		t.Fatal(err)
	}
	c2 := mustConnect5(t, e.Addr(), cp(false))
	testutil.Eventually(t, "the queued command", func() bool { return len(c2.messages()) == 1 })
	m := c2.messages()[0]
	if m.Topic != "fleet/car-5/cmd/unlock" || string(m.Payload) != "now" || m.QoS != 1 {
		t.Errorf("got %s %q qos %d, want fleet/car-5/cmd/unlock \"now\" qos 1", m.Topic, m.Payload, m.QoS)
	}
	if n := sink.callCount(); n != 0 {
		t.Errorf("sink: got %d appends, want none for the edge's own publish", n)
	}
}

func TestPersistentSessionAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	sink := &recSink{}
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	cfg.StateDir = dir
	cfg.Registerer = reg

	e1, err := New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := e1.Start(); err != nil {
		t.Fatal(err)
	}
	persistent := func(o *paho.ClientOptions) { o.SetCleanSession(false) }
	c1, err := connect3(t, tcpURL(e1.Addr()), "dev-1", persistent)
	if err != nil {
		e1.Close()
		t.Fatal(err)
	}
	tok := c1.Subscribe("fleet/dev-1/cmd/#", 1, nil)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		e1.Close()
		t.Fatalf("subscribe: %v", tok.Error())
	}
	c1.Disconnect(100)
	testutil.Eventually(t, "the session to go offline", func() bool {
		cl, ok := e1.srv.Clients.Get("dev-1")
		return ok && cl.Closed()
	})
	if err := e1.Publish("fleet/dev-1/cmd/reboot", []byte("1"), 1, false); err != nil {
		e1.Close()
		t.Fatal(err)
	}
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}

	// Same state directory and registry: the metrics were unregistered.
	e2 := startEdge(t, cfg, sink)
	got := make(chan paho.Message, 4)
	c2 := mustConnect3(t, tcpURL(e2.Addr()), "dev-1", func(o *paho.ClientOptions) {
		persistent(o)
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m })
	})
	select {
	case m := <-got:
		if m.Topic() != "fleet/dev-1/cmd/reboot" || string(m.Payload()) != "1" || m.Qos() != 1 {
			t.Errorf("got %s %q qos %d, want fleet/dev-1/cmd/reboot \"1\" qos 1", m.Topic(), m.Payload(), m.Qos())
		}
	case <-time.After(wait):
		t.Fatal("queued message not delivered after the restart")
	}
	// The subscription itself survived: a new command arrives without subscribing again.
	if err := e2.Publish("fleet/dev-1/cmd/ping", []byte("2"), 1, false); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Topic() != "fleet/dev-1/cmd/ping" {
			t.Errorf("got %s, want fleet/dev-1/cmd/ping", m.Topic())
		}
	case <-time.After(wait):
		t.Fatal("subscription lost in the restart")
	}
	if n := sink.callCount(); n != 0 {
		t.Errorf("sink: got %d appends, want none for the edge's own publishes", n)
	}

	// Once acknowledged, the delivered messages leave the store too.
	testutil.Eventually(t, "the device's acknowledgements", func() bool {
		cl, ok := e2.srv.Clients.Get("dev-1")
		return ok && cl.State.Inflight.Len() == 0
	})
	c2.Disconnect(100)
	if err := e2.Close(); err != nil {
		t.Fatal(err)
	}
	e3, err := New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	defer e3.Close()
	stored, err := e3.store.StoredInflightMessages()
	if err != nil || len(stored) != 0 {
		t.Fatalf("stored inflight messages after delivery: got %d (%v), want none", len(stored), err)
	}
}

func TestStateDirLocked(t *testing.T) {
	cfg := testConfig(t)
	cfg.StateDir = t.TempDir()
	e1, err := New(cfg, &recSink{})
	if err != nil {
		t.Fatal(err)
	}
	defer e1.Close()
	_, err = New(cfg, &recSink{})
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second edge on the same state dir: got %v, want a locked error", err)
	}
}

func TestPublishBeforeStartAndAfterClose(t *testing.T) {
	e, err := New(testConfig(t), &recSink{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Publish("a/b", nil, 0, false); err != ErrClosed {
		t.Errorf("before Start: got %v, want ErrClosed", err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "a/#", "a/+/b", "$SYS/x"} {
		if err := e.Publish(bad, nil, 0, false); err == nil {
			t.Errorf("Publish(%q): got nil, want an error", bad)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	if err := e.Publish("a/b", nil, 0, false); err != ErrClosed {
		t.Errorf("after Close: got %v, want ErrClosed", err)
	}
}

func TestConnackAnnouncesLimits(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxPacketSize = 4096
	e := startEdge(t, cfg, &recSink{})
	_, ca, err := connect5(t, e.Addr(), &paho5.Connect{ClientID: "v5", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	if ca.Properties == nil || ca.Properties.MaximumPacketSize == nil || *ca.Properties.MaximumPacketSize != 4096 {
		t.Errorf("connack maximum packet size: got %+v, want 4096", ca.Properties)
	}
	if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil && *ca.Properties.ReceiveMaximum != DefaultReceiveMaximum {
		t.Errorf("connack receive maximum: got %d, want %d", *ca.Properties.ReceiveMaximum, DefaultReceiveMaximum)
	}
}

func TestTopicAliasRefused(t *testing.T) {
	sink := &recSink{}
	e := startEdge(t, testConfig(t), sink)
	c := dialRaw(t, e.Addr())
	c.connect(5, "alias", "", "")
	// PUBLISH QoS 1, packet id 1, property Topic Alias (0x23) = 1
	c.send(packet(0x32, str("fleet/dev/t"), []byte{0x00, 0x01}, []byte{0x03, 0x23, 0x00, 0x01}, []byte("x")))
	first, body, err := c.readPacket()
	if err != nil {
		t.Fatalf("got %v, want a DISCONNECT", err)
	}
	if first != 0xe0 || len(body) < 1 || body[0] != 0x94 {
		t.Fatalf("got packet %#x %v, want DISCONNECT 0x94 (topic alias invalid)", first, body)
	}
	c.waitClosed()
	if n := sink.callCount(); n != 0 {
		t.Errorf("sink: got %d appends, want none", n)
	}
}

func TestMaxClients(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxClients = 1
	e := startEdge(t, cfg, &recSink{})
	mustConnect3(t, tcpURL(e.Addr()), "first", nil)
	if _, err := connect3(t, tcpURL(e.Addr()), "second", nil); err == nil {
		t.Fatal("second client connected, want refused (MaxClients 1)")
	}
	_, ca, err := connect5(t, e.Addr(), &paho5.Connect{ClientID: "third", CleanStart: true})
	if err == nil || ca == nil || ca.ReasonCode != 0x89 {
		t.Fatalf("MQTT 5 client over the limit: got %+v, %v, want reason code 0x89 (server busy)", ca, err)
	}
}

func TestSetUsers(t *testing.T) {
	cfg := testConfig(t)
	cfg.AllowAnonymous = false
	cfg.Users = testUsers(t, User{Username: "dev-1", Password: hash(t, "pw"), ACL: DefaultUserACL()})
	e := startEdge(t, cfg, &recSink{})
	login := func(user, pw string) func(*paho.ClientOptions) {
		return func(o *paho.ClientOptions) { o.SetUsername(user).SetPassword(pw) }
	}
	if _, err := connect3(t, tcpURL(e.Addr()), "c2", login("dev-2", "pw2")); err == nil {
		t.Fatal("dev-2 connected before being added")
	}
	doc := []byte("users:\n  - username: dev-1\n    password: \"" + hash(t, "pw") + "\"\n")
	doc, err := SetPassword(doc, "dev-2", "pw2")
	if err != nil {
		t.Fatal(err)
	}
	users, err := ParseUsers(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetUsers(users); err != nil {
		t.Fatal(err)
	}
	if err := e.SetUsers(nil); err == nil {
		t.Errorf("SetUsers(nil): got no error, want one (nil would let every device in)")
	}
	mustConnect3(t, tcpURL(e.Addr()), "c2", login("dev-2", "pw2"))
	mustConnect3(t, tcpURL(e.Addr()), "c1", login("dev-1", "pw"))
}
