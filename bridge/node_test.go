package bridge

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

// startBroker runs an in-process MQTT broker (mochi) on 127.0.0.1 that
// lets every client in, and returns its URL.
func startBroker(t *testing.T) string {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return "tcp://" + tcp.Address()
}

// TestNodeParkedUplink: the core (kfake, auto-creation off) has no
// telemetry topic, so the bridge's telemetry lane parks: /readyz answers
// 503 naming the lane and /metrics shows fluxo_edge_uplink_parked. Once
// the topic is created the lane resumes, the bridge is ready again and
// every message arrives.
func TestNodeParkedUplink(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "alarms"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	url := startBroker(t)

	cfg := DefaultConfig()
	cfg.Source.Source = url
	cfg.Source.ClientID = "bridge-park"
	cfg.Source.BridgeID = "site-1"
	cfg.Source.RetryBackoff = 20 * time.Millisecond
	cfg.Source.MaxRetryBackoff = 200 * time.Millisecond
	cfg.SpoolDir = t.TempDir()
	cfg.Spool.SegmentBytes = 1 << 20
	cfg.Spool.MaxMessageBytes = 64 << 10
	cfg.Spool.MaxBytes = 64 << 20
	cfg.Uplink.Brokers = c.ListenAddrs()
	cfg.Uplink.Linger = 5 * time.Millisecond
	cfg.Uplink.RetryBackoff = 20 * time.Millisecond
	cfg.Uplink.MaxRetryBackoff = 200 * time.Millisecond
	cfg.Uplink.ParkBackoff = 20 * time.Millisecond
	cfg.Uplink.MaxParkBackoff = 100 * time.Millisecond
	cfg.Uplink.UnknownTopicTimeout = 100 * time.Millisecond
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	if got, want := n.Forwarder().Config().Uplink.ClientID, "fluxo-bridge-site-1"; got != want {
		t.Errorf("uplink client id: got %q, want %q", got, want)
	}
	base := "http://" + n.HTTPAddr()
	testutil.Eventually(t, "the bridge subscribed", n.Subscriber().Connected)

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("publisher").SetAutoReconnect(false))
	if tok := pub.Connect(); !tok.WaitTimeout(testutil.Timeout) || tok.Error() != nil {
		t.Fatalf("publisher connect: got %v, want connected", tok.Error())
	}
	defer pub.Disconnect(100)
	const msgs = 10
	for range msgs {
		if tok := pub.Publish("depot/d-1/temp", 1, false, "21.5"); !tok.WaitTimeout(testutil.Timeout) || tok.Error() != nil {
			t.Fatalf("publish: got %v, want acknowledged", tok.Error())
		}
	}

	var body string
	testutil.Eventually(t, "/readyz to answer 503", func() bool {
		var code int
		code, body = testutil.HTTPGet(t, base+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, "uplink parked: telemetry (UNKNOWN_TOPIC_OR_PARTITION)") {
		t.Errorf("/readyz: got %q, want the parked telemetry lane and its reason", body)
	}
	if _, m := testutil.HTTPGet(t, base+"/metrics"); !strings.Contains(m, `fluxo_edge_uplink_parked{lane="telemetry",reason="UNKNOWN_TOPIC_OR_PARTITION"} 1`) {
		t.Errorf("/metrics: got no parked telemetry lane, want fluxo_edge_uplink_parked 1:\n%s", m)
	}

	adm := kadm.NewClient(mustClient(t, c.ListenAddrs()))
	if _, err := adm.CreateTopic(context.Background(), 1, 1, nil, "telemetry"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "/readyz to answer 200", func() bool {
		code, _ := testutil.HTTPGet(t, base+"/readyz")
		return code == http.StatusOK
	})
	testutil.Eventually(t, "the spool to drain", func() bool {
		for _, s := range n.Forwarder().Spool().Stats() {
			if s.Spool != 0 {
				return false
			}
		}
		return true
	})
	offs, err := adm.ListEndOffsets(context.Background(), "telemetry")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := offs.Lookup("telemetry", 0); o.Offset != msgs {
		t.Errorf("telemetry end offset: got %d, want %d", o.Offset, msgs)
	}
}

func mustClient(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
