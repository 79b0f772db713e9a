package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/core/broker"
	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/core/commitlog"
)

// startCompactingNode starts a node whose cleaner and maintenance run
// often, so compaction happens within a test.
func startCompactingNode(t *testing.T) *Node {
	return startNodeWith(t, func(c *Config) {
		c.Broker.CleanInterval = 20 * time.Millisecond
		c.Broker.MaintainInterval = 20 * time.Millisecond
		c.HTTPAddr = "127.0.0.1:0"
	})
}

// eventually polls cond until it holds, failing after a bounded wait
// (compaction runs in the background; this bounds the test, it does not
// time the cleaner).
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readTopic reads partition 0 of topic from offset from up to its high
// watermark with a direct franz-go consumer.
func readTopic(t *testing.T, node *Node, topic string, from int64) []*kgo.Record {
	t.Helper()
	p, _ := node.Broker().Partition(topic, 0)
	hw := p.HighWatermark()
	cl := client(t, node, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(from)}}))
	defer cl.Close()
	ctx := ctxT(t)
	var out []*kgo.Record
	for {
		if len(out) > 0 && out[len(out)-1].Offset >= hw-1 {
			return out
		}
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s from %d: %v (got %d records, high watermark %d)", topic, from, err, len(out), hw)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
}

// TestCompactedTopic drives a compacted topic with franz-go: a record
// without a key is refused with INVALID_RECORD; after cleaning, a
// consumer from the start reads one record per key, the newest, and the
// tombstone of a deleted key; a consumer positioned mid-log reads on
// correctly across cleaned segments; once delete.retention.ms has passed,
// the tombstone is gone too.
func TestCompactedTopic(t *testing.T) {
	node := startCompactingNode(t)
	cl := client(t, node, kgo.ProducerLinger(0))
	adm := kadm.NewClient(cl)
	ctx := ctxT(t)
	configs := map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"segment.bytes":             kadm.StringPtr("2048"),
		"segment.ms":                kadm.StringPtr("200"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"),
		"delete.retention.ms":       kadm.StringPtr("3600000"),
	}
	if _, err := adm.CreateTopics(ctx, 1, 1, configs, "state"); err != nil {
		t.Fatal(err)
	}
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "state", Value: []byte("no key")}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("keyless record: got %v, want INVALID_RECORD", err)
	}

	newest := map[string]string{}
	for i := 0; i < 400; i++ {
		k := fmt.Sprintf("device-%d", i%17)
		v := fmt.Sprintf(`{"seq":%d,"pad":"%s"}`, i, strings.Repeat("x", 40))
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "state", Key: []byte(k), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		newest[k] = v
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "state", Key: []byte("device-16")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	delete(newest, "device-16")

	p, _ := node.Broker().Partition("state", 0)
	end := p.Log().LogEndOffset()
	// The active segment rolls after segment.ms and is then cleaned.
	eventually(t, "compaction", func() error {
		if p.Log().FirstDirtyOffset() < end {
			return fmt.Errorf("first dirty offset %d, want %d", p.Log().FirstDirtyOffset(), end)
		}
		return nil
	})
	recs := readTopic(t, node, "state", 0)
	got := map[string]string{}
	tombstones := 0
	for _, r := range recs {
		if _, dup := got[string(r.Key)]; dup {
			t.Fatalf("key %s read twice after cleaning", r.Key)
		}
		if r.Value == nil {
			tombstones++
			got[string(r.Key)] = "<tombstone>"
			continue
		}
		got[string(r.Key)] = string(r.Value)
	}
	if tombstones != 1 || got["device-16"] != "<tombstone>" {
		t.Fatalf("got %d tombstones (device-16: %q), want the one of device-16", tombstones, got["device-16"])
	}
	for k, v := range newest {
		if got[k] != v {
			t.Fatalf("key %s: got %q, want its newest %q", k, got[k], v)
		}
	}
	if len(got) != len(newest)+1 {
		t.Fatalf("got %d keys, want %d", len(got), len(newest)+1)
	}

	// Mid-log: from every tenth offset, exactly the records at or after it.
	for from := int64(0); from < end; from += end / 10 {
		var want []int64
		for _, r := range recs {
			if r.Offset >= from {
				want = append(want, r.Offset)
			}
		}
		mid := readTopic(t, node, "state", from)
		var gotOffs []int64
		for _, r := range mid {
			if r.Offset >= from {
				gotOffs = append(gotOffs, r.Offset)
			}
		}
		if fmt.Sprint(gotOffs) != fmt.Sprint(want) {
			t.Fatalf("from offset %d: got offsets %v, want %v", from, gotOffs, want)
		}
	}

	// The tombstone goes once delete.retention.ms has passed (and there
	// is dirty data to clean again).
	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "delete.retention.ms", Value: kadm.StringPtr("0")}}, "state")
	if err != nil || ar[0].Err != nil {
		t.Fatalf("AlterTopicConfigs: %v %v", err, ar)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "state", Key: []byte("device-0"), Value: []byte("final")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	newest["device-0"] = "final"
	end = p.Log().LogEndOffset()
	eventually(t, "second compaction", func() error {
		if p.Log().FirstDirtyOffset() < end {
			return fmt.Errorf("first dirty offset %d, want %d", p.Log().FirstDirtyOffset(), end)
		}
		return nil
	})
	got = map[string]string{}
	for _, r := range readTopic(t, node, "state", 0) {
		if r.Value == nil {
			t.Fatalf("tombstone of %s still there past delete.retention.ms", r.Key)
		}
		got[string(r.Key)] = string(r.Value)
	}
	if len(got) != len(newest) || got["device-0"] != "final" {
		t.Fatalf("got %d keys (device-0 %q), want %d (device-0 final)", len(got), got["device-0"], len(newest))
	}
	// Progress is exported.
	m := scrape(t, node)
	for _, want := range []string{`fluxo_core_log_cleaner_dirty_ratio{partition="0",topic="state"}`, "fluxo_core_log_cleaner_runs_total", "fluxo_core_log_cleaner_given_up_total"} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %s", want)
		}
	}
}

