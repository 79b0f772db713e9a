package edge

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
)

// hook is the edge's mochi hook: authentication (OnConnect), ACLs
// (OnACLCheck, OnSubscribe for the log), the ack-after-spool publish path
// (OnPublish), wills (OnWillSent), AUTH packets (OnPacketRead) and what
// mochi gets wrong in the packets it writes to MQTT 5 clients
// (OnPacketEncode). It is the only hook that authenticates: mochi ORs the
// answers of all auth hooks (hooks.go lines 656-682).
type hook struct {
	mqtt.HookBase
	e *Edge
}

func (h *hook) ID() string { return "fluxo-edge" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSubscribe,
		mqtt.OnPublish, mqtt.OnWillSent, mqtt.OnPacketRead, mqtt.OnPacketEncode, mqtt.OnPublishDropped:
		return true
	}
	return false
}

// OnPublishDropped counts a message to a client that mochi dropped
// because the client's write queue (Config.MaxWritesPending) was full: a
// client that does not read fast enough. Only QoS 0 messages are: a QoS
// 1/2 message waits in the client's session (flowcontrol.go in the
// patched mochi).
func (h *hook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.e.metrics.writesDropped.Inc()
	h.e.plog.Warn().Str("client", cl.ID).Str("topic", pk.TopicName).Uint8("qos", pk.FixedHeader.Qos).
		Msg("message to client dropped: its write queue is full")
}

// access is what a client may do: everything, or what its ACL says.
type access struct {
	all bool
	acl ACL
}

func (a access) canPublish(topic, user, client string) bool {
	return a.all || a.acl.CanPublish(topic, user, client)
}

func (a access) canSubscribe(filter, user, client string) bool {
	return a.all || a.acl.CanSubscribe(filter, user, client)
}

// accessFor returns the access of an authenticated username. Without a
// users file everyone has full access; with one, an empty username is
// anonymous (full access only if allowed) and a name no longer in the
// file has none.
func (e *Edge) accessFor(username string) access {
	users := e.users.Load()
	if users == nil {
		return access{all: true}
	}
	if username == "" {
		return access{all: e.cfg.AllowAnonymous}
	}
	if u, ok := users.Lookup(username); ok {
		return access{acl: u.ACL}
	}
	return access{}
}

// authenticate checks a CONNECT's credentials; it returns the denial
// reason, or "" when the client may connect.
func (e *Edge) authenticate(username string, password []byte) string {
	if username == "" {
		if e.cfg.AllowAnonymous {
			return ""
		}
		return denyAnonymous
	}
	users := e.users.Load()
	if users == nil {
		return "" // anonymous mode without a users file: nothing to check against
	}
	if _, ok := users.Authenticate(username, password); !ok {
		return denyCredentials
	}
	return ""
}

// authenticateCert checks a CONNECT that came with a verified client
// certificate: its identity is the username (see Config.CertIdentity).
// It returns that username and the denial reason, "" to let it connect.
func (e *Edge) authenticateCert(cert *x509.Certificate, username string, password []byte) (string, string) {
	id := e.cfg.CertIdentity.name(cert)
	if id == "" || username != "" && username != id {
		return id, denyCertificate
	}
	users := e.users.Load()
	if users == nil {
		return id, ""
	}
	if len(password) > 0 {
		if _, ok := users.Authenticate(id, password); !ok {
			return id, denyCredentials
		}
		return id, ""
	}
	if _, ok := users.Lookup(id); !ok {
		return id, denyCertificate
	}
	return id, ""
}

