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

// Flow control (MQTT 5 §4.9): a subscriber that announced a Receive
// Maximum never has more QoS 1/2 messages unacknowledged towards it, is
// sent the next ones as its PUBACKs (QoS 1) or PUBCOMPs (QoS 2; a PUBREC
// does not give the quota back) come, and gets every message, in order,
// from the edge as from bare mochi (vendored, patched: mochi v2.7.9
// stalled after Receive Maximum messages).
func TestReceiveMaximumToClient(t *testing.T) {
	const total = 12
	srvs := edgeAndMochi(t, nil)
	for _, tc := range []struct {
		recvMax int
		qos     byte
	}{{2, 1}, {2, 2}, {1, 1}, {1, 2}} {
		for _, srv := range srvs {
			t.Run(fmt.Sprintf("receive maximum %d/qos %d/%s", tc.recvMax, tc.qos, srv.name), func(t *testing.T) {
				id := fmt.Sprintf("fc-%d-%d", tc.recvMax, tc.qos)
				topic := "fleet/" + id + "/x"
				f := connectFlow(t, srv, id, tc.recvMax, false, false)
				f.subscribe(topic, tc.qos)
				pub := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: id + "-pub", CleanStart: true})
				var want []string
				for i := range total {
					want = append(want, fmt.Sprint(i))
					publish5(t, pub, &paho5.Publish{Topic: topic, QoS: tc.qos, Payload: []byte(want[i])})
				}
				f.readAll(total)
				f.check(want, make([]bool, total))
				f.expectNoMore()
			})
		}
	}
}

// A subscriber with a persistent session that goes away while messages
// wait for its quota gets, on reconnecting (with another Receive
// Maximum), the unacknowledged ones again (DUP set), then the waiting
// ones and those published while it was away, in order.
func TestReceiveMaximumAcrossReconnect(t *testing.T) {
	const before, away = 12, 3
	for _, srv := range edgeAndMochi(t, nil) {
		t.Run(srv.name, func(t *testing.T) {
			const topic = "fleet/fr/x"
			f := connectFlow(t, srv, "fr-sub", 2, true, false)
			f.subscribe(topic, 1)
			pub := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: "fr-pub", CleanStart: true})
			for i := range before {
				publish5(t, pub, &paho5.Publish{Topic: topic, Payload: fmt.Appendf(nil, "%d", i)})
			}
			// 0-2 acknowledged, 3 and 4 not, 5-11 waiting for quota.
			for len(f.got) < 5 {
				f.step(before)
			}
			f.check([]string{"0", "1", "2", "3", "4"}, make([]bool, 5))
			f.c.Close()
			for i := before; i < before+away; i++ {
				publish5(t, pub, &paho5.Publish{Topic: topic, Payload: fmt.Appendf(nil, "%d", i)})
			}

			g := connectFlow(t, srv, "fr-sub", 3, true, true)
			g.readAll(before + away - 3)
			var want []string
			var dup []bool
			for i := 3; i < before+away; i++ {
				want = append(want, fmt.Sprint(i))
				dup = append(dup, i < 5)
			}
			g.check(want, dup)
			g.expectNoMore()
		})
	}
}

// flowSub is a raw MQTT 5 subscriber that acknowledges the messages it
// receives only once it has as many unacknowledged as its Receive
// Maximum (or all it waits for), the oldest first, each after a
// PINGREQ/PINGRESP round trip in which the server could send one too
// many.
type flowSub struct {
	t           *testing.T
	c           *auditConn
	recvMax     int
	outstanding []flowMsg // flows not complete, oldest first
	got         []string  // payloads, in the order received
	dup         []bool    // their DUP flags
	most        int       // most flows outstanding at once
	pinging     bool
}

type flowMsg struct {
	id        uint16
	qos       byte
	recd, rel bool // QoS 2: PUBREC sent, PUBREL received
	payload   string
}

// connectFlow connects client id with Receive Maximum recvMax, with a
// persistent session if persistent, and checks the CONNACK's Session
// Present against present.
func connectFlow(t *testing.T, srv server, id string, recvMax int, persistent, present bool) *flowSub {
	t.Helper()
	c := srv.dial(t)
	props := packets.Properties{ReceiveMaximum: uint16(recvMax)}
	if persistent {
		props.SessionExpiryInterval, props.SessionExpiryIntervalFlag = 300, true
	}
	c.send(rawPacket(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Properties: props,
		Connect: packets.ConnectParams{ClientIdentifier: id, Clean: !persistent, Keepalive: 60}}))
	ack := c.expect(packets.Connack)
	if ack.ReasonCode != 0 || ack.SessionPresent != present {
		t.Fatalf("connack: got reason %#x, session present %v, want 0x00, %v", ack.ReasonCode, ack.SessionPresent, present)
	}
	return &flowSub{t: t, c: c, recvMax: recvMax}
}

