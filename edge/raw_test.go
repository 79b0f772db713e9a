package edge

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// Raw MQTT packets, written by hand so the tests can send what no client
// library would.

func varint(n int) []byte {
	var b []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func str(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

func packet(first byte, body ...[]byte) []byte {
	var b []byte
	for _, p := range body {
		b = append(b, p...)
	}
	return append(append([]byte{first}, varint(len(b))...), b...)
}

// connectPacket builds a CONNECT with clean session/start, keepalive 60,
// protocol level 4 (3.1.1) or 5, and an optional will.
func connectPacket(level byte, clientID, willTopic, willPayload string) []byte {
	flags := byte(0x02)
	var payload []byte
	payload = append(payload, str(clientID)...)
	if willTopic != "" {
		flags |= 0x04 | 0x08 // will, will QoS 1
		if level == 5 {
			payload = append(payload, 0) // will properties
		}
		payload = append(payload, str(willTopic)...)
		payload = append(payload, str(willPayload)...)
	}
	vh := append(str("MQTT"), level, flags, 0, 60)
	if level == 5 {
		vh = append(vh, 0) // properties
	}
	return packet(0x10, vh, payload)
}

// rawConn is a raw MQTT connection to the edge.
type rawConn struct {
	t *testing.T
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(wait))
	return &rawConn{t: t, Conn: c, r: bufio.NewReader(c)}
}

func (c *rawConn) send(b []byte) {
	c.t.Helper()
	if _, err := c.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// readPacket reads one packet: its first byte and its body.
func (c *rawConn) readPacket() (byte, []byte, error) {
	first, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for {
		d, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mul
		if d&0x80 == 0 {
			break
		}
		mul *= 128
	}
	body := make([]byte, n)
	_, err = io.ReadFull(c.r, body)
	return first, body, err
}

// connect sends a CONNECT and checks the CONNACK.
func (c *rawConn) connect(level byte, clientID, willTopic, willPayload string) {
	c.t.Helper()
	c.send(connectPacket(level, clientID, willTopic, willPayload))
	first, body, err := c.readPacket()
	if err != nil {
		c.t.Fatalf("connack: %v", err)
	}
	if first != 0x20 || len(body) < 2 || body[1] != 0 {
		c.t.Fatalf("connack: got %#x %v, want success", first, body)
	}
}

// waitClosed reads until the edge closes the connection and returns the
// first bytes (type and flags) of the packets read meanwhile.
func (c *rawConn) waitClosed() []byte {
	c.t.Helper()
	var got []byte
	for {
		first, _, err := c.readPacket()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.t.Fatalf("connection still open: %v", err)
			}
			return got
		}
		got = append(got, first)
	}
}

// assertAlive checks that the edge still takes a client and a publish.
func assertAlive(t *testing.T, e *Edge, sink *recSink) {
	t.Helper()
	n := len(sink.all())
	c := mustConnect3(t, tcpURL(e.Addr()), "alive-check", nil)
	if err := publish3(t, c, "fleet/dev/alive", 1, false, "yes"); err != nil {
		t.Fatalf("edge no longer serves: %v", err)
	}
	sink.waitMsgs(t, n+1)
	c.Disconnect(100)
}

func TestGarbageBytesCloseConnection(t *testing.T) {
	sink := &recSink{}
	e := startEdge(t, testConfig(t), sink)
	inputs := map[string][]byte{
		"http request":           []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"publish before connect": packet(0x30, str("a/b"), []byte("x")),
		"bad length":             {0x10, 0xff, 0xff, 0xff, 0xff, 0xff},
		"zeros":                  make([]byte, 64),
	}
	for name, b := range inputs {
		c := dialRaw(t, e.Addr())
		c.send(b)
		c.waitClosed()
		t.Logf("%s: closed", name)
	}
	// Garbage after a good CONNECT.
	for name, b := range map[string][]byte{
		"reserved type":   {0xf0, 0x02, 0x00, 0x00},
		"second connect":  connectPacket(4, "again", "", ""),
		"truncated topic": packet(0x30, []byte{0x00, 0x10, 'a'}),
	} {
		c := dialRaw(t, e.Addr())
		c.connect(4, "garbage-"+strings.ReplaceAll(name, " ", "-"), "", "")
		c.send(b)
		c.waitClosed()
		t.Logf("after connect, %s: closed", name)
	}
	assertAlive(t, e, sink)
}

