// SPDX-License-Identifier: MIT

package mqtt

// Tests of the fluxo patch in park.go. Run them in this directory
// (go test -race .): the root module's go test ./... does not enter it.

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

const testWait = 20 * time.Second

// allowHook lets every client in (hooks/auth imports this package).
type allowHook struct{ HookBase }

func (h *allowHook) ID() string { return "allow" }
func (h *allowHook) Provides(b byte) bool {
	return b == OnConnectAuthenticate || b == OnACLCheck
}
func (h *allowHook) OnConnectAuthenticate(*Client, packets.Packet) bool { return true }
func (h *allowHook) OnACLCheck(*Client, string, bool) bool              { return true }

// testServer is a server with every client allowed and the given ParkFn.
func testServer(t *testing.T, park ParkFn) *Server {
	t.Helper()
	s := New(&Options{InlineClient: true, ParkFn: park, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.AddHook(new(allowHook), nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// pipeClient is the device end of a net.Pipe.
type pipeClient struct {
	t *testing.T
	net.Conn
	r *bufio.Reader
}

func (c *pipeClient) send(b ...byte) {
	c.t.Helper()
	go func() { _, _ = c.Write(b) }() // net.Pipe writes wait for the reader
}

// read returns the next packet's first byte and body.
func (c *pipeClient) read() (byte, []byte) {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(testWait))
	first, err := c.r.ReadByte()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return first, body
}

// connectPacket is an MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s.
func connectPacket(id string) []byte {
	b := []byte{0x10, byte(12 + len(id)), 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}
	return append(b, id...)
}

func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), fn)
}

// A reader that ParkFn takes ends its goroutine (the listener's callback
// returns nil with the client connected); ResumeClient serves what came
// and parks again; once the peer hangs up, ResumeClient ends the client
// as the blocked reader would have.
func TestParkAndResume(t *testing.T) {
	parked := make(chan *Client, 1)
	s := testServer(t, func(cl *Client) bool { parked <- cl; return true })
	srvEnd, devEnd := net.Pipe()
	dev := &pipeClient{t: t, Conn: devEnd, r: bufio.NewReader(devEnd)}
	defer dev.Close()

	established := make(chan error, 1)
	go func() { established <- s.EstablishConnection("t1", srvEnd) }()
	dev.send(connectPacket("dev-1")...)
	if first, body := dev.read(); first != 0x20 || body[1] != 0 {
		t.Fatalf("connack: got %#x %v", first, body)
	}
	cl := <-parked
	if err := <-established; err != nil {
		t.Fatalf("establish: got %v, want nil (parked)", err)
	}
	if got := atomic.LoadInt64(&s.Info.ClientsConnected); got != 1 {
		t.Fatalf("parked: got %d clients connected, want 1", got)
	}

	dev.send(0xc0, 0) // PINGREQ
	resumed := make(chan error, 1)
	go func() { resumed <- s.ResumeClient(cl) }()
	if first, _ := dev.read(); first != 0xd0 {
		t.Fatalf("got %#x, want PINGRESP", first)
	}
	if got := <-parked; got != cl {
		t.Fatal("parked another client")
	}
	if err := <-resumed; err != nil {
		t.Fatalf("resume: got %v, want nil (parked again)", err)
	}

	dev.Close()
	if err := s.ResumeClient(cl); err == nil {
		t.Fatal("resume after the peer hung up: got nil, want the read error")
	}
	if got := atomic.LoadInt64(&s.Info.ClientsConnected); got != 0 {
		t.Fatalf("ended: got %d clients connected, want 0", got)
	}
	if _, ok := s.Clients.Get("dev-1"); ok {
		t.Fatal("ended: the clean session is still there")
	}
	s.Listeners.ClientsWg.Wait() // Done was called once
}

// Without ParkFn the reader stays in Read, as upstream.
func TestNoParkFn(t *testing.T) {
	s := testServer(t, nil)
	srvEnd, devEnd := net.Pipe()
	dev := &pipeClient{t: t, Conn: devEnd, r: bufio.NewReader(devEnd)}
	established := make(chan error, 1)
	go func() { established <- s.EstablishConnection("t1", srvEnd) }()
	dev.send(connectPacket("dev-2")...)
	dev.read()
	select {
	case err := <-established:
		t.Fatalf("establish returned %v with the client connected", err)
	case <-time.After(50 * time.Millisecond):
	}
	dev.Close()
	if err := <-established; err == nil {
		t.Fatal("establish after the peer hung up: got nil, want the read error")
	}
}

// Packets queued for a client are written in order, by a writer
// goroutine that exists only while the queue is not empty, whatever the
// number of goroutines queueing; past MaximumClientWritesPending a packet
// is refused.
func TestWriterOnDemand(t *testing.T) {
	s := testServer(t, nil)
	srvEnd, devEnd := net.Pipe()
	cl := s.NewClient(srvEnd, "t1", "dev-3", false)
	dev := &pipeClient{t: t, Conn: devEnd, r: bufio.NewReader(devEnd)}
	defer dev.Close()

	const producers, each = 4, 200
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "t", Payload: []byte{byte(p), byte(i)}}
				for !cl.queueWrite(pk, 8) {
					runtime.Gosched() // full: the writer is behind
				}
			}
		}(p)
	}
	next := make([]int, producers)
	for n := 0; n < producers*each; n++ {
		_, body := dev.read()
		p, i := int(body[len(body)-2]), int(body[len(body)-1])
		if i != next[p] {
			t.Fatalf("producer %d: got packet %d, want %d", p, i, next[p])
		}
		next[p]++
	}
	wg.Wait()
	deadline := time.Now().Add(testWait)
	for goroutinesIn("mqtt.(*Client).writeQueued(") > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := goroutinesIn("mqtt.(*Client).writeQueued("); n != 0 {
		t.Fatalf("queue empty: got %d writer goroutines, want 0", n)
	}
	if q := &cl.State.outbound; q.len() != 0 || q.pending != nil || atomic.LoadInt32(&cl.State.outboundQty) != 0 {
		t.Fatalf("queue empty: got %d waiting, slice %v, outboundQty %d", q.len(), q.pending, cl.State.outboundQty)
	}

	// Nobody reads: one packet in the writer's hands, max waiting, then refused.
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "t"}
	refused := 0
	for i := 0; i < 20; i++ {
		if !cl.queueWrite(pk, 8) {
			refused++
		}
	}
	if refused < 20-9 {
		t.Fatalf("with nobody reading: %d of 20 refused, want at least 11 (8 waiting, 1 writing)", refused)
	}
	cl.Stop(nil) // the blocked write fails, the writer drops the rest
	deadline = time.Now().Add(testWait)
	for goroutinesIn("mqtt.(*Client).writeQueued(") > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := goroutinesIn("mqtt.(*Client).writeQueued("); n != 0 {
		t.Fatalf("client stopped: got %d writer goroutines, want 0", n)
	}
}
