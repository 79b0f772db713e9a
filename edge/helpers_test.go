package edge

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// wait is the generous deadline of every wait in these tests; nothing
// asserts on how long something takes.
const wait = 20 * time.Second

// recSink is an in-memory Sink that records what it is given, or fails
// with err while err is set.
type recSink struct {
	mu    sync.Mutex
	msgs  []spool.Message
	err   error
	calls int
}

func (s *recSink) Append(msgs ...spool.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return s.err
	}
	s.msgs = append(s.msgs, msgs...)
	return nil
}

func (s *recSink) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *recSink) all() []spool.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]spool.Message(nil), s.msgs...)
}

func (s *recSink) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// waitMsgs waits until the sink holds n messages and returns them.
func (s *recSink) waitMsgs(t *testing.T, n int) []spool.Message {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("%d messages in the sink", n), func() bool { return len(s.all()) >= n })
	return s.all()
}

// byMQTTTopic returns the message published on an MQTT topic.
func byMQTTTopic(t *testing.T, msgs []spool.Message, topic string) spool.Message {
	t.Helper()
	for _, m := range msgs {
		if header(m, route.HeaderTopic) == topic {
			return m
		}
	}
	t.Fatalf("no message for MQTT topic %s in %d messages", topic, len(msgs))
	return spool.Message{}
}

func header(m spool.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// syncBuffer collects the logs of a test, shown if it fails.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testConfig is an anonymous edge on 127.0.0.1:0.
func testConfig(t *testing.T) Config {
	buf := new(syncBuffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("edge log:\n%s", buf.String())
		}
	})
	cfg := DefaultConfig()
	cfg.MQTTAddr = "127.0.0.1:0"
	cfg.EdgeID = "edge-test"
	cfg.AllowAnonymous = true
	cfg.Logger = zerolog.New(buf).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	return cfg
}

// startEdge starts an edge that the test closes.
func startEdge(t *testing.T, cfg Config, sink Sink) *Edge {
	t.Helper()
	e, err := New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		e.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// testUsers returns the users, as read from a users file.
func testUsers(t *testing.T, users ...User) *Users {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("users:\n")
	for _, u := range users {
		fmt.Fprintf(&b, "  - username: %q\n    password: %q\n    acl:\n      publish: %s\n      subscribe: %s\n",
			u.Username, u.Password, yamlList(u.ACL.Publish), yamlList(u.ACL.Subscribe))
	}
	us, err := ParseUsers(b.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, b.Bytes())
	}
	return us
}

func yamlList(vs []string) string {
	s := "["
	for i, v := range vs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q", v)
	}
	return s + "]"
}

// connect3 connects an MQTT 3.1.1 client (paho.mqtt.golang) that the test
// disconnects.
func connect3(t *testing.T, broker, clientID string, mod func(*paho.ClientOptions)) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().
		AddBroker(broker).
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(wait).
		SetWriteTimeout(wait).
		SetKeepAlive(time.Minute)
	if mod != nil {
		mod(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		return nil, fmt.Errorf("connect: no answer")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if c.IsConnected() {
			c.Disconnect(100)
		}
	})
	return c, nil
}

func mustConnect3(t *testing.T, broker, clientID string, mod func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	c, err := connect3(t, broker, clientID, mod)
	if err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	return c
}

func tcpURL(addr string) string { return (&url.URL{Scheme: "tcp", Host: addr}).String() }

// publish3 publishes and waits for the acknowledgement.
func publish3(t *testing.T, c paho.Client, topic string, qos byte, retain bool, payload string) error {
	t.Helper()
	tok := c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(wait) {
		t.Fatalf("publish %s: no answer", topic)
	}
	return tok.Error()
}

// client5 is an MQTT 5 client (paho.golang) with the messages it
// received.
type client5 struct {
	*paho5.Client
	mu       sync.Mutex
	received []*paho5.Publish
}

func (c *client5) messages() []*paho5.Publish {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*paho5.Publish(nil), c.received...)
}

// connect5 connects an MQTT 5 client that the test disconnects; the
// CONNACK is returned also on a refusal.
func connect5(t *testing.T, addr string, cp *paho5.Connect) (*client5, *paho5.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &client5{}
	c.Client = paho5.NewClient(paho5.ClientConfig{
		Conn:          conn,
		PacketTimeout: wait,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){
			func(r paho5.PublishReceived) (bool, error) {
				c.mu.Lock()
				c.received = append(c.received, r.Packet)
				c.mu.Unlock()
				return true, nil
			},
		},
	})
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 60
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	t.Cleanup(func() {
		_ = c.Disconnect(&paho5.Disconnect{ReasonCode: 0})
		conn.Close()
	})
	return c, ca, nil
}

func mustConnect5(t *testing.T, addr string, cp *paho5.Connect) *client5 {
	t.Helper()
	c, _, err := connect5(t, addr, cp)
	if err != nil {
		t.Fatalf("connect %s: %v", cp.ClientID, err)
	}
	return c
}

func ctxWait(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// metricValue reads one sample of a gathered metric.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

func u32(v uint32) *uint32 { return &v }
