package edge

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

// connGoroutines counts the goroutines reading (mochi's read loop,
// parked or not) and writing (its queue's writer) MQTT connections.
func connGoroutines() (readers, writers int) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			for _, g := range strings.Split(string(buf[:n]), "\n\n") {
				if strings.Contains(g, "mqtt.(*Server).attachClient(") || strings.Contains(g, "mqtt.(*Client).readParkable(") {
					readers++
				}
				if strings.Contains(g, "mqtt.(*Client).writeQueued(") {
					writers++
				}
			}
			return readers, writers
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitParked waits until n connections are parked and no reader or
// writer goroutine runs.
func waitParked(t *testing.T, e *Edge, n int) {
	t.Helper()
	if e.poller == nil {
		t.Fatal("the edge has no poller")
	}
	testutil.Eventually(t, fmt.Sprintf("%d connections parked, no reader or writer goroutine", n), func() bool {
		r, w := connGoroutines()
		return e.poller.parked.Load() == int64(n) && r == 0 && w == 0
	})
}

// connectKeepalive is a CONNECT (MQTT 3.1.1, clean session) with the
// given keep-alive and a QoS 1 will.
func connectKeepalive(clientID string, keepalive uint16, willTopic, willPayload string) []byte {
	vh := append(str("MQTT"), 4, 0x02|0x04|0x08, byte(keepalive>>8), byte(keepalive))
	return packet(0x10, vh, str(clientID), str(willTopic), str(willPayload))
}

// Idle plain TCP connections hold no goroutine: the number of goroutines
// does not grow with the number of connected, silent devices.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	e := startEdge(t, testConfig(t), &recSink{})
	waitParked(t, e, 0)
	base := runtime.NumGoroutine()
	const n = 200
	for i := range n {
		c := dialRaw(t, e.Addr())
		c.connect(4, fmt.Sprintf("idle-%03d", i), "", "")
	}
	waitParked(t, e, n)
	if got := runtime.NumGoroutine() - base; got >= n/10 {
		t.Fatalf("%d idle connections: got %d more goroutines, want a handful at most", n, got)
	}
	if got := atomic.LoadInt64(&e.srv.Info.ClientsConnected); got != n {
		t.Fatalf("clients connected: got %d, want %d", got, n)
	}
}

// A parked device gets a message published to its subscription (a
// writer goroutine only while it is queued), and its next packets are
// read (a reader goroutine only while bytes come), parking again after
// each.
func TestParkedDeviceReceivesAndPublishes(t *testing.T) {
	sink := &recSink{}
	e := startEdge(t, testConfig(t), sink)
	c := dialRaw(t, e.Addr())
	c.connect(4, "dev-park", "", "")
	c.send(packet(0x82, []byte{0, 1}, str("fleet/dev-park/cmd"), []byte{1}))
	c.expectAck(0x90, 1, -1)
	waitParked(t, e, 1)

	for i := range 3 {
		payload := fmt.Sprint("command ", i)
		if err := e.Publish("fleet/dev-park/cmd", []byte(payload), 1, false); err != nil {
			t.Fatal(err)
		}
		first, body, err := c.readPacket()
		if err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		if first&0xf0 != 0x30 || !strings.HasSuffix(string(body), payload) {
			t.Fatalf("command %d: got %#x %q, want a PUBLISH of %q", i, first, body, payload)
		}
		id := body[2+len("fleet/dev-park/cmd"):][:2]
		waitParked(t, e, 1) // the writer is gone, the reader parked
		c.send(packet(0x40, id))

		c.send(publishPacket(1, uint16(10+i), "fleet/dev-park/t", payload, false))
		c.expectAck(0x40, uint16(10+i), -1)
		if m := sink.waitMsgs(t, i+1)[i]; string(m.Value) != payload {
			t.Fatalf("publish %d: got %q in the sink, want %q", i, m.Value, payload)
		}
		waitParked(t, e, 1)
	}
	c.send(packet(0xc0)) // PINGREQ
	if first, _, err := c.readPacket(); err != nil || first != 0xd0 {
		t.Fatalf("ping: got %#x, %v, want PINGRESP", first, err)
	}
	if cl, ok := e.srv.Clients.Get("dev-park"); !ok || cl.State.Inflight.Len() != 0 {
		t.Fatal("dev-park: want connected with nothing in flight (its PUBACKs read)")
	}
}

// A parked device that stays silent past one and a half keep-alive
// intervals is disconnected, and its will goes out.
func TestKeepAliveEndsParkedConnection(t *testing.T) {
	sink := &recSink{}
	e := startEdge(t, testConfig(t), sink)
	c := dialRaw(t, e.Addr())
	c.send(connectKeepalive("panel-ka", 1, "site/panel-ka/alarm/offline", "silent"))
	if first, _, err := c.readPacket(); err != nil || first != 0x20 {
		t.Fatalf("connack: got %#x, %v", first, err)
	}
	c.waitClosed() // fails after the test's generous deadline
	m := sink.waitMsgs(t, 1)[0]
	if string(m.Key) != "panel-ka" || string(m.Value) != "silent" {
		t.Fatalf("got key %q value %q, want panel-ka's will", m.Key, m.Value)
	}
	testutil.Eventually(t, "panel-ka gone", func() bool {
		_, ok := e.srv.Clients.Get("panel-ka")
		return !ok && e.poller.parked.Load() == 0
	})
}

