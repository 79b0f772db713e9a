package edge

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// asyncSink is a recSink that is also an AsyncSink. Submit answers through
// done from a goroutine of its own (so answers may come out of order),
// with recSink's error if one is set; in manual mode it keeps every
// message until the test answers it with release.
type asyncSink struct {
	*recSink
	manual bool

	mu   sync.Mutex
	held []submitted
}

type submitted struct {
	msg  spool.Message
	done func(error)
}

func (s *asyncSink) Submit(m spool.Message, done func(error)) error {
	// Submit copies what it keeps (AsyncSink): the edge reuses the
	// headers and key once it returns.
	m.Key = bytes.Clone(m.Key)
	hs := make([]kmsg.Header, len(m.Headers))
	for i, h := range m.Headers {
		hs[i] = kmsg.Header{Key: h.Key, Value: bytes.Clone(h.Value)}
	}
	m.Headers = hs
	if s.manual {
		s.mu.Lock()
		s.held = append(s.held, submitted{m, done})
		s.mu.Unlock()
		return nil
	}
	err := s.recSink.Append(m)
	go done(err)
	return nil
}

// waitHeld waits until n messages are held and returns them.
func (s *asyncSink) waitHeld(t *testing.T, n int) []submitted {
	t.Helper()
	var out []submitted
	testutil.Eventually(t, fmt.Sprintf("%d submitted messages", n), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		out = append(out[:0], s.held...)
		return len(out) >= n
	})
	return out
}

// release answers held message i with err, recording it on success.
func (s *asyncSink) release(i int, err error) {
	s.mu.Lock()
	m := s.held[i]
	s.mu.Unlock()
	if err == nil {
		s.recSink.Append(m.msg)
	}
	m.done(err)
}

// eachSink runs a test with a plain Sink (acknowledgement after Append)
// and with an AsyncSink (acknowledgements held by ackConn), both
// recording into sink.
func eachSink(t *testing.T, f func(t *testing.T, sink *recSink, s Sink)) {
	t.Run("sync", func(t *testing.T) {
		rs := &recSink{}
		f(t, rs, rs)
	})
	t.Run("async", func(t *testing.T) {
		rs := &recSink{}
		f(t, rs, &asyncSink{recSink: rs})
	})
}

func publishPacket(qos byte, id uint16, topic, payload string, v5 bool) []byte {
	vh := append(str(topic), byte(id>>8), byte(id))
	if v5 {
		vh = append(vh, 0) // properties
	}
	return packet(0x30|qos<<1, vh, []byte(payload))
}

// expectNothing checks that no packet arrives for a short while.
func (c *rawConn) expectNothing(what string) {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	first, body, err := c.readPacket()
	if err == nil {
		c.t.Fatalf("%s: got packet %#x %v, want nothing yet", what, first, body)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("%s: got %v, want nothing yet", what, err)
	}
	// A timed-out read may have consumed part of a packet; none was due.
	c.SetReadDeadline(time.Now().Add(wait))
}

// expectAck reads one packet and checks its type, packet id and, for
// MQTT 5, reason code.
func (c *rawConn) expectAck(first byte, id uint16, reason int) {
	c.t.Helper()
	f, body, err := c.readPacket()
	if err != nil {
		c.t.Fatalf("waiting for %#x id %d: %v", first, id, err)
	}
	if f != first || len(body) < 2 || uint16(body[0])<<8|uint16(body[1]) != id {
		c.t.Fatalf("got %#x %v, want %#x for packet id %d", f, body, first, id)
	}
	got := 0
	if len(body) > 2 {
		got = int(body[2])
	}
	if reason >= 0 && got != reason {
		c.t.Fatalf("%#x id %d: got reason code %#x, want %#x", first, id, got, reason)
	}
}

// Acknowledgements wait for the sink, leave in the order of the
// publishes whatever order the sink answers in, and the connection is
// read meanwhile.
func TestAsyncAcksHeldAndOrdered(t *testing.T) {
	sink := &asyncSink{recSink: &recSink{}, manual: true}
	e := startEdge(t, testConfig(t), sink)
	c := dialRaw(t, e.Addr())
	c.connect(4, "dev-1", "", "")
	for id := uint16(1); id <= 3; id++ {
		c.send(publishPacket(1, id, "fleet/dev-1/t", fmt.Sprint(id), false))
	}
	sink.waitHeld(t, 3) // all three read while none is stored
	c.expectNothing("before the sink answered")
	sink.release(2, nil)
	sink.release(1, nil)
	c.expectNothing("before the first publish is stored")
	sink.release(0, nil)
	for id := uint16(1); id <= 3; id++ {
		c.expectAck(0x40, id, -1)
	}
	msgs := sink.all()
	if len(msgs) != 3 {
		t.Fatalf("got %d messages, want 3", len(msgs))
	}
}

// QoS 2: the PUBREC waits for the sink; PUBREL/PUBCOMP then finish as usual.
func TestAsyncQoS2Flow(t *testing.T) {
	sink := &asyncSink{recSink: &recSink{}, manual: true}
	e := startEdge(t, testConfig(t), sink)
	c := dialRaw(t, e.Addr())
	c.connect(4, "dev-2", "", "")
	c.send(publishPacket(2, 7, "fleet/dev-2/t", "x", false))
	sink.waitHeld(t, 1)
	c.expectNothing("PUBREC before the sink answered")
	sink.release(0, nil)
	c.expectAck(0x50, 7, -1)
	c.send(packet(0x62, []byte{0, 7}))
	c.expectAck(0x70, 7, -1)
	if n := len(sink.all()); n != 1 {
		t.Fatalf("got %d messages, want the publish once", n)
	}
}