func TestPacketTooLarge(t *testing.T) {
	sink := &recSink{}
	cfg := testConfig(t)
	cfg.MaxPacketSize = 1024
	e := startEdge(t, cfg, sink)

	lost := make(chan error, 1)
	c := mustConnect3(t, tcpURL(e.Addr()), "big", func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	})
	if err := publish3(t, c, "fleet/dev/blob", 1, false, strings.Repeat("x", 4096)); err == nil {
		t.Fatal("oversized publish acknowledged, want the connection closed")
	}
	select {
	case <-lost:
	case <-time.After(wait):
		t.Fatal("connection not closed")
	}
	if n := len(sink.all()); n != 0 {
		t.Fatalf("sink: got %d messages, want none", n)
	}

	// Raw: a length header alone over the limit is enough.
	r := dialRaw(t, e.Addr())
	r.connect(5, "big-raw", "", "")
	r.send(append([]byte{0x30}, varint(10<<20)...))
	r.waitClosed()

	assertAlive(t, e, sink)
}

// TestMalformedSubscribeDoesNotCrash sends the truncated MQTT 5 SUBSCRIBE
// packets that make mochi's decoder index past the end of the packet
// (packets.go SubscribeDecode: sub.decode(buf[offset]) with no bounds
// check), over a real socket.
func TestMalformedSubscribeDoesNotCrash(t *testing.T) {
	sink := &recSink{}
	cfg := testConfig(t)
	cfg.StateDir = t.TempDir()
	e := startEdge(t, cfg, sink)
	bodies := map[string][]byte{
		// packet id 1, no properties, filter "a", options byte missing
		"no options byte": {0x00, 0x01, 0x00, 0x00, 0x01, 'a'},
		// packet id 1, no properties, empty filter, options byte missing
		"empty filter": {0x00, 0x01, 0x00, 0x00, 0x00},
	}
	for name, body := range bodies {
		id := "sub-" + strings.ReplaceAll(name, " ", "-")
		c := dialRaw(t, e.Addr())
		c.connect(5, id, "", "")
		c.send(packet(0x82, body))
		c.waitClosed()
		testutil.Eventually(t, "the clean session of "+id+" to be gone", func() bool {
			_, ok := e.srv.Clients.Get(id)
			return !ok
		})
	}
	assertAlive(t, e, sink)
	// The counters mochi fixes in its deferred calls are right again.
	testutil.Eventually(t, "no client connected", func() bool { return atomic.LoadInt64(&e.srv.Info.ClientsConnected) == 0 })
}

// TestMochiSubscribeDecoder checks mochi's decoder on the truncated MQTT
// 5 SUBSCRIBE bodies of TestMalformedSubscribeDoesNotCrash: it must
// refuse each, by an error or by the panic the edge guards against
// (guarded, connPanic), and never decode a subscription from it. A
// well-formed body decodes, so that the check is not vacuous.
func TestMochiSubscribeDecoder(t *testing.T) {
	decode := func(body []byte) (err error, panicked bool) {
		defer func() {
			if recover() != nil {
				panicked = true
			}
		}()
		pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1, Remaining: len(body)}}
		return pk.SubscribeDecode(body), false
	}
	truncated := map[string][]byte{
		"no options byte": {0x00, 0x01, 0x00, 0x00, 0x01, 'a'},
		"empty filter":    {0x00, 0x01, 0x00, 0x00, 0x00},
	}
	for name, body := range truncated {
		err, panicked := decode(body)
		if err == nil && !panicked {
			t.Errorf("%s: got a decoded SUBSCRIBE, want an error or a panic", name)
		}
		t.Logf("%s: mochi refuses it with error %v, panic %v", name, err, panicked)
	}
	// packet id 1, no properties, filter "a", options QoS 1
	if err, panicked := decode([]byte{0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x01}); err != nil || panicked {
		t.Errorf("well-formed SUBSCRIBE: got error %v, panic %v, want it decoded", err, panicked)
	}
}

func TestWillIsSpooled(t *testing.T) { eachSink(t, testWillIsSpooled) }

func testWillIsSpooled(t *testing.T, sink *recSink, s Sink) {
	e := startEdge(t, testConfig(t), s)
	c := dialRaw(t, e.Addr())
	c.connect(4, "panel-9", "site/panel-9/alarm/offline", "gone")
	c.Close() // no DISCONNECT: the will goes out
	m := sink.waitMsgs(t, 1)[0]
	if m.Topic != "alarms" || string(m.Key) != "panel-9" || string(m.Value) != "gone" {
		t.Errorf("got %s key %q value %q, want alarms key panel-9 value gone", m.Topic, m.Key, m.Value)
	}
	if header(m, route.HeaderWill) != "1" || header(m, route.HeaderQoS) != "1" || header(m, route.HeaderTopic) != "site/panel-9/alarm/offline" {
		t.Errorf("headers: got %v, want will=1 qos=1 topic=site/panel-9/alarm/offline", m.Headers)
	}
}

func TestNoWillsWhenEdgeCloses(t *testing.T) {
	sink := &recSink{}
	e, err := New(testConfig(t), sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, e.Addr())
	c.connect(4, "panel-10", "site/panel-10/alarm/offline", "gone")
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	c.waitClosed()
	if n := sink.callCount(); n != 0 {
		t.Errorf("sink: got %d appends, want no will on the edge's own shutdown", n)
	}
}
