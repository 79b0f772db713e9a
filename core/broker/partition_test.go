package broker

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/core/commitlog"
)

func idemBatch(pid int64, epoch int16, seq int32, n int) []byte {
	recs := make([]kmsg.Record, n)
	for i := range recs {
		recs[i] = kmsg.Record{Value: []byte("v")}
	}
	return commitlog.AppendBatch(nil, commitlog.BatchHeader{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, LeaderEpoch: -1}, recs)
}

// testBroker is a broker on a real single-voter cluster, as `fluxo core`
// runs without peers.
type testBroker struct {
	*Broker
	cl *cluster.Cluster
}

func (tb *testBroker) Close() error {
	err := tb.Broker.Close()
	if cerr := tb.cl.Close(); err == nil {
		err = cerr
	}
	return err
}

func openTestBroker(t testing.TB, dir string) *testBroker {
	t.Helper()
	return openTestBrokerConfig(t, dir, DefaultConfig())
}

func openTestBrokerConfig(t testing.TB, dir string, cfg Config) *testBroker {
	t.Helper()
	cl, err := cluster.Open(cluster.Config{
		NodeID:    1,
		DataDir:   filepath.Join(dir, "cluster"),
		SerfAddr:  "127.0.0.1:0",
		RaftAddr:  "127.0.0.1:0",
		KafkaAddr: "127.0.0.1:9092",
		Timers:    cluster.FastTimers(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.WaitReady(ctx); err != nil {
		cl.Close()
		t.Fatal(err)
	}
	cfg.NodeID = 1
	cfg.DataDir = dir
	b, err := Open(cfg, cl)
	if err != nil {
		cl.Close()
		t.Fatal(err)
	}
	return &testBroker{b, cl}
}

// TestIdempotentProduce walks Kafka's sequence rules for one producer,
// then restarts the broker and checks that a retry is still recognised.
func TestIdempotentProduce(t *testing.T) {
	dir := t.TempDir()
	b := openTestBroker(t, dir)
	tp, err := b.CreateTopic(context.Background(), "t", 1, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := tp.Partitions[0]
	steps := []struct {
		name     string
		batch    []byte
		wantCode int16
		wantBase int64
	}{
		{"first batch", idemBatch(7, 0, 0, 3), 0, 0},
		{"next batch", idemBatch(7, 0, 3, 2), 0, 3},
		{"retry of the first batch", idemBatch(7, 0, 0, 3), 0, 0},
		{"retry of the last batch", idemBatch(7, 0, 3, 2), 0, 3},
		{"gap", idemBatch(7, 0, 9, 1), kerr.OutOfOrderSequenceNumber.Code, -1},
		{"in order after a refused gap", idemBatch(7, 0, 5, 1), 0, 5},
		{"unknown producer mid-stream", idemBatch(8, 0, 4, 1), kerr.UnknownProducerID.Code, -1},
		{"new producer", idemBatch(8, 0, 0, 1), 0, 6},
		{"new epoch must start at 0", idemBatch(7, 1, 5, 1), kerr.OutOfOrderSequenceNumber.Code, -1},
		{"new epoch", idemBatch(7, 1, 0, 1), 0, 7},
		{"older epoch fenced", idemBatch(7, 0, 5, 1), kerr.InvalidProducerEpoch.Code, -1},
		{"no producer id: always appended", idemBatch(-1, -1, -1, 1), 0, 8},
		{"garbage", []byte("not a batch"), kerr.CorruptMessage.Code, -1},
	}
	for _, st := range steps {
		res := p.Append(st.batch, 1)
		if res.Code != st.wantCode || (st.wantCode == 0 && res.BaseOffset != st.wantBase) {
			t.Fatalf("%s: got code %d base %d (%v), want code %d base %d", st.name, res.Code, res.BaseOffset, res.Err, st.wantCode, st.wantBase)
		}
	}
	if got := p.Log().LogEndOffset(); got != 9 {
		t.Fatalf("got log end %d, want 9 (retries not written)", got)
	}
	if eps := p.Log().LeaderEpochs(); len(eps) != 1 || eps[0] != (commitlog.EpochEntry{Epoch: 0, StartOffset: 0}) {
		t.Fatalf("got leader epochs %v, want the partition's epoch 0 from offset 0", eps)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openTestBroker(t, dir)
	defer b.Close()
	p, _ = b.Partition("t", 0)
	if res := p.Append(idemBatch(7, 1, 0, 1), 1); res.Code != 0 || res.BaseOffset != 7 {
		t.Fatalf("retry after restart: got code %d base %d, want the original offset 7", res.Code, res.BaseOffset)
	}
	if res := p.Append(idemBatch(7, 1, 1, 1), 1); res.Code != 0 || res.BaseOffset != 9 {
		t.Fatalf("next after restart: got code %d base %d, want 9", res.Code, res.BaseOffset)
	}
}

func TestTopicValidation(t *testing.T) {
	b := openTestBroker(t, t.TempDir())
	defer b.Close()
	tests := []struct {
		name    string
		topic   string
		configs map[string]string
		ok      bool
	}{
		{"plain", "telemetry", nil, true},
		{"dots and dashes", "cars.c-17_x", nil, true},
		{"empty", "", nil, false},
		{"dot", ".", nil, false},
		{"slash", "a/b", nil, false},
		{"too long", string(make([]byte, 250)), nil, false},
		{"retention", "r", map[string]string{"retention.ms": "1000", "retention.bytes": "1048576"}, true},
		{"compact", "c", map[string]string{"cleanup.policy": "compact", "min.compaction.lag.ms": "1", "delete.retention.ms": "0"}, true},
		{"compact,delete", "cd", map[string]string{"cleanup.policy": "delete,compact", "min.cleanable.dirty.ratio": "0.1"}, true},
		{"streams changelog", "sc", map[string]string{"cleanup.policy": "compact", "message.timestamp.type": "CreateTime"}, true},
		{"log append time", "la", map[string]string{"message.timestamp.type": "LogAppendTime"}, false},
		{"bad policy", "bp", map[string]string{"cleanup.policy": "shred"}, false},
		{"bad ratio", "br", map[string]string{"min.cleanable.dirty.ratio": "2"}, false},
		{"zero max lag", "zl", map[string]string{"max.compaction.lag.ms": "0"}, false},
		{"unknown config", "u", map[string]string{"compression.level": "1"}, false},
		{"bad number", "n", map[string]string{"segment.bytes": "big"}, false},
		{"segment too small", "s", map[string]string{"segment.bytes": "10"}, false},
	}
	for _, tt := range tests {
		_, err := b.CreateTopic(context.Background(), tt.topic, 1, 0, tt.configs)
		if (err == nil) != tt.ok {
			t.Errorf("%s: got %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