// A peer that closes a parked connection is noticed: the read loop
// resumes, the will goes out and the session ends.
func TestPeerClosesParkedConnection(t *testing.T) {
	sink := &recSink{}
	e := startEdge(t, testConfig(t), sink)
	c := dialRaw(t, e.Addr())
	c.connect(4, "panel-gone", "site/panel-gone/alarm/offline", "gone")
	waitParked(t, e, 1)
	c.Close()
	m := sink.waitMsgs(t, 1)[0]
	if string(m.Key) != "panel-gone" || string(m.Value) != "gone" {
		t.Fatalf("got key %q value %q, want panel-gone's will", m.Key, m.Value)
	}
	testutil.Eventually(t, "panel-gone's session ended", func() bool {
		_, ok := e.srv.Clients.Get("panel-gone")
		return !ok && atomic.LoadInt64(&e.srv.Info.ClientsConnected) == 0
	})
	waitParked(t, e, 0)
}

// A device connecting again with the id of a parked session takes it
// over: the parked connection is closed.
func TestTakeoverOfParkedConnection(t *testing.T) {
	e := startEdge(t, testConfig(t), &recSink{})
	old := dialRaw(t, e.Addr())
	old.connect(4, "dev-twice", "", "")
	waitParked(t, e, 1)
	c := dialRaw(t, e.Addr())
	c.connect(4, "dev-twice", "", "")
	old.waitClosed()
	waitParked(t, e, 1)
	if got := atomic.LoadInt64(&e.srv.Info.ClientsConnected); got != 1 {
		t.Fatalf("clients connected: got %d, want 1", got)
	}
}

// Closing the edge closes parked connections and ends their sessions:
// Close returns, every device sees its connection closed, no goroutine
// is left.
func TestCloseEndsParkedConnections(t *testing.T) {
	sink := &recSink{}
	e := startEdge(t, testConfig(t), sink)
	const n = 50
	var conns []*rawConn
	for i := range n {
		c := dialRaw(t, e.Addr())
		c.connect(4, fmt.Sprintf("panel-%02d", i), fmt.Sprintf("site/panel-%02d/alarm/offline", i), "gone")
		conns = append(conns, c)
	}
	waitParked(t, e, n)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		c.waitClosed()
	}
	if got := atomic.LoadInt64(&e.srv.Info.ClientsConnected); got != 0 {
		t.Fatalf("after Close: got %d clients connected, want 0", got)
	}
	if r, w := connGoroutines(); r != 0 || w != 0 {
		t.Fatalf("after Close: got %d readers and %d writers, want none", r, w)
	}
	if n := sink.callCount(); n != 0 {
		t.Errorf("sink: got %d appends, want no will on the edge's own shutdown", n)
	}
}

// A packet whose bytes come slower than parkAfter (the reader's wait
// before it parks) is still read whole: the short read deadline of that
// wait gives way to mochi's keep-alive deadline, for reads through the
// pooled buffer and for large ones that go straight to the socket.
func TestSlowPacketOutlastsParkWait(t *testing.T) {
	sink := &recSink{}
	e := startEdge(t, testConfig(t), sink)
	c := dialRaw(t, e.Addr())
	c.connect(4, "dev-slow", "", "")
	for i, size := range []int{100, 3 * readBufSize} {
		payload := strings.Repeat("s", size)
		pk := publishPacket(1, uint16(i+1), "fleet/dev-slow/t", payload, false)
		c.send(pk[:1]) // the first byte wakes the parked reader
		time.Sleep(parkAfter + parkAfter/2)
		c.send(pk[1:20])
		time.Sleep(parkAfter + parkAfter/2)
		c.send(pk[20:])
		c.expectAck(0x40, uint16(i+1), -1)
		if m := sink.waitMsgs(t, i+1)[i]; string(m.Value) != payload {
			t.Fatalf("publish of %d bytes: got %d bytes in the sink", size, len(m.Value))
		}
	}
}

// A deadline is re-armed when it comes earlier, or later by more than an
// eighth of its distance from now; never left later than asked.
func TestDeadlineStale(t *testing.T) {
	now := time.Unix(1000, 0)
	var zero time.Time
	for _, tc := range []struct {
		name          string
		applied, want time.Time
		stale         bool
	}{
		{"none applied, none wanted", zero, zero, false},
		{"none applied, one wanted", zero, now.Add(time.Second), true},
		{"one applied, none wanted", now.Add(time.Second), zero, true},
		{"the same", now.Add(time.Second), now.Add(time.Second), false},
		{"earlier", now.Add(time.Second), now.Add(time.Second - time.Millisecond), true},
		{"later by an eighth", now.Add(700 * time.Millisecond), now.Add(800 * time.Millisecond), false},
		{"later by more than an eighth", now.Add(699 * time.Millisecond), now.Add(800 * time.Millisecond), true},
		{"keep-alive 60 s moved 5 s", now.Add(85 * time.Second), now.Add(90 * time.Second), false},
		{"keep-alive 60 s moved 12 s", now.Add(78 * time.Second), now.Add(90 * time.Second), true},
		{"applied already past", now.Add(-time.Millisecond), now.Add(200 * time.Millisecond), true},
	} {
		if got := stale(tc.applied, tc.want, now); got != tc.stale {
			t.Errorf("%s: stale = %v, want %v", tc.name, got, tc.stale)
		}
	}
}
