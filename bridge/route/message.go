package route

import (
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/bridge/spool"
)

// Record headers set on every routed message. User properties of an MQTT
// 5 publish follow them as further headers, except those whose key starts
// with "mqtt." or "edge." (reserved, so a device cannot forge them).
const (
	HeaderTopic      = "mqtt.topic"       // MQTT topic the message was published on
	HeaderQoS        = "mqtt.qos"         // QoS of the publish (or delivery), "0", "1" or "2"
	HeaderClient     = "mqtt.client"      // MQTT client id of the publisher
	HeaderWill       = "mqtt.will"        // "1" on a will message
	HeaderEdgeID     = "edge.id"          // the id of the edge or bridge (Router's origin)
	HeaderReceivedMS = "edge.received_ms" // receive time, unix milliseconds
)

// Property is an MQTT 5 user property of a publish.
type Property struct {
	Key, Val string
}

// Publish is an MQTT message as an input received it.
type Publish struct {
	Topic   string // MQTT topic name
	Payload []byte // kept as the record value, not copied
	QoS     byte
	// ClientID is the publisher's MQTT client id: the record key when
	// the route says so or the topic has no device level, and the
	// mqtt.client header when it differs from the key.
	ClientID string
	// Relayed says that ClientID is the relaying client's own (a bridge
	// subscribed to another broker never learns the publisher's): it
	// still keys the record, but no mqtt.client header is written, as it
	// would read as the device's.
	Relayed  bool
	Will     bool       // a will message: header mqtt.will "1"
	User     []Property // MQTT 5 user properties, in order
	Received time.Time  // receive time: record time and edge.received_ms
}

// Message routes p (see Match) and builds its spool message; ok is false
// when no route matches. The record is:
//
//	Lane     the route's lane
//	Topic    the route's core topic
//	Key      the device id ({fleet}/{device}/{stream}...: second level), else the client id
//	Value    the payload
//	Time     p.Received
//	Headers  mqtt.topic, mqtt.qos, mqtt.client (unless it is the key or
//	         p is relayed), edge.id, edge.received_ms, mqtt.will (wills
//	         only), then the user properties not under mqtt. or edge.
//
// The header values and the key share one allocation.
func (rt *Router) Message(p Publish) (msg spool.Message, ok bool) {
	r, key, ok := rt.Match(p.Topic, p.ClientID)
	if !ok {
		return spool.Message{}, false
	}
	withClient := !p.Relayed && p.ClientID != key
	n := len(p.Topic) + 1 + len(key) + len(rt.origin) + 20 + 1 // 20: a unix ms time, 1: "1" of a will
	if withClient {
		n += len(p.ClientID)
	}
	for _, u := range p.User {
		n += len(u.Val)
	}
	arena := make([]byte, 0, n)
	add := func(s string) []byte {
		start := len(arena)
		arena = append(arena, s...)
		return arena[start:len(arena):len(arena)]
	}
	hs := make([]kmsg.Header, 0, 6+len(p.User))
	hs = append(hs,
		kmsg.Header{Key: HeaderTopic, Value: add(p.Topic)},
		kmsg.Header{Key: HeaderQoS, Value: add(qosDigits[min(p.QoS, 2)])},
	)
	if withClient {
		hs = append(hs, kmsg.Header{Key: HeaderClient, Value: add(p.ClientID)})
	}
	hs = append(hs, kmsg.Header{Key: HeaderEdgeID, Value: add(rt.origin)})
	start := len(arena)
	arena = strconv.AppendInt(arena, p.Received.UnixMilli(), 10)
	hs = append(hs, kmsg.Header{Key: HeaderReceivedMS, Value: arena[start:len(arena):len(arena)]})
	if p.Will {
		hs = append(hs, kmsg.Header{Key: HeaderWill, Value: add("1")})
	}
	for _, u := range p.User {
		if Reserved(u.Key) {
			continue
		}
		hs = append(hs, kmsg.Header{Key: u.Key, Value: add(u.Val)})
	}
	return spool.Message{
		Lane:    r.Lane,
		Topic:   r.Topic,
		Key:     add(key),
		Value:   p.Payload,
		Headers: hs,
		Time:    p.Received,
	}, true
}

// Reserved reports whether a header key is one only the router sets
// ("mqtt." and "edge." prefixes); user properties with such keys are
// dropped.
func Reserved(key string) bool {
	return strings.HasPrefix(key, "mqtt.") || strings.HasPrefix(key, "edge.")
}

var qosDigits = [3]string{"0", "1", "2"}