// TestConsumerOffsetsCompacted: __consumer_offsets is created compacted,
// and after many commits of the same partitions it shrinks to about one
// record per group/topic/partition.
func TestConsumerOffsetsCompacted(t *testing.T) {
	node := startCompactingNode(t)
	cl := client(t, node)
	adm := kadm.NewClient(cl)
	ctx := ctxT(t)
	if _, err := adm.CreateTopics(ctx, 4, 1, nil, "events"); err != nil {
		t.Fatal(err)
	}
	const commits = 300
	for i := 0; i < commits; i++ {
		var o kadm.Offsets
		for part := int32(0); part < 4; part++ {
			o.AddOffset("events", part, int64(i), -1)
		}
		r, err := adm.CommitOffsets(ctx, "g1", o)
		if err == nil {
			err = r.Error()
		}
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	rc, err := adm.DescribeTopicConfigs(ctx, broker.OffsetsTopic)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := rc.On(broker.OffsetsTopic, nil)
	for _, kv := range c.Configs {
		if kv.Key == "cleanup.policy" && kv.MaybeValue() != "compact" {
			t.Fatalf("%s cleanup.policy: got %q, want compact", broker.OffsetsTopic, kv.MaybeValue())
		}
	}
	// Find the group's partition: the one with records.
	var p *broker.Partition
	for i := int32(0); ; i++ {
		q, ok := node.Broker().Partition(broker.OffsetsTopic, i)
		if !ok {
			break
		}
		if q.Log().LogEndOffset() > 0 {
			p = q
		}
	}
	if p == nil {
		t.Fatal("no offsets partition holds the commits")
	}
	before := p.Log().Size()
	// Small segments and a roll, so the commits become cleanable.
	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Name: "segment.bytes", Value: kadm.StringPtr("4096")},
		{Name: "segment.ms", Value: kadm.StringPtr("100")},
		{Name: "min.cleanable.dirty.ratio", Value: kadm.StringPtr("0.01")},
	}, broker.OffsetsTopic)
	if err != nil || ar[0].Err != nil {
		t.Fatalf("AlterTopicConfigs: %v %v", err, ar)
	}
	end := p.Log().LogEndOffset()
	eventually(t, "offsets compaction", func() error {
		if p.Log().FirstDirtyOffset() < end {
			return fmt.Errorf("first dirty offset %d, want %d", p.Log().FirstDirtyOffset(), end)
		}
		return nil
	})
	after := p.Log().Size()
	if after*10 > before {
		t.Fatalf("offsets partition: got %d bytes after compaction, want under a tenth of %d", after, before)
	}
	t.Logf("offsets partition: %d bytes for %d commits, %d after compaction", before, commits*4, after)
	// The commits are still there, newest.
	f, err := adm.FetchOffsets(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := f.Lookup("events", 3); !ok || o.At != commits-1 {
		t.Fatalf("committed offset of events/3: got %d, want %d", o.At, commits-1)
	}

	// A deleted group leaves tombstones, which compaction drops after
	// delete.retention.ms: nothing of the group is left in the log.
	dr, err := adm.DeleteGroups(ctx, "g1")
	if err != nil || dr.Error() != nil {
		t.Fatalf("DeleteGroups: %v %v", err, dr.Error())
	}
	ar, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "delete.retention.ms", Value: kadm.StringPtr("0")}}, broker.OffsetsTopic)
	if err != nil || ar[0].Err != nil {
		t.Fatalf("AlterTopicConfigs: %v %v", err, ar)
	}
	end = p.Log().LogEndOffset()
	eventually(t, "tombstones dropped", func() error {
		if p.Log().FirstDirtyOffset() < end {
			return fmt.Errorf("first dirty offset %d, want %d", p.Log().FirstDirtyOffset(), end)
		}
		if n := countRecords(t, p); n != 0 {
			return fmt.Errorf("%d records left of the deleted group", n)
		}
		return nil
	})
}

