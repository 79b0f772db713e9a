// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co
// SPDX-FileContributor: mochi-co

package mqtt

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// fluxo patch: flow control towards the client (MQTT 5 §4.9). Upstream
// parked the QoS 1/2 publishes past the client's Receive Maximum in the
// map with Expiry -1, released one per packet the client sent, deleted
// each released message from the session before it was acknowledged (so
// its PUBACK did not give the quota back: delivery stalled after Receive
// Maximum releases) and ordered the session by the low 16 bits of a
// creation time in seconds. Each entry now records the order in which it
// was added and whether it waits for send quota or holds some; the
// waiting publishes are released oldest first, as quota frees (see
// flowcontrol.go).

// inflightState is what an inflight entry is to flow control.
type inflightState uint8

const (
	// inflightOther: the packets kept for the client's own QoS 2
	// publishes (PUBREC, PUBCOMP), and entries set from outside (a
	// store) until the session is taken over by a connection.
	inflightOther inflightState = iota
	// inflightQueued: an outbound QoS 1/2 publish waiting for send quota.
	inflightQueued
	// inflightSent: an outbound publish written and not yet acknowledged
	// (PUBACK, PUBREC), or the PUBREL that followed its PUBREC and waits
	// for its PUBCOMP. It holds one unit of send quota.
	inflightSent
)

// inflightEntry is an inflight packet and its flow-control state.
type inflightEntry struct {
	pk    packets.Packet
	seq   uint64        // order in which the entry was added
	state inflightState // -
	sent  bool          // written to the client at least once: a resend carries DUP
}

// queuedRef is a waiting publish in Inflight.queue; seq tells it from a
// later entry reusing the packet id.
type queuedRef struct {
	seq uint64
	id  uint16
}

// Inflight is a map of InflightMessage keyed on packet id.
type Inflight struct {
	sync.RWMutex
	internal            map[uint16]inflightEntry  // internal contains the inflight packets
	queue               []queuedRef               // fluxo patch: publishes waiting for send quota, oldest first; may hold stale refs
	seq                 uint64                    // fluxo patch: seq of the next new entry
	held                int32                     // fluxo patch: entries in state inflightSent
	waiting             atomic.Int32              // fluxo patch: entries in state inflightQueued (read without the lock)
	receiveQuota        int32                     // remaining inbound qos quota for flow control
	maximumReceiveQuota int32                     // maximum allowed receive quota
	maximumSendQuota    int32                     // maximum allowed send quota (the client's Receive Maximum; 0: none)
	inbound             map[uint16]packets.Packet // fluxo patch: the PUBRECs of the client's QoS 2 publishes awaiting its PUBREL, by the client's packet ids
}

// NewInflights returns a new instance of an Inflight packets map.
func NewInflights() *Inflight {
	return &Inflight{
		internal: map[uint16]inflightEntry{},
		inbound:  map[uint16]packets.Packet{},
	}
}

// fluxo patch: the client and the server number their packets apart
// (MQTT 5 §2.2.1): the client's SUBSCRIBE, UNSUBSCRIBE and QoS 1/2
// PUBLISH ids from its own space, the server's outbound publishes from
// another. Upstream kept both in the one map, so a client reusing an id
// the server had on an unacknowledged outbound publish got its SUBSCRIBE
// refused with 0x91 "packet identifier in use", and its QoS 1/2 publish
// overwrote or deleted the outbound message, which was then never resent.
// The client's flows now live in inbound, and only they make an id of the
// client's in use.

// SetInbound keeps the PUBREC of the client's QoS 2 publish until its
// PUBREL; true if the id was not held.
func (i *Inflight) SetInbound(pk packets.Packet) bool {
	i.Lock()
	defer i.Unlock()
	_, ok := i.inbound[pk.PacketID]
	i.inbound[pk.PacketID] = pk
	return !ok
}

// GetInbound returns the PUBREC kept for the client's QoS 2 publish id.
func (i *Inflight) GetInbound(id uint16) (packets.Packet, bool) {
	i.RLock()
	defer i.RUnlock()
	pk, ok := i.inbound[id]
	return pk, ok
}

// DeleteInbound ends the client's QoS 2 flow id; true if it was held.
func (i *Inflight) DeleteInbound(id uint16) bool {
	i.Lock()
	defer i.Unlock()
	_, ok := i.inbound[id]
	delete(i.inbound, id)
	return ok
}

// clearInbound ends all the client's QoS 2 flows and returns how many
// there were.
func (i *Inflight) clearInbound() int {
	i.Lock()
	defer i.Unlock()
	n := len(i.inbound)
	clear(i.inbound)
	return n
}

// Set adds or updates an inflight packet by packet id. An update keeps
// the entry's place in the order and its flow-control state.
func (i *Inflight) Set(m packets.Packet) bool {
	i.Lock()
	defer i.Unlock()

	e, ok := i.internal[m.PacketID]
	if !ok {
		e = inflightEntry{seq: i.seq}
		i.seq++
	}
	e.pk = m
	i.internal[m.PacketID] = e
	return !ok
}

// Get returns the packet of an outbound flow by the server's packet id.
func (i *Inflight) Get(id uint16) (packets.Packet, bool) {
	i.RLock()
	defer i.RUnlock()

	if e, ok := i.internal[id]; ok {
		return e.pk, true
	}

	return packets.Packet{}, false
}