// OnConnect authenticates the client and checks its will topic. On a
// refusal it writes the CONNACK itself, so the reason code can be Not
// authorized as well as Bad username or password, and returns the code,
// which makes mochi close the connection (server.go lines 437-440).
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	e := h.e
	if e.closing.Load() {
		e.refuseConnect(cl, packets.ErrServerUnavailable)
		return packets.ErrServerUnavailable
	}
	if code, reason := e.admit(); reason != "" {
		e.metrics.connRefusals.WithLabelValues(reason).Inc()
		e.plog.Debug().Str("client", cl.ID).Str("reason", reason).Msg("connection refused: busy")
		e.refuseConnect(cl, code)
		return code
	}
	user := string(cl.Properties.Username)
	reason := ""
	if cert := peerCertificate(cl.Net.Conn); cert != nil {
		user, reason = e.authenticateCert(cert, user, pk.Connect.Password)
		if reason == "" {
			// The identity is the username from here on: ACLs, logs.
			cl.Properties.Username = []byte(user)
		}
	} else {
		reason = e.authenticate(user, pk.Connect.Password)
	}
	if reason != "" {
		code := packets.ErrBadUsernameOrPassword
		if reason == denyAnonymous {
			code = packets.ErrNotAuthorized
		}
		e.deny(reason, cl, "", code)
		e.refuseConnect(cl, code)
		return code
	}
	e.capKeepAlive(cl)
	if cl.Properties.Will.Flag == 1 {
		t := cl.Properties.Will.TopicName
		// mochi checks neither ACLs nor $SYS on will topics.
		if !validTopicName(t) || !mqtt.IsValidFilter(t, true) || !e.accessFor(user).canPublish(t, user, cl.ID) {
			e.deny(denyWill, cl, t, packets.ErrNotAuthorized)
			e.refuseConnect(cl, packets.ErrNotAuthorized)
			return packets.ErrNotAuthorized
		}
	}
	return nil
}

// capKeepAlive gives an MQTT 5 client that asks for no keep alive, or
// one longer than Config.MaxKeepAlive, that one instead: mochi announces
// it in the CONNACK as Server Keep Alive (server.go line 615) and closes
// the connection after 1.5 times it without a packet (clients.go line
// 265), as it does with a client's own keep alive.
func (e *Edge) capKeepAlive(cl *mqtt.Client) {
	if cl.Properties.ProtocolVersion != 5 || e.cfg.MaxKeepAlive <= 0 {
		return
	}
	limit := uint16(e.cfg.MaxKeepAlive / time.Second)
	if ka := cl.State.Keepalive; ka == 0 || ka > limit {
		cl.State.Keepalive = limit
		cl.State.ServerKeepalive = true
	}
}

// refuseConnect sends a failure CONNACK. MQTT 3.1.1 has return codes of
// its own: 0x04 bad user name or password, 0x05 not authorized, 0x03
// server unavailable.
func (e *Edge) refuseConnect(cl *mqtt.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion < 5 {
		switch code {
		case packets.ErrBadUsernameOrPassword:
			code = packets.ErrMalformedUsernameOrPassword // 0x04
		case packets.ErrNotAuthorized:
			code = packets.Err3NotAuthorized // 0x05
		case packets.ErrServerUnavailable, packets.ErrServerBusy, packets.ErrQuotaExceeded:
			code = packets.Err3ServerUnavailable // 0x03
		}
	}
	if err := e.srv.SendConnack(cl, code, false, nil); err != nil {
		e.log.Debug().Err(err).Str("client", cl.ID).Msg("cannot send connack")
	}
}

// OnConnectAuthenticate lets through every client OnConnect let through.
func (h *hook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// OnACLCheck answers mochi's ACL questions: write for a publish
// (server.go line 867), read for a subscription filter (line 1258) and
// for each delivery of a message to a subscriber (line 1030). Publish
// denials are logged and counted here; subscription denials in
// OnSubscribe, since a read check alone does not say whether it is a
// subscription or a delivery.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	a := h.e.accessFor(user)
	if !write {
		return a.canSubscribe(topic, user, cl.ID)
	}
	if a.canPublish(topic, user, cl.ID) {
		return true
	}
	h.e.deny(denyPublish, cl, topic, packets.ErrNotAuthorized)
	return false
}

