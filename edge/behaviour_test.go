package edge

import (
	"fmt"
	"slices"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

// The MQTT 5 behaviours devices subscribing through the edge rely on,
// each checked against the edge and against bare mochi in the same test.

type server struct {
	name string
	addr string
	edge bool
}

// edgeAndMochi starts an anonymous edge (configured by mod, if not nil)
// and a bare mochi.
func edgeAndMochi(t *testing.T, mod func(*Config)) []server {
	cfg := testConfig(t)
	if mod != nil {
		mod(&cfg)
	}
	e := startEdge(t, cfg, &recSink{})
	return []server{{"edge", e.Addr(), true}, {"bare mochi", startBareMochi(t), false}}
}

// dial is a raw MQTT 5 connection to srv, whose packets are audited
// when srv is the edge.
func (srv server) dial(t *testing.T) *auditConn {
	c := dialAudit(t, srv.addr)
	c.trust = !srv.edge
	return c
}

// untilTopic waits until c has received a message on topic and returns
// what it received before it, in order.
func untilTopic(t *testing.T, c *client5, topic string) []*paho5.Publish {
	t.Helper()
	var before []*paho5.Publish
	testutil.Eventually(t, "a message on "+topic, func() bool {
		msgs := c.messages()
		for i, m := range msgs {
			if m.Topic == topic {
				before = msgs[:i]
				return true
			}
		}
		return false
	})
	return before
}

func subscribe5(t *testing.T, c *client5, opts ...paho5.SubscribeOptions) {
	t.Helper()
	sa, err := c.Subscribe(ctxWait(t), &paho5.Subscribe{Subscriptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	for i, code := range sa.Reasons {
		if code >= 0x80 {
			t.Fatalf("subscribe %s: got reason code %#x, want a grant", opts[i].Topic, code)
		}
	}
}

func publish5(t *testing.T, c *client5, p *paho5.Publish) {
	t.Helper()
	if p.QoS == 0 {
		p.QoS = 1
	}
	resp, err := c.Publish(ctxWait(t), p)
	if err != nil || resp != nil && resp.ReasonCode >= 0x80 {
		t.Fatalf("publish %s: got %+v, %v, want it acknowledged", p.Topic, resp, err)
	}
}

// Retain Handling 0 sends the retained message on every subscription, 1
// only on a new one, 2 never; Retain As Published keeps the RETAIN flag
// of a live message, which is otherwise cleared (MQTT 5 §3.8.3.1,
// §3.3.1.3). A retained message sent because of a subscription has it
// set. Both the edge and bare mochi do so.
func TestRetainHandling(t *testing.T) {
	for _, srv := range edgeAndMochi(t, nil) {
		t.Run(srv.name, func(t *testing.T) {
			pub := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: "r-pub", CleanStart: true})
			publish5(t, pub, &paho5.Publish{Topic: "fleet/r/state", Payload: []byte("on"), Retain: true})

			for _, tc := range []struct {
				handling byte
				twice    bool // subscribe a second time to the same filter
				want     int  // retained messages received
			}{{0, true, 2}, {1, true, 1}, {2, true, 0}} {
				id := fmt.Sprintf("r-sub-%d", tc.handling)
				c := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: id, CleanStart: true})
				sub := paho5.SubscribeOptions{Topic: "fleet/r/#", QoS: 1, RetainHandling: tc.handling}
				subscribe5(t, c, sub)
				if tc.twice {
					subscribe5(t, c, sub)
				}
				// The client's own publish is delivered after the
				// retained messages its subscriptions queued.
				publish5(t, c, &paho5.Publish{Topic: "fleet/r/mark", Payload: []byte("m")})
				got := untilTopic(t, c, "fleet/r/mark")
				n := 0
				for _, m := range got {
					if m.Topic == "fleet/r/state" && m.Retain && string(m.Payload) == "on" {
						n++
					} else {
						t.Errorf("retain handling %d: got %s retain %v, want only the retained fleet/r/state", tc.handling, m.Topic, m.Retain)
					}
				}
				if n != tc.want {
					t.Errorf("retain handling %d: got %d retained messages, want %d", tc.handling, n, tc.want)
				}
			}

			rap := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: "r-rap", CleanStart: true})
			subscribe5(t, rap, paho5.SubscribeOptions{Topic: "fleet/r2/#", QoS: 1, RetainHandling: 2, RetainAsPublished: true})
			plain := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: "r-plain", CleanStart: true})
			subscribe5(t, plain, paho5.SubscribeOptions{Topic: "fleet/r2/#", QoS: 1, RetainHandling: 2})
			publish5(t, pub, &paho5.Publish{Topic: "fleet/r2/live", Payload: []byte("x"), Retain: true})
			publish5(t, pub, &paho5.Publish{Topic: "fleet/r2/mark", Payload: []byte("m")})
			for _, c := range []struct {
				c    *client5
				want bool
			}{{rap, true}, {plain, false}} {
				got := untilTopic(t, c.c, "fleet/r2/mark")
				if len(got) != 1 || got[0].Topic != "fleet/r2/live" || got[0].Retain != c.want {
					t.Errorf("retain as published %v: got %v, want fleet/r2/live with retain %v", c.want, got, c.want)
				}
			}
		})
	}
}

