package core

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// member is one franz-go group consumer and the partitions it holds.
type member struct {
	cl   *kgo.Client
	mu   sync.Mutex
	held map[int32]bool
	recs int
}

func (m *member) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.held)
}

func newMember(t *testing.T, node *Node, group, topic string) *member {
	m := &member{held: map[int32]bool{}}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(node.KafkaAddr()),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			for _, p := range a[topic] {
				m.held[p] = true
			}
			m.mu.Unlock()
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, cl *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			for _, p := range r[topic] {
				delete(m.held, p)
			}
			m.mu.Unlock()
			cl.CommitMarkedOffsets(context.Background())
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) {
			m.mu.Lock()
			for _, p := range l[topic] {
				delete(m.held, p)
			}
			m.mu.Unlock()
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	go func() {
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			m.mu.Lock()
			m.recs += fs.NumRecords()
			m.mu.Unlock()
		}
	}()
	return m
}

// TestConsumerGroupRebalanceAndRestart: three franz-go members with the
// cooperative-sticky balancer share six partitions two each; when one
// leaves the other two take three each; offsets they commit survive a
// broker restart.
func TestConsumerGroupRebalanceAndRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Cluster.Timers = cluster.FastTimers() // not a test of timing: elect at once
	cfg.DataDir = dir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Group.InitialRebalanceDelay = 50 * time.Millisecond
	node, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { node.Shutdown(context.Background()) }()
	ctx := ctxT(t)
	adm := kadm.NewClient(client(t, node))
	if _, err := adm.CreateTopics(ctx, 6, -1, nil, "readings"); err != nil {
		t.Fatal(err)
	}
	p := client(t, node)
	for i := 0; i < 600; i++ {
		p.Produce(ctx, &kgo.Record{Topic: "readings", Key: []byte(fmt.Sprint(i)), Value: []byte("v")}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	a := newMember(t, node, "dashboard", "readings")
	b := newMember(t, node, "dashboard", "readings")
	c := newMember(t, node, "dashboard", "readings")
	testutil.EventuallyWithin(t, 30*time.Second, "2 partitions each", func() bool { return a.count() == 2 && b.count() == 2 && c.count() == 2 })
	testutil.EventuallyWithin(t, 30*time.Second, "600 records consumed", func() bool {
		a.mu.Lock()
		b.mu.Lock()
		c.mu.Lock()
		defer a.mu.Unlock()
		defer b.mu.Unlock()
		defer c.mu.Unlock()
		return a.recs+b.recs+c.recs >= 600
	})
	for _, m := range []*member{a, b, c} {
		if err := m.cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c.cl.Close() // leaves the group
	testutil.EventuallyWithin(t, 30*time.Second, "3 partitions each", func() bool { return a.count() == 3 && b.count() == 3 })
	for _, m := range []*member{a, b} {
		if err := m.cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatal(err)
		}
	}
	a.cl.Close()
	b.cl.Close()

	if err := node.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	node, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	// Lag is exported once the coordinator has loaded the group from its
	// __consumer_offsets partition: everything is committed, so it is 0
	// everywhere.
	var body string
	testutil.EventuallyWithin(t, 30*time.Second, "the group's lag in /metrics", func() bool {
		body = scrape(t, node)
		return strings.Contains(body, `fluxo_core_consumer_group_lag{group="dashboard",partition="0",topic="readings"} 0`)
	})
	offs, err := kadm.NewClient(client(t, node)).FetchOffsets(ctx, "dashboard")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != 600 {
		t.Fatalf("got committed offsets summing to %d after restart, want 600", total)
	}
}

func scrape(t *testing.T, node *Node) string {
	t.Helper()
	resp, err := http.Get("http://" + node.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
