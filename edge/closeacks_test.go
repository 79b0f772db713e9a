package edge

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fluxo-io/fluxo/bridge/spool"
)

// slowSink stores each message after a pause, so that a Close lands while
// publishes are being stored.
type slowSink struct {
	recSink
	pause time.Duration
}

func (s *slowSink) Append(msgs ...spool.Message) error {
	time.Sleep(s.pause)
	return s.recSink.Append(msgs...)
}

// TestCloseAcknowledgesWhatItStored: devices publish QoS 1 while the edge
// closes. Every message the edge stored must have been acknowledged to its
// device: one stored but never acknowledged is sent again by the device to
// the next edge, and stored twice. (The reverse, acknowledged but not
// stored, is what the sink's durability guards.)
func TestCloseAcknowledgesWhatItStored(t *testing.T) {
	for round := range 3 {
		sink := &slowSink{pause: 2 * time.Millisecond}
		e := startEdge(t, testConfig(t), sink)
		const devices = 8
		var mu sync.Mutex
		acked := map[string]bool{}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for d := range devices {
			c, err := connect3(t, "tcp://"+e.Addr(), fmt.Sprintf("r%d-d%d", round, d), func(o *paho.ClientOptions) {
				o.SetAutoReconnect(false)
			})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					payload := fmt.Sprintf("d%d-%d", d, i)
					tok := c.Publish(fmt.Sprintf("fleet/d%d/telemetry", d), 1, false, payload)
					if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
						return // the edge closed
					}
					mu.Lock()
					acked[payload] = true
					mu.Unlock()
				}
			}()
		}
		// Let the devices publish for a while, then close under them.
		deadline := time.Now().Add(10 * time.Second)
		for len(sink.all()) < 50*devices && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		mu.Lock()
		for _, m := range sink.all() {
			if !acked[string(m.Value)] {
				t.Errorf("round %d: got %q stored, never acknowledged to its device (it would be sent again)", round, m.Value)
			}
		}
		mu.Unlock()
	}
}

// slowDisk is a spool whose fsyncs seem to take pause longer: each
// message's done comes that much later, so acknowledgements are still
// held when the edge closes.
type slowDisk struct {
	*spool.Spool
	pause time.Duration
}

func (s slowDisk) Submit(m spool.Message, done func(error)) error {
	return s.Spool.Submit(m, func(err error) { time.AfterFunc(s.pause, func() { done(err) }) })
}

// TestCloseAcknowledgesHeldWithSpool is TestCloseAcknowledgesWhatItStored
// with the real spool under SyncAlways behind a slow disk, so every PUBACK
// is held until its message is reported stored (ackconn.go) and many are
// still held at Close, and devices with persistent
// sessions on raw connections, several publishes in flight each: what
// counts is the PUBACKs the edge wrote before each connection ended.
// Every message in the spool after Close must have had its PUBACK
// written.
func TestCloseAcknowledgesHeldWithSpool(t *testing.T) {
	for round := range 2 {
		sc := spool.DefaultConfig()
		sc.Sync = spool.SyncAlways
		sp, err := spool.Open(t.TempDir(), sc)
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t)
		cfg.StateDir = t.TempDir()
		e := startEdge(t, cfg, slowDisk{sp, 100 * time.Millisecond})
		const devices, window = 50, 4
		var mu sync.Mutex
		acked := map[string]bool{}
		var wg sync.WaitGroup
		for d := range devices {
			c, err := net.Dial("tcp", e.Addr())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			r := bufio.NewReader(c)
			cp := connectPacket(4, fmt.Sprintf("r%d-d%d", round, d), "", "")
			cp[9] = 0 // connect flags: a persistent session
			if _, err := c.Write(cp); err != nil {
				t.Fatal(err)
			}
			if first, body, err := readRaw(r); err != nil || first != 0x20 || body[1] != 0 {
				t.Fatalf("connack: got %#x %v %v, want success", first, body, err)
			}
			var pmu sync.Mutex
			pending := map[uint16]string{}
			slots := make(chan struct{}, window)
			ended := make(chan struct{})
			wg.Add(2)
			go func() {
				defer wg.Done()
				defer close(ended)
				for {
					first, body, err := readRaw(r)
					if err != nil {
						return
					}
					if first != 0x40 || len(body) < 2 {
						continue
					}
					id := uint16(body[0])<<8 | uint16(body[1])
					pmu.Lock()
					payload := pending[id]
					delete(pending, id)
					pmu.Unlock()
					mu.Lock()
					acked[payload] = true
					mu.Unlock()
					<-slots
				}
			}()
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case slots <- struct{}{}:
					case <-ended:
						return
					}
					id := uint16(i%60000 + 1)
					payload := fmt.Sprintf("r%d-d%d-%d", round, d, i)
					pmu.Lock()
					pending[id] = payload
					pmu.Unlock()
					if _, err := c.Write(publishPacket(1, id, fmt.Sprintf("fleet/d%d/telemetry", d), payload, false)); err != nil {
						return
					}
				}
			}()
		}
		deadline := time.Now().Add(10 * time.Second)
		for sp.End(spool.Telemetry) < 20*devices && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		n, bad := 0, 0
		for off := sp.Start(spool.Telemetry); ; {
			recs, next, err := sp.Read(spool.Telemetry, off, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) == 0 {
				break
			}
			for _, m := range recs {
				n++
				if !acked[string(m.Value)] {
					bad++
					if bad < 5 {
						t.Errorf("round %d: got %q stored, its PUBACK never written (the device would send it again)", round, m.Value)
					}
				}
			}
			off = next
		}
		sp.Close()
		if n == 0 {
			t.Fatalf("round %d: nothing stored", round)
		}
	}
}

// TestCloseEndsConnectionsInOrder: a device that keeps sending while the
// edge closes gets every acknowledgement the edge owes it, then the end
// of the stream, not a reset. Closing a socket with unread bytes resets
// it, and a client that meets the reset while writing drops what it had
// not read yet: the acknowledgements of publishes the edge stored, which
// it then sends again.
func TestCloseEndsConnectionsInOrder(t *testing.T) {
	for round := range 3 {
		sink := &recSink{}
		e := startEdge(t, testConfig(t), sink)
		c := dialRaw(t, e.Addr())
		c.connect(4, fmt.Sprintf("linger-%d", round), "", "")

		// The device publishes without waiting for acknowledgements,
		// until the edge is gone.
		writerDone := make(chan struct{})
		go func() {
			defer close(writerDone)
			for i := 0; ; i++ {
				id := uint16(i%60000 + 1)
				p := packet(0x32, str("fleet/linger/telemetry"), []byte{byte(id >> 8), byte(id)}, []byte(fmt.Sprintf("m%d", i)))
				if _, err := c.Write(p); err != nil {
					return
				}
				if i%8 == 7 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
		acks := 0
		var readErr error
		closed := make(chan error, 1)
		for {
			first, _, err := c.readPacket()
			if err != nil {
				readErr = err
				break
			}
			if first == 0x40 {
				acks++
			}
			if acks == 200 {
				go func() { closed <- e.Close() }()
			}
		}
		c.Close()
		<-writerDone
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		if !errors.Is(readErr, io.EOF) {
			t.Errorf("round %d: the connection ended with %v, want the end of the stream", round, readErr)
		}
		if stored := len(sink.all()); acks != stored {
			t.Errorf("round %d: got %d acknowledgements for %d stored publishes", round, acks, stored)
		}
	}
}