// countRecords counts the records readable in p's log.
func countRecords(t *testing.T, p *broker.Partition) int {
	t.Helper()
	l := p.Log()
	n := 0
	for off := l.LogStartOffset(); off < l.HighWatermark(); {
		v, err := l.Read(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Data) == 0 {
			v.Release()
			break
		}
		commitlog.Batches(v.Data, func(b commitlog.Batch, _ []byte) bool {
			n += int(b.NumRecords)
			return true
		})
		off = v.Next
		v.Release()
	}
	return n
}

// TestStateTopicAutoCreatedCompacted: the device state topic, created on
// first use as the edge's uplink does, is compacted, and keeps the latest
// state of each device.
func TestStateTopicAutoCreatedCompacted(t *testing.T) {
	node := startCompactingNode(t)
	cl := client(t, node)
	ctx := ctxT(t)
	for i := 0; i < 3; i++ {
		r := &kgo.Record{Topic: "state", Key: []byte("car-7"), Value: []byte(fmt.Sprint(i))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, "state")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := rc.On("state", nil)
	for _, kv := range c.Configs {
		if kv.Key == "cleanup.policy" && kv.MaybeValue() != "compact" {
			t.Fatalf("auto-created state: got cleanup.policy %q, want compact", kv.MaybeValue())
		}
	}
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: "state", Value: []byte("anonymous")}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("keyless state: got %v, want INVALID_RECORD", err)
	}
	// Other auto-created topics keep the delete policy.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "telemetry", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("keyless telemetry: %v", err)
	}
}

// TestClusterCompactedReassign: a compacted partition cleaned on its one
// replica is moved to two other brokers, which copy it from offset 0 with
// its gaps and cleaned batches, join the ISR and end at the same offset;
// a reader then gets one record per key, the newest, from the new leader.
func TestClusterCompactedReassign(t *testing.T) {
	tc := startClusterWith(t, 3, func(_ int, c *Config) {
		c.Broker.CleanInterval = 20 * time.Millisecond
		c.Broker.MaintainInterval = 20 * time.Millisecond
	})
	cl := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	adm := kadm.NewClient(cl)
	ctx := ctxT(t)
	configs := map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"segment.bytes":             kadm.StringPtr("2048"),
		"segment.ms":                kadm.StringPtr("200"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"),
	}
	if _, err := adm.CreateTopics(ctx, 1, 1, configs, "kv"); err != nil {
		t.Fatal(err)
	}
	tc.waitState("the topic on every node", func(st *cluster.State) bool { return st.Topics["kv"] != nil })
	newest := map[string]string{}
	for i := 0; i < 300; i++ {
		k, v := fmt.Sprintf("k%d", i%11), fmt.Sprintf("v%d-%s", i, strings.Repeat("z", 30))
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "kv", Key: []byte(k), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		newest[k] = v
	}
	ps, _ := tc.nodes[0].Broker().State().Partition("kv", 0)
	from := ps.Replicas[0]
	p, _ := tc.nodes[from-1].Broker().Partition("kv", 0)
	end := p.Log().LogEndOffset()
	eventually(t, "compaction on the leader", func() error {
		if p.Log().FirstDirtyOffset() < end {
			return fmt.Errorf("first dirty offset %d, want %d", p.Log().FirstDirtyOffset(), end)
		}
		return nil
	})
	var target []int32
	for id := int32(1); id <= 3; id++ {
		if id != from {
			target = append(target, id)
		}
	}
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign("kv", 0, target)
	resps, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resps.Each(func(r kadm.AlterPartitionAssignmentsResponse) {
		if r.Err != nil {
			t.Fatalf("reassign: %v", r.Err)
		}
	})
	tc.waitState("the partition on its new replicas, both in sync", func(st *cluster.State) bool {
		q, _ := st.Partition("kv", 0)
		return slices.Equal(q.Replicas, target) && len(q.ISR) == 2
	})
	tc.waitLogEnds("kv", 0, end)
	rd := tc.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"kv": {0: kgo.NewOffset().AtStart()}}))
	got := map[string]string{}
	last := int64(-1)
	for last < end-1 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading kv: %v (at offset %d of %d)", err, last, end)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			if _, dup := got[string(r.Key)]; dup {
				t.Fatalf("key %s read twice (offset %d)", r.Key, r.Offset)
			}
			got[string(r.Key)] = string(r.Value)
			last = r.Offset
		})
	}
	for k, v := range newest {
		if got[k] != v {
			t.Fatalf("key %s: got %q, want %q", k, got[k], v)
		}
	}
}

