package core

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/cluster"
)

// TestAcksZero: an acks=0 producer gets no response, and its records are
// stored all the same.
func TestAcksZero(t *testing.T) {
	node := startNode(t, t.TempDir())
	p := client(t, node, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	ctx := ctxT(t)
	for i := 0; i < 100; i++ {
		p.Produce(ctx, &kgo.Record{Topic: "fire-and-forget", Value: []byte("x")}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(consumeAll(t, node, "fire-and-forget", 100)); got != 100 {
		t.Fatalf("got %d records, want 100", got)
	}
}

// TestLongPollFetch: a fetch at the log end with MinBytes 1 waits, and is
// answered with the records produced while it waits.
func TestLongPollFetch(t *testing.T) {
	node := startNode(t, t.TempDir())
	cl := client(t, node)
	ctx := ctxT(t)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "lp", Partition: 0, Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p, _ := node.Broker().Partition("lp", 0)
	end := p.HighWatermark()
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 20000, 1, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "lp"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 0, end, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	type result struct {
		resp *kmsg.FetchResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := req.RequestWith(ctx, cl)
		done <- result{resp, err}
	}()
	// The fetch is parked until data arrives; produce while it waits.
	select {
	case r := <-done:
		t.Fatalf("fetch at the log end returned before any data: %+v %v", r.resp, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	p2 := client(t, node, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := p2.ProduceSync(ctx, &kgo.Record{Topic: "lp", Partition: 0, Value: []byte("second")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	sp := r.resp.Topics[0].Partitions[0]
	if sp.ErrorCode != 0 || len(sp.RecordBatches) == 0 || sp.HighWatermark != end+1 {
		t.Fatalf("got code %d, %d bytes, high watermark %d; want the new record and %d", sp.ErrorCode, len(sp.RecordBatches), sp.HighWatermark, end+1)
	}
}

// TestUnknownTopicWithoutAutoCreate: with auto-creation off, produce and
// fetch to an unknown topic get UNKNOWN_TOPIC_OR_PARTITION.
func TestUnknownTopicWithoutAutoCreate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Cluster.Timers = cluster.FastTimers() // not a test of timing: elect at once
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = ""
	cfg.Broker.AutoCreateTopics = false
	node, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	defer node.Shutdown(context.Background())
	cl := client(t, node, kgo.RecordRetries(0), kgo.RecordDeliveryTimeout(2*time.Second))
	ctx := ctxT(t)
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: "nope", Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.UnknownTopicOrPartition) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, kgo.ErrRecordTimeout) {
		t.Fatalf("got %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	if _, ok := node.Broker().Topic("nope"); ok {
		t.Fatal("topic was created with auto-creation off")
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 1000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "nope"
	rp := kmsg.NewProduceRequestTopicPartition()
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("raw produce: got code %d, want UNKNOWN_TOPIC_OR_PARTITION", code)
	}
}

// TestFetchDelayMetric: records stamped an hour ago, fetched by a
// consumer, land in fluxo_core_fetch_delay_seconds for their topic with a
// delay of about an hour; a replica's fetches are not counted (one node).
func TestFetchDelayMetric(t *testing.T) {
	node := startNode(t, t.TempDir())
	p := client(t, node)
	old := time.Now().Add(-time.Hour)
	for i := 0; i < 3; i++ {
		if err := p.ProduceSync(ctxT(t), &kgo.Record{Topic: "delayed", Value: []byte("v"), Timestamp: old}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consumeAll(t, node, "delayed", 3)
	mfs, err := node.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var count uint64
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "fluxo_core_fetch_delay_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "topic" && l.GetValue() == "delayed" {
					count += m.GetHistogram().GetSampleCount()
					sum += m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	if count == 0 {
		t.Fatalf("got no fetch delay observation for topic delayed, want at least 1")
	}
	if mean := sum / float64(count); mean < 3590 || mean > 3700 {
		t.Fatalf("got a mean fetch delay of %.0f s, want about 3600 s", mean)
	}
}
