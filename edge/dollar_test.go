package edge

import (
	"context"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

// A device's publish to a $-topic: the edge refuses it with 0x90 and a
// reason string (QoS 1 and 2), drops it at QoS 0, spools and delivers
// nothing, and the connection stays usable. Bare mochi, in the same
// test, acknowledges $foo/bar as a success and delivers it to a $foo/#
// subscriber, and leaves a QoS 1 publish to $SYS/x unanswered. Neither
// delivers a $-topic to a # or +/bar subscriber (MQTT 5 §4.7.2).
func TestDollarTopics(t *testing.T) {
	sink := &recSink{}
	e := startEdge(t, testConfig(t), sink)
	bare := startBareMochi(t)

	for _, srv := range []struct {
		name string
		addr string
		edge bool
	}{{"edge", e.Addr(), true}, {"bare mochi", bare, false}} {
		t.Run(srv.name, func(t *testing.T) {
			// Separate clients: mochi delivers one copy per client.
			sub := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: "sub", CleanStart: true})
			if _, err := sub.Subscribe(ctxWait(t), &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{
				{Topic: "#", QoS: 1}, {Topic: "+/bar", QoS: 1},
			}}); err != nil {
				t.Fatal(err)
			}
			subDollar := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: "sub-dollar", CleanStart: true})
			if _, err := subDollar.Subscribe(ctxWait(t), &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{
				{Topic: "$foo/#", QoS: 1}, {Topic: "f/#", QoS: 1},
			}}); err != nil {
				t.Fatal(err)
			}
			pub := mustConnect5(t, srv.addr, &paho5.Connect{ClientID: "pub", CleanStart: true})
			for _, qos := range []byte{1, 2} {
				resp, err := pub.Publish(ctxWait(t), &paho5.Publish{Topic: "$foo/bar", QoS: qos, Payload: []byte("x")})
				if srv.edge {
					if resp == nil || resp.ReasonCode != 0x90 || resp.Properties == nil || resp.Properties.ReasonString == "" {
						t.Errorf("qos %d: got %+v %v, want reason code 0x90 with a reason string", qos, resp, err)
					}
				} else if err != nil || resp.ReasonCode >= 0x80 {
					t.Errorf("qos %d: got %+v %v, want a success", qos, resp, err)
				}
			}
			if _, err := pub.Publish(ctxWait(t), &paho5.Publish{Topic: "$foo/bar", QoS: 0, Payload: []byte("q0")}); err != nil {
				t.Fatal(err)
			}
			// $SYS at QoS 1: the edge refuses it, bare mochi never answers.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := pub.Publish(ctx, &paho5.Publish{Topic: "$SYS/x", QoS: 1, Payload: []byte("x")})
			cancel()
			if srv.edge && (resp == nil || resp.ReasonCode != 0x90) {
				t.Errorf("$SYS/x: got %+v %v, want 0x90", resp, err)
			}
			if !srv.edge && err == nil {
				t.Errorf("$SYS/x on bare mochi: got %+v, want no answer", resp)
			}
			// A plain publish after them: the connection is usable, and
			// when it arrives everything before it has been delivered.
			if _, err := pub.Publish(ctxWait(t), &paho5.Publish{Topic: "f/bar", QoS: 1, Payload: []byte("end")}); err != nil {
				t.Fatalf("publish after the refusals: %v", err)
			}
			// dollars waits for f/bar at c and counts what came before.
			dollars := func(c *client5) int {
				testutil.Eventually(t, "the final message", func() bool {
					for _, m := range c.messages() {
						if m.Topic == "f/bar" {
							return true
						}
					}
					return false
				})
				n := 0
				for _, m := range c.messages() {
					if m.Topic != "f/bar" {
						n++
					}
				}
				return n
			}
			if n := dollars(sub); n != 0 {
				t.Errorf("# and +/bar: got %d $-topic deliveries, want 0", n)
			}
			want := 0
			if !srv.edge {
				want = 3 // QoS 1, 2 and 0
			}
			if n := dollars(subDollar); n != want {
				t.Errorf("$foo/#: got %d $-topic deliveries, want %d", n, want)
			}
		})
	}
	for _, m := range sink.all() {
		if h := header(m, "mqtt.topic"); h != "f/bar" {
			t.Errorf("got %s spooled, want only f/bar", h)
		}
	}
}

// An MQTT 3.1.1 device's QoS 1 publish to a $-topic closes its connection
// (3.1.1 has no negative acknowledgement); nothing is spooled.
func TestDollarTopic311(t *testing.T) {
	sink := &recSink{}
	e := startEdge(t, testConfig(t), sink)
	c := dialRaw(t, e.Addr())
	c.connect(4, "d311", "", "")
	c.send(publishPacket(1, 1, "$foo/bar", "x", false))
	if got := c.waitClosed(); len(got) != 0 {
		t.Errorf("got packets %#x before the close, want none", got)
	}
	if n := len(sink.all()); n != 0 {
		t.Errorf("got %d spooled, want 0", n)
	}
}
