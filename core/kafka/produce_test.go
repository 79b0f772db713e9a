package kafka

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// TestProduceLargeRequestManyPartitions: a request large enough to be
// appended by several goroutines (parallelAppendBytes) puts each
// partition's records in that partition, in order, with offsets from 0.
func TestProduceLargeRequestManyPartitions(t *testing.T) {
	cfg := testConfig(t)
	cfg.Broker = openBroker(t)
	s := startServer(t, cfg, nil)
	ctx := ctxT(t)
	const parts, perPart, size = 16, 40, 1 << 10 // 640 KiB in one request
	if _, err := cfg.Broker.CreateTopic(ctx, "wide", parts, 1, nil); err != nil {
		t.Fatalf("create topic: got %v, want nil", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()), kgo.DefaultProduceTopic("wide"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(0), kgo.MaxBufferedRecords(parts*perPart))
	if err != nil {
		t.Fatalf("kgo.NewClient: got %v, want nil", err)
	}
	defer cl.Close()
	value := func(p, i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("%03d-%03d|", p, i)), size/8) }
	var recs []*kgo.Record
	for i := range perPart {
		for p := range parts {
			recs = append(recs, &kgo.Record{Partition: int32(p), Value: value(p, i)})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: got %v, want nil", err)
	}
	for p := range parts {
		part, ok := cfg.Broker.Partition("wide", int32(p))
		if !ok {
			t.Fatalf("partition %d: not found", p)
		}
		offs, vals := readLog(t, part.Log())
		if len(vals) != perPart {
			t.Errorf("partition %d: got %d records, want %d", p, len(vals), perPart)
			continue
		}
		for i := range vals {
			if offs[i] != int64(i) || !bytes.Equal(vals[i], value(p, i)) {
				t.Errorf("partition %d offset %d: got record %q..., want record %d of this partition", p, offs[i], vals[i][:8], i)
				break
			}
		}
	}
}

// TestProducePartitionTwice: a request naming one partition twice, large
// enough to be appended in parallel otherwise, is appended in request
// order.
func TestProducePartitionTwice(t *testing.T) {
	cfg := testConfig(t)
	cfg.Broker = openBroker(t)
	s := startServer(t, cfg, nil)
	ctx := ctxT(t)
	if _, err := cfg.Broker.CreateTopic(ctx, "twice", 2, 1, nil); err != nil {
		t.Fatalf("create topic: got %v, want nil", err)
	}
	big := func(tag string) []byte {
		return commitlog.AppendBatch(nil, commitlog.NoProducer(0), []kmsg.Record{{Value: bytes.Repeat([]byte(tag), 200<<10)}})
	}
	req := kmsg.NewPtrProduceRequest()
	req.Version = 7
	req.Acks = 1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "twice"
	for _, pr := range []struct {
		p   int32
		tag string
	}{{0, "a"}, {1, "x"}, {0, "b"}, {0, "c"}} {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = pr.p
		rp.Records = big(pr.tag)
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp := dial(t, s).roundTrip(req).(*kmsg.ProduceResponse)
	var bases []int64
	for _, sp := range resp.Topics[0].Partitions {
		if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
			t.Fatalf("partition %d: got %v, want no error", sp.Partition, err)
		}
		if sp.Partition == 0 {
			bases = append(bases, sp.BaseOffset)
		}
	}
	if fmt.Sprint(bases) != "[0 1 2]" {
		t.Fatalf("partition 0 base offsets: got %v, want [0 1 2] (request order)", bases)
	}
	part, _ := cfg.Broker.Partition("twice", 0)
	_, vals := readLog(t, part.Log())
	var got []byte
	for _, v := range vals {
		got = append(got, v[0])
	}
	if string(got) != "abc" {
		t.Fatalf("partition 0 records: got %q, want %q", got, "abc")
	}
}

// readLog returns the offsets and values of every record in l.
func readLog(t *testing.T, l *commitlog.Log) ([]int64, [][]byte) {
	t.Helper()
	var offs []int64
	var vals [][]byte
	for off := l.LogStartOffset(); off < l.HighWatermark(); {
		v, err := l.Read(off, 4<<20)
		if err != nil {
			t.Fatalf("read at %d: got %v, want nil", off, err)
		}
		if len(v.Data) == 0 {
			v.Release()
			break
		}
		err = commitlog.Batches(v.Data, func(b commitlog.Batch, raw []byte) bool {
			return commitlog.Records(b, raw, func(o, _ int64, r *kmsg.Record) bool {
				offs = append(offs, o)
				vals = append(vals, bytes.Clone(r.Value))
				return true
			}) == nil
		})
		off = v.Next
		v.Release()
		if err != nil {
			t.Fatalf("decode: got %v, want nil", err)
		}
	}
	return offs, vals
}