// No Local: a client is not sent its own publishes on a subscription
// with No Local, but is sent others'. Both the edge and bare mochi do so.
func TestNoLocal(t *testing.T) {
	for _, srv := range edgeAndMochi(t, nil) {
		t.Run(srv.name, func(t *testing.T) {
			c := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: "nl-c", CleanStart: true})
			subscribe5(t, c, paho5.SubscribeOptions{Topic: "fleet/nl/a", QoS: 1, NoLocal: true},
				paho5.SubscribeOptions{Topic: "fleet/nl/mark", QoS: 1})
			other := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: "nl-other", CleanStart: true})
			publish5(t, other, &paho5.Publish{Topic: "fleet/nl/a", Payload: []byte("other")})
			untilTopic(t, c, "fleet/nl/a")
			publish5(t, c, &paho5.Publish{Topic: "fleet/nl/a", Payload: []byte("own")})
			publish5(t, c, &paho5.Publish{Topic: "fleet/nl/mark", Payload: []byte("m")})
			got := untilTopic(t, c, "fleet/nl/mark")
			if len(got) != 1 || string(got[0].Payload) != "other" {
				var ps []string
				for _, m := range got {
					ps = append(ps, string(m.Payload))
				}
				t.Errorf("got %v before the mark, want only [other]", ps)
			}
		})
	}
}

// User properties reach subscribers unchanged and in order, repeated
// names and names under mqtt. (which the edge keeps out of record
// headers) included. Both the edge and bare mochi do so.
func TestUserPropertiesForwarded(t *testing.T) {
	want := paho5.UserProperties{{Key: "unit", Value: "c"}, {Key: "trace", Value: "1"},
		{Key: "unit", Value: "f"}, {Key: "mqtt.topic", Value: "forged"}, {Key: "ü", Value: ""}}
	for _, srv := range edgeAndMochi(t, nil) {
		t.Run(srv.name, func(t *testing.T) {
			sub := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: "up-sub", CleanStart: true})
			subscribe5(t, sub, paho5.SubscribeOptions{Topic: "fleet/up/#", QoS: 1})
			pub := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: "up-pub", CleanStart: true})
			for _, qos := range []byte{0, 1, 2} {
				topic := fmt.Sprintf("fleet/up/q%d", qos)
				p := &paho5.Publish{Topic: topic, QoS: qos, Payload: []byte("x"),
					Properties: &paho5.PublishProperties{User: want}}
				if _, err := pub.Publish(ctxWait(t), p); err != nil {
					t.Fatal(err)
				}
				untilTopic(t, sub, topic)
			}
			for _, m := range sub.messages() {
				if m.Properties == nil || !slices.Equal(m.Properties.User, want) {
					t.Errorf("%s: got user properties %v, want %v", m.Topic, m.Properties, want)
				}
			}
		})
	}
}

// An MQTT 5 client asking for no keep alive is given the edge's
// (Config.MaxKeepAlive) in its CONNACK as Server Keep Alive and is
// disconnected once silent for longer; one asking for a shorter keep
// alive keeps its own, unannounced. Bare mochi announces none and would
// keep a silent client without keep alive for ever.
func TestServerKeepAlive(t *testing.T) {
	for _, srv := range edgeAndMochi(t, func(c *Config) { c.MaxKeepAlive = 2 * time.Second }) {
		t.Run(srv.name, func(t *testing.T) {
			short := srv.dial(t)
			ack := short.connect("ka-short", "", "", 1)
			if ack.ReasonCode != 0 || ack.Properties.ServerKeepAliveFlag {
				t.Errorf("keep alive 1: got reason %#x, Server Keep Alive %v %d, want success without one",
					ack.ReasonCode, ack.Properties.ServerKeepAliveFlag, ack.Properties.ServerKeepAlive)
			}

			c := srv.dial(t)
			ack = c.connect("ka-none", "", "", 0)
			if !srv.edge {
				if ack.Properties.ServerKeepAliveFlag {
					t.Errorf("bare mochi: got Server Keep Alive %d, want none", ack.Properties.ServerKeepAlive)
				}
				return
			}
			if !ack.Properties.ServerKeepAliveFlag || ack.Properties.ServerKeepAlive != 2 {
				t.Fatalf("got Server Keep Alive %v %d, want 2", ack.Properties.ServerKeepAliveFlag, ack.Properties.ServerKeepAlive)
			}
			// Silent: the edge closes the connection (dialRaw's deadline
			// fails the test if it does not).
			c.untilClosed()
			short.untilClosed()
		})
	}
}

