package edge

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The client and the server number their packets apart (MQTT 5 §2.2.1):
// an id the server has on an unacknowledged delivery is free for the
// client's own SUBSCRIBE, UNSUBSCRIBE and QoS 1/2 PUBLISH. Reusing it
// must neither be refused with 0x91 "packet identifier in use" nor touch
// the delivery, which is still resent when the session resumes. A QoS 2
// publish sent again before its PUBREL is acknowledged again and
// delivered once [MQTT-4.3.3-10].
func TestClientPacketIDsApartFromServer(t *testing.T) {
	for _, srv := range edgeAndMochi(t, nil) {
		t.Run(srv.name, func(t *testing.T) {
			connect := func(c *auditConn, clean bool) packets.Packet {
				c.send(rawPacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
					Connect:    packets.ConnectParams{ClientIdentifier: "ids-dev", Clean: clean, Keepalive: 60},
					Properties: packets.Properties{SessionExpiryInterval: 300, SessionExpiryIntervalFlag: true}}))
				return c.expect(packets.Connack)
			}
			subscribe := func(c *auditConn, id uint16, filter string) packets.Packet {
				c.send(rawPacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: id,
					Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}}))
				return c.expect(packets.Suback)
			}
			publish := func(c *auditConn, qos byte, dup bool, id uint16, topic, payload string) {
				c.send(rawPacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Dup: dup},
					PacketID: id, TopicName: topic, Payload: []byte(payload)}))
			}

			dev := srv.dial(t)
			connect(dev, true)
			if sa := subscribe(dev, 1, "fleet/ids/cmd"); len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] != 1 {
				t.Fatalf("subscribe: got reason codes %v, want [1]", sa.ReasonCodes)
			}
			watch := srv.dial(t)
			watch.connect("ids-watch", "", "", 60)
			subscribe(watch, 1, "fleet/ids/up2")

			publish(watch, 1, false, 7, "fleet/ids/cmd", "command")
			watch.expect(packets.Puback)
			cmd := dev.expect(packets.Publish)
			id := cmd.PacketID // held by the server until the device's PUBACK

			if sa := subscribe(dev, id, "fleet/ids/other"); sa.PacketID != id || len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] != 1 {
				t.Errorf("subscribe reusing the delivery's id %d: got id %d, reason codes %v, want a grant", id, sa.PacketID, sa.ReasonCodes)
			}
			publish(dev, 1, false, id, "fleet/ids/up1", "one")
			if ack := dev.expect(packets.Puback); ack.PacketID != id || ack.ReasonCode >= 0x80 {
				t.Errorf("QoS 1 publish reusing id %d: got PUBACK %d reason %#x", id, ack.PacketID, ack.ReasonCode)
			}
			for _, dup := range []bool{false, true} {
				publish(dev, 2, dup, id, "fleet/ids/up2", "two")
				if rec := dev.expect(packets.Pubrec); rec.PacketID != id || rec.ReasonCode >= 0x80 {
					t.Errorf("QoS 2 publish (dup %v) reusing id %d: got PUBREC %d reason %#x", dup, id, rec.PacketID, rec.ReasonCode)
				}
			}
			dev.send(ackPacket(t, packets.Pubrel, id))
			if comp := dev.expect(packets.Pubcomp); comp.PacketID != id || comp.ReasonCode != 0 {
				t.Errorf("PUBREL %d: got PUBCOMP %d reason %#x, want success", id, comp.PacketID, comp.ReasonCode)
			}
			publish(dev, 0, false, 0, "fleet/ids/up2", "end")
			n := 0
			for {
				pk := watch.expect(packets.Publish)
				if string(pk.Payload) == "end" {
					break
				}
				n++
			}
			if n != 1 {
				t.Errorf("the QoS 2 publish sent twice was delivered %d times, want once", n)
			}

			// The delivery is still the session's: resent, as a duplicate,
			// to the device coming back.
			dev.Close()
			back := srv.dial(t)
			if ack := connect(back, false); !ack.SessionPresent {
				t.Fatal("connack: no session present")
			}
			again := back.expect(packets.Publish)
			if again.PacketID != id || !again.FixedHeader.Dup || string(again.Payload) != "command" {
				t.Fatalf("after reconnect: got %s %q id %d dup %v, want the command resent with id %d",
					again.TopicName, again.Payload, again.PacketID, again.FixedHeader.Dup, id)
			}
			back.send(ackPacket(t, packets.Puback, id))
		})
	}
}
