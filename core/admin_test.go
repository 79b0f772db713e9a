package core

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTopicConfigsPartitionsAndDeleteRecords drives the admin APIs with
// franz-go's kadm: configs are described with their source, altered
// incrementally (and applied: retention.bytes shrinks the log), partitions
// are added, records are deleted below an offset, and OffsetForLeaderEpoch
// answers the current epoch.
func TestTopicConfigsPartitionsAndDeleteRecords(t *testing.T) {
	dir := t.TempDir()
	node := startNode(t, dir)
	cl := client(t, node)
	adm := kadm.NewClient(cl)
	ctx := ctxT(t)
	if _, err := adm.CreateTopics(ctx, 1, -1, map[string]*string{"segment.bytes": kadm.StringPtr("16384")}, "cfg"); err != nil {
		t.Fatal(err)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	c, err := rc.On("cfg", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]kadm.Config{}
	for _, kv := range c.Configs {
		got[kv.Key] = kv
	}
	if v := got["segment.bytes"]; v.MaybeValue() != "16384" || v.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("segment.bytes: got %q from %v, want 16384 from DYNAMIC_TOPIC_CONFIG", v.MaybeValue(), v.Source)
	}
	if v := got["cleanup.policy"]; v.MaybeValue() != "delete" || v.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("cleanup.policy: got %q from %v, want delete from DEFAULT_CONFIG", v.MaybeValue(), v.Source)
	}

	// 200 records of ~1 KiB in 16 KiB segments, incompressible.
	for i := 0; i < 200; i++ {
		v := make([]byte, 1000)
		rand.Read(v)
		r := &kgo.Record{Topic: "cfg", Value: v}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := node.Broker().Partition("cfg", 0)
	before := p.Log().Size()
	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.bytes", Value: kadm.StringPtr("40000")}}, "cfg")
	if err != nil || ar[0].Err != nil {
		t.Fatalf("AlterTopicConfigs: %v %v", err, ar)
	}
	if err := p.Log().Maintain(time.Now()); err != nil {
		t.Fatal(err)
	}
	if after := p.Log().Size(); after >= before || after > 40000+16384 {
		t.Fatalf("retention.bytes=40000 left %d bytes (was %d)", after, before)
	}
	ar, _ = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "cleanup.policy", Value: kadm.StringPtr("shred")}}, "cfg")
	if ar[0].Err == nil {
		t.Fatal("cleanup.policy=shred was accepted")
	}

	// DeleteRecords moves the log start.
	start := p.LogStartOffset()
	del, err := adm.DeleteRecords(ctx, kadm.Offsets{"cfg": {0: {Topic: "cfg", Partition: 0, At: start + 10}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := del.Lookup("cfg", 0); r.Err != nil || r.LowWatermark != start+10 {
		t.Fatalf("DeleteRecords: got low watermark %d (%v), want %d", r.LowWatermark, r.Err, start+10)
	}
	starts, _ := adm.ListStartOffsets(ctx, "cfg")
	if o, _ := starts.Lookup("cfg", 0); o.Offset != start+10 {
		t.Fatalf("got start offset %d, want %d", o.Offset, start+10)
	}
	del, _ = adm.DeleteRecords(ctx, kadm.Offsets{"cfg": {0: {Topic: "cfg", Partition: 0, At: 10000}}})
	if r, _ := del.Lookup("cfg", 0); r.Err == nil {
		t.Fatal("DeleteRecords past the high watermark succeeded")
	}

	// CreatePartitions.
	cp, err := adm.CreatePartitions(ctx, 2, "cfg")
	if err != nil || cp["cfg"].Err != nil {
		t.Fatalf("CreatePartitions: %v %v", err, cp["cfg"].Err)
	}
	td, _ := kadm.NewClient(client(t, node)).ListTopics(ctx)
	if n := len(td["cfg"].Partitions); n != 3 {
		t.Fatalf("got %d partitions, want 3", n)
	}

	// OffsetForLeaderEpoch: epoch 0 ends at the log end.
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = "cfg"
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.Partition, rp.LeaderEpoch, rp.CurrentLeaderEpoch = 0, 0, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if sp := resp.Topics[0].Partitions[0]; sp.ErrorCode != 0 || sp.LeaderEpoch != 0 || sp.EndOffset != 200 {
		t.Fatalf("OffsetForLeaderEpoch: got epoch %d end %d code %d, want 0, 200, 0", sp.LeaderEpoch, sp.EndOffset, sp.ErrorCode)
	}

	// Configs survive a restart.
	node.Shutdown(ctxT(t))
	node = startNode(t, dir)
	tp, _ := node.Broker().Topic("cfg")
	if tp.Meta.Configs["retention.bytes"] != "40000" || len(tp.Partitions) != 3 {
		t.Fatalf("after restart got configs %v and %d partitions", tp.Meta.Configs, len(tp.Partitions))
	}
}
