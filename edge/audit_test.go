package edge

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The reason codes MQTT 5 allows a server to send in each packet type
// (§3.2.2.2, §3.4.2.1, §3.5.2.1, §3.6.2.1, §3.7.2.1, §3.9.3, §3.11.3,
// §3.14.2.1; 0x04 Disconnect with Will is the client's alone).
var specReasonCodes = map[byte][]byte{
	packets.Connack: {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C,
		0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F},
	packets.Puback:   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
	packets.Pubrec:   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
	packets.Pubrel:   {0x00, 0x92},
	packets.Pubcomp:  {0x00, 0x92},
	packets.Suback:   {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2},
	packets.Unsuback: {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91},
	packets.Disconnect: {0x00, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
		0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2},
}

// decodeServerPacket decodes a packet an MQTT 5 client read, with mochi's
// decoders. They refuse a property the specification's table does not
// allow on the packet type (packets/properties.go validPacketProperties),
// so a packet that decodes carries only allowed properties.
func decodeServerPacket(first byte, body []byte) (packets.Packet, error) {
	pk := packets.Packet{ProtocolVersion: 5}
	if err := pk.FixedHeader.Decode(first); err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = len(body)
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubrel:
		err = pk.PubrelDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Pingresp:
		err = pk.PingrespDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	default:
		err = fmt.Errorf("packet type %d is not one a server sends", pk.FixedHeader.Type)
	}
	return pk, err
}

// auditPacket checks a packet the edge wrote against the specification:
// its reason codes are allowed for its type and its properties are those
// the type may carry and the edge means to send. It returns what is
// wrong, "" if nothing.
func auditPacket(pk packets.Packet) string {
	typ := pk.FixedHeader.Type
	allowed, ok := specReasonCodes[typ]
	if !ok {
		return ""
	}
	codes := []byte{pk.ReasonCode}
	if typ == packets.Suback || typ == packets.Unsuback {
		codes = pk.ReasonCodes
	}
	for _, c := range codes {
		if !slices.Contains(allowed, c) {
			return fmt.Sprintf("reason code %#x is not one of packet type %d", c, typ)
		}
	}
	p := pk.Properties
	switch typ {
	case packets.Connack:
		if pk.ReasonCode < 0x80 && p.MaximumPacketSize == 0 {
			return "successful CONNACK without Maximum Packet Size"
		}
		if pk.ReasonCode >= 0x80 && pk.SessionPresent {
			return "failure CONNACK with Session Present set" // [MQTT-3.2.2-6]
		}
	case packets.Disconnect:
		if p.SessionExpiryIntervalFlag || p.SessionExpiryInterval != 0 {
			return "server DISCONNECT with a Session Expiry Interval" // [MQTT-3.14.2-2]
		}
	}
	switch typ {
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp, packets.Suback, packets.Unsuback, packets.Disconnect:
		// The edge has no user properties of its own to send; any here
		// would be the client's echoed back.
		if len(p.User) > 0 {
			return fmt.Sprintf("user properties %v echoed", p.User)
		}
	}
	return ""
}

