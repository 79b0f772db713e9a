// SPDX-License-Identifier: MIT

package mqtt

// fluxo patch: a connection that waits for bytes holds no goroutine.
//
// Upstream runs two goroutines per connection for as long as it is open:
// the reader (attachClient → Client.Read), blocked in Read between
// packets, and the writer (Client.WriteLoop), blocked on the client's
// outbound channel. Here the connection's read loop is split into setup
// (attachClient: CONNECT to CONNACK), a resumable step that serves what
// is readable (serveClient) and teardown (endClient, what the deferred
// calls and the tail of attachClient did; attachClient, in server.go,
// ends by calling serveClient), so that:
//
//   - when Options.ParkFn is set, the reader offers it the connection
//     each time it has no buffered bytes left; if ParkFn takes it, the
//     reader's goroutine ends and ParkFn's owner calls ResumeClient on a
//     new goroutine once the connection is readable, its keep-alive has
//     passed or it is closed;
//   - the writer runs only while packets are queued (outboundPacketsQueue).
//
// Without ParkFn the reader blocks in Read as upstream does.

import (
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// ParkFn is offered a client whose reader has nothing buffered, after
// the read deadline for its next packet is set (keep-alive × 1.5). If it
// returns true it owns the reader: the calling goroutine returns without
// touching the client again, and ParkFn's owner must call
// Server.ResumeClient(cl) exactly once, on another goroutine, when the
// connection is readable or closed, or when that read deadline has
// passed (the resumed reader then fails its read with a timeout and ends
// the connection, as a blocked reader would have). If it returns false,
// the reader blocks in Read.
type ParkFn func(cl *Client) bool

// ResumeClient continues reading a client that Options.ParkFn parked,
// on the calling goroutine, until the client parks again (it returns
// nil) or its connection ends (it returns what ended it, as the
// listener's establish callback would have).
func (s *Server) ResumeClient(cl *Client) error {
	return s.serveClient(cl, true)
}

// serveClient reads and handles the client's packets until the reader
// parks or the connection ends; resumed says the reader was parked, and
// goes straight to the read it was waiting for.
func (s *Server) serveClient(cl *Client, resumed bool) (err error) {
	parked := false
	defer func() { // on a normal end and on a panic (upstream's deferred calls)
		if !parked {
			atomic.AddInt64(&s.Info.ClientsConnected, -1)
			cl.Stop(nil)
			s.Listeners.ClientsWg.Done()
		}
	}()

	parked, err = cl.readParkable(s.receivePacket, s.Options.ParkFn, resumed)
	if parked {
		return nil
	}
	s.endClient(cl, err)
	return err
}

// endClient is the end of a connection whose read loop ended with err
// (nil when the client was stopped).
func (s *Server) endClient(cl *Client, err error) {
	if err != nil {
		s.sendLWT(cl)
		cl.Stop(err)
	} else {
		cl.Properties.Will = Will{} // [MQTT-3.14.4-3] [MQTT-3.1.2-10]
	}
	s.Log.Debug("client disconnected", "error", err, "client", cl.ID, "remote", cl.Net.Remote, "listener", cl.Net.Listener)

	expire := (cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.SessionExpiryInterval == 0) || (cl.Properties.ProtocolVersion < 5 && cl.Properties.Clean)
	s.hooks.OnDisconnect(cl, err, expire)

	if expire && !cl.IsTakenOver() {
		cl.ClearInflights()
		s.UnsubscribeClient(cl)
		s.Clients.Delete(cl.ID) // [MQTT-4.1.0-2] ![MQTT-3.1.2-23]
	}
}

// readParkable is Client.Read with a place to park: before each packet,
// once the read deadline is set, a reader with nothing buffered is
// offered to park. It reports whether park took the reader. A resumed
// reader goes straight to the read it was parked before.
func (cl *Client) readParkable(packetHandler ReadFn, park ParkFn, resumed bool) (bool, error) {
	for {
		if !resumed {
			if cl.Closed() {
				return false, nil
			}

			cl.refreshDeadline(cl.State.Keepalive)
			if park != nil && cl.Net.bconn != nil && cl.Net.bconn.Buffered() == 0 && park(cl) {
				return true, nil
			}
		}
		resumed = false

		fh := new(packets.FixedHeader)
		err := cl.ReadFixedHeader(fh)
		if err != nil {
			return false, err
		}

		pk, err := cl.ReadPacket(fh)
		if err != nil {
			return false, err
		}

		err = packetHandler(cl, pk) // Process inbound packet.
		if err != nil {
			return false, err
		}
	}
}

// outboundPacketsQueue is a client's queue of packets to write (upstream: a
// channel of MaximumClientWritesPending packets, allocated with the
// client, and a writer goroutine ranging over it for the client's life).
// Its slice exists only while packets are queued, and its writer
// goroutine only while the slice is not empty.
type outboundPacketsQueue struct {
	mu      sync.Mutex
	pending []*packets.Packet // [head:] waits to be written; nil when empty
	head    int
	writing bool         // a writer goroutine runs (it clears this when it finds the queue empty)
	n       atomic.Int32 // len(pending) - head
}

// len returns the number of packets waiting (not counting the one the
// writer is writing).
func (q *outboundPacketsQueue) len() int { return int(q.n.Load()) }

// queueWrite queues pk for the client's writer, starting one if none
// runs, or reports false if max packets are already waiting.
func (cl *Client) queueWrite(pk *packets.Packet, max int32) bool {
	q := &cl.State.outbound
	q.mu.Lock()
	if int32(len(q.pending)-q.head) >= max {
		q.mu.Unlock()
		return false
	}
	if q.head > 0 && len(q.pending) == cap(q.pending) { // reuse the written part
		n := copy(q.pending, q.pending[q.head:])
		clear(q.pending[n:])
		q.pending, q.head = q.pending[:n], 0
	}
	q.pending = append(q.pending, pk)
	q.n.Add(1)
	atomic.AddInt32(&cl.State.outboundQty, 1)
	start := !q.writing
	q.writing = true
	q.mu.Unlock()
	if start {
		go cl.writeQueued()
	}
	return true
}

// writeQueued writes the queued packets in order and returns once the
// queue is empty, or drops them if the client is closed. A packet queued
// after the queue was found empty starts another writer (queueWrite sees
// writing false): the check and the flag change under one lock, so no
// packet waits without a writer.
func (cl *Client) writeQueued() {
	q := &cl.State.outbound
	for {
		q.mu.Lock()
		if q.head == len(q.pending) || cl.Closed() {
			dropped := int32(len(q.pending) - q.head)
			q.pending, q.head, q.writing = nil, 0, false
			q.n.Add(-dropped)
			q.mu.Unlock()
			atomic.AddInt32(&cl.State.outboundQty, -dropped)
			return
		}
		pk := q.pending[q.head]
		q.pending[q.head] = nil
		q.head++
		q.n.Add(-1)
		q.mu.Unlock()

		if err := cl.WritePacket(*pk); err != nil {
			cl.ops.log.Debug("failed publishing packet", "error", err, "client", cl.ID, "packet", pk)
		}
		atomic.AddInt32(&cl.State.outboundQty, -1)
	}
}
