package edge

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// TestNodeParkedUplink: the core (kfake, auto-creation off) has no
// telemetry topic: the uplink's telemetry lane parks, /readyz answers 503
// with the reason and /metrics shows fluxo_edge_uplink_parked; once the
// topic is created the lane resumes, the edge is ready again and every
// record arrives once.
func TestNodeParkedUplink(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "alarms"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := t.TempDir()
	cfg := DefaultNodeConfig()
	cfg.Edge.MQTTAddr = "127.0.0.1:0"
	cfg.Edge.AllowAnonymous = true
	cfg.Edge.EdgeID = "depot-7"
	cfg.Edge.StateDir = dir + "/mqtt"
	cfg.SpoolDir = dir
	cfg.Spool.SegmentBytes = 1 << 20
	cfg.Spool.MaxBytes = 64 << 20
	cfg.Spool.MaxMessageBytes = 64 << 10
	cfg.Downlink = nil
	cfg.Uplink.Brokers = c.ListenAddrs()
	cfg.Uplink.Linger = 5 * time.Millisecond
	cfg.Uplink.RetryBackoff = 20 * time.Millisecond
	cfg.Uplink.MaxRetryBackoff = 200 * time.Millisecond
	cfg.Uplink.ParkBackoff = 20 * time.Millisecond
	cfg.Uplink.MaxParkBackoff = 100 * time.Millisecond
	cfg.Uplink.UnknownTopicTimeout = 100 * time.Millisecond
	cfg.HTTPAddr = "127.0.0.1:0"
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())

	const records = 50
	for i := range records {
		m := spool.Message{Lane: spool.Telemetry, Topic: "telemetry", Key: []byte("c-0001"),
			Value: fmt.Appendf(nil, `{"seq":%d}`, i), Time: time.Now()}
		if err := n.Spool().Append(m); err != nil {
			t.Fatal(err)
		}
	}
	base := "http://" + n.HTTPAddr()
	var code int
	var body string
	testutil.Eventually(t, "/readyz to answer 503", func() bool {
		code, body = testutil.HTTPGet(t, base+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	if want := "uplink parked: telemetry (UNKNOWN_TOPIC_OR_PARTITION)"; !strings.Contains(body, want) {
		t.Errorf("/readyz: got %q, want it to contain %q", body, want)
	}
	_, metrics := testutil.HTTPGet(t, base+"/metrics")
	for _, want := range []string{
		`fluxo_edge_uplink_parked{lane="telemetry",reason="UNKNOWN_TOPIC_OR_PARTITION"} 1`,
		`fluxo_edge_uplink_parked{lane="alarm",reason="none"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics: got no %q", want)
		}
	}

	if err := c.CreateTopic("telemetry", 2, nil); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "/readyz to answer 200", func() bool {
		code, body = testutil.HTTPGet(t, base+"/readyz")
		return code == http.StatusOK
	})
	_, metrics = testutil.HTTPGet(t, base+"/metrics")
	if want := `fluxo_edge_uplink_parked{lane="telemetry",reason="none"} 0`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics after resume: got no %q", want)
	}
	testutil.Eventually(t, "the spool to drain", func() bool {
		return n.Spool().Start(spool.Telemetry) == n.Spool().End(spool.Telemetry)
	})

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("telemetry"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	ctx := ctxWait(t)
	for len(seen) < records && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	}
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	cl.PollFetches(short).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	if len(seen) != records {
		t.Fatalf("records read back: got %d distinct, want %d", len(seen), records)
	}
	for v, k := range seen {
		if k != 1 {
			t.Errorf("record %s: got %d copies, want 1", v, k)
		}
	}
}
