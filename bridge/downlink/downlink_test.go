package downlink

import (
	"context"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/core"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

type mochiPublisher struct{ s *mqtt.Server }

func (p mochiPublisher) Publish(topic string, payload []byte, qos byte, retain bool) error {
	return p.s.Publish(topic, payload, retain, qos)
}

func startMQTT(t *testing.T) (*mqtt.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := mqtt.New(&mqtt.Options{InlineClient: true})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "t", Address: addr})); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	return s, addr
}

func device(t *testing.T, addr, id string, clean bool, got chan<- string) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).SetAutoReconnect(false)
	o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m.Topic() + " " + string(m.Payload()) })
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	return c
}

func TestCommandsReachDevices(t *testing.T) {
	ccfg := core.DefaultConfig()
	ccfg.DataDir, ccfg.KafkaAddr, ccfg.HTTPAddr = t.TempDir(), "127.0.0.1:0", ""
	ccfg.Group.InitialRebalanceDelay = 10 * time.Millisecond
	node, err := core.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	defer node.Shutdown(context.Background())
	srv, addr := startMQTT(t)

	got := make(chan string, 10)
	online := device(t, addr, "c-0001", true, got)
	defer online.Disconnect(100)
	if tok := online.Subscribe("cars/c-0001/cmd", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	// An offline device with a persistent session.
	off := device(t, addr, "s-0002", false, got)
	if tok := off.Subscribe("sensors/s-0002/cmd", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	off.Disconnect(100)

	cfg := DefaultConfig()
	cfg.Brokers = []string{node.KafkaAddr()}
	cfg.FromStart = true
	fleets := map[string]string{"c-0001": "cars"}
	d, err := New(cfg, mochiPublisher{srv}, func(dev string) (string, bool) { f, ok := fleets[dev]; return f, ok })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	p, err := kgo.NewClient(kgo.SeedBrokers(node.KafkaAddr()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer pcancel()
	recs := []*kgo.Record{
		{Topic: "commands", Key: []byte("c-0001"), Value: []byte(`{"id":"1","cmd":"lock"}`)},
		{Topic: "commands", Key: []byte("s-0002"), Value: []byte(`{"id":"2","cmd":"reboot"}`), Headers: []kgo.RecordHeader{{Key: HeaderFleet, Value: []byte("sensors")}}},
		{Topic: "commands", Key: []byte("nobody"), Value: []byte(`{"id":"3"}`)},
	}
	if err := p.ProduceSync(pctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != `cars/c-0001/cmd {"id":"1","cmd":"lock"}` {
			t.Fatalf("got %q, want the lock command on cars/c-0001/cmd", m)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the online device got no command")
	}
	// The offline device reconnects and gets its queued command.
	testutil.Eventually(t, "2 commands delivered, 1 undeliverable", func() bool { return d.Stats().Delivered == 2 && d.Stats().Undeliverable == 1 })
	back := device(t, addr, "s-0002", false, got)
	defer back.Disconnect(100)
	select {
	case m := <-got:
		if m != `sensors/s-0002/cmd {"id":"2","cmd":"reboot"}` {
			t.Fatalf("got %q, want the reboot command on sensors/s-0002/cmd", m)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the reconnected device got no queued command")
	}
}