// MQTT 5: a message the sink fails gets a failure reason code in place of
// the success acknowledgement, in its position; the client stays
// connected, and a QoS 2 packet id whose PUBREC failed can be used again.
func TestAsyncFailureMQTT5(t *testing.T) {
	sink := &asyncSink{recSink: &recSink{}, manual: true}
	e := startEdge(t, testConfig(t), sink)
	c := dialRaw(t, e.Addr())
	c.connect(5, "dev-3", "", "")
	c.send(publishPacket(1, 1, "fleet/dev-3/t", "a", true))
	c.send(publishPacket(1, 2, "fleet/dev-3/t", "b", true))
	c.send(publishPacket(2, 3, "fleet/dev-3/t", "c", true))
	sink.waitHeld(t, 3)
	sink.release(2, errors.New("disk on fire"))
	sink.release(1, nil)
	sink.release(0, spool.ErrFull)
	c.expectAck(0x40, 1, 0x97)
	c.expectAck(0x40, 2, 0x00)
	c.expectAck(0x50, 3, 0x80)
	c.send(publishPacket(2, 3, "fleet/dev-3/t", "c", true))
	sink.waitHeld(t, 4)
	sink.release(3, nil)
	c.expectAck(0x50, 3, 0x00)
	c.send(packet(0x62, []byte{0, 3}))
	c.expectAck(0x70, 3, 0x00)
	msgs := sink.all()
	if len(msgs) != 2 || !bytes.Equal(msgs[0].Value, []byte("b")) || !bytes.Equal(msgs[1].Value, []byte("c")) {
		t.Fatalf("got %d messages, want b and c", len(msgs))
	}
}

// MQTT 3.1.1: no acknowledgement for a message the sink fails, nor for
// those after it; the connection is closed.
func TestAsyncFailureMQTT311(t *testing.T) {
	sink := &asyncSink{recSink: &recSink{}, manual: true}
	e := startEdge(t, testConfig(t), sink)
	c := dialRaw(t, e.Addr())
	c.connect(4, "dev-4", "", "")
	c.send(publishPacket(1, 1, "fleet/dev-4/t", "a", false))
	c.send(publishPacket(1, 2, "fleet/dev-4/t", "b", false))
	c.send(publishPacket(1, 3, "fleet/dev-4/t", "c", false))
	sink.waitHeld(t, 3)
	sink.release(1, spool.ErrFull)
	sink.release(2, nil)
	sink.release(0, nil)
	c.expectAck(0x40, 1, -1)
	if got := c.waitClosed(); len(got) != 0 {
		t.Fatalf("after the failed publish: got packets %#x before the close, want none (no PUBACK for 2 nor 3)", got)
	}
}

func TestPacketLen(t *testing.T) {
	for _, tc := range []struct {
		in        []byte
		n, header int
		ok        bool
	}{
		{[]byte{0x40, 0x02, 0, 1}, 4, 2, true},
		{[]byte{0x40, 0x02, 0}, 0, 0, false},
		{[]byte{0x30}, 0, 0, false},
		{append([]byte{0x30, 0x80, 0x01}, make([]byte, 128)...), 131, 3, true},
		{[]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, 0, 0, false},
	} {
		n, h, ok := packetLen(tc.in)
		if n != tc.n || h != tc.header || ok != tc.ok {
			t.Errorf("packetLen(%x): got %d, %d, %v, want %d, %d, %v", tc.in, n, h, ok, tc.n, tc.header, tc.ok)
		}
	}
}

// The edge on a real spool under SyncAlways: many devices with several
// publishes in flight each; every acknowledged publish is in the spool
// and readable (so fsynced: the spool publishes records only after their
// fsync), each device's in order.
func TestSpoolAsyncAcks(t *testing.T) {
	sc := spool.DefaultConfig()
	sc.SegmentBytes = 1 << 20
	sc.MaxBytes = 64 << 20
	sc.MaxMessageBytes = 64 << 10
	sp, err := spool.Open(t.TempDir(), sc)
	if err != nil {
		t.Fatal(err)
	}
	e := startEdge(t, testConfig(t), sp)
	const devices, each, window = 20, 60, 8
	var wg sync.WaitGroup
	for d := 0; d < devices; d++ {
		c := mustConnect3(t, tcpURL(e.Addr()), fmt.Sprintf("dev-%02d", d), nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var toks []paho.Token
			for i := 0; i < each; i++ {
				if len(toks) == window {
					if !toks[0].WaitTimeout(wait) || toks[0].Error() != nil {
						t.Errorf("publish: %v", toks[0].Error())
						return
					}
					toks = toks[1:]
				}
				toks = append(toks, c.Publish(fmt.Sprintf("fleet/dev-%02d/t", d), 1, false, fmt.Sprint(i)))
			}
			for _, tok := range toks {
				if !tok.WaitTimeout(wait) || tok.Error() != nil {
					t.Errorf("publish: %v", tok.Error())
				}
			}
		}()
	}
	wg.Wait()
	// Acknowledged means stored: everything is readable at once.
	if got := sp.Stats()[spool.Telemetry].Spool; got != devices*each {
		t.Fatalf("spool holds %d records, want %d", got, devices*each)
	}
	recs, _, err := sp.Read(spool.Telemetry, 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]int{}
	for _, r := range recs {
		if want := fmt.Sprint(next[string(r.Key)]); string(r.Value) != want {
			t.Fatalf("device %s: got %q, want %q (per-device order)", r.Key, r.Value, want)
		}
		next[string(r.Key)]++
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
}
