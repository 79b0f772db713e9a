package core

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/core/cluster"
)

// filesOpenUnder counts this process's file descriptors open on files
// under dir.
func filesOpenUnder(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, dir+"/") {
			n++
		}
	}
	return n
}

// TestTenThousandPartitions: a broker hosting 10,000 partitions (above
// the default replicas-per-broker guard, raised here) starts again after
// a crash and serves Metadata for all of them, holding far fewer files
// open than it has partitions: logs open their files on first write.
func TestTenThousandPartitions(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,000 partition directories")
	}
	const topics, perTopic = 10, 1000
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Cluster.Timers = cluster.FastTimers() // not a test of timing: elect at once
	cfg.DataDir = dir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = ""
	cfg.ReadyTimeout = 2 * time.Minute
	cfg.Broker.MaxPartitionsPerBroker = topics*perTopic + cfg.OffsetsPartitions
	start := func() *Node {
		t.Helper()
		n, err := New(cfg)
		if err != nil {
			t.Fatalf("New: got error %v, want nil", err)
		}
		t.Cleanup(func() { n.Shutdown(context.Background()) })
		if err := n.Start(); err != nil {
			t.Fatalf("Start: got error %v, want nil", err)
		}
		return n
	}
	n := start()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cl := client(t, n)
	adm := kadm.NewClient(cl)
	var names []string
	t0 := time.Now()
	for i := range topics {
		name := fmt.Sprintf("wide-%d", i)
		names = append(names, name)
		rs, err := adm.CreateTopics(ctx, perTopic, 1, nil, name)
		if err == nil {
			err = rs[name].Err
		}
		if err != nil {
			t.Fatalf("create %s: got %v, want nil", name, err)
		}
	}
	t.Logf("created %d topics of %d partitions in %v", topics, perTopic, time.Since(t0).Round(time.Millisecond))
	// A few records, so that some logs have data to recover.
	pcl := client(t, n, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(10) {
		r := &kgo.Record{Topic: names[0], Partition: p, Value: []byte("v")}
		if err := pcl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce: got %v, want nil", err)
		}
	}
	n.crash()

	t0 = time.Now()
	n = start()
	t.Logf("started again in %v", time.Since(t0).Round(time.Millisecond))
	if got := filesOpenUnder(t, dir); got >= topics*perTopic {
		t.Fatalf("got %d files open under the data directory, want fewer than one per partition", got)
	}
	adm = kadm.NewClient(client(t, n))
	md, err := adm.Metadata(ctx, names...)
	if err != nil {
		t.Fatalf("Metadata: got %v, want nil", err)
	}
	total, led := 0, 0
	for _, td := range md.Topics {
		for _, pd := range td.Partitions {
			total++
			if pd.Leader == n.cfg.NodeID && pd.Err == nil {
				led++
			}
		}
	}
	if total != topics*perTopic || led != total {
		t.Fatalf("got %d partitions in Metadata, %d led by this node, want %d led", total, led, topics*perTopic)
	}
	ends, err := adm.ListEndOffsets(ctx, names[0])
	if err != nil {
		t.Fatalf("ListEndOffsets: got %v, want nil", err)
	}
	for p := range int32(10) {
		if o, _ := ends.Lookup(names[0], p); o.Err != nil || o.Offset != 1 {
			t.Fatalf("partition %d: got end offset %d (%v) after restart, want 1", p, o.Offset, o.Err)
		}
	}
}