// OnSubscribe logs and counts the filters OnACLCheck is about to refuse,
// with the same tests processSubscribe makes before it (server.go lines
// 1250-1262).
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline {
		return pk
	}
	user := string(cl.Properties.Username)
	a := h.e.accessFor(user)
	for _, f := range pk.Filters {
		if !mqtt.IsValidFilter(f.Filter, false) || (f.NoLocal && mqtt.IsSharedFilter(f.Filter)) {
			continue
		}
		if !a.canSubscribe(f.Filter, user, cl.ID) {
			h.e.deny(denySubscribe, cl, f.Filter, packets.ErrNotAuthorized)
		}
	}
	return pk
}

// OnPublish is the ack-after-spool path. mochi calls it on the client's
// read goroutine after the ACL check and before it writes the PUBACK or
// PUBREC (server.go lines 913-926, 941-952). With a plain Sink the hook
// returns once Sink.Append has, so the acknowledgement leaves after it.
// With an AsyncSink, for QoS 1 it registers the PUBACK with the
// connection (ackConn), which holds it until the message is stored,
// submits the message and returns at once; QoS 0 is submitted without
// waiting; QoS 2 waits for the sink. Publishes of the edge's own inline client
// (Edge.Publish) are not device messages and pass through.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	e := h.e
	if e.closing.Load() {
		// Close is waiting for the connections to finish what they
		// handle (Edge.quiesce): a publish mochi had already buffered
		// is not stored, and its device, unacknowledged, sends it
		// again to the next edge.
		_ = e.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		return pk, packets.ErrRejectPacket
	}
	now := time.Now()
	qos := pk.FixedHeader.Qos
	e.metrics.publishes[qosIndex(qos)].Inc()

	// With an AsyncSink the message is built in a pooled route.Buf:
	// Submit copies what it keeps (AsyncSink), so the buffer is free again
	// when this returns. Append may keep the message: its own memory.
	var buf *route.Buf
	ac, _ := cl.Net.Conn.(*ackConn)
	if ac != nil && e.async != nil {
		buf = msgBufs.Get().(*route.Buf)
		defer msgBufs.Put(buf)
	}
	if ac != nil {
		ac.note = publishNote{}
	}
	msg, r, key, ok := e.router.Routed(buf, publish(cl, pk, now, false))
	if !ok {
		e.metrics.unrouted.Inc()
		e.plog.Warn().Str("client", cl.ID).Str("mqtt_topic", pk.TopicName).Uint8("qos", qos).Msg("publish refused: no route")
		return pk, e.refusePublish(cl, pk, packets.ErrTopicNameInvalid)
	}
	if code, ok := e.checkHeaders(msg); !ok {
		e.metrics.headerRefusals.Inc()
		e.plog.Warn().Str("client", cl.ID).Str("mqtt_topic", pk.TopicName).Uint8("qos", qos).
			Int("headers", len(msg.Headers)).Int("header_bytes", route.HeadersSize(msg.Headers)).
			Msg("publish refused: " + code.Reason)
		return pk, e.refusePublish(cl, pk, code)
	}
	var err error
	switch {
	case ac == nil || e.async == nil:
		err = e.sink.Append(msg)
	case qos == 0:
		err = e.async.Submit(msg, e.qos0Done)
	case qos == 1:
		held := ac.hold(cl, pk.PacketID)
		if err = e.async.Submit(msg, held.finish); err != nil {
			ac.unhold(held)
		}
	default:
		// QoS 2 waits for the spool, as with a plain Sink: when the hook
		// returns, mochi records the PUBREC as inflight in the session
		// (and the bolt store persists it), and it resends that PUBREC by
		// itself when the device reconnects; that must not happen before
		// the message is stored. Submitted, not appended, so that it stays
		// behind the client's QoS 0/1 messages still being stored.
		err = submitAndWait(e.async, msg)
	}
	if err != nil {
		e.metrics.spoolFailures[qosIndex(qos)].Inc()
		code := spoolCode(err)
		e.plog.Warn().Err(err).Str("client", cl.ID).Str("mqtt_topic", pk.TopicName).
			Str("topic", msg.Topic).Uint8("qos", qos).Uint8("reason_code", code.Code).Msg("publish refused: spool append failed")
		return pk, e.refusePublish(cl, pk, code)
	}
	if ac != nil {
		ac.note = publishNote{set: true, topic: pk.TopicName, lane: r.Lane, key: key, at: now}
	}
	return pk, nil
}

