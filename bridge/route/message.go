package route

import (
	"strconv"
	"strings"
	"time"
	"unsafe"

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

// Record headers carrying the MQTT 5 properties of a publish, each only
// when the publish has the property. The downlink reads the same names to
// set the properties of a command.
const (
	HeaderContentType     = "mqtt.content_type"     // Content Type, as sent
	HeaderPayloadFormat   = "mqtt.payload_format"   // Payload Format Indicator: "0" bytes, "1" UTF-8
	HeaderResponseTopic   = "mqtt.response_topic"   // Response Topic, as sent
	HeaderCorrelationData = "mqtt.correlation_data" // Correlation Data, the bytes as sent
	// HeaderExpiryMS is the Message Expiry Interval as an absolute
	// deadline, unix milliseconds (receive time plus the interval): a
	// telemetry record still spooled past it is dropped (spool outcome
	// "expired").
	HeaderExpiryMS = "mqtt.expiry_ms"
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

	// MQTT 5 properties; zero values are absent properties.
	ContentType      string
	PayloadFormat    byte // 0 or 1, written when PayloadFormatSet
	PayloadFormatSet bool
	ResponseTopic    string
	CorrelationData  []byte        // kept as the header value, not copied
	Expiry           time.Duration // Message Expiry Interval; 0: none
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
//	         only), mqtt.content_type, mqtt.payload_format,
//	         mqtt.response_topic, mqtt.correlation_data, mqtt.expiry_ms
//	         (each when p has the property), then the user properties
//	         not under mqtt. or edge., in order, repeated names kept
//
// The header values the router writes and the key share one allocation;
// user property values are views of p.User's strings (read-only, like
// every header value).
func (rt *Router) Message(p Publish) (msg spool.Message, ok bool) {
	return rt.MessageIn(nil, p)
}

// Buf is memory for MessageIn to build messages in: their headers and
// the bytes of the header values and key it writes. The zero value is
// ready to use.
type Buf struct {
	hs    []kmsg.Header
	arena []byte
}

// MessageIn is Message, building the message in buf (a nil buf
// allocates): the message is valid until buf is used again, so buf can
// be reused once whoever took the message is done with it (a
// spool.Spool.Submit that has returned, which copies the message).
func (rt *Router) MessageIn(buf *Buf, p Publish) (msg spool.Message, ok bool) {
	msg, _, _, ok = rt.Routed(buf, p)
	return msg, ok
}

// Routed is MessageIn that also returns what Match returns for the
// publish, the route and the record key, for a caller that needs them too
// (the edge's device registry counts every publish by its key and lane).
func (rt *Router) Routed(buf *Buf, p Publish) (msg spool.Message, r Route, key string, ok bool) {
	r, key, ok = rt.Match(p.Topic, p.ClientID)
	if !ok {
		return spool.Message{}, Route{}, "", false
	}
	withClient := !p.Relayed && p.ClientID != key
	n := len(p.Topic) + 1 + len(key) + len(rt.origin) + 20 + 1 // 20: a unix ms time, 1: "1" of a will
	if withClient {
		n += len(p.ClientID)
	}
	n += len(p.ContentType) + 1 + len(p.ResponseTopic) + 20 // 1: payload format, 20: expiry
	var arena []byte
	if buf != nil && cap(buf.arena) >= n {
		arena = buf.arena[:0]
	} else {
		arena = make([]byte, 0, n)
	}
	add := func(s string) []byte {
		start := len(arena)
		arena = append(arena, s...)
		return arena[start:len(arena):len(arena)]
	}
	nh := 4 + len(p.User) // topic, qos, edge id, received; user properties (at most)
	if withClient {
		nh++
	}
	if p.Will {
		nh++
	}
	if p.ContentType != "" {
		nh++
	}
	if p.PayloadFormatSet {
		nh++
	}
	if p.ResponseTopic != "" {
		nh++
	}
	if p.CorrelationData != nil {
		nh++
	}
	if p.Expiry > 0 {
		nh++
	}
	var hs []kmsg.Header
	if buf != nil && cap(buf.hs) >= nh {
		hs = buf.hs[:0]
	} else {
		hs = make([]kmsg.Header, 0, nh)
	}
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
	if p.ContentType != "" {
		hs = append(hs, kmsg.Header{Key: HeaderContentType, Value: add(p.ContentType)})
	}
	if p.PayloadFormatSet {
		hs = append(hs, kmsg.Header{Key: HeaderPayloadFormat, Value: add(formatDigits[min(p.PayloadFormat, 1)])})
	}
	if p.ResponseTopic != "" {
		hs = append(hs, kmsg.Header{Key: HeaderResponseTopic, Value: add(p.ResponseTopic)})
	}
	if p.CorrelationData != nil {
		hs = append(hs, kmsg.Header{Key: HeaderCorrelationData, Value: p.CorrelationData})
	}
	if p.Expiry > 0 {
		start := len(arena)
		arena = strconv.AppendInt(arena, p.Received.Add(p.Expiry).UnixMilli(), 10)
		hs = append(hs, kmsg.Header{Key: HeaderExpiryMS, Value: arena[start:len(arena):len(arena)]})
	}
	for _, u := range p.User {
		if Reserved(u.Key) {
			continue
		}
		// A view of the value, not a copy: strings do not change, and
		// nobody writes to a message's headers. An empty value stays
		// empty, not null.
		v := emptyValue
		if u.Val != "" {
			v = unsafe.Slice(unsafe.StringData(u.Val), len(u.Val))
		}
		hs = append(hs, kmsg.Header{Key: u.Key, Value: v})
	}
	k := add(key)
	if buf != nil {
		buf.hs, buf.arena = hs, arena
	}
	return spool.Message{
		Lane:    r.Lane,
		Topic:   r.Topic,
		Key:     k,
		Value:   p.Payload,
		Headers: hs,
		Time:    p.Received,
	}, r, key, true
}

// Reserved reports whether a header key is one only the router sets
// ("mqtt." and "edge." prefixes); user properties with such keys are
// dropped.
func Reserved(key string) bool {
	return strings.HasPrefix(key, "mqtt.") || strings.HasPrefix(key, "edge.")
}

var (
	emptyValue   = []byte{}
	qosDigits    = [3]string{"0", "1", "2"}
	formatDigits = [2]string{"0", "1"}
)

// Deadline returns the expiry deadline of a record's headers
// (HeaderExpiryMS), ok false when it has none or it does not parse.
func Deadline(hs []kmsg.Header) (deadline time.Time, ok bool) {
	for i := range hs {
		if hs[i].Key != HeaderExpiryMS {
			continue
		}
		ms, err := strconv.ParseInt(string(hs[i].Value), 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.UnixMilli(ms), true
	}
	return time.Time{}, false
}

// HeadersSize is the size the headers count against a record's header
// bytes limit: the sum of their keys' and values' lengths.
func HeadersSize(hs []kmsg.Header) int {
	n := 0
	for i := range hs {
		n += len(hs[i].Key) + len(hs[i].Value)
	}
	return n
}
