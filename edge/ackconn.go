package edge

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fluxo-io/fluxo/bridge/spool"
)

// Asynchronous acknowledgements.
//
// With an AsyncSink, OnPublish submits a QoS 1 message and returns at
// once, so mochi goes on to write the PUBACK and to read the connection's
// next publish while the spool writes and fsyncs. The PUBACK must still
// not reach the device before the message is stored, and mochi has no way
// to defer it (a hook can only let it go or replace it; mochi writes it
// as soon as OnPublish returns, server.go lines 941-963). So the edge sits
// under mochi instead: every connection mochi serves is an ackConn, which
// parses the packets mochi writes (the fixed header and packet id are
// enough) and holds each PUBACK that OnPublish registered until the spool
// reports the message stored, with everything mochi wrote after it queued
// behind it, in order. mochi's own state (inflight, Receive Maximum, DUP
// handling, retained messages, delivery to local subscribers) is
// untouched.
//
// QoS 2 is not held this way: mochi keeps an inbound QoS 2 publish's
// PUBREC as inflight session state, persisted by the bolt store and
// resent by mochi itself on a reconnect, so OnPublish waits for the
// spool before mochi records it (the PUBREC then passes through, behind
// any held PUBACK).
//
// When the spool fails a message whose PUBACK is held, the success PUBACK
// is not sent: on MQTT 5 a PUBACK with the failure reason code goes out in
// its place (same position in the stream), on MQTT 3.1.1 the connection
// is closed.
const (
	// maxHeldBytes bounds what one connection queues behind held
	// acknowledgements; mochi's writes to it then wait.
	maxHeldBytes = 1 << 20
	// closeFlushTimeout bounds how long a closed connection keeps
	// writing what it held (acknowledgements whose fsync is under way).
	closeFlushTimeout = 2 * time.Second
)

// heldAck is the PUBACK of one QoS 1 publish, held until its spool
// append is done.
type heldAck struct {
	kick chan struct{} // the connection's when hold registered it
	cl   *mqtt.Client
	id   uint16
	err  error       // the Sink's answer; written before done is set
	done atomic.Bool // the Sink answered
}

// finish is the Submit callback: it records the outcome and wakes the
// connection's flusher. It does not block.
func (h *heldAck) finish(err error) {
	h.err = err
	h.done.Store(true)
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// outItem is a run of packets mochi wrote; ack, when set, is held.
type outItem struct {
	b   []byte
	ack *heldAck
}

// ackConn is a connection under mochi that holds acknowledgements back.
// mochi's reader, writer and any goroutine publishing to the client call
// Write (mochi serializes them with the client's lock); the flusher
// goroutine, started when something is held, writes the queue out.
//
// An idle connection (nothing registered, nothing queued) holds no
// flusher, no queue, no wake-up channel and no write buffer: the flusher
// exits once the queue is empty, and whatever it and hold allocated is
// dropped with it (see idle), so that the thousands of devices an edge
// serves cost only this struct while they are silent.
type ackConn struct {
	net.Conn
	e *Edge

	mu       sync.Mutex
	space    sync.Cond     // signalled when the queue shrinks or the connection fails; waited on by Write
	kick     chan struct{} // capacity 1: a held acknowledgement finished, or Close was called; nil while idle
	expect   []*heldAck    // registered by OnPublish, not yet written by mochi, in order
	queue    []outItem     // written by mochi, not yet on the wire, in order
	queued   int           // bytes in queue
	flushing bool          // the flusher runs; only it writes to Conn
	closing  bool          // Close was called
	err      error         // sticky: the connection failed or was closed
	partial  []byte        // an incomplete packet from the last Write

	// note is what OnPublish learnt of the publish it accepted last, for
	// devicesHook.OnPublished, which mochi calls next for the same
	// packet. Both run on the connection's reader goroutine, which alone
	// touches note: no lock.
	note publishNote
}

// publishNote is what OnPublish learnt of an accepted publish: its topic,
// the route's lane and the record key (Router.Match's answer), and the
// receive time. The registry counts every publish by them, and matching
// the topic again and reading the clock again cost about 3% of the edge's
// CPU under load.
type publishNote struct {
	set   bool
	topic string
	lane  spool.Lane
	key   string
	at    time.Time
}

// takeNote returns the note OnPublish left for the publish on topic, and
// clears it.
func (c *ackConn) takeNote(topic string) (publishNote, bool) {
	n := c.note
	c.note = publishNote{}
	return n, n.set && n.topic == topic
}

func newAckConn(c net.Conn, e *Edge) *ackConn {
	a := &ackConn{Conn: c, e: e}
	a.space.L = &a.mu
	return a
}

// flushBufs are the flushers' write buffers, shared by all connections:
// a connection holds one only while its flusher runs.
var flushBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxPooledFlushBuf is the largest write buffer put back in flushBufs.
const maxPooledFlushBuf = 64 << 10

// releaseIfIdle drops the wake-up channel and the slices' backing arrays
// once nothing is registered, queued or being flushed. Called with mu
// held.
func (c *ackConn) releaseIfIdle() {
	if len(c.expect) == 0 && len(c.queue) == 0 && !c.flushing {
		c.kick, c.expect, c.queue, c.queued = nil, nil, nil, 0
	}
}

// idle reports whether the connection holds nothing beyond itself: no
// registration, no queue, no flusher and no wake-up channel.
func (c *ackConn) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kick == nil && c.expect == nil && c.queue == nil && c.queued == 0 && !c.flushing && c.partial == nil
}