func (f *flowSub) subscribe(filter string, qos byte) {
	f.t.Helper()
	f.c.send(rawPacket(f.t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: filter, Qos: qos}}}))
	if sa := f.c.expect(packets.Suback); len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] != qos {
		f.t.Fatalf("suback: got %v, want [%d]", sa.ReasonCodes, qos)
	}
}

// readAll reads until total messages arrived and all are acknowledged. A
// server that stops sending fails the test at the connection's deadline.
func (f *flowSub) readAll(total int) {
	f.t.Helper()
	for len(f.got) < total || len(f.outstanding) > 0 {
		f.step(total)
	}
}

// step reads one packet and answers it; total is how many messages the
// subscriber waits for.
func (f *flowSub) step(total int) {
	t := f.t
	t.Helper()
	pk, ok := f.c.next()
	if !ok {
		t.Fatalf("closed after %d messages, want %d", len(f.got), total)
	}
	switch pk.FixedHeader.Type {
	case packets.Publish:
		f.got = append(f.got, string(pk.Payload))
		f.dup = append(f.dup, pk.FixedHeader.Dup)
		f.outstanding = append(f.outstanding, flowMsg{id: pk.PacketID, qos: pk.FixedHeader.Qos, payload: string(pk.Payload)})
		f.most = max(f.most, len(f.outstanding))
		if len(f.outstanding) > f.recvMax {
			t.Errorf("message %s: got %d unacknowledged messages, want at most %d", pk.Payload, len(f.outstanding), f.recvMax)
		}
	case packets.Pubrel:
		i := slices.IndexFunc(f.outstanding, func(m flowMsg) bool { return m.id == pk.PacketID && m.recd })
		if i < 0 {
			t.Fatalf("got PUBREL %d, want one for a message this client sent a PUBREC for", pk.PacketID)
		}
		f.outstanding[i].rel = true
	case packets.Pingresp:
		f.pinging = false
		if len(f.outstanding) == 0 {
			break
		}
		m := &f.outstanding[0]
		switch {
		case m.qos == 1:
			f.c.send(ackPacket(t, packets.Puback, m.id))
			f.outstanding = f.outstanding[1:]
		case !m.recd:
			f.c.send(ackPacket(t, packets.Pubrec, m.id))
			m.recd = true
		case m.rel:
			f.c.send(ackPacket(t, packets.Pubcomp, m.id))
			f.outstanding = f.outstanding[1:]
		default:
			t.Fatalf("message %s: got no PUBREL before the PINGRESP after its PUBREC", m.payload)
		}
	default:
		t.Fatalf("got packet type %d, want a PUBLISH, PUBREL or PINGRESP", pk.FixedHeader.Type)
	}
	if !f.pinging && len(f.outstanding) > 0 && (len(f.outstanding) == f.recvMax || len(f.got) >= total) {
		f.c.send([]byte{0xc0, 0}) // PINGREQ
		f.pinging = true
	}
}

// check compares the payloads received and their DUP flags with want
// and dup, and the most messages unacknowledged at once with the Receive
// Maximum.
func (f *flowSub) check(want []string, dup []bool) {
	f.t.Helper()
	if !slices.Equal(f.got, want) {
		f.t.Errorf("got messages %v, want %v", f.got, want)
	}
	if !slices.Equal(f.dup, dup) {
		f.t.Errorf("got DUP flags %v, want %v", f.dup, dup)
	}
	if f.most > f.recvMax {
		f.t.Errorf("got %d unacknowledged messages at once, want at most %d", f.most, f.recvMax)
	}
}

// expectNoMore checks that a PINGREQ is answered with no message before
// its PINGRESP.
func (f *flowSub) expectNoMore() {
	f.t.Helper()
	for f.pinging { // the PINGRESP of a PINGREQ still unanswered
		f.step(len(f.got))
	}
	f.c.send([]byte{0xc0, 0})
	if pk, ok := f.c.next(); !ok || pk.FixedHeader.Type != packets.Pingresp {
		f.t.Errorf("after the last message: got packet type %d (open %v), want a PINGRESP", pk.FixedHeader.Type, ok)
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