// rawPacket encodes a client packet with mochi's encoder.
func rawPacket(t *testing.T, pk packets.Packet) []byte {
	t.Helper()
	pk.ProtocolVersion = 5
	var b bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		pk.Connect.ProtocolName = []byte("MQTT")
		pk.Connect.UsernameFlag = len(pk.Connect.Username) > 0
		pk.Connect.PasswordFlag = len(pk.Connect.Password) > 0
		err = pk.ConnectEncode(&b)
	case packets.Publish:
		err = pk.PublishEncode(&b)
	case packets.Puback:
		err = pk.PubackEncode(&b)
	case packets.Pubrec:
		err = pk.PubrecEncode(&b)
	case packets.Pubrel:
		pk.FixedHeader.Qos = 1
		err = pk.PubrelEncode(&b)
	case packets.Pubcomp:
		err = pk.PubcompEncode(&b)
	case packets.Subscribe:
		pk.FixedHeader.Qos = 1
		err = pk.SubscribeEncode(&b)
	case packets.Unsubscribe:
		pk.FixedHeader.Qos = 1
		err = pk.UnsubscribeEncode(&b)
	default:
		t.Fatalf("cannot encode packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// auditConn is a raw MQTT 5 connection whose every packet from the edge
// is decoded and audited.
type auditConn struct {
	*rawConn
	got   []packets.Packet
	trust bool // decode only: a peer that is not the edge
}

func dialAudit(t *testing.T, addr string) *auditConn {
	return &auditConn{rawConn: dialRaw(t, addr)}
}

// next reads, decodes and audits the next packet; ok is false once the
// edge has closed the connection.
func (c *auditConn) next() (packets.Packet, bool) {
	c.t.Helper()
	first, body, err := c.readPacket()
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.t.Fatalf("no packet and the connection still open: %v", err)
		}
		return packets.Packet{}, false
	}
	pk, err := decodeServerPacket(first, body)
	if err != nil {
		c.t.Fatalf("packet %#x %v does not decode as MQTT 5: %v", first, body, err)
	}
	if bad := auditPacket(pk); bad != "" && !c.trust {
		c.t.Errorf("packet type %d (reason code %#x, codes %v): %s", pk.FixedHeader.Type, pk.ReasonCode, pk.ReasonCodes, bad)
	}
	c.got = append(c.got, pk)
	return pk, true
}

// expect reads packets until one of type typ, skipping others (a
// delivery, a PUBREC), and returns it.
func (c *auditConn) expect(typ byte) packets.Packet {
	c.t.Helper()
	for {
		pk, ok := c.next()
		if !ok {
			c.t.Fatalf("connection closed, want packet type %d", typ)
		}
		if pk.FixedHeader.Type == typ {
			return pk
		}
	}
}

// untilClosed reads until the edge closes the connection and returns the
// DISCONNECT read meanwhile, if any.
func (c *auditConn) untilClosed() (packets.Packet, bool) {
	c.t.Helper()
	var dis packets.Packet
	found := false
	for {
		pk, ok := c.next()
		if !ok {
			return dis, found
		}
		if pk.FixedHeader.Type == packets.Disconnect {
			dis, found = pk, true
		}
	}
}

func (c *auditConn) connect(id, user, pass string, keepalive uint16) packets.Packet {
	c.t.Helper()
	c.send(rawPacket(c.t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ClientIdentifier: id, Clean: true, Keepalive: keepalive,
			Username: []byte(user), Password: []byte(pass)}}))
	return c.expect(packets.Connack)
}

func pubPacket(t *testing.T, qos byte, id uint16, topic string) []byte {
	return rawPacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		PacketID: id, TopicName: topic, Payload: []byte("x"),
		Properties: packets.Properties{User: []packets.UserProperty{{Key: "unit", Val: "c"}}}})
}

func ackPacket(t *testing.T, typ byte, id uint16) []byte {
	return rawPacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: id,
		Properties: packets.Properties{User: []packets.UserProperty{{Key: "echo", Val: "me"}}}})
}

// TestPacketAudit provokes every packet type the edge writes to an MQTT 5
// client, on its success and failure paths, decodes each with mochi's
// decoders and checks its reason code and properties against the MQTT
// 5.0 tables (auditPacket), and that the reason code is the one the case
// calls for. Every packet read in a case is audited, not only the one it
// is about.
func TestPacketAudit(t *testing.T) { eachSink(t, testPacketAudit) }

