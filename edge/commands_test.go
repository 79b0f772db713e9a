package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/bridge/downlink"
	"github.com/fluxo-io/fluxo/bridge/registry"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// startCommandNode starts an edge node whose downlink reads commands from
// the start of the topic (so that a command produced before the group
// settles is not skipped) and retries quickly.
func startCommandNode(t *testing.T, coreAddr, dir string) *Node {
	t.Helper()
	return startCommandNodeWith(t, coreAddr, dir, nil)
}

// startCommandNodeWith is startCommandNode with mod changing the
// configuration first.
func startCommandNodeWith(t *testing.T, coreAddr, dir string, mod func(*NodeConfig)) *Node {
	t.Helper()
	cfg := DefaultNodeConfig()
	cfg.Edge.MQTTAddr = "127.0.0.1:0"
	cfg.Edge.AllowAnonymous = true
	cfg.Edge.EdgeID = "depot-9"
	cfg.Edge.StateDir = dir + "/mqtt"
	cfg.SpoolDir = dir
	cfg.Spool.SegmentBytes = 1 << 20
	cfg.Spool.MaxBytes = 64 << 20
	cfg.Spool.MaxMessageBytes = 64 << 10
	cfg.Uplink.Brokers = []string{coreAddr}
	cfg.Uplink.Linger = 5 * time.Millisecond
	cfg.Uplink.RetryBackoff = 20 * time.Millisecond
	cfg.Downlink.FromStart = true
	cfg.Downlink.RetryInterval = 50 * time.Millisecond
	cfg.Devices.FlushInterval = 20 * time.Millisecond
	cfg.HTTPAddr = "127.0.0.1:0"
	if mod != nil {
		mod(&cfg)
	}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		n.Shutdown(context.Background())
		t.Fatal(err)
	}
	return n
}

// ackLog reads command-acks: the statuses of each command id, in order.
type ackLog struct {
	cl *kgo.Client
	mu sync.Mutex
	by map[string][]map[string]any
}

func newAckLog(t *testing.T, addr string) *ackLog {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("command-acks"), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &ackLog{cl: cl, by: map[string][]map[string]any{}}
}

func (a *ackLog) poll() {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	fs := a.cl.PollFetches(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	fs.EachRecord(func(r *kgo.Record) {
		var v map[string]any
		if json.Unmarshal(r.Value, &v) == nil {
			if h := headerOf(r, downlink.HeaderStatus); h != fmt.Sprint(v["status"]) {
				v["header_mismatch"] = h
			}
			a.by[string(r.Key)] = append(a.by[string(r.Key)], v)
		}
	})
}

func headerOf(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// statuses returns the statuses written for a command id, in order.
func (a *ackLog) statuses(id string) []string {
	a.poll()
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, v := range a.by[id] {
		out = append(out, fmt.Sprint(v["status"]))
	}
	return out
}

func (a *ackLog) last(id string) map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.by[id]
	if len(v) == 0 {
		return nil
	}
	return v[len(v)-1]
}

func produce(t *testing.T, addr string, recs ...*kgo.Record) {
	t.Helper()
	p, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.ProduceSync(ctxWait(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func command(device, id, payload string, hs ...string) *kgo.Record {
	r := &kgo.Record{Topic: "commands", Key: []byte(device), Value: []byte(payload)}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: downlink.HeaderCommandID, Value: []byte(id)})
	for i := 0; i+1 < len(hs); i += 2 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: hs[i], Value: []byte(hs[i+1])})
	}
	return r
}

func lastIs(a *ackLog, id string, want ...string) func() bool {
	return func() bool {
		got := a.statuses(id)
		return fmt.Sprint(got) == fmt.Sprint(want)
	}
}

