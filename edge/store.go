package edge

import (
	"strconv"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
)

// store wraps mochi's bolt storage hook (sessions, subscriptions, queued
// and retained messages in StateDir/mqtt.db) and changes four things:
//
//   - Calls after Stop are dropped. mochi's event loop and the last
//     clients may still call hooks while the server closes, and the bolt
//     hook reads and clears its db field without a lock.
//   - $SYS counters are not stored (a write every tick, and an error in the
//     log on first start when there are none to read).
//   - Stored inflight messages get their packet id back (see
//     StoredInflightMessages).
//   - A clean session (MQTT 3.1.1 clean session, MQTT 5 session expiry
//     0) is not written: it ends with its connection, and mochi would
//     write its client record on connect and delete it on disconnect,
//     two transactions with an fsync each, for every device, one after
//     the other: 10,000 devices coming back after a restart waited for
//     10,000 fsyncs, and the restart itself for 10,000 more. The records
//     that are in the file (persistent sessions, and those read at start)
//     are tracked by id so that they are still replaced and deleted.
type store struct {
	*bolt.Hook

	mu      sync.RWMutex // held shared by every forwarded call; Stop takes it exclusively
	stopped bool         // guarded by mu

	recMu    sync.Mutex          // guards recorded; taken inside mu
	recorded map[string]struct{} // ids of the clients with a record in the file
}

func newStore() *store {
	return &store{Hook: new(bolt.Hook), recorded: make(map[string]struct{})}
}

// cleanSession reports whether a client's session ends with its
// connection.
func cleanSession(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval == 0
	}
	return cl.Properties.Clean
}

// hasRecord reports whether the file holds a record of client id.
func (s *store) hasRecord(id string) bool {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	_, ok := s.recorded[id]
	return ok
}

func (s *store) setRecord(id string, on bool) {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	if on {
		s.recorded[id] = struct{}{}
	} else {
		delete(s.recorded, id)
	}
}

// Provides leaves out the $SYS counters.
func (s *store) Provides(b byte) bool {
	if b == mqtt.OnSysInfoTick || b == mqtt.StoredSysInfo {
		return false
	}
	return s.Hook.Provides(b)
}

// Stop closes the database; later calls are dropped.
func (s *store) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	return s.Hook.Stop()
}

// do runs f unless the store is stopped.
func (s *store) do(f func()) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.stopped {
		f()
	}
}

// OnSessionEstablished writes the client's record, unless its session is
// clean and the file has no record of it to replace.
func (s *store) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if cleanSession(cl) {
		if !s.hasRecord(cl.ID) {
			return
		}
	} else {
		s.setRecord(cl.ID, true)
	}
	s.do(func() { s.Hook.OnSessionEstablished(cl, pk) })
}

func (s *store) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if !s.hasRecord(cl.ID) {
		return
	}
	s.do(func() { s.Hook.OnWillSent(cl, pk) })
}

func (s *store) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if !expire || !s.hasRecord(cl.ID) {
		return // the bolt hook deletes on expiry only
	}
	if cl.StopCause() != packets.ErrSessionTakenOver {
		s.setRecord(cl.ID, false)
	}
	s.do(func() { s.Hook.OnDisconnect(cl, err, expire) })
}

func (s *store) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	s.do(func() { s.Hook.OnSubscribed(cl, pk, reasonCodes) })
}

func (s *store) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	s.do(func() { s.Hook.OnUnsubscribed(cl, pk) })
}

func (s *store) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	s.do(func() { s.Hook.OnRetainMessage(cl, pk, r) })
}

// OnQosPublish stores an outbound inflight message. The vendored mochi
// calls the QoS hooks for the server's flows only: the acknowledgements
// of a client's own publishes are neither stored nor resent.
func (s *store) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	s.do(func() { s.Hook.OnQosPublish(cl, pk, sent, resends) })
}

func (s *store) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	s.do(func() { s.Hook.OnQosComplete(cl, pk) })
}

func (s *store) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	s.do(func() { s.Hook.OnQosDropped(cl, pk) })
}

func (s *store) OnClientExpired(cl *mqtt.Client) {
	s.setRecord(cl.ID, false)
	s.do(func() { s.Hook.OnClientExpired(cl) })
}

func (s *store) OnRetainedExpired(filter string) {
	s.do(func() { s.Hook.OnRetainedExpired(filter) })
}

// StoredClients reads the client records, and notes their ids.
func (s *store) StoredClients() (v []storage.Client, err error) {
	s.do(func() { v, err = s.Hook.StoredClients() })
	for _, c := range v {
		s.setRecord(c.ID, true)
	}
	return
}

func (s *store) StoredSubscriptions() (v []storage.Subscription, err error) {
	s.do(func() { v, err = s.Hook.StoredSubscriptions() })
	return
}

// StoredInflightMessages restores the packet ids of the stored inflight
// messages. mochi's bolt hook leaves the id out of the stored value
// (bolt.go OnQosPublish, lines 281-310), so a message queued for an
// offline session came back after a restart with id 0, and resending it
// on the client's return failed with "missing packet id" and closed the
// connection, every time.
// The id is the last part of the key, "IFM_{client}:{id}"
// (inflightKey, Packet.FormatID).
func (s *store) StoredInflightMessages() (v []storage.Message, err error) {
	s.do(func() { v, err = s.Hook.StoredInflightMessages() })
	for i := range v {
		if v[i].PacketID != 0 {
			continue
		}
		j := strings.LastIndexByte(v[i].ID, ':')
		if j < 0 {
			continue
		}
		if id, perr := strconv.ParseUint(v[i].ID[j+1:], 10, 16); perr == nil {
			v[i].PacketID = uint16(id)
		}
	}
	return
}

func (s *store) StoredRetainedMessages() (v []storage.Message, err error) {
	s.do(func() { v, err = s.Hook.StoredRetainedMessages() })
	return
}