// wake signals the flusher, if any, without blocking. Called with mu
// held.
func (c *ackConn) wake() {
	if c.kick != nil {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// Unwrap returns the wrapped connection (see peerCertificate).
func (c *ackConn) Unwrap() net.Conn { return c.Conn }

// hold registers the PUBACK mochi is about to write for a QoS 1 publish;
// called by OnPublish before it submits the message.
func (c *ackConn) hold(cl *mqtt.Client, id uint16) *heldAck {
	c.mu.Lock()
	if c.kick == nil {
		c.kick = make(chan struct{}, 1)
	}
	h := &heldAck{kick: c.kick, cl: cl, id: id}
	c.expect = append(c.expect, h)
	c.mu.Unlock()
	return h
}

// unhold withdraws a registration whose message was refused at once.
func (c *ackConn) unhold(h *heldAck) {
	c.mu.Lock()
	for i, x := range c.expect {
		if x == h {
			c.expect = append(c.expect[:i], c.expect[i+1:]...)
			break
		}
	}
	c.releaseIfIdle()
	c.mu.Unlock()
}

// match returns the held acknowledgement registered for a PUBACK with
// this id, or nil. Registrations before it are dropped: mochi writes
// acknowledgements in the order OnPublish saw the publishes, so an older
// one it did not write (its write failed) never will be. Called with mu
// held.
func (c *ackConn) match(id uint16) *heldAck {
	for i, h := range c.expect {
		if h.id == id {
			clear(c.expect[:i+1])
			c.expect = c.expect[i+1:]
			if len(c.expect) == 0 {
				c.expect = c.expect[:0:0]
			}
			return h
		}
	}
	return nil
}

// Write takes packets from mochi. It writes them at once when nothing is
// held, and queues them otherwise; it waits while too much is queued.
func (c *ackConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.queued > maxHeldBytes && c.err == nil {
		c.space.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	data := b
	if len(c.partial) > 0 {
		data = append(c.partial, b...)
		c.partial = nil
	}
	// Split data into runs of packets, cutting before and after each
	// acknowledgement that is held. mochi writes one packet per Write
	// here, so a few spans on the stack are enough (more spill to the
	// heap).
	type span struct {
		from, to int
		ack      *heldAck
	}
	var spansBuf [4]span
	spans := spansBuf[:0]
	start, p := 0, 0
	for p < len(data) {
		n, hl, ok := packetLen(data[p:])
		if !ok {
			break
		}
		typ := data[p] >> 4
		if typ == packets.Puback && n >= hl+2 && len(c.expect) > 0 {
			id := uint16(data[p+hl])<<8 | uint16(data[p+hl+1])
			if h := c.match(id); h != nil && (!h.done.Load() || h.err != nil) {
				if p > start {
					spans = append(spans, span{from: start, to: p})
				}
				spans = append(spans, span{from: p, to: p + n, ack: h})
				start = p + n
			}
		}
		p += n
	}
	if p < len(data) {
		// mochi writes whole packets; keep a partial one for the next Write.
		c.partial = append([]byte(nil), data[p:]...)
	}
	if p > start {
		spans = append(spans, span{from: start, to: p})
	}
	if len(spans) == 0 {
		return len(b), nil
	}
	if len(c.queue) == 0 && !c.flushing && spans[0].ack == nil && len(spans) == 1 {
		// Nothing held: write through, as mochi would.
		if _, err := c.Conn.Write(data[spans[0].from:spans[0].to]); err != nil {
			c.err = err
			return 0, err
		}
		c.releaseIfIdle()
		return len(b), nil
	}
	// The spans are consecutive: one copy keeps them all.
	first := spans[0].from
	kept := bytes.Clone(data[first:p])
	for _, sp := range spans {
		it := outItem{b: kept[sp.from-first : sp.to-first : sp.to-first], ack: sp.ack}
		c.queue = append(c.queue, it)
		c.queued += len(it.b)
	}
	if !c.flushing {
		c.flushing = true
		go c.flush()
	}
	return len(b), nil
}

// packetLen returns the length of the MQTT packet at the start of b and
// of its fixed header, or false if b does not hold all of it.
func packetLen(b []byte) (n, header int, ok bool) {
	rem, hl := 0, 1
	for shift := 0; ; shift += 7 {
		if hl >= len(b) || hl > 4 {
			return 0, 0, false
		}
		c := b[hl]
		hl++
		rem |= int(c&0x7f) << shift
		if c < 0x80 {
			break
		}
	}
	if hl+rem > len(b) {
		return 0, 0, false
	}
	return hl + rem, hl, true
}

// flush writes the queue out, waiting at each held acknowledgement for its
// outcome, until the queue is empty.
//
// The flusher borrows a write buffer from flushBufs and gives it back when
// it exits; it then leaves the connection idle (releaseIfIdle).
func (c *ackConn) flush() {
	var deadline <-chan time.Time
	var timer *time.Timer
	bp := flushBufs.Get().(*[]byte)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if cap(*bp) <= maxPooledFlushBuf {
			*bp = (*bp)[:0]
			flushBufs.Put(bp)
		}
	}()
	for {
		c.mu.Lock()
		out := (*bp)[:0]
		var failed *heldAck
		i := 0
		for ; i < len(c.queue); i++ {
			it := c.queue[i]
			if it.ack != nil {
				if !it.ack.done.Load() {
					break
				}
				if it.ack.err != nil {
					failed = it.ack
					i++
					break
				}
			}
			out = append(out, it.b...)
			c.queued -= len(it.b)
		}
		if failed != nil {
			c.queued -= len(c.queue[i-1].b)
		}
		clear(c.queue[:i])
		c.queue = c.queue[i:]
		if len(c.queue) == 0 {
			c.queue = nil
		}
		if c.err != nil {
			c.dropLocked()
			c.releaseIfIdle()
			c.mu.Unlock()
			return
		}
		if failed != nil {
			out = c.refusal(out, failed)
		}
		if len(out) == 0 && failed == nil {
			if len(c.queue) == 0 {
				c.flushing = false
				closing := c.closing
				if closing {
					c.err = net.ErrClosed
				}
				c.space.Broadcast()
				c.releaseIfIdle()
				c.mu.Unlock()
				if closing {
					c.Conn.Close()
				}
				return
			}
			closing, kick := c.closing, c.kick
			c.mu.Unlock()
			if closing && deadline == nil {
				// From now on the deadline applies.
				timer = time.NewTimer(closeFlushTimeout)
				deadline = timer.C
			}
			select {
			case <-kick:
			case <-deadline:
				c.fail(errors.New("edge: held acknowledgements not finished in time"))
			}
			continue
		}
		c.space.Broadcast()
		c.mu.Unlock()
		*bp = out[:0] // keep the buffer if append grew it
		if len(out) > 0 {
			if _, err := c.Conn.Write(out); err != nil {
				c.fail(err)
				continue
			}
		}
		if failed != nil && failed.cl.Properties.ProtocolVersion < 5 {
			// MQTT 3.1.1 has no negative acknowledgement.
			c.fail(errSpoolRefused)
			failed.cl.Stop(spoolCode(failed.err))
		}
	}
}

var errSpoolRefused = errors.New("edge: the spool refused a publish")

// refusal handles a held PUBACK whose message the spool did not take,
// called by the flusher with mu held: on MQTT 5 it appends the failure
// PUBACK to out; on MQTT 3.1.1 it appends nothing (the caller closes the
// connection).
func (c *ackConn) refusal(out []byte, h *heldAck) []byte {
	e := c.e
	code := spoolCode(h.err)
	e.metrics.spoolFailures[1].Inc()
	e.plog.Warn().Err(h.err).Str("client", h.cl.ID).Uint8("qos", 1).Uint8("reason_code", code.Code).
		Msg("publish refused: spool append failed")
	if h.cl.Properties.ProtocolVersion < 5 {
		return out
	}
	ack := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Puback},
		PacketID:        h.id,
		ReasonCode:      code.Code,
		Properties:      packets.Properties{ReasonString: code.Reason},
		ProtocolVersion: 5,
	}
	ack.Mods.MaxSize = h.cl.Properties.Props.MaximumPacketSize
	if h.cl.Properties.Props.RequestProblemInfoFlag && h.cl.Properties.Props.RequestProblemInfo == 0 {
		ack.Mods.DisallowProblemInfo = true
	}
	var buf bytes.Buffer
	if err := ack.PubackEncode(&buf); err != nil {
		return out
	}
	return append(out, buf.Bytes()...)
}

// fail marks the connection failed, drops the queue and closes it.
func (c *ackConn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.dropLocked()
	c.mu.Unlock()
	c.Conn.Close()
}

// dropLocked empties the queue and stops the flusher's duty. Called with
// mu held.
func (c *ackConn) dropLocked() {
	c.queue, c.queued, c.expect = nil, 0, nil
	c.flushing = false
	c.space.Broadcast()
}

// Close stops reading at once but lets the flusher write what it holds
// (acknowledgements whose fsync is under way, and whatever mochi wrote
// after them, such as a DISCONNECT), for at most closeFlushTimeout; the
// connection is closed after that.
func (c *ackConn) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	c.wake() // the flusher, if any, switches to closeFlushTimeout
	if !c.flushing || c.err != nil {
		if c.err == nil {
			c.err = net.ErrClosed
		}
		c.space.Broadcast()
		c.mu.Unlock()
		return c.Conn.Close()
	}
	c.mu.Unlock()
	_ = c.Conn.SetReadDeadline(time.Now())
	_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	return nil
}