// TestCommandsNeverSilentlyLost: commands for a device never seen (then
// connecting), for an offline device with a persistent session, across an
// edge restart (the queue and the registry persisted), and past their
// expiry, each answered with its statuses in command-acks; every
// committed command has a status record.
func TestCommandsNeverSilentlyLost(t *testing.T) {
	core := startCoreNode(t)
	dir := t.TempDir()
	n := startCommandNode(t, core.KafkaAddr(), dir)
	acks := newAckLog(t, core.KafkaAddr())

	got := make(chan string, 16)
	handler := func(o *paho.ClientOptions) {
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m.Topic() + " " + string(m.Payload()) })
	}
	persistent := func(o *paho.ClientOptions) { handler(o); o.SetCleanSession(false) }
	receive := func(want string) {
		t.Helper()
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("got %q, want %q", m, want)
			}
		case <-time.After(wait):
			t.Fatalf("got nothing, want %q", want)
		}
	}

	// An offline device with a persistent session.
	off := mustConnect3(t, tcpURL(n.MQTTAddr()), "s-0002", persistent)
	if tok := off.Subscribe("sensors/s-0002/cmd", 1, nil); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	off.Disconnect(100)
	testutil.Eventually(t, "s-0002 offline in the registry", func() bool {
		d, ok := n.Devices().Get("s-0002")
		return ok && !d.Connected && d.Persistent && d.Fleet == "sensors"
	})

	past := strconv.FormatInt(time.Now().Add(-time.Minute).UnixMilli(), 10)
	soon := strconv.FormatInt(time.Now().Add(1500*time.Millisecond).UnixMilli(), 10)
	produce(t, core.KafkaAddr(),
		command("c-0001", "cmd-1", `{"cmd":"lock"}`, downlink.HeaderFleet, "cars"), // never seen
		command("s-0002", "cmd-2", `{"cmd":"reboot"}`),                             // offline, persistent
		command("x-0003", "cmd-3", `old`, downlink.HeaderExpiresMS, past),          // expired on arrival
		command("y-0004", "cmd-4", `soon`, downlink.HeaderExpiresMS, soon),         // expires while queued
		command("z-0005", "cmd-5", `later`, downlink.HeaderFleet, "cars"),          // waits across a restart
	)
	testutil.Eventually(t, "cmd-1 queued", lastIs(acks, "cmd-1", "queued"))
	testutil.Eventually(t, "cmd-2 delivered", lastIs(acks, "cmd-2", "delivered"))
	testutil.Eventually(t, "cmd-3 expired", lastIs(acks, "cmd-3", "expired"))
	testutil.Eventually(t, "cmd-4 queued, then expired", lastIs(acks, "cmd-4", "queued", "expired"))
	testutil.Eventually(t, "cmd-5 queued", lastIs(acks, "cmd-5", "queued"))

	// The device never seen connects and subscribes: it gets its command.
	c1 := mustConnect3(t, tcpURL(n.MQTTAddr()), "c-0001", handler)
	if tok := c1.Subscribe("cars/c-0001/cmd", 1, nil); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	receive(`cars/c-0001/cmd {"cmd":"lock"}`)
	testutil.Eventually(t, "cmd-1 delivered", lastIs(acks, "cmd-1", "queued", "delivered"))
	c1.Disconnect(100)

	// The persistent device comes back and gets its command.
	back := mustConnect3(t, tcpURL(n.MQTTAddr()), "s-0002", persistent)
	receive(`sensors/s-0002/cmd {"cmd":"reboot"}`)
	back.Disconnect(100)

	// Every command's offset is committed, and each has its status.
	adm := kadm.NewClient(acks.cl)
	testutil.Eventually(t, "the downlink's offsets committed", func() bool {
		os, err := adm.FetchOffsets(context.Background(), "fluxo-edge-depot-9-downlink")
		if err != nil {
			return false
		}
		o, ok := os.Lookup("commands", 0)
		return ok && o.At == 5
	})
	for _, id := range []string{"cmd-1", "cmd-2", "cmd-3", "cmd-4", "cmd-5"} {
		if len(acks.statuses(id)) == 0 {
			t.Errorf("%s: got no status record, want one for a committed command", id)
		}
	}

	// Restart: the registry and the queue are read back.
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	n = startCommandNode(t, core.KafkaAddr(), dir)
	defer n.Shutdown(context.Background())
	if d, ok := n.Devices().Get("c-0001"); !ok || d.Commands.Delivered != 1 || d.Fleet != "cars" {
		t.Errorf("got c-0001 %+v (known %v) after the restart, want it with one delivered command", d, ok)
	}
	if d, ok := n.Devices().Get("x-0003"); !ok || d.Commands.Expired != 1 {
		t.Errorf("got x-0003 %+v (known %v), want one expired command", d, ok)
	}
	c5 := mustConnect3(t, tcpURL(n.MQTTAddr()), "z-0005", handler)
	if tok := c5.Subscribe("cars/z-0005/cmd", 1, nil); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	receive(`cars/z-0005/cmd later`)
	testutil.Eventually(t, "cmd-5 delivered after the restart", lastIs(acks, "cmd-5", "queued", "delivered"))

	// The registry over HTTP.
	resp, err := http.Get("http://" + n.HTTPAddr() + "/api/devices?fleet=cars&sort=id")
	if err != nil {
		t.Fatal(err)
	}
	var page registry.Page
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	var ids []string
	for _, d := range page.Devices {
		ids = append(ids, d.ID)
	}
	if fmt.Sprint(ids) != "[c-0001 z-0005]" {
		t.Errorf("got fleet cars %v, want [c-0001 z-0005]", ids)
	}
}

