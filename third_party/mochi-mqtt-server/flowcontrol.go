// fluxo patch: flow control towards a client (MQTT 5 §4.9), not in
// mochi v2.7.9; see README.md in this folder.
//
// A client's Receive Maximum is its send quota: the server never has more
// QoS 1/2 publishes to it unacknowledged. Every outbound QoS 1/2 publish
// enters the session (Inflight) first, in order; it is handed to the
// client's writer when quota is left, no older publish waits and the
// writer's queue has room, and waits otherwise. A PUBACK, a PUBREC with
// an error code or a PUBCOMP deletes the entry it acknowledges and so
// gives its quota back; the waiting publishes are then released oldest
// first. Releases happen under the Inflight lock, so the writer's queue
// receives them in the session's order. QoS 0 publishes do not enter the
// session and are not counted.
//
// Releases are attempted after each packet the client sends
// (Server.processPacket), when a publish for the client arrives, after a
// reconnect has resent the session, and once a second with the inflight
// expiry sweep (a release that found the writer's queue full).

package mqtt

import (
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// push adds a new outbound QoS 1/2 publish to the session, behind the
// publishes already waiting, then releases what the quota allows through
// send. Without send (client not connected) the publish only waits.
func (i *Inflight) push(pk packets.Packet, send func(*packets.Packet) bool) {
	i.Lock()
	defer i.Unlock()

	seq := i.seq
	i.seq++
	if old, ok := i.internal[pk.PacketID]; ok { // not expected: ids are picked free
		switch old.state {
		case inflightSent:
			i.held--
		case inflightQueued:
			i.waiting.Add(-1)
		}
	}
	i.internal[pk.PacketID] = inflightEntry{pk: pk, seq: seq, state: inflightQueued}
	i.queue = append(i.queue, queuedRef{seq: seq, id: pk.PacketID})
	i.waiting.Add(1)
	if send != nil {
		i.releaseLocked(send)
	}
}

// release hands waiting publishes, oldest first, to send while quota is
// left and send takes them. It returns how many it handed over.
func (i *Inflight) release(send func(*packets.Packet) bool) int {
	if i.waiting.Load() == 0 {
		return 0
	}
	i.Lock()
	defer i.Unlock()
	return i.releaseLocked(send)
}

// releaseLocked is release, with i locked.
func (i *Inflight) releaseLocked(send func(*packets.Packet) bool) int {
	n := 0
	for len(i.queue) > 0 && (i.maximumSendQuota == 0 || i.held < i.maximumSendQuota) {
		r := i.queue[0]
		e, ok := i.internal[r.id]
		if !ok || e.seq != r.seq || e.state != inflightQueued {
			i.queue[0] = queuedRef{}
			i.queue = i.queue[1:]
			continue // stale: deleted (expired) while waiting
		}
		pk := e.pk
		if e.sent {
			pk.FixedHeader.Dup = true // [MQTT-3.3.1-1] [MQTT-4.4.0-1]
		}
		if !send(&pk) {
			break // the writer's queue is full: retried later
		}
		i.queue[0] = queuedRef{}
		i.queue = i.queue[1:]
		e.state, e.sent = inflightSent, true
		i.internal[r.id] = e
		i.held++
		i.waiting.Add(-1)
		n++
	}
	if len(i.queue) == 0 {
		i.queue = nil
	}
	return n
}

// resendable returns the packets other than publishes that a reconnect
// writes again, in the session's order: PUBRELs of outbound QoS 2 flows,
// which hold send quota from now on (and whatever else an older store
// put in the session).
func (i *Inflight) resendable() []packets.Packet {
	i.Lock()
	defer i.Unlock()
	var es []inflightEntry
	for id, e := range i.internal {
		if e.pk.FixedHeader.Type == packets.Publish {
			continue
		}
		if e.pk.FixedHeader.Type == packets.Pubrel && e.state != inflightSent {
			e.state = inflightSent
			i.internal[id] = e
			i.held++
		}
		es = append(es, e)
	}
	sortEntries(es)
	pks := make([]packets.Packet, len(es))
	for k, e := range es {
		pks[k] = e.pk
	}
	return pks
}

// enqueue hands pk to the client's writer without waiting; false if the
// client is not connected or its write queue (MaximumClientWritesPending)
// is full.
func (cl *Client) enqueue(pk *packets.Packet) bool {
	if cl.Net.Conn == nil || cl.Closed() {
		return false
	}
	return cl.queueWrite(pk, cl.ops.options.Capabilities.MaximumClientWritesPending) // park.go
}

// releaseQueued sends the client the publishes waiting for its send
// quota that the quota now allows, oldest first.
func (cl *Client) releaseQueued() {
	cl.State.Inflight.release(cl.enqueue)
}

// queueToClient puts an outbound QoS 1/2 publish (its packet id set) in
// the client's session and sends it when flow control allows: at once,
// or once the publishes before it are acknowledged.
func (s *Server) queueToClient(cl *Client, out packets.Packet) error {
	atomic.AddInt64(&s.Info.Inflight, 1)
	s.hooks.OnQosPublish(cl, out, out.Created, 0) // [MQTT-4.3.2-3] [MQTT-4.3.3-3]
	if cl.Net.Conn == nil || cl.Closed() {
		cl.State.Inflight.push(out, nil)
		return packets.CodeDisconnect
	}
	cl.State.Inflight.push(out, cl.enqueue)
	return nil
}
