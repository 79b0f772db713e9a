package edge

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
)

// An MQTT 5 device publishes with three user properties (one name twice),
// a content type, a payload format, a response topic, correlation data
// and a message expiry: the record in a real spool has the edge's
// headers, the property headers and the user properties in the order
// sent, and a forged mqtt.* user property is dropped.
func TestPropertiesToHeaders(t *testing.T) {
	sc := spool.DefaultConfig()
	sc.SegmentBytes = 1 << 20
	sc.MaxBytes = 16 << 20
	sc.MaxMessageBytes = 64 << 10
	sp, err := spool.Open(t.TempDir(), sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	e := startEdge(t, testConfig(t), sp)
	c := mustConnect5(t, e.Addr(), &paho5.Connect{ClientID: "car-7", CleanStart: true})

	format := byte(1)
	expiry := uint32(3600)
	before := time.Now()
	resp, err := c.Publish(ctxWait(t), &paho5.Publish{
		Topic: "fleet/car-7/gps", QoS: 1, Payload: []byte(`{"lat":1}`),
		Properties: &paho5.PublishProperties{
			ContentType:     "application/json",
			PayloadFormat:   &format,
			ResponseTopic:   "fleet/car-7/reply",
			CorrelationData: []byte{0x00, 0x2a, 0xff},
			MessageExpiry:   &expiry,
			User: paho5.UserProperties{
				{Key: "unit", Value: "celsius"},
				{Key: "mqtt.topic", Value: "forged"},
				{Key: "trace", Value: "a1"},
				{Key: "unit", Value: "kelvin"},
			},
		},
	})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if resp.ReasonCode != 0 {
		t.Fatalf("got PUBACK reason %#x, want 0x00", resp.ReasonCode)
	}
	recs, _, err := sp.Read(spool.Telemetry, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("got %d spooled records, want 1", len(recs))
	}
	var got [][2]string
	for _, h := range recs[0].Headers {
		got = append(got, [2]string{h.Key, string(h.Value)})
	}
	recv := got[3][1]
	ms, err := strconv.ParseInt(recv, 10, 64)
	if err != nil || ms < before.UnixMilli() {
		t.Fatalf("got edge.received_ms %q, want a time from %d on", recv, before.UnixMilli())
	}
	want := [][2]string{
		{route.HeaderTopic, "fleet/car-7/gps"}, {route.HeaderQoS, "1"}, {route.HeaderEdgeID, "edge-test"},
		{route.HeaderReceivedMS, recv},
		{route.HeaderContentType, "application/json"}, {route.HeaderPayloadFormat, "1"},
		{route.HeaderResponseTopic, "fleet/car-7/reply"}, {route.HeaderCorrelationData, "\x00\x2a\xff"},
		{route.HeaderExpiryMS, strconv.FormatInt(ms+3600*1000, 10)},
		{"unit", "celsius"}, {"trace", "a1"}, {"unit", "kelvin"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got headers\n%q\nwant\n%q", got, want)
	}
}

// Past Config.MaxHeaders or Config.MaxHeaderBytes an MQTT 5 publish is
// refused with 0x83 and a reason string, at QoS 1 (PUBACK) and QoS 2
// (PUBREC), nothing is spooled, and the connection stays usable.
func TestHeaderLimits(t *testing.T) { eachSink(t, testHeaderLimits) }

func testHeaderLimits(t *testing.T, sink *recSink, s Sink) {
	cfg := testConfig(t)
	cfg.MaxHeaders = 12       // the edge's 4 here, so 8 user properties
	cfg.MaxHeaderBytes = 1024 // keys and values
	e := startEdge(t, cfg, s)
	c := mustConnect5(t, e.Addr(), &paho5.Connect{ClientID: "d", CleanStart: true})
	props := func(n, size int) paho5.UserProperties {
		var u paho5.UserProperties
		for i := range n {
			u = append(u, paho5.UserProperty{Key: "k" + strconv.Itoa(i), Value: strings.Repeat("v", size)})
		}
		return u
	}
	tests := []struct {
		name   string
		user   paho5.UserProperties
		qos    byte
		reason string // "" for success
	}{
		{"at the count limit", props(8, 1), 1, ""},
		{"one header too many, qos 1", props(9, 1), 1, "too many headers: 13, at most 12"},
		{"one header too many, qos 2", props(9, 1), 2, "too many headers: 13, at most 12"},
		{"too many bytes", props(2, 600), 1, "headers too large"},
	}
	accepted := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Publish(ctxWait(t), &paho5.Publish{Topic: "f/d/t", QoS: tt.qos, Payload: []byte("x"),
				Properties: &paho5.PublishProperties{User: tt.user}})
			if tt.reason == "" {
				if err != nil || resp.ReasonCode != 0 {
					t.Fatalf("got %v %+v, want success", err, resp)
				}
				accepted++
				return
			}
			if resp == nil {
				t.Fatalf("got no response (%v), want reason code 0x83", err)
			}
			if resp.ReasonCode != 0x83 {
				t.Errorf("got reason code %#x, want 0x83", resp.ReasonCode)
			}
			if resp.Properties == nil || !strings.Contains(resp.Properties.ReasonString, tt.reason) {
				t.Errorf("got reason string %+v, want %q", resp.Properties, tt.reason)
			}
		})
	}
	// Every publish is answered: what the sink holds now is final.
	if n := len(sink.all()); n != accepted {
		t.Errorf("got %d messages in the sink, want %d", n, accepted)
	}
}