// Flow control: a subscriber that announced a Receive Maximum of 2 never
// has more than 2 QoS 1 messages unacknowledged towards it, from the edge
// as from bare mochi. Both then stall: mochi parks the messages past the
// quota and loses quota on each one it releases (see the package
// documentation); the test logs how far delivery got rather than fail on
// what needs mochi itself fixed.
func TestReceiveMaximumToClient(t *testing.T) {
	const recvMax, total = 2, 12
	for _, srv := range edgeAndMochi(t, nil) {
		t.Run(srv.name, func(t *testing.T) {
			c := srv.dial(t)
			rm := uint16(recvMax)
			c.send(rawPacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
				Properties: packets.Properties{ReceiveMaximum: rm},
				Connect:    packets.ConnectParams{ClientIdentifier: "fc-sub", Clean: true, Keepalive: 60}}))
			if ack := c.expect(packets.Connack); ack.ReasonCode != 0 {
				t.Fatalf("connack: got %#x, want 0x00", ack.ReasonCode)
			}
			c.send(rawPacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 1,
				Filters: packets.Subscriptions{{Filter: "fleet/fc/#", Qos: 1}}}))
			c.expect(packets.Suback)

			pub := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: "fc-pub", CleanStart: true})
			for i := range total {
				publish5(t, pub, &paho5.Publish{Topic: "fleet/fc/x", Payload: fmt.Appendf(nil, "%d", i)})
			}
			// Read; on each PINGRESP (a round trip in which the server
			// could send one too many) acknowledge the oldest message and
			// ping again, until all arrived or none is left to
			// acknowledge and none came.
			var unacked []uint16
			received, most := 0, 0
			c.send([]byte{0xc0, 0}) // PINGREQ
			for received < total {
				pk, ok := c.next()
				if !ok {
					t.Fatalf("closed after %d messages, want %d", received, total)
				}
				switch pk.FixedHeader.Type {
				case packets.Publish:
					received++
					unacked = append(unacked, pk.PacketID)
					most = max(most, len(unacked))
				case packets.Pingresp:
					if len(unacked) == 0 {
						t.Logf("delivery stalled after %d of %d messages, none unacknowledged (mochi's flow control; see the package documentation)", received, total)
						received = total
						continue
					}
					c.send(ackPacket(t, packets.Puback, unacked[0]))
					unacked = unacked[1:]
					c.send([]byte{0xc0, 0})
				}
			}
			if most > recvMax {
				t.Errorf("got %d unacknowledged messages at once, want at most %d", most, recvMax)
			}
		})
	}
}

// Shared subscriptions: each message on $share/{group}/{filter} goes to
// one member of the group, and both members get some.
func TestSharedSubscriptions(t *testing.T) {
	const total = 40
	for _, srv := range edgeAndMochi(t, nil) {
		t.Run(srv.name, func(t *testing.T) {
			var members []*client5
			for i := range 2 {
				c := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: fmt.Sprintf("sh-%d", i), CleanStart: true})
				subscribe5(t, c, paho5.SubscribeOptions{Topic: "$share/g/fleet/sh/#", QoS: 1})
				members = append(members, c)
			}
			pub := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: "sh-pub", CleanStart: true})
			for i := range total {
				publish5(t, pub, &paho5.Publish{Topic: "fleet/sh/x", Payload: fmt.Appendf(nil, "%d", i)})
			}
			testutil.Eventually(t, fmt.Sprintf("%d messages across the group", total), func() bool {
				return len(members[0].messages())+len(members[1].messages()) >= total
			})
			seen := map[string]int{}
			for i, m := range members {
				n := len(m.messages())
				if n == 0 {
					t.Errorf("member %d: got no message, want a share of %d", i, total)
				}
				t.Logf("member %d: %d messages", i, n)
				for _, p := range m.messages() {
					seen[string(p.Payload)]++
				}
			}
			for p, n := range seen {
				if n != 1 {
					t.Errorf("message %s: delivered %d times, want once", p, n)
				}
			}
			if len(seen) != total {
				t.Errorf("got %d distinct messages, want %d", len(seen), total)
			}
		})
	}
}