func testPacketAudit(t *testing.T, _ *recSink, s Sink) {
	cfg := testConfig(t)
	cfg.AllowAnonymous = false
	cfg.ReceiveMaximum = 4
	cfg.Users = testUsers(t, User{Username: "dev", Password: hash(t, "pw"),
		ACL: ACL{Publish: []string{"fleet/dev/#"}, Subscribe: []string{"fleet/dev/#"}}})
	e := startEdge(t, cfg, s)
	addr := e.Addr()

	login := func(t *testing.T, id string) *auditConn {
		c := dialAudit(t, addr)
		if ack := c.connect(id, "dev", "pw", 60); ack.ReasonCode != 0 {
			t.Fatalf("connack: got %#x, want 0x00", ack.ReasonCode)
		}
		return c
	}
	check := func(t *testing.T, what string, got, want byte) {
		t.Helper()
		if got != want {
			t.Errorf("%s: got reason code %#x, want %#x", what, got, want)
		}
	}

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"CONNACK success", func(t *testing.T) {
			c := dialAudit(t, addr)
			ack := c.connect("a-ok", "dev", "pw", 60)
			check(t, "CONNACK", ack.ReasonCode, 0x00)
			if ack.Properties.ReceiveMaximum != 4 || ack.Properties.MaximumPacketSize != cfg.MaxPacketSize {
				t.Errorf("CONNACK: got Receive Maximum %d, Maximum Packet Size %d, want 4, %d",
					ack.Properties.ReceiveMaximum, ack.Properties.MaximumPacketSize, cfg.MaxPacketSize)
			}
		}},
		{"CONNACK bad password 0x86", func(t *testing.T) {
			c := dialAudit(t, addr)
			check(t, "CONNACK", c.connect("a-bad", "dev", "wrong", 60).ReasonCode, 0x86)
			c.untilClosed()
		}},
		{"CONNACK anonymous 0x87", func(t *testing.T) {
			c := dialAudit(t, addr)
			check(t, "CONNACK", c.connect("a-anon", "", "", 60).ReasonCode, 0x87)
			c.untilClosed()
		}},
		{"PUBACK 0x00 and 0x87", func(t *testing.T) {
			c := login(t, "a-puback")
			c.send(pubPacket(t, 1, 1, "fleet/dev/t"))
			check(t, "PUBACK", c.expect(packets.Puback).ReasonCode, 0x00)
			c.send(pubPacket(t, 1, 2, "other/t"))
			check(t, "PUBACK denied", c.expect(packets.Puback).ReasonCode, 0x87)
		}},
		{"PUBREC, PUBCOMP 0x00 and PUBREC 0x87", func(t *testing.T) {
			c := login(t, "a-pubrec")
			c.send(pubPacket(t, 2, 1, "fleet/dev/t"))
			check(t, "PUBREC", c.expect(packets.Pubrec).ReasonCode, 0x00)
			c.send(ackPacket(t, packets.Pubrel, 1))
			check(t, "PUBCOMP", c.expect(packets.Pubcomp).ReasonCode, 0x00)
			c.send(pubPacket(t, 2, 2, "other/t"))
			check(t, "PUBREC denied", c.expect(packets.Pubrec).ReasonCode, 0x87)
		}},
		{"PUBCOMP 0x92", func(t *testing.T) {
			c := login(t, "a-pubcomp")
			c.send(ackPacket(t, packets.Pubrel, 99))
			check(t, "PUBCOMP", c.expect(packets.Pubcomp).ReasonCode, 0x92)
		}},
		{"PUBREL 0x00 and 0x92", func(t *testing.T) {
			c := login(t, "a-pubrel")
			c.send(rawPacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 1,
				Filters: packets.Subscriptions{{Filter: "fleet/dev/q2", Qos: 2}}}))
			c.expect(packets.Suback)
			c.send(pubPacket(t, 2, 2, "fleet/dev/q2"))
			d := c.expect(packets.Publish) // its own message, delivered at QoS 2
			c.send(ackPacket(t, packets.Pubrec, d.PacketID))
			check(t, "PUBREL", c.expect(packets.Pubrel).ReasonCode, 0x00)
			c.send(ackPacket(t, packets.Pubrec, 999))
			check(t, "PUBREL unknown id", c.expect(packets.Pubrel).ReasonCode, 0x92)
		}},
		{"SUBACK granted, 0x87, 0x8F", func(t *testing.T) {
			c := login(t, "a-suback")
			c.send(rawPacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 3,
				Properties: packets.Properties{User: []packets.UserProperty{{Key: "echo", Val: "me"}}},
				Filters: packets.Subscriptions{{Filter: "fleet/dev/#", Qos: 1}, {Filter: "other/#", Qos: 1},
					{Filter: "fleet/#/x", Qos: 1}}}))
			ack := c.expect(packets.Suback)
			if !bytes.Equal(ack.ReasonCodes, []byte{0x01, 0x87, 0x8F}) {
				t.Errorf("SUBACK: got reason codes %#v, want [0x01 0x87 0x8f]", ack.ReasonCodes)
			}
		}},
		{"UNSUBACK 0x00 and 0x11", func(t *testing.T) {
			c := login(t, "a-unsuback")
			c.send(rawPacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 1,
				Filters: packets.Subscriptions{{Filter: "fleet/dev/#", Qos: 1}}}))
			c.expect(packets.Suback)
			c.send(rawPacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe}, PacketID: 2,
				Properties: packets.Properties{User: []packets.UserProperty{{Key: "echo", Val: "me"}}},
				Filters:    packets.Subscriptions{{Filter: "fleet/dev/#"}, {Filter: "fleet/dev/never"}}}))
			ack := c.expect(packets.Unsuback)
			if !bytes.Equal(ack.ReasonCodes, []byte{0x00, 0x11}) {
				t.Errorf("UNSUBACK: got reason codes %#v, want [0x00 0x11]", ack.ReasonCodes)
			}
		}},
		{"DISCONNECT protocol error 0x82", func(t *testing.T) {
			c := login(t, "a-second-connect")
			c.send(rawPacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
				Connect: packets.ConnectParams{ClientIdentifier: "a-second-connect", Clean: true, Keepalive: 60,
					Username: []byte("dev"), Password: []byte("pw")}}))
			dis, ok := c.untilClosed()
			if !ok {
				t.Fatal("closed without DISCONNECT, want DISCONNECT 0x82")
			}
			check(t, "DISCONNECT", dis.ReasonCode, 0x82)
		}},
		{"DISCONNECT receive maximum exceeded 0x93", func(t *testing.T) {
			c := login(t, "a-recvmax")
			// QoS 2 publishes without PUBREL stay unacknowledged: one
			// more than the Receive Maximum the CONNACK announced.
			for i := range cfg.ReceiveMaximum + 1 {
				c.send(pubPacket(t, 2, i+1, "fleet/dev/t"))
			}
			dis, ok := c.untilClosed()
			if !ok {
				t.Fatal("closed without DISCONNECT, want DISCONNECT 0x93")
			}
			check(t, "DISCONNECT", dis.ReasonCode, 0x93)
		}},
		{"DISCONNECT session taken over 0x8E", func(t *testing.T) {
			c := login(t, "a-takeover")
			login(t, "a-takeover")
			dis, ok := c.untilClosed()
			if !ok {
				t.Fatal("closed without DISCONNECT, want DISCONNECT 0x8E")
			}
			check(t, "DISCONNECT", dis.ReasonCode, 0x8E)
		}},
		{"keep alive timeout", func(t *testing.T) {
			// MQTT 5 §3.1.2.10: the server closes the connection "as if
			// the network had failed"; a DISCONNECT before, if any, says
			// 0x8D.
			c := dialAudit(t, addr)
			if ack := c.connect("a-keepalive", "dev", "pw", 1); ack.ReasonCode != 0 {
				t.Fatalf("connack: got %#x, want 0x00", ack.ReasonCode)
			}
			if dis, ok := c.untilClosed(); ok {
				check(t, "DISCONNECT", dis.ReasonCode, 0x8D)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.run)
	}
}