// TestOffsetsReplayAfterCompaction: a node restarted on a compacted
// __consumer_offsets (gaps, dropped tombstones) loads the newest commit of
// each partition and nothing of a deleted group.
func TestOffsetsReplayAfterCompaction(t *testing.T) {
	dir := t.TempDir()
	start := func() *Node {
		cfg := DefaultConfig()
		cfg.Cluster.Timers = cluster.FastTimers()
		cfg.DataDir = dir
		cfg.KafkaAddr = "127.0.0.1:0"
		cfg.HTTPAddr = ""
		cfg.Broker.CleanInterval = 20 * time.Millisecond
		cfg.Broker.MaintainInterval = 20 * time.Millisecond
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Shutdown(context.Background()) })
		return n
	}
	node := start()
	cl := client(t, node)
	adm := kadm.NewClient(cl)
	ctx := ctxT(t)
	if _, err := adm.CreateTopics(ctx, 2, 1, nil, "events"); err != nil {
		t.Fatal(err)
	}
	commit := func(group string, at int64) {
		t.Helper()
		var o kadm.Offsets
		o.AddOffset("events", 0, at, -1)
		o.AddOffset("events", 1, at+1000, -1)
		r, err := adm.CommitOffsets(ctx, group, o)
		if err == nil {
			err = r.Error()
		}
		if err != nil {
			t.Fatalf("commit %s %d: %v", group, at, err)
		}
	}
	for i := int64(0); i < 200; i++ {
		commit("keep", i)
		commit("gone", i)
	}
	if dr, err := adm.DeleteGroups(ctx, "gone"); err != nil || dr.Error() != nil {
		t.Fatalf("DeleteGroups: %v %v", err, dr.Error())
	}
	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Name: "segment.bytes", Value: kadm.StringPtr("4096")},
		{Name: "segment.ms", Value: kadm.StringPtr("100")},
		{Name: "min.cleanable.dirty.ratio", Value: kadm.StringPtr("0.01")},
		{Name: "delete.retention.ms", Value: kadm.StringPtr("0")},
	}, broker.OffsetsTopic)
	if err != nil || ar[0].Err != nil {
		t.Fatalf("AlterTopicConfigs: %v %v", err, ar)
	}
	var parts []*broker.Partition
	for i := int32(0); ; i++ {
		p, ok := node.Broker().Partition(broker.OffsetsTopic, i)
		if !ok {
			break
		}
		if p.Log().LogEndOffset() > 0 {
			parts = append(parts, p)
		}
	}
	eventually(t, "offsets compaction", func() error {
		for _, p := range parts {
			if end := p.Log().LogEndOffset(); p.Log().FirstDirtyOffset() < end {
				return fmt.Errorf("partition %d: first dirty offset %d, want %d", p.Index, p.Log().FirstDirtyOffset(), end)
			}
		}
		return nil
	})
	cl.Close()
	if err := node.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	node = start()
	adm = kadm.NewClient(client(t, node))
	eventually(t, "offsets after the restart", func() error {
		f, err := adm.FetchOffsets(ctx, "keep")
		if err != nil {
			return err
		}
		o0, ok0 := f.Lookup("events", 0)
		o1, ok1 := f.Lookup("events", 1)
		if !ok0 || !ok1 || o0.At != 199 || o1.At != 1199 {
			return fmt.Errorf("group keep: got %d and %d, want 199 and 1199", o0.At, o1.At)
		}
		return nil
	})
	f, err := adm.FetchOffsets(ctx, "gone")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := f.Lookup("events", 0); ok && o.At >= 0 {
		t.Fatalf("deleted group gone: got offset %d after the restart, want none", o.At)
	}
}
