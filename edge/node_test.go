package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/core"
)

func startCoreNode(t *testing.T) *core.Node {
	t.Helper()
	cfg := core.DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = t.TempDir(), "127.0.0.1:0", ""
	cfg.Group.InitialRebalanceDelay = 10 * time.Millisecond
	n, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	return n
}

func startEdgeNode(t *testing.T, coreAddr, dir string) *Node {
	t.Helper()
	cfg := DefaultNodeConfig()
	cfg.Edge.MQTTAddr = "127.0.0.1:0"
	cfg.Edge.AllowAnonymous = true
	cfg.Edge.EdgeID = "depot-7"
	cfg.Edge.StateDir = dir + "/mqtt"
	cfg.SpoolDir = dir
	cfg.Spool.SegmentBytes = 1 << 20
	cfg.Spool.MaxBytes = 64 << 20
	cfg.Spool.MaxMessageBytes = 64 << 10
	cfg.Uplink.Brokers = []string{coreAddr}
	cfg.Uplink.Linger = 5 * time.Millisecond
	cfg.Uplink.RetryBackoff = 20 * time.Millisecond
	cfg.Uplink.MaxRetryBackoff = 200 * time.Millisecond
	cfg.HTTPAddr = "127.0.0.1:0"
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	return n
}

// TestNodeMQTTToKafka: paho devices publish at QoS 0, 1 and 2 through an
// edge node; a franz-go consumer reads them from the core, in order per
// device, with the headers, alarms on their own topic; a command produced
// to the core reaches a device and its reply comes back.
func TestNodeMQTTToKafka(t *testing.T) {
	c := startCoreNode(t)
	e := startEdgeNode(t, c.KafkaAddr(), t.TempDir())

	got := make(chan string, 10)
	o := paho.NewClientOptions().AddBroker("tcp://" + e.MQTTAddr()).SetClientID("c-0001").SetCleanSession(false)
	o.SetDefaultPublishHandler(func(cl paho.Client, m paho.Message) {
		got <- m.Topic() + " " + string(m.Payload())
		cl.Publish("cars/c-0001/cmd/reply", 1, false, `{"cmd_id":"7","status":"ok"}`)
	})
	dev := paho.NewClient(o)
	if tok := dev.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer dev.Disconnect(100)
	if tok := dev.Subscribe("cars/c-0001/cmd", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	const per = 30
	for i := 0; i < per*3; i++ {
		qos := byte(i % 3)
		tok := dev.Publish("cars/c-0001/telemetry", qos, false, fmt.Sprintf(`{"seq":%d,"qos":%d}`, i, qos))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	if tok := dev.Publish("cars/c-0001/alarm/engine-overheat", 1, false, `{"seq":999}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.KafkaAddr()), kgo.ConsumeTopics("telemetry", "alarms", "command-acks"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	byTopic := map[string][]*kgo.Record{}
	commandSent := false
	for len(byTopic["telemetry"]) < per*3 || len(byTopic["alarms"]) < 1 || len(byTopic["command-acks"]) < 1 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got telemetry %d, alarms %d, acks %d", len(byTopic["telemetry"]), len(byTopic["alarms"]), len(byTopic["command-acks"]))
		}
		fs.EachRecord(func(r *kgo.Record) { byTopic[r.Topic] = append(byTopic[r.Topic], r) })
		if !commandSent && len(byTopic["telemetry"]) > 0 {
			// The edge has learned c-0001's fleet from its traffic.
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "commands", Key: []byte("c-0001"), Value: []byte(`{"id":"7","cmd":"lock"}`)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			commandSent = true
		}
	}
	for i, r := range byTopic["telemetry"] {
		var v struct{ Seq int }
		json.Unmarshal(r.Value, &v)
		if v.Seq != i {
			t.Fatalf("record %d has seq %d: out of order or duplicated", i, v.Seq)
		}
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if string(r.Key) != "c-0001" || h["mqtt.topic"] != "cars/c-0001/telemetry" || h["edge.id"] != "depot-7" ||
			h["mqtt.qos"] != fmt.Sprint(i%3) || h["edge.received_ms"] == "" {
			t.Fatalf("record %d: key %q headers %v", i, r.Key, h)
		}
	}
	select {
	case m := <-got:
		if m != `cars/c-0001/cmd {"id":"7","cmd":"lock"}` {
			t.Fatalf("device got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no command reached the device")
	}

	resp, err := http.Get("http://" + e.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`fluxo_edge_messages_total{lane="telemetry",outcome="delivered"} 90`, `fluxo_edge_uplink_compression_ratio{lane="telemetry"}`, `fluxo_edge_clients_connected`,
		`fluxo_edge_uplink_latency_seconds_count{lane="telemetry"} 90`, `fluxo_edge_uplink_latency_seconds_bucket{lane="telemetry",le="60"} 90`} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
}