// msgBufs holds the route.Bufs OnPublish builds messages in.
var msgBufs = sync.Pool{New: func() any { return new(route.Buf) }}

// checkHeaders checks a record's headers against Config.MaxHeaders and
// Config.MaxHeaderBytes. Past them the refusal is 0x83 Implementation
// specific error with a reason string: MQTT 5 has no PUBACK or PUBREC
// reason code for too many properties (0x95 Packet too large is a
// CONNACK and DISCONNECT code, 0x99 Payload format invalid is about the
// payload; §3.4.2.1).
func (e *Edge) checkHeaders(msg spool.Message) (packets.Code, bool) {
	if n := len(msg.Headers); n > e.cfg.MaxHeaders {
		return packets.Code{Code: packets.ErrImplementationSpecificError.Code,
			Reason: fmt.Sprintf("too many headers: %d, at most %d", n, e.cfg.MaxHeaders)}, false
	}
	if n := route.HeadersSize(msg.Headers); n > e.cfg.MaxHeaderBytes {
		return packets.Code{Code: packets.ErrImplementationSpecificError.Code,
			Reason: fmt.Sprintf("headers too large: %d bytes, at most %d", n, e.cfg.MaxHeaderBytes)}, false
	}
	return packets.Code{}, true
}

// submitAndWait submits msg and waits for the sink's answer.
func submitAndWait(sink AsyncSink, msg spool.Message) error {
	ch := make(chan error, 1)
	if err := sink.Submit(msg, func(err error) { ch <- err }); err != nil {
		return err
	}
	return <-ch
}

// qos0Failed is the Submit callback of QoS 0 publishes (Edge.qos0Done):
// there is nobody to tell, so a failure is only counted and logged.
func (e *Edge) qos0Failed(err error) {
	if err == nil {
		return
	}
	e.metrics.spoolFailures[0].Inc()
	e.plog.Warn().Err(err).Msg("qos 0 publish or will dropped: spool append failed")
}

// spoolCode maps a Sink error to the MQTT 5 reason code of the refusal.
func spoolCode(err error) packets.Code {
	switch {
	case errors.Is(err, spool.ErrFull):
		return packets.ErrQuotaExceeded // 0x97
	case errors.Is(err, spool.ErrTooLarge):
		return packets.Code{Code: packets.ErrImplementationSpecificError.Code, Reason: "message too large for the spool"} // 0x83
	default:
		return packets.ErrUnspecifiedError // 0x80
	}
}

// refusePublish refuses a publish after OnPublish has decided against it,
// and returns the error OnPublish hands mochi (ErrRejectPacket: mochi then
// neither acknowledges, retains nor delivers the message; server.go line
// 916).
//
//   - QoS 0: dropped (counted by the caller).
//   - MQTT 5, QoS 1/2: a PUBACK or PUBREC with the reason code. It is
//     written here rather than by returning the code to mochi, which
//     answers a QoS 2 publish with a PUBACK instead of a PUBREC
//     (server.go line 921).
//   - MQTT 3.1.1, QoS 1/2: the protocol has no negative acknowledgement,
//     so the connection is closed without one; the device resends after
//     reconnecting.
func (e *Edge) refusePublish(cl *mqtt.Client, pk packets.Packet, code packets.Code) error {
	qos := pk.FixedHeader.Qos
	switch {
	case qos == 0:
	case cl.Properties.ProtocolVersion == 5:
		typ := packets.Puback
		if qos == 2 {
			typ = packets.Pubrec
		}
		ack := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: typ},
			PacketID:    pk.PacketID,
			ReasonCode:  code.Code,
			Properties:  packets.Properties{ReasonString: code.Reason},
		}
		if err := cl.WritePacket(ack); err != nil {
			e.log.Debug().Err(err).Str("client", cl.ID).Msg("cannot send publish refusal")
		}
	default:
		cl.Stop(code)
	}
	return packets.ErrRejectPacket
}

