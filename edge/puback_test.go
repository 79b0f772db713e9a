package edge

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// publishWithProps is an MQTT 5 PUBLISH carrying user properties.
func publishWithProps(qos byte, id uint16, topic, payload string, props ...[2]string) []byte {
	var pb []byte
	for _, p := range props {
		pb = append(pb, 0x26) // user property
		pb = append(pb, str(p[0])...)
		pb = append(pb, str(p[1])...)
	}
	vh := append(str(topic), byte(id>>8), byte(id))
	vh = append(vh, byte(len(pb))) // below 128: a one-byte length
	vh = append(vh, pb...)
	return packet(0x30|qos<<1, vh, []byte(payload))
}

// decodeAck decodes the body of a PUBACK, PUBREC or PUBCOMP as an MQTT 5
// client does.
func decodeAck(t *testing.T, first byte, body []byte) packets.Packet {
	t.Helper()
	pk := packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: first >> 4, Remaining: len(body)}}
	var err error
	switch first >> 4 {
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	default:
		t.Fatalf("got packet type %d, want an acknowledgement", first>>4)
	}
	if err != nil {
		t.Fatalf("cannot decode %#x %v: %v", first, body, err)
	}
	return pk
}

// startBareMochi starts mochi as it comes, anonymous, for comparison.
func startBareMochi(t *testing.T) string {
	t.Helper()
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "t", Address: addr})); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return addr
}

// An MQTT 5 publish with user properties is acknowledged with reason code
// 0x00 and no echoed properties, at QoS 1 and 2; bare mochi answers the
// same QoS 1 bytes with 0x01, which MQTT.js and Paho Python refuse.
func TestAckReasonCodesMQTT5(t *testing.T) {
	props := [][2]string{{"unit", "celsius"}, {"schema", "v2"}}
	sink := &recSink{}
	e := startEdge(t, testConfig(t), sink)

	for _, tc := range []struct {
		name string
		addr string
		want byte // PUBACK reason code for QoS 1
	}{
		{"edge", e.Addr(), 0x00},
		{"bare mochi", startBareMochi(t), 0x01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, tc.addr)
			c.connect(5, "dev-p", "", "")
			c.send(publishWithProps(1, 7, "fleet/dev-p/t", "21.5", props...))
			first, body, err := c.readPacket()
			if err != nil {
				t.Fatal(err)
			}
			ack := decodeAck(t, first, body)
			if first>>4 != packets.Puback || ack.PacketID != 7 || ack.ReasonCode != tc.want {
				t.Fatalf("got %#x id %d reason %#x, want PUBACK id 7 reason %#x", first, ack.PacketID, ack.ReasonCode, tc.want)
			}
			if tc.want != 0 {
				return // mochi's answer, shown for the difference; nothing more to check
			}
			if len(ack.Properties.User) != 0 {
				t.Fatalf("PUBACK echoes user properties %v, want none", ack.Properties.User)
			}

			c.send(publishWithProps(2, 8, "fleet/dev-p/t", "21.6", props...))
			first, body, err = c.readPacket()
			if err != nil {
				t.Fatal(err)
			}
			rec := decodeAck(t, first, body)
			if first>>4 != packets.Pubrec || rec.PacketID != 8 || rec.ReasonCode != 0 || len(rec.Properties.User) != 0 {
				t.Fatalf("got %#x id %d reason %#x props %v, want PUBREC id 8 reason 0 without properties", first, rec.PacketID, rec.ReasonCode, rec.Properties.User)
			}
			c.send(packet(0x62, []byte{0, 8})) // PUBREL
			first, body, err = c.readPacket()
			if err != nil {
				t.Fatal(err)
			}
			comp := decodeAck(t, first, body)
			if first>>4 != packets.Pubcomp || comp.PacketID != 8 || comp.ReasonCode != 0 {
				t.Fatalf("got %#x id %d reason %#x, want PUBCOMP id 8 reason 0", first, comp.PacketID, comp.ReasonCode)
			}
		})
	}
	// The properties still reach the record, in order.
	msgs := sink.waitMsgs(t, 2)
	for _, m := range msgs {
		var got [][2]string
		for _, h := range m.Headers {
			if h.Key == "unit" || h.Key == "schema" {
				got = append(got, [2]string{h.Key, string(h.Value)})
			}
		}
		if len(got) != 2 || got[0] != props[0] || got[1] != props[1] || !bytes.HasPrefix(m.Value, []byte("21.")) {
			t.Fatalf("record headers %v, want %v in order", got, props)
		}
	}
}

// OnPacketEncode hands mochi a successful MQTT 5 acknowledgement as MQTT
// 3.1.1 to skip mochi's property encoder: the bytes must be those mochi
// writes for it as MQTT 5 (packet id alone), for every acknowledgement
// type and every code below 0x80; a failure code stays MQTT 5, with its
// reason code and reason string.
func TestAckEncodingAsMQTT311(t *testing.T) {
	h := &hook{e: &Edge{}}
	cl := &mqtt.Client{}
	cl.Properties.ProtocolVersion = 5
	encode := func(pk packets.Packet) []byte {
		t.Helper()
		var buf bytes.Buffer
		var err error
		switch pk.FixedHeader.Type {
		case packets.Puback:
			err = pk.PubackEncode(&buf)
		case packets.Pubrec:
			err = pk.PubrecEncode(&buf)
		case packets.Pubrel:
			err = pk.PubrelEncode(&buf)
		case packets.Pubcomp:
			err = pk.PubcompEncode(&buf)
		}
		if err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	for _, typ := range []byte{packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp} {
		for _, code := range []byte{0x00, 0x01, 0x02, 0x10, 0x80, 0x97} {
			pk := packets.Packet{
				FixedHeader:     packets.FixedHeader{Type: typ, Qos: map[bool]byte{true: 1}[typ == packets.Pubrel]},
				PacketID:        0x1234,
				ReasonCode:      code,
				Properties:      packets.Properties{User: []packets.UserProperty{{Key: "k", Val: "v"}}, ReasonString: "why"},
				ProtocolVersion: 5,
			}
			got := h.OnPacketEncode(cl, pk)
			as5 := got
			as5.ProtocolVersion = 5
			if g, w := encode(got), encode(as5); !bytes.Equal(g, w) {
				t.Errorf("type %d code %#x: got % x, want % x (mochi's MQTT 5 bytes)", typ, code, g, w)
			}
			if want := byte(4); code < 0x80 && got.ProtocolVersion != want {
				t.Errorf("type %d code %#x: got protocol version %d, want %d", typ, code, got.ProtocolVersion, want)
			}
			if code >= 0x80 && (got.ProtocolVersion != 5 || got.ReasonCode != code || got.Properties.ReasonString != "why") {
				t.Errorf("type %d code %#x: got version %d code %#x reason %q, want 5, %#x, %q",
					typ, code, got.ProtocolVersion, got.ReasonCode, got.Properties.ReasonString, code, "why")
			}
		}
	}
}
