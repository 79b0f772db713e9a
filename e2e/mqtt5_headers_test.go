//go:build e2e

package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestMQTT5Headers: an MQTT 5 device publishes through fluxo edge with
// three user properties, a content type and correlation data; kcat, reading
// the core topic, shows them as record headers (-f '%h'), the properties'
// headers first and the user properties after them in the order sent.
func TestMQTT5Headers(t *testing.T) {
	t.Parallel()
	needKcat(t)
	bin := buildFluxo(t)
	core := startCoreProc(t, bin)
	edge := startEdgeProc(t, bin, core.kafka)

	conn, err := net.Dial("tcp", edge.mqtt)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ca, err := c.Connect(ctx, &paho.Connect{ClientID: "hdr-device", CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatalf("connect: got %v %+v, want success", err, ca)
	}
	defer c.Disconnect(&paho.Disconnect{})
	resp, err := c.Publish(ctx, &paho.Publish{
		Topic: "fleet/hdr-1/telemetry", QoS: 1, Payload: []byte(`{"t":21.5}`),
		Properties: &paho.PublishProperties{
			ContentType:     "application/json",
			CorrelationData: []byte("corr-42"),
			User: paho.UserProperties{
				{Key: "unit", Value: "celsius"}, {Key: "schema", Value: "v2"}, {Key: "trace-id", Value: "4bf92f35"},
			},
		},
	})
	if err != nil || resp.ReasonCode != 0 {
		t.Fatalf("publish: got %+v %v, want reason code 0", resp, err)
	}
	edge.waitSpoolEmpty(t, 60*time.Second)

	out := string(run(t, 60*time.Second, nil, kcatBin, "-b", core.kafka, "-C", "-t", "telemetry",
		"-o", "beginning", "-e", "-q", "-f", "%h\n"))
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "mqtt.topic=fleet/hdr-1/telemetry") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("kcat: got headers %q, want a record of fleet/hdr-1/telemetry", out)
	}
	t.Logf("kcat -f '%%h': %s", line)
	// In this order, each once.
	want := []string{"mqtt.topic=fleet/hdr-1/telemetry", "mqtt.qos=1", "mqtt.client=hdr-device", "edge.id=" + edgeID,
		"mqtt.content_type=application/json", "mqtt.correlation_data=corr-42",
		"unit=celsius", "schema=v2", "trace-id=4bf92f35"}
	at := 0
	for _, w := range want {
		i := strings.Index(line[at:], w)
		if i < 0 || strings.Count(line, w) != 1 {
			t.Fatalf("kcat headers %q: got %q missing, repeated or out of order, want %q in this order", line, w, want)
		}
		at += i + len(w)
	}
}
