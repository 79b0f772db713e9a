package edge

import (
	"crypto/tls"
	"net"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fluxo-io/fluxo/bridge/downlink"
	"github.com/fluxo-io/fluxo/bridge/registry"
	"github.com/fluxo-io/fluxo/bridge/spool"
)

// devicesHook feeds the device registry (Config.Registry) from mochi's
// events: sessions established and ended, subscriptions, and publishes
// once accepted. It decides nothing and refuses nothing; it is apart from
// the edge's own hook so that the registry stays optional.
type devicesHook struct {
	mqtt.HookBase
	e   *Edge
	reg *registry.Registry
}

func (h *devicesHook) ID() string { return "fluxo-devices" }

func (h *devicesHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnPublished:
		return true
	}
	return false
}

// persistent reports whether cl's session outlives its connection.
func persistent(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

// certIdentity is the common name of the client certificate cl presented
// on the TLS listener, "" without one.
func certIdentity(c net.Conn) string {
	for i := 0; i < 4 && c != nil; i++ {
		switch v := c.(type) {
		case *tls.Conn:
			if pc := v.ConnectionState().PeerCertificates; len(pc) > 0 {
				return pc[0].Subject.CommonName
			}
			return ""
		case *ackConn:
			c = v.Conn
		default:
			return ""
		}
	}
	return ""
}

func (h *devicesHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	h.reg.Connected(registry.Conn{
		ClientID:     cl.ID,
		Username:     string(cl.Properties.Username),
		CertIdentity: certIdentity(cl.Net.Conn),
		Protocol:     cl.Properties.ProtocolVersion,
		Persistent:   persistent(cl),
		At:           time.Now(),
	})
}

func (h *devicesHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl.Net.Inline || cl.IsTakenOver() {
		return // a takeover's new connection is already registered
	}
	h.reg.Disconnected(cl.ID, time.Now(), expire)
}

func (h *devicesHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if cl.Net.Inline {
		return
	}
	fs := make([]string, 0, len(pk.Filters))
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] >= packets.ErrUnspecifiedError.Code {
			continue // refused
		}
		fs = append(fs, f.Filter)
	}
	if len(fs) > 0 {
		h.reg.Subscribed(cl.ID, fs, time.Now())
	}
}

func (h *devicesHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	fs := make([]string, len(pk.Filters))
	for i, f := range pk.Filters {
		fs[i] = f.Filter
	}
	h.reg.Unsubscribed(cl.ID, fs, time.Now())
}

// OnPublished counts an accepted publish to its device (the record key)
// and lane, and hands an answer to a command to the registry.
func (h *devicesHook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	now, lane, key, routed := h.routeOf(cl, pk)
	if pk.Properties.CorrelationData != nil {
		h.reg.Responded(cl.ID, pk.TopicName, pk.Properties.CorrelationData, pk.Payload, now)
	} else {
		h.reg.Replied(cl.ID, pk.TopicName, pk.Payload, now)
	}
	if !routed {
		return
	}
	fleet, dev, fd := registry.FleetDevice(pk.TopicName)
	if !fd || dev != key {
		fleet = ""
	}
	h.reg.Published(registry.Publish{Device: key, Fleet: fleet, Topic: pk.TopicName, Lane: lane, Bytes: len(pk.Payload), At: now})
}

// routeOf returns the receive time of an accepted publish, and the lane
// and record key of its route (ok false: no route): from the note
// OnPublish left on the connection, or found again.
func (h *devicesHook) routeOf(cl *mqtt.Client, pk packets.Packet) (at time.Time, lane spool.Lane, key string, ok bool) {
	if ac, _ := cl.Net.Conn.(*ackConn); ac != nil {
		if n, ok := ac.takeNote(pk.TopicName); ok {
			return n.at, n.lane, n.key, true
		}
	}
	at = time.Now()
	r, key, ok := h.e.router.Match(pk.TopicName, cl.ID)
	return at, r.Lane, key, ok
}

// PublishMessage publishes a command with its MQTT 5 properties (see
// Publish; MQTT 3.1.1 subscribers get it without them).
func (e *Edge) PublishMessage(m downlink.Message) error {
	if err := e.checkPublish(m.Topic, m.QoS); err != nil {
		return err
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS},
		TopicName:   m.Topic,
		Payload:     m.Payload,
		PacketID:    uint16(m.QoS),
		Properties: packets.Properties{
			ContentType:           m.ContentType,
			ResponseTopic:         m.ResponseTopic,
			CorrelationData:       m.CorrelationData,
			MessageExpiryInterval: m.MessageExpiry,
		},
	}
	if m.PayloadFormat != nil {
		pk.Properties.PayloadFormat, pk.Properties.PayloadFormatFlag = *m.PayloadFormat, true
	}
	for _, u := range m.User {
		pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: u.Key, Val: u.Val})
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if !e.started || e.closed {
		return ErrClosed
	}
	return e.srv.InjectPacket(e.commander, pk)
}

// HasSubscriber reports whether a session, connected or offline and
// persistent, is subscribed to topic (the edge's own inline
// subscriptions aside): a command published there is kept for someone.
func (e *Edge) HasSubscriber(topic string) bool {
	subs := e.srv.Topics.Subscribers(topic)
	return len(subs.Subscriptions) > 0 || len(subs.Shared) > 0
}