// TestCommandRequestResponseMQTT5: a command with headers, a response
// topic and correlation data reaches an MQTT 5 device with them as
// properties; the device's answer on the response topic lands in
// command-acks as the command's acked status, with the correlation data.
func TestCommandRequestResponseMQTT5(t *testing.T) {
	core := startCoreNode(t)
	n := startCommandNode(t, core.KafkaAddr(), t.TempDir())
	defer n.Shutdown(context.Background())
	acks := newAckLog(t, core.KafkaAddr())

	c := mustConnect5(t, n.MQTTAddr(), &paho5.Connect{ClientID: "car-5", CleanStart: true})
	if _, err := c.Subscribe(ctxWait(t), &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "cars/car-5/cmd", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "car-5 subscribed in the registry", func() bool {
		d, ok := n.Devices().Get("car-5")
		return ok && d.Subscribed("cars/car-5/cmd")
	})
	produce(t, core.KafkaAddr(), command("car-5", "rr-1", `{"cmd":"temp"}`,
		downlink.HeaderFleet, "cars", "trace", "t-42",
		downlink.HeaderContentType, "application/json",
		downlink.HeaderResponseTopic, "cars/car-5/resp",
		downlink.HeaderCorrelationData, "corr-7"))
	testutil.Eventually(t, "the command at the device", func() bool { return len(c.messages()) == 1 })
	m := c.messages()[0]
	if m.Properties == nil || m.Properties.ContentType != "application/json" || m.Properties.ResponseTopic != "cars/car-5/resp" ||
		string(m.Properties.CorrelationData) != "corr-7" {
		t.Fatalf("got properties %+v, want content type, response topic and correlation data", m.Properties)
	}
	user := map[string]string{}
	for _, u := range m.Properties.User {
		user[u.Key] = u.Value
	}
	if user["trace"] != "t-42" || user[downlink.HeaderCommandID] != "rr-1" {
		t.Errorf("got user properties %v, want trace t-42 and command_id rr-1", user)
	}
	if _, ok := user[downlink.HeaderContentType]; ok {
		t.Errorf("got mqtt.* header %s among user properties, want it as a property only", downlink.HeaderContentType)
	}
	testutil.Eventually(t, "rr-1 delivered", lastIs(acks, "rr-1", "delivered"))
	if _, err := c.Publish(ctxWait(t), &paho5.Publish{Topic: "cars/car-5/resp", QoS: 1, Payload: []byte(`{"temp":21.5}`),
		Properties: &paho5.PublishProperties{CorrelationData: []byte("corr-7")}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "rr-1 acked", lastIs(acks, "rr-1", "delivered", "acked"))
	v := acks.last("rr-1")
	resp, _ := json.Marshal(v["response"])
	if string(resp) != `{"temp":21.5}` || v["correlation_data"] != "Y29yci03" || v["device"] != "car-5" {
		t.Errorf("got acked status %v, want the response, correlation data corr-7 (base64) and device car-5", v)
	}
	// The registry counts the answer after the status record is written.
	testutil.Eventually(t, "car-5 with 1 command delivered and 1 acked", func() bool {
		d, _ := n.Devices().Get("car-5")
		return d.Commands.Acked == 1 && d.Commands.Delivered == 1
	})
}

// TestReadyzFailsWhileCoreAway: with records waiting and no core, /readyz
// turns 503 after the core timeout and says which lane and why; /healthz
// stays 200.
func TestReadyzFailsWhileCoreAway(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultNodeConfig()
	cfg.Edge.MQTTAddr = "127.0.0.1:0"
	cfg.Edge.AllowAnonymous = true
	cfg.Edge.StateDir = dir + "/mqtt"
	cfg.SpoolDir = dir
	cfg.Spool.SegmentBytes = 1 << 20
	cfg.Spool.MaxBytes = 64 << 20
	cfg.Spool.MaxMessageBytes = 64 << 10
	cfg.Uplink.Brokers = []string{"127.0.0.1:1"} // nothing listens there
	cfg.Uplink.RetryBackoff = 20 * time.Millisecond
	cfg.Uplink.MaxRetryBackoff = 100 * time.Millisecond
	cfg.Downlink = nil
	cfg.CoreTimeout = 300 * time.Millisecond
	cfg.HTTPAddr = "127.0.0.1:0"
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + n.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("got %d %q before anything waits, want 200", code, body)
	}
	c := mustConnect3(t, tcpURL(n.MQTTAddr()), "car-1", nil)
	if err := publish3(t, c, "cars/car-1/gps", 1, false, "1"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "/readyz to fail", func() bool { code, _ := get("/readyz"); return code == 503 })
	if _, body := get("/readyz"); !strings.Contains(body, "core not reached") || !strings.Contains(body, "telemetry") {
		t.Errorf("got /readyz body %q, want it to name the telemetry lane and the core not reached", body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("got /healthz %d, want 200 (liveness only)", code)
	}
}