// OnWillSent spools a will message once mochi has published it (server.go
// lines 1515-1552; delayed wills at lines 1745-1759). mochi does not pass
// wills through OnPublish. There is nobody to refuse a will to: a will the
// spool refuses is counted and logged. Wills of the clients Close
// disconnects are not spooled.
func (h *hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || pk.TopicName == "" || h.e.closing.Load() {
		return
	}
	e := h.e
	qos := pk.FixedHeader.Qos
	msg, ok := e.router.Message(publish(cl, pk, time.Now(), true))
	if !ok {
		e.metrics.unrouted.Inc()
		e.plog.Warn().Str("client", cl.ID).Str("mqtt_topic", pk.TopicName).Msg("will dropped: no route")
		return
	}
	var err error
	if e.async != nil {
		// Behind the client's publishes still being stored, in order.
		err = e.async.Submit(msg, func(err error) {
			if err != nil {
				e.metrics.spoolFailures[qosIndex(qos)].Inc()
				e.plog.Warn().Err(err).Str("client", cl.ID).Str("mqtt_topic", pk.TopicName).Str("topic", msg.Topic).Msg("will dropped: spool append failed")
			}
		})
	} else {
		err = e.sink.Append(msg)
	}
	if err != nil {
		e.metrics.spoolFailures[qosIndex(qos)].Inc()
		e.plog.Warn().Err(err).Str("client", cl.ID).Str("mqtt_topic", pk.TopicName).Str("topic", msg.Topic).Msg("will dropped: spool append failed")
	}
}

// OnPacketRead closes the connection of a client that sends an AUTH
// packet: the edge offers no enhanced authentication (MQTT 5 section
// 4.12: a protocol error), and in MQTT 3.1.1 the packet type is reserved.
// mochi would otherwise accept and ignore it.
//
// It also refuses a device's publish to a topic starting with "$" (MQTT
// 5 §4.7.2: such topics are the server's; $SYS is mochi's). mochi alone
// drops a $SYS publish without acknowledging it, so a QoS 1/2 publisher
// waits for ever, and lets other $-topics through to the subscribers.
// The refusal is reason code 0x90 Topic Name invalid with a reason
// string for MQTT 5 at QoS 1/2; QoS 0 is dropped; MQTT 3.1.1, which has
// no negative acknowledgement, has its connection closed at QoS 1/2 (see
// refusePublish). Routes therefore never see $-topics. (An error returned
// here closes the connection: mochi's read loop ends on it.)
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch {
	case pk.FixedHeader.Type == packets.Auth:
		return pk, packets.ErrRejectPacket
	case pk.FixedHeader.Type == packets.Publish && !cl.Net.Inline && strings.HasPrefix(pk.TopicName, "$"):
		e := h.e
		e.metrics.unrouted.Inc()
		e.plog.Warn().Str("client", cl.ID).Str("mqtt_topic", pk.TopicName).Uint8("qos", pk.FixedHeader.Qos).
			Msg("publish refused: topic names starting with $ are reserved")
		err := e.refusePublish(cl, pk, errDollarTopic)
		if cl.Properties.ProtocolVersion < 5 && pk.FixedHeader.Qos > 0 {
			return pk, err // closed: an error here ends the read loop
		}
		// Answered (or QoS 0): hand mochi a publish it drops unanswered
		// (processPublish, server.go line 859: no publish to $SYS).
		pk.TopicName = "$SYS/fluxo/refused"
		return pk, nil
	}
	return pk, nil
}

// errDollarTopic is the refusal of a publish to a $-topic.
var errDollarTopic = packets.Code{Code: packets.ErrTopicNameInvalid.Code, Reason: "topic names starting with $ are reserved for the server"}

