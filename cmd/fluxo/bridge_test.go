package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/core"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

func TestBridgeHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"bridge", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("bridge --help: got exit code %d, want 0 (stderr %q)", code, stderr.String())
	}
	_, examples, ok := strings.Cut(stdout.String(), "\nExamples:\n")
	if !ok || !strings.Contains(examples, "fluxo bridge --source ") {
		t.Errorf("bridge --help: got %q, want an Examples section with fluxo bridge --source", stdout.String())
	}
	for _, flag := range []string{"--source", "--filter", "--core", "--spool-dir", "--shared-group", "--route", "--username",
		"--password", "--http-addr", "--spool-sync", "--spool-max-bytes", "--linger", "--compress", "--uplink-max-bytes-per-sec"} {
		if !strings.Contains(stdout.String(), flag+" ") {
			t.Errorf("bridge --help: got no %s flag, want one", flag)
		}
	}
}

func TestBridgeUsageErrors(t *testing.T) {
	tests := []struct {
		args       []string
		wantStderr string
	}{
		{args: []string{"--spool-sync", "sometimes"}, wantStderr: `unknown sync policy "sometimes"`},
		{args: []string{"--route", "a/#"}, wantStderr: "want FILTER=TOPIC"},
		{args: []string{"--filter", "a/#/b"}, wantStderr: `invalid topic filter "a/#/b"`},
		{args: []string{"--source", "http://127.0.0.1:1883"}, wantStderr: `got scheme "http"`},
		{args: []string{"--password", "secret"}, wantStderr: "a password needs a username"},
		{args: []string{"--qos", "3"}, wantStderr: "QoS 3"},
		{args: []string{"--shared-group", "a/b"}, wantStderr: "shared group"},
		{args: []string{"--source-cert", "c.pem"}, wantStderr: "--source-cert and --source-key go together"},
		{args: []string{"--source-ca", "/nonexistent/ca.pem"}, wantStderr: "--source-ca: open /nonexistent/ca.pem"},
		{args: []string{"extra"}, wantStderr: `unknown command "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool")
			args := append([]string{"bridge", "--spool-dir", dir, "--http-addr", ""}, tt.args...)
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), args, &stdout, &stderr); code != 1 {
				t.Errorf("got exit code %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("got stderr %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

func TestSourceTLS(t *testing.T) {
	tc, err := sourceTLS("", "", "", false)
	if tc != nil || err != nil {
		t.Errorf("no TLS flags: got %v, %v; want nil, nil", tc, err)
	}
	tc, err = sourceTLS("", "", "", true)
	if err != nil || tc == nil || !tc.InsecureSkipVerify {
		t.Errorf("--source-insecure: got %v, %v; want a config that skips verification", tc, err)
	}
}

// bridgeBuffer is a bytes.Buffer that a running command and the test use
// at once.
type bridgeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *bridgeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *bridgeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestIntegrationBridge runs fluxo bridge through run between an
// in-process mochi MQTT broker and an in-process core: messages a paho
// client publishes to the broker reach the core's topics with the edge's
// key and headers; /readyz and /metrics answer; a cancel stops it with
// exit code 0 and the accounting logged.
func TestIntegrationBridge(t *testing.T) {
	// The source broker.
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
	mqttURL := "tcp://" + tcp.Address()

	// The core, creating topics on first use.
	cc := core.DefaultConfig()
	cc.DataDir = t.TempDir()
	cc.KafkaAddr = "127.0.0.1:0"
	cc.HTTPAddr = ""
	node, err := core.New(cc)
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	if err := node.Start(); err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Errorf("core Shutdown: %v", err)
		}
	})

	// The bridge.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bridgeBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"bridge", "--source", mqttURL, "--filter", "depot/#", "--core", node.KafkaAddr(),
			"--spool-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--bridge-id", "site-1", "--linger", "10ms",
			"--spool-sync", "never"}, &stdout, &stderr)
	}()
	started := regexp.MustCompile(`fluxo bridge: source \S+ \(depot/#\), HTTP on (127\.0\.0\.1:\d+),`)
	var httpAddr string
	testutil.Eventually(t, "the bridge's start line", func() bool {
		if m := started.FindStringSubmatch(stderr.String()); m != nil {
			httpAddr = m[1]
			return true
		}
		select {
		case code := <-exited:
			t.Fatalf("fluxo bridge exited with %d before starting:\n%s", code, stderr.String())
		default:
		}
		return false
	})
	testutil.Eventually(t, "/readyz 200", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(mqttURL).SetClientID("bridge-test-publisher"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	const n = 20
	for i := range n {
		if tok := pub.Publish("depot/s-1/temp", 1, false, strconv.Itoa(i)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	if tok := pub.Publish("depot/p-1/alarm/fire", 1, false, "fire"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(node.KafkaAddr()), kgo.ConsumeTopics("telemetry", "alarms"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer pcancel()
	for len(recs) < n+1 && pctx.Err() == nil {
		recs = append(recs, cl.PollFetches(pctx).Records()...)
	}
	if len(recs) != n+1 {
		t.Fatalf("records in the core: got %d, want %d", len(recs), n+1)
	}
	var values []string
	for _, r := range recs {
		hs := map[string]string{}
		for _, h := range r.Headers {
			hs[h.Key] = string(h.Value)
		}
		if r.Topic == "alarms" {
			if string(r.Key) != "p-1" || string(r.Value) != "fire" || hs["mqtt.topic"] != "depot/p-1/alarm/fire" {
				t.Errorf("alarm record: got key %q value %q headers %v, want p-1, fire, mqtt.topic depot/p-1/alarm/fire", r.Key, r.Value, hs)
			}
			continue
		}
		values = append(values, string(r.Value))
		if string(r.Key) != "s-1" || hs["mqtt.topic"] != "depot/s-1/temp" || hs["mqtt.qos"] != "1" || hs["edge.id"] != "site-1" || hs["edge.received_ms"] == "" {
			t.Errorf("telemetry record %q: got key %q headers %v, want key s-1, mqtt.topic, mqtt.qos 1, edge.id site-1, edge.received_ms", r.Value, r.Key, hs)
		}
	}
	for i, v := range values {
		if v != strconv.Itoa(i) {
			t.Fatalf("telemetry values in order: got %v, want 0..%d", values, n-1)
		}
	}

	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"fluxo_bridge_spooled_total 21", "fluxo_bridge_source_connected 1", `fluxo_edge_messages_total{lane="alarm",outcome="accepted"} 1`, "fluxo_edge_uplink_records_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics: got no %q, want it", want)
		}
	}

	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("fluxo bridge after cancel: got exit code %d, want 0\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("fluxo bridge after cancel: got no exit within 20s, want exit code 0")
	}
	for _, want := range []string{`"message":"source accounting"`, `"spooled":21`, `"message":"spool accounting"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr: got no %q, want it:\n%s", want, stderr.String())
		}
	}
}