// getSent returns the packet with id if it is an outbound publish or
// PUBREL holding send quota: the only packets a PUBACK, PUBREC or
// PUBCOMP from the client can acknowledge.
func (i *Inflight) getSent(id uint16) (packets.Packet, bool) {
	i.RLock()
	defer i.RUnlock()

	if e, ok := i.internal[id]; ok && e.state == inflightSent {
		return e.pk, true
	}
	return packets.Packet{}, false
}

// Len returns the number of inflight flows, both directions'.
func (i *Inflight) Len() int {
	i.RLock()
	defer i.RUnlock()
	return len(i.internal) + len(i.inbound)
}

// Clone returns a new instance of Inflight with the same message data.
// This is used when transferring inflights from a taken-over session.
// fluxo patch: in the clone, every outbound publish waits for send quota
// (see resume).
func (i *Inflight) Clone() *Inflight {
	c := NewInflights()
	i.RLock()
	c.seq = i.seq
	for k, e := range i.internal {
		c.internal[k] = e
	}
	for k, pk := range i.inbound {
		c.inbound[k] = pk
	}
	i.RUnlock()
	c.resume()
	return c
}

// resume readies the session for a new connection (fluxo patch): every
// outbound publish waits for the new connection's send quota, in the
// session's order (those written before are resent with DUP), and none
// holds quota; see Client.ResendInflightMessages.
func (i *Inflight) resume() {
	i.Lock()
	defer i.Unlock()
	i.queue = i.queue[:0]
	for k, e := range i.internal {
		switch {
		case e.pk.FixedHeader.Type == packets.Publish:
			e.sent = e.sent || e.state != inflightQueued // unknown (a store's): resend as a duplicate
			e.state = inflightQueued
			i.queue = append(i.queue, queuedRef{seq: e.seq, id: k})
		default:
			e.state = inflightOther
		}
		i.internal[k] = e
	}
	sort.Slice(i.queue, func(a, b int) bool { return i.queue[a].seq < i.queue[b].seq })
	i.held = 0
	i.waiting.Store(int32(len(i.queue)))
}

// GetAll returns all the inflight messages, in the order they were
// added; with immediate, only the publishes waiting for send quota.
func (i *Inflight) GetAll(immediate bool) []packets.Packet {
	i.RLock()
	defer i.RUnlock()

	es := make([]inflightEntry, 0, len(i.internal))
	for _, e := range i.internal {
		if !immediate || e.state == inflightQueued {
			es = append(es, e)
		}
	}
	sortEntries(es)

	m := make([]packets.Packet, len(es))
	for k, e := range es {
		m[k] = e.pk
	}
	return m
}

// sortEntries sorts es in the order the entries were added.
func sortEntries(es []inflightEntry) {
	sort.Slice(es, func(a, b int) bool { return es[a].seq < es[b].seq })
}

// NextImmediate returns the oldest publish waiting for send quota.
func (i *Inflight) NextImmediate() (packets.Packet, bool) {
	m := i.GetAll(true)
	if len(m) > 0 {
		return m[0], true
	}

	return packets.Packet{}, false
}

// Delete removes an in-flight message from the map. Returns true if the
// message existed. fluxo patch: deleting an entry that holds send quota
// gives the quota back.
func (i *Inflight) Delete(id uint16) bool {
	i.Lock()
	defer i.Unlock()

	e, ok := i.internal[id]
	if !ok {
		return false
	}
	delete(i.internal, id)
	switch e.state {
	case inflightSent:
		i.held--
	case inflightQueued:
		// Its ref in the queue is skipped when reached; drop the stale
		// refs once they outnumber the live ones.
		n := i.waiting.Add(-1)
		if len(i.queue) > 2*int(n)+16 {
			q := i.queue[:0]
			for _, r := range i.queue {
				if e, ok := i.internal[r.id]; ok && e.seq == r.seq && e.state == inflightQueued {
					q = append(q, r)
				}
			}
			clear(i.queue[len(q):])
			i.queue = q
		}
	}
	return true
}

// DecreaseReceiveQuota reduces the receive quota by 1.
func (i *Inflight) DecreaseReceiveQuota() {
	if atomic.LoadInt32(&i.receiveQuota) > 0 {
		atomic.AddInt32(&i.receiveQuota, -1)
	}
}

// IncreaseReceiveQuota increases the receive quota by 1.
func (i *Inflight) IncreaseReceiveQuota() {
	if atomic.LoadInt32(&i.receiveQuota) < atomic.LoadInt32(&i.maximumReceiveQuota) {
		atomic.AddInt32(&i.receiveQuota, 1)
	}
}

// ResetReceiveQuota resets the receive quota to the maximum allowed value.
func (i *Inflight) ResetReceiveQuota(n int32) {
	atomic.StoreInt32(&i.receiveQuota, n)
	atomic.StoreInt32(&i.maximumReceiveQuota, n)
}

// ResetSendQuota sets the client's Receive Maximum: at most n outbound
// QoS 1/2 publishes unacknowledged at once (0: no limit). fluxo patch:
// the quota left is n less the entries holding some, so that it cannot
// drift; Increase/DecreaseSendQuota are gone.
func (i *Inflight) ResetSendQuota(n int32) {
	i.Lock()
	defer i.Unlock()
	i.maximumSendQuota = n
}

// SendQuota returns the send quota left: how many more QoS 1/2
// publishes may be written before one is acknowledged (-1: no limit).
func (i *Inflight) SendQuota() int32 {
	i.RLock()
	defer i.RUnlock()
	if i.maximumSendQuota == 0 {
		return -1
	}
	return max(0, i.maximumSendQuota-i.held)
}
