package core

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/core/cluster"
)

func startNode(t *testing.T, dir string) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Cluster.Timers = cluster.FastTimers() // not a test of timing: elect at once
	cfg.DataDir = dir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Broker.DefaultPartitions = 3
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	return n
}

func client(t *testing.T, n *Node, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.KafkaAddr()), kgo.AllowAutoTopicCreation()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// consumeAll reads n records of topic from the beginning with a direct
// consumer.
func consumeAll(t *testing.T, node *Node, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := client(t, node, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := ctxT(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

// TestProduceConsumeRestart: an idempotent franz-go producer with
// acks=all writes keyed records to an auto-created 3-partition topic; a
// consumer reads them all back in per-key order; after a restart of the
// node on the same data directory every acknowledged record is served.
func TestProduceConsumeRestart(t *testing.T) {
	dir := t.TempDir()
	node := startNode(t, dir)
	p := client(t, node, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond))
	const n = 3000
	ctx := ctxT(t)
	for i := 0; i < n; i++ {
		r := &kgo.Record{Topic: "telemetry", Key: []byte(fmt.Sprintf("dev-%02d", i%17)), Value: []byte(fmt.Sprintf("reading %d", i))}
		p.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	check := func(recs []*kgo.Record) {
		t.Helper()
		if len(recs) != n {
			t.Fatalf("got %d records, want %d", len(recs), n)
		}
		last := map[string]int{}
		for _, r := range recs {
			var i int
			fmt.Sscanf(string(r.Value), "reading %d", &i)
			if prev, ok := last[string(r.Key)]; ok && i <= prev {
				t.Fatalf("key %s: got reading %d after %d, want increasing", r.Key, i, prev)
			}
			last[string(r.Key)] = i
		}
	}
	check(consumeAll(t, node, "telemetry", n))

	if err := node.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	node = startNode(t, dir)
	check(consumeAll(t, node, "telemetry", n))
}

func TestAdminTopicsAndOffsets(t *testing.T) {
	node := startNode(t, t.TempDir())
	adm := kadm.NewClient(client(t, node))
	ctx := ctxT(t)
	res, err := adm.CreateTopics(ctx, 4, -1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, "alarms")
	if err != nil || res["alarms"].Err != nil {
		t.Fatalf("CreateTopics: %v %v", err, res["alarms"].Err)
	}
	res, _ = adm.CreateTopics(ctx, 1, -1, nil, "alarms")
	if res["alarms"].Err == nil {
		t.Fatal("creating an existing topic succeeded")
	}
	res, _ = adm.CreateTopics(ctx, 1, -1, map[string]*string{"cleanup.policy": kadm.StringPtr("shred")}, "bad")
	if res["bad"].Err == nil {
		t.Fatal("cleanup.policy=shred was accepted")
	}
	td, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(td["alarms"].Partitions); got != 4 {
		t.Fatalf("got %d partitions, want 4", got)
	}
	// Produce to partition 2 with timestamps, then look up offsets.
	p := client(t, node, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := 0; i < 10; i++ {
		r := &kgo.Record{Topic: "alarms", Partition: 2, Value: []byte("x"), Timestamp: base.Add(time.Duration(i) * time.Minute)}
		if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ends, err := adm.ListEndOffsets(ctx, "alarms")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("alarms", 2); o.Offset != 10 {
		t.Fatalf("got end offset %d, want 10", o.Offset)
	}
	byTime, err := adm.ListOffsetsAfterMilli(ctx, base.Add(150*time.Second).UnixMilli(), "alarms")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := byTime.Lookup("alarms", 2); o.Offset != 3 {
		t.Fatalf("got offset %d for a time between records 2 and 3, want 3", o.Offset)
	}
	del, err := adm.DeleteTopics(ctx, "alarms")
	if err != nil || del["alarms"].Err != nil {
		t.Fatalf("DeleteTopics: %v %v", err, del["alarms"].Err)
	}
	// A fresh client: kadm answers ListTopics from a short-lived metadata cache.
	td, _ = kadm.NewClient(client(t, node)).ListTopics(ctx)
	if td.Has("alarms") {
		t.Fatalf("deleted topic still listed: %+v", td["alarms"])
	}
}

func TestHTTPEndpoints(t *testing.T) {
	node := startNode(t, t.TempDir())
	p := client(t, node)
	if err := p.ProduceSync(ctxT(t), &kgo.Record{Topic: "m", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ready",
		"/metrics": `fluxo_core_records_in_total{topic="m"} 1`,
	} {
		resp, err := http.Get("http://" + node.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("%s: got %d %q, want 200 containing %q", path, resp.StatusCode, body, want)
		}
	}
}

// readyz fetches node's /readyz.
func readyz(t *testing.T, n *Node) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + n.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// failed waits for n.Failed to deliver.
func failed(t *testing.T, n *Node) error {
	t.Helper()
	select {
	case err := <-n.Failed():
		return err
	case <-ctxT(t).Done():
		t.Fatal("got no error from Failed, want the listener's")
		return nil
	}
}

// TestKafkaListenerFailure: a Kafka listener whose accept fails (closed
// under the server) is fatal: Failed delivers the error and /readyz
// fails with it.
func TestKafkaListenerFailure(t *testing.T) {
	node := startNode(t, t.TempDir())
	if code, body := readyz(t, node); code != 200 {
		t.Fatalf("before: got %d %q, want 200", code, body)
	}
	node.kafkaLns[0].ln.Close()
	err := failed(t, node)
	if err == nil || !strings.Contains(err.Error(), "core: kafka listener PLAINTEXT") {
		t.Fatalf("got %v, want the PLAINTEXT listener's error", err)
	}
	if code, body := readyz(t, node); code != 503 || !strings.Contains(body, "kafka listener PLAINTEXT") {
		t.Fatalf("after: got %d %q, want 503 naming the listener", code, body)
	}
}

// TestHTTPListenerFailure: the HTTP listener failing is as fatal as a
// Kafka one: Failed delivers the error.
func TestHTTPListenerFailure(t *testing.T) {
	node := startNode(t, t.TempDir())
	node.httpLn.Close()
	err := failed(t, node)
	if err == nil || !strings.Contains(err.Error(), "core: http listener") {
		t.Fatalf("got %v, want the HTTP listener's error", err)
	}
}

// TestNoKafkaBeforeCaughtUp: a node that cannot catch up with the
// metadata (it waits for a second member to bootstrap) returns from Start
// after ReadyTimeout without serving Kafka, stays not ready, and shuts
// down cleanly.
func TestNoKafkaBeforeCaughtUp(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Cluster.Timers = cluster.FastTimers()
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Cluster.SerfAddr = "127.0.0.1:0"
	cfg.Cluster.RaftAddr = "127.0.0.1:0"
	cfg.Cluster.BootstrapExpect = 2
	cfg.ReadyTimeout = 100 * time.Millisecond
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if code, body := readyz(t, n); code != 503 {
		t.Fatalf("got %d %q, want 503", code, body)
	}
	n.mu.Lock()
	served := n.ready
	n.mu.Unlock()
	if served {
		t.Fatal("got Kafka served, want it held until the node catches up")
	}
	if err := n.Shutdown(ctxT(t)); err != nil {
		t.Fatalf("Shutdown: got %v, want nil", err)
	}
}
