package route

import (
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/bridge/spool"
)

func headers(hs []kmsg.Header) [][2]string {
	out := make([][2]string, len(hs))
	for i, h := range hs {
		out[i] = [2]string{h.Key, string(h.Value)}
	}
	return out
}

func TestMessage(t *testing.T) {
	rt := NewRouter(DefaultRoutes(), "edge-1")
	now := time.UnixMilli(1700000000123)
	tests := []struct {
		name        string
		p           Publish
		wantTopic   string
		wantLane    spool.Lane
		wantKey     string
		wantHeaders [][2]string
	}{
		{
			name:      "device publish keyed by device, client is the key",
			p:         Publish{Topic: "f/car-7/gps", Payload: []byte("x"), QoS: 1, ClientID: "car-7", Received: now},
			wantTopic: "telemetry", wantLane: spool.Telemetry, wantKey: "car-7",
			wantHeaders: [][2]string{{HeaderTopic, "f/car-7/gps"}, {HeaderQoS, "1"}, {HeaderEdgeID, "edge-1"}, {HeaderReceivedMS, "1700000000123"}},
		},
		{
			name:      "client differs from the key",
			p:         Publish{Topic: "f/car-7/alarm/fire", QoS: 2, ClientID: "gw-1", Received: now},
			wantTopic: "alarms", wantLane: spool.Alarm, wantKey: "car-7",
			wantHeaders: [][2]string{{HeaderTopic, "f/car-7/alarm/fire"}, {HeaderQoS, "2"}, {HeaderClient, "gw-1"}, {HeaderEdgeID, "edge-1"}, {HeaderReceivedMS, "1700000000123"}},
		},
		{
			name:      "relayed: no client header, client id still the fallback key",
			p:         Publish{Topic: "hello", QoS: 0, ClientID: "bridge-a", Relayed: true, Received: now},
			wantTopic: "telemetry", wantLane: spool.Telemetry, wantKey: "bridge-a",
			wantHeaders: [][2]string{{HeaderTopic, "hello"}, {HeaderQoS, "0"}, {HeaderEdgeID, "edge-1"}, {HeaderReceivedMS, "1700000000123"}},
		},
		{
			name: "will with user properties, reserved ones dropped",
			p: Publish{Topic: "f/d/status", QoS: 1, ClientID: "d", Will: true, Received: now,
				User: []Property{{"site", "north"}, {"mqtt.topic", "forged"}, {"edge.id", "forged"}, {"unit", "C"}}},
			wantTopic: "telemetry", wantLane: spool.Telemetry, wantKey: "d",
			wantHeaders: [][2]string{{HeaderTopic, "f/d/status"}, {HeaderQoS, "1"}, {HeaderEdgeID, "edge-1"}, {HeaderReceivedMS, "1700000000123"},
				{HeaderWill, "1"}, {"site", "north"}, {"unit", "C"}},
		},
		{
			name: "mqtt 5 properties as fixed headers, before the user properties in order, repeats kept",
			p: Publish{Topic: "f/d/t", QoS: 1, ClientID: "d", Received: now,
				ContentType: "application/json", PayloadFormat: 1, PayloadFormatSet: true,
				ResponseTopic: "f/d/reply", CorrelationData: []byte{0, 1, 0xff}, Expiry: 90 * time.Second,
				User: []Property{{"b", "2"}, {"a", "1"}, {"b", "3"}, {"mqtt.content_type", "forged"}}},
			wantTopic: "telemetry", wantLane: spool.Telemetry, wantKey: "d",
			wantHeaders: [][2]string{{HeaderTopic, "f/d/t"}, {HeaderQoS, "1"}, {HeaderEdgeID, "edge-1"}, {HeaderReceivedMS, "1700000000123"},
				{HeaderContentType, "application/json"}, {HeaderPayloadFormat, "1"}, {HeaderResponseTopic, "f/d/reply"},
				{HeaderCorrelationData, "\x00\x01\xff"}, {HeaderExpiryMS, "1700000090123"},
				{"b", "2"}, {"a", "1"}, {"b", "3"}},
		},
		{
			name: "payload format 0 is written when sent; empty correlation data kept",
			p: Publish{Topic: "f/d/t", QoS: 0, ClientID: "d", Received: now,
				PayloadFormatSet: true, CorrelationData: []byte{}},
			wantTopic: "telemetry", wantLane: spool.Telemetry, wantKey: "d",
			wantHeaders: [][2]string{{HeaderTopic, "f/d/t"}, {HeaderQoS, "0"}, {HeaderEdgeID, "edge-1"}, {HeaderReceivedMS, "1700000000123"},
				{HeaderPayloadFormat, "0"}, {HeaderCorrelationData, ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := rt.Message(tt.p)
			if !ok {
				t.Fatalf("got no route, want %s", tt.wantTopic)
			}
			if m.Topic != tt.wantTopic || m.Lane != tt.wantLane || string(m.Key) != tt.wantKey {
				t.Errorf("got %s/%s key %q, want %s/%s key %q", m.Topic, m.Lane, m.Key, tt.wantTopic, tt.wantLane, tt.wantKey)
			}
			if got := headers(m.Headers); !reflect.DeepEqual(got, tt.wantHeaders) {
				t.Errorf("got headers %q, want %q", got, tt.wantHeaders)
			}
			if !m.Time.Equal(now) || string(m.Value) != string(tt.p.Payload) {
				t.Errorf("got time %v value %q, want %v %q", m.Time, m.Value, now, tt.p.Payload)
			}
		})
	}
	if _, ok := rt.Message(Publish{Topic: "$SYS/x", ClientID: "c"}); ok {
		t.Errorf("Message($SYS/x): got a route, want none")
	}
}

func TestDeadline(t *testing.T) {
	tests := []struct {
		hs     []kmsg.Header
		want   int64
		wantOK bool
	}{
		{nil, 0, false},
		{[]kmsg.Header{{Key: HeaderTopic, Value: []byte("x")}}, 0, false},
		{[]kmsg.Header{{Key: HeaderTopic, Value: []byte("x")}, {Key: HeaderExpiryMS, Value: []byte("1700000090123")}}, 1700000090123, true},
		{[]kmsg.Header{{Key: HeaderExpiryMS, Value: []byte("soon")}}, 0, false},
	}
	for i, tt := range tests {
		got, ok := Deadline(tt.hs)
		if ok != tt.wantOK || (ok && got.UnixMilli() != tt.want) {
			t.Errorf("%d: got %v %v, want %d %v", i, got.UnixMilli(), ok, tt.want, tt.wantOK)
		}
	}
}

func TestHeadersSize(t *testing.T) {
	hs := []kmsg.Header{{Key: "ab", Value: []byte("cde")}, {Key: "f", Value: nil}}
	if got := HeadersSize(hs); got != 6 {
		t.Errorf("got %d, want 6", got)
	}
}

// A user property with an empty value is an empty header value, not a
// null one; the values are those sent.
func TestMessageUserPropertyValues(t *testing.T) {
	rt := NewRouter(DefaultRoutes(), "edge-1")
	msg, ok := rt.Message(Publish{Topic: "fleet/d1/t", ClientID: "d1", User: []Property{{"a", ""}, {"b", "2"}, {"a", "3"}}})
	if !ok {
		t.Fatal("no route")
	}
	hs := msg.Headers[len(msg.Headers)-3:]
	for i, want := range []Property{{"a", ""}, {"b", "2"}, {"a", "3"}} {
		if hs[i].Key != want.Key || string(hs[i].Value) != want.Val || hs[i].Value == nil {
			t.Errorf("header %d: got %q=%q (nil %v), want %q=%q, not nil", i, hs[i].Key, hs[i].Value, hs[i].Value == nil, want.Key, want.Val)
		}
	}
}

// MessageIn builds the same messages as Message in a reused Buf, whatever
// was built in it before (larger, smaller, with and without properties).
func TestMessageIn(t *testing.T) {
	rt := NewRouter(DefaultRoutes(), "edge-1")
	now := time.UnixMilli(1700000000123)
	ps := []Publish{
		{Topic: "cars/c-0001/telemetry", Payload: []byte("x"), QoS: 1, ClientID: "c-0001", Received: now,
			User: []Property{{"unit", "celsius"}, {"schema", "v2"}, {"mqtt.topic", "forged"}, {"trace-id", "4bf92f3577b34da6"}}},
		{Topic: "a/b/alarm/fire", Payload: []byte("y"), QoS: 2, ClientID: "other-client", Will: true, Received: now,
			ContentType: "application/json", PayloadFormat: 1, PayloadFormatSet: true, ResponseTopic: "r/t",
			CorrelationData: []byte{1, 2}, Expiry: time.Minute},
		{Topic: "x", Payload: nil, ClientID: "c", Received: now},
		{Topic: "cars/c-0002/telemetry/with/a/much/longer/topic/than/before", ClientID: "c-0002", Received: now,
			User: []Property{{"k", ""}, {"k", "v"}}},
		{Topic: "nomatch", ClientID: "c", Received: now},
	}
	var buf Buf
	for round := range 2 {
		for i, p := range ps {
			want, wantOK := rt.Message(p)
			got, ok := rt.MessageIn(&buf, p)
			if ok != wantOK || !reflect.DeepEqual(got, want) {
				t.Errorf("round %d, publish %d: got %+v %v, want %+v %v", round, i, got, ok, want, wantOK)
			}
		}
	}
}