// OnPacketEncode mends what mochi writes to MQTT 5 clients:
//
//   - a successful CONNACK announces the Maximum Packet Size (mochi
//     enforces the limit but does not announce it);
//   - PUBACK, PUBREC, PUBREL and PUBCOMP carry only the reason code and,
//     on a failure, a reason string. mochi builds them from the publish's
//     properties, echoing its user properties back, and then answers a
//     QoS 1 publish with reason code 0x01, the SUBACK code "granted QoS
//     1", which is not a PUBACK reason code (MQTT 5 §3.4.2.1: 0x00, 0x10,
//     0x80 and up). It encodes that code only when properties follow, so
//     a publish with user properties got a PUBACK that MQTT.js rejects
//     ("Invalid puback reason code") and Paho Python asserts on; without
//     properties the code was left out and read as success (mochi issue
//     #474);
//   - SUBACK and UNSUBACK carry only a reason string: mochi copies the
//     user properties of the SUBSCRIBE or UNSUBSCRIBE into them, so the
//     client reads its own properties back as the server's (§3.9.2.1.2:
//     the server's user properties), a packet larger than it need be.
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.Properties.ProtocolVersion != 5 {
		return pk
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		if pk.ReasonCode < packets.ErrUnspecifiedError.Code {
			pk.Properties.MaximumPacketSize = h.e.cfg.MaxPacketSize
		}
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp:
		pk.Properties = ackProperties(pk.ReasonCode, pk.Properties.ReasonString)
		if pk.ReasonCode < packets.ErrUnspecifiedError.Code && pk.ReasonCode != packets.CodeNoMatchingSubscribers.Code {
			pk.ReasonCode = packets.CodeSuccess.Code
		}
		if pk.ReasonCode < packets.ErrUnspecifiedError.Code {
			// Without properties and with a code below 0x80, mochi
			// encodes an MQTT 5 acknowledgement as the packet id alone
			// (packets.go, encodePubAckRelRecComp): the bytes of MQTT
			// 3.1.1's. Encoded as 3.1.1 it skips Properties.Encode,
			// which checks all 27 property types (BenchmarkAckEncode:
			// 1.3 µs of CPU per acknowledgement with mochi v2.7.9's map of
			// maps, 0.2 µs with the copy in third_party, 0.06 µs as
			// 3.1.1). TestAckEncodingAsMQTT311 checks the bytes.
			pk.ProtocolVersion = 4
		}
	case packets.Suback, packets.Unsuback:
		pk.Properties = packets.Properties{ReasonString: pk.Properties.ReasonString}
	}
	return pk
}

// ackProperties are the only properties an acknowledgement of a publish
// carries: a reason string with a failure code.
func ackProperties(code byte, reason string) packets.Properties {
	if code < packets.ErrUnspecifiedError.Code {
		return packets.Properties{}
	}
	return packets.Properties{ReasonString: reason}
}

// publish is the route.Publish of an MQTT publish (or will) by cl.
func publish(cl *mqtt.Client, pk packets.Packet, now time.Time, will bool) route.Publish {
	p := route.Publish{
		Topic:    pk.TopicName,
		Payload:  pk.Payload,
		QoS:      pk.FixedHeader.Qos,
		ClientID: cl.ID,
		Will:     will,
		Received: now,
	}
	pr := &pk.Properties
	p.ContentType = pr.ContentType
	p.PayloadFormat, p.PayloadFormatSet = pr.PayloadFormat, pr.PayloadFormatFlag
	p.ResponseTopic = pr.ResponseTopic
	p.CorrelationData = pr.CorrelationData
	p.Expiry = time.Duration(pr.MessageExpiryInterval) * time.Second
	if us := pk.Properties.User; len(us) > 0 {
		// The same two strings: a view, not a copy (Message only reads it).
		p.User = unsafe.Slice((*route.Property)(&us[0]), len(us))
	}
	return p
}

// deny logs and counts a refusal.
func (e *Edge) deny(reason string, cl *mqtt.Client, topic string, code packets.Code) {
	e.metrics.denials.WithLabelValues(reason).Inc()
	ev := e.plog.Warn().Str("reason", reason).Str("client", cl.ID).
		Str("username", string(cl.Properties.Username)).Str("remote", cl.Net.Remote)
	if topic != "" {
		ev = ev.Str("mqtt_topic", topic)
	}
	if cl.Properties.ProtocolVersion == 5 {
		ev = ev.Uint8("reason_code", code.Code)
	}
	ev.Msg("access denied")
}
