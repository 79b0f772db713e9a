package core

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// These tests run sarama, a Kafka client written independently of
// franz-go (whose kmsg the server is built on), against an in-process node,
// so that a shared misreading of the protocol cannot hide.

// saramaVersion is the Kafka version the tests announce to sarama.
var saramaVersion = sarama.V3_6_0_0

// saramaConfig returns a sarama configuration for version; the zero
// version keeps sarama's default.
func saramaConfig(version sarama.KafkaVersion) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "fluxo-sarama-test"
	if version != (sarama.KafkaVersion{}) {
		cfg.Version = version
	}
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	cfg.Producer.Retry.Backoff = 50 * time.Millisecond
	cfg.Consumer.Retry.Backoff = 50 * time.Millisecond
	cfg.Admin.Retry.Backoff = 50 * time.Millisecond
	return cfg
}

// saramaSink is where sarama's package-wide Logger writes: the log of the
// test that runs now, or nowhere between tests, since sarama's goroutines
// may outlive the test that started them.
var saramaSink struct {
	once sync.Once
	mu   sync.Mutex
	t    testing.TB // guarded by mu
}

type saramaLogger struct{}

func (saramaLogger) write(s string) {
	saramaSink.mu.Lock()
	defer saramaSink.mu.Unlock()
	if saramaSink.t != nil {
		saramaSink.t.Log("sarama: " + strings.TrimRight(s, "\n"))
	}
}

func (l saramaLogger) Print(v ...any)                 { l.write(fmt.Sprint(v...)) }
func (l saramaLogger) Printf(format string, v ...any) { l.write(fmt.Sprintf(format, v...)) }
func (l saramaLogger) Println(v ...any)               { l.write(fmt.Sprint(v...)) }

// saramaLog sends sarama's log to t's log until t ends.
func saramaLog(t testing.TB) {
	saramaSink.once.Do(func() { sarama.Logger = saramaLogger{} })
	saramaSink.mu.Lock()
	prev := saramaSink.t
	saramaSink.t = t
	saramaSink.mu.Unlock()
	t.Cleanup(func() {
		saramaSink.mu.Lock()
		saramaSink.t = prev
		saramaSink.mu.Unlock()
	})
}

// saramaRecord is a produced record as the producer saw it acknowledged.
type saramaRecord struct {
	key       string
	partition int32
	offset    int64
}

// TestSaramaProduceConsume: an idempotent sarama SyncProducer with
// acks=all writes 1,000 keyed records to an auto-created 3-partition
// topic and a snappy-compressing AsyncProducer 1,000 more; a sarama
// Consumer reads every partition from the oldest offset and gets each
// record once, as acknowledged, with every key's records in order. It runs
// with a modern Kafka version and with sarama's default one.
func TestSaramaProduceConsume(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version sarama.KafkaVersion
	}{
		{"V3_6_0_0", saramaVersion},
		{"default", sarama.KafkaVersion{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saramaLog(t)
			node := startNode(t, t.TempDir())
			addrs := []string{node.KafkaAddr()}
			const topic, n = "telemetry", 1000
			want := map[string]saramaRecord{} // by value
			key := func(i int) string { return fmt.Sprintf("dev-%02d", i%17) }

			// Synchronous, idempotent, acks=all.
			pcfg := saramaConfig(tc.version)
			pcfg.Producer.Idempotent = true
			pcfg.Producer.RequiredAcks = sarama.WaitForAll
			pcfg.Producer.Return.Successes = true
			pcfg.Producer.Retry.Max = 5
			pcfg.Net.MaxOpenRequests = 1
			sp, err := sarama.NewSyncProducer(addrs, pcfg)
			if err != nil {
				t.Fatalf("NewSyncProducer: got %v, want nil", err)
			}
			for i := 0; i < n; i++ {
				v := fmt.Sprintf("reading %d", i)
				p, o, err := sp.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key(i)), Value: sarama.StringEncoder(v)})
				if err != nil {
					sp.Close()
					t.Fatalf("SendMessage %d: got %v, want nil", i, err)
				}
				want[v] = saramaRecord{key: key(i), partition: p, offset: o}
			}
			if err := sp.Close(); err != nil {
				t.Fatalf("SyncProducer.Close: got %v, want nil", err)
			}

			// Asynchronous, snappy-compressed batches.
			acfg := saramaConfig(tc.version)
			acfg.Producer.RequiredAcks = sarama.WaitForAll
			// Idempotent, as the sync producer: a batch sarama retries
			// (its connection not ready yet) must not be stored twice.
			acfg.Producer.Idempotent = true
			acfg.Net.MaxOpenRequests = 1
			acfg.Producer.Retry.Max = 5
			acfg.Producer.Compression = sarama.CompressionSnappy
			acfg.Producer.Return.Successes = true
			acfg.Producer.Return.Errors = true
			acfg.Producer.Flush.Messages = 50
			acfg.Producer.Flush.Frequency = 5 * time.Millisecond
			ap, err := sarama.NewAsyncProducer(addrs, acfg)
			if err != nil {
				t.Fatalf("NewAsyncProducer: got %v, want nil", err)
			}
			acked := make(chan error, 1)
			go func() {
				var errs []error
				for range n {
					select {
					case m, ok := <-ap.Successes():
						if !ok {
							acked <- errors.New("producer closed")
							return
						}
						v := string(m.Value.(sarama.StringEncoder))
						want[v] = saramaRecord{key: string(m.Key.(sarama.StringEncoder)), partition: m.Partition, offset: m.Offset}
					case pe, ok := <-ap.Errors():
						if !ok {
							acked <- errors.New("producer closed")
							return
						}
						errs = append(errs, pe)
					}
				}
				acked <- errors.Join(errs...)
			}()
			for i := n; i < 2*n; i++ {
				ap.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key(i)), Value: sarama.StringEncoder(fmt.Sprintf("reading %d", i))}
			}
			select {
			case err := <-acked:
				if err != nil {
					ap.Close()
					t.Fatalf("AsyncProducer: got %v, want no errors", err)
				}
			case <-ctxT(t).Done():
				ap.Close()
				t.Fatal("AsyncProducer: timed out waiting for acknowledgements")
			}
			if err := ap.Close(); err != nil {
				t.Fatalf("AsyncProducer.Close: got %v, want nil", err)
			}
			if len(want) != 2*n {
				t.Fatalf("got %d distinct acknowledged records, want %d", len(want), 2*n)
			}

			got := saramaConsumeAll(t, addrs, saramaConfig(tc.version), topic, 3, 2*n)
			last := map[string]int{}
			keyPartition := map[string]int32{}
			for _, m := range got {
				v := string(m.Value)
				w, ok := want[v]
				if !ok {
					t.Fatalf("got record %q at %d/%d, want only produced records", v, m.Partition, m.Offset)
				}
				if g := (saramaRecord{key: string(m.Key), partition: m.Partition, offset: m.Offset}); g != w {
					t.Fatalf("record %q: got key %s at %d/%d, want key %s at %d/%d as acknowledged", v, g.key, g.partition, g.offset, w.key, w.partition, w.offset)
				}
				if p, ok := keyPartition[w.key]; ok && p != m.Partition {
					t.Fatalf("key %s: got partitions %d and %d, want one", w.key, p, m.Partition)
				}
				keyPartition[w.key] = m.Partition
				var i int
				fmt.Sscanf(v, "reading %d", &i)
				if prev, ok := last[w.key]; ok && i <= prev {
					t.Fatalf("key %s: got reading %d after %d, want increasing", w.key, i, prev)
				}
				last[w.key] = i
			}
		})
	}
}

// saramaConsumeAll reads n records of topic, which has the given number
// of partitions, from the oldest offset with one PartitionConsumer per
// partition, and fails on duplicates or on more records than n. Records
// of one partition are returned in the order they were received.
func saramaConsumeAll(t *testing.T, addrs []string, cfg *sarama.Config, topic string, partitions, n int) []*sarama.ConsumerMessage {
	t.Helper()
	cfg.Consumer.Return.Errors = true
	cl, err := sarama.NewClient(addrs, cfg)
	if err != nil {
		t.Fatalf("NewClient: got %v, want nil", err)
	}
	defer cl.Close()
	c, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		t.Fatalf("NewConsumer: got %v, want nil", err)
	}
	defer c.Close()
	ps, err := c.Partitions(topic)
	if err != nil {
		t.Fatalf("Partitions: got %v, want nil", err)
	}
	if len(ps) != partitions {
		t.Fatalf("got %d partitions, want %d", len(ps), partitions)
	}
	var end int64
	for _, p := range ps {
		o, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("GetOffset %d newest: got %v, want nil", p, err)
		}
		end += o
	}
	if end != int64(n) {
		t.Fatalf("got end offsets summing to %d, want %d", end, n)
	}

	msgs := make(chan *sarama.ConsumerMessage)
	errs := make(chan error, len(ps))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var pcs []sarama.PartitionConsumer
	defer func() {
		close(stop)
		for _, pc := range pcs {
			pc.AsyncClose()
		}
		wg.Wait()
	}()
	for _, p := range ps {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("ConsumePartition %d: got %v, want nil", p, err)
		}
		pcs = append(pcs, pc)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for m := range pc.Messages() {
				select {
				case msgs <- m:
				case <-stop:
				}
			}
		}()
		go func() {
			defer wg.Done()
			for err := range pc.Errors() {
				select {
				case errs <- err:
				case <-stop:
				}
			}
		}()
	}

	ctx := ctxT(t)
	seen := map[[2]int64]bool{}
	var out []*sarama.ConsumerMessage
	for len(out) < n {
		select {
		case m := <-msgs:
			k := [2]int64{int64(m.Partition), m.Offset}
			if seen[k] {
				t.Fatalf("got record %d/%d twice, want once", m.Partition, m.Offset)
			}
			seen[k] = true
			out = append(out, m)
		case err := <-errs:
			t.Fatalf("consume: got %v, want no errors", err)
		case <-ctx.Done():
			t.Fatalf("got %d of %d records before the deadline, want all", len(out), n)
		}
	}
	return out
}

// saramaMember is one sarama group consumer. It records the claims each
// session starts with and what it consumed, and marks every record it
// reads.
type saramaMember struct {
	cg    sarama.ConsumerGroup
	topic string
	seen  *saramaSeen
	done  chan struct{} // closed when Consume has returned for good

	mu   sync.Mutex
	sess sarama.ConsumerGroupSession // latest session, from Setup; guarded by mu
	sets int                         // Setup calls; guarded by mu
}

// saramaSeen is the set of records a group has consumed.
type saramaSeen struct {
	mu sync.Mutex
	m  map[int32]map[int64]bool // partition -> offsets
}

func (s *saramaSeen) add(p int32, o int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[p] == nil {
		s.m[p] = map[int64]bool{}
	}
	s.m[p][o] = true
}

func (s *saramaSeen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, os := range s.m {
		n += len(os)
	}
	return n
}

func (m *saramaMember) Setup(sess sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	m.sess = sess
	m.sets++
	m.mu.Unlock()
	return nil
}

func (m *saramaMember) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (m *saramaMember) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			m.seen.add(msg.Partition, msg.Offset)
			sess.MarkMessage(msg, "")
		case <-sess.Context().Done():
			return nil
		}
	}
}

// claims returns the partitions of the member's current session, sorted:
// those it received in Setup, or with a cooperative strategy, which keeps
// its session across rebalances, those it holds now.
func (m *saramaMember) claims() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sess == nil {
		return nil
	}
	return slices.Sorted(slices.Values(m.sess.Claims()[m.topic]))
}

func (m *saramaMember) close(t *testing.T) {
	t.Helper()
	if err := m.cg.Close(); err != nil {
		t.Errorf("ConsumerGroup.Close: got %v, want nil", err)
	}
	<-m.done
}

func newSaramaMember(t *testing.T, addrs []string, cfg *sarama.Config, group, topic string, seen *saramaSeen) *saramaMember {
	t.Helper()
	cg, err := sarama.NewConsumerGroup(addrs, group, cfg)
	if err != nil {
		t.Fatalf("NewConsumerGroup: got %v, want nil", err)
	}
	m := &saramaMember{cg: cg, topic: topic, seen: seen, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			err := cg.Consume(context.Background(), []string{topic}, m)
			if errors.Is(err, sarama.ErrClosedConsumerGroup) {
				return
			}
			if err != nil {
				t.Errorf("Consume: got %v, want nil", err)
				return
			}
		}
	}()
	t.Cleanup(func() { cg.Close(); <-m.done })
	return m
}

// TestSaramaConsumerGroup: three sarama members share a 6-partition topic
// two partitions each and consume every record; when one leaves, the other
// two take its partitions, three each, and consume what is produced next;
// once all have left, the offsets they committed, read back with
// ClusterAdmin, are the end of every partition.
func TestSaramaConsumerGroup(t *testing.T) {
	for _, tc := range []struct {
		name        string
		strategy    func() sarama.BalanceStrategy
		cooperative bool
	}{
		{"Sticky", sarama.NewBalanceStrategySticky, false},
		{"RoundRobin", sarama.NewBalanceStrategyRoundRobin, false},
		{"CooperativeSticky", sarama.NewBalanceStrategyCooperativeSticky, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saramaLog(t)
			cfg := DefaultConfig()
			cfg.Cluster.Timers = cluster.FastTimers() // not a test of timing: elect at once
			cfg.DataDir = t.TempDir()
			cfg.KafkaAddr = "127.0.0.1:0"
			cfg.HTTPAddr = ""
			cfg.Group.InitialRebalanceDelay = 50 * time.Millisecond
			node, err := New(cfg)
			if err != nil {
				t.Fatalf("New: got %v, want nil", err)
			}
			if err := node.Start(); err != nil {
				t.Fatalf("Start: got %v, want nil", err)
			}
			t.Cleanup(func() { node.Shutdown(context.Background()) })
			addrs := []string{node.KafkaAddr()}
			const topic, group, partitions = "readings", "dashboard", 6

			adm, err := sarama.NewClusterAdmin(addrs, saramaConfig(saramaVersion))
			if err != nil {
				t.Fatalf("NewClusterAdmin: got %v, want nil", err)
			}
			defer adm.Close()
			if err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
				t.Fatalf("CreateTopic: got %v, want nil", err)
			}
			// Idempotent: sarama retries a batch when its connection was
			// not ready yet, and only idempotence keeps a retry from
			// being written twice (the count below must be exact).
			pcfg := saramaConfig(saramaVersion)
			pcfg.Producer.Idempotent = true
			pcfg.Net.MaxOpenRequests = 1
			pcfg.Producer.Retry.Max = 5
			pcfg.Producer.Return.Successes = true
			pcfg.Producer.RequiredAcks = sarama.WaitForAll
			sp, err := sarama.NewSyncProducer(addrs, pcfg)
			if err != nil {
				t.Fatalf("NewSyncProducer: got %v, want nil", err)
			}
			defer sp.Close()
			produce := func(from, to int) {
				t.Helper()
				var batch []*sarama.ProducerMessage
				for i := from; i < to; i++ {
					batch = append(batch, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder("v")})
				}
				if err := sp.SendMessages(batch); err != nil {
					t.Fatalf("SendMessages: got %v, want nil", err)
				}
			}
			produce(0, 600)

			mcfg := func() *sarama.Config {
				c := saramaConfig(saramaVersion)
				c.Consumer.Offsets.Initial = sarama.OffsetOldest
				c.Consumer.MaxWaitTime = 100 * time.Millisecond
				c.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
				c.Consumer.Group.Heartbeat.Interval = 100 * time.Millisecond
				c.Consumer.Group.Rebalance.Retry.Backoff = 50 * time.Millisecond
				c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{tc.strategy()}
				return c
			}
			seen := &saramaSeen{m: map[int32]map[int64]bool{}}
			a := newSaramaMember(t, addrs, mcfg(), group, topic, seen)
			b := newSaramaMember(t, addrs, mcfg(), group, topic, seen)
			c := newSaramaMember(t, addrs, mcfg(), group, topic, seen)

			// held reports whether ms hold every partition between them,
			// each holding size.
			held := func(size int, ms ...*saramaMember) bool {
				all := map[int32]bool{}
				for _, m := range ms {
					cl := m.claims()
					if len(cl) != size {
						return false
					}
					for _, p := range cl {
						all[p] = true
					}
				}
				return len(all) == partitions
			}
			describe := func(ms ...*saramaMember) string {
				s := ""
				for i, m := range ms {
					s += fmt.Sprintf(" member %d: %v", i, m.claims())
				}
				return s
			}
			saramaWait(t, func() bool { return held(2, a, b, c) }, func() string {
				return "got claims" + describe(a, b, c) + ", want 2 partitions each covering all 6"
			})
			saramaWait(t, func() bool { return seen.count() == 600 }, func() string {
				return fmt.Sprintf("got %d records consumed, want 600", seen.count())
			})

			c.close(t) // leaves the group
			saramaWait(t, func() bool { return held(3, a, b) }, func() string {
				return "got claims" + describe(a, b) + " after a member left, want 3 partitions each covering all 6"
			})
			if tc.cooperative {
				// The cooperative protocol moves partitions within the
				// members' first sessions.
				for i, m := range []*saramaMember{a, b} {
					m.mu.Lock()
					n := m.sets
					m.mu.Unlock()
					if n != 1 {
						t.Errorf("member %d: got %d sessions, want 1", i, n)
					}
				}
			}
			produce(600, 1200)
			saramaWait(t, func() bool { return seen.count() == 1200 }, func() string {
				return fmt.Sprintf("got %d records consumed, want 1200", seen.count())
			})
			a.close(t)
			b.close(t)

			ends := map[int32]int64{}
			var want int64
			for p := range int32(partitions) {
				o, err := saramaEndOffset(addrs, topic, p)
				if err != nil {
					t.Fatalf("end offset of %d: got %v, want nil", p, err)
				}
				ends[p] = o
				want += o
			}
			if want != 1200 {
				t.Fatalf("got end offsets summing to %d, want 1200", want)
			}
			ps := slices.Sorted(maps.Keys(ends))
			offs, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: ps})
			if err != nil {
				t.Fatalf("ListConsumerGroupOffsets: got %v, want nil", err)
			}
			for _, p := range ps {
				blk := offs.GetBlock(topic, p)
				if blk == nil {
					t.Fatalf("partition %d: got no committed offset, want %d", p, ends[p])
				}
				if !errors.Is(blk.Err, sarama.ErrNoError) || blk.Offset != ends[p] {
					t.Errorf("partition %d: got committed offset %d (%v), want %d", p, blk.Offset, blk.Err, ends[p])
				}
			}
		})
	}
}

// saramaEndOffset is the end offset of one partition, from a client of its
// own so that no metadata is cached.
func saramaEndOffset(addrs []string, topic string, p int32) (int64, error) {
	cl, err := sarama.NewClient(addrs, saramaConfig(saramaVersion))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	return cl.GetOffset(topic, p, sarama.OffsetNewest)
}

// saramaWait waits for cond, then fails with the message what returns.
func saramaWait(t *testing.T, cond func() bool, what func() string) {
	t.Helper()
	testutil.EventuallyNoError(t, "sarama", func() error {
		if cond() {
			return nil
		}
		return errors.New(what())
	})
}

// TestSaramaClusterAdmin: sarama's ClusterAdmin creates, lists, describes
// and deletes a topic.
func TestSaramaClusterAdmin(t *testing.T) {
	saramaLog(t)
	node := startNode(t, t.TempDir())
	addrs := []string{node.KafkaAddr()}
	adm, err := sarama.NewClusterAdmin(addrs, saramaConfig(saramaVersion))
	if err != nil {
		t.Fatalf("NewClusterAdmin: got %v, want nil", err)
	}
	defer adm.Close()
	const topic = "alarms"

	t.Run("CreateTopic", func(t *testing.T) {
		err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false)
		if err != nil {
			t.Fatalf("CreateTopic: got %v, want nil", err)
		}
		err = adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false)
		if !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			t.Fatalf("CreateTopic of an existing topic: got %v, want %v", err, sarama.ErrTopicAlreadyExists)
		}
	})

	t.Run("ListTopics", func(t *testing.T) {
		topics, err := adm.ListTopics()
		if err != nil {
			t.Fatalf("ListTopics: got %v, want nil", err)
		}
		d, ok := topics[topic]
		if !ok {
			t.Fatalf("ListTopics: got %v, want %s listed", slices.Sorted(maps.Keys(topics)), topic)
		}
		if d.NumPartitions != 4 || d.ReplicationFactor != 1 {
			t.Fatalf("ListTopics %s: got %d partitions, replication factor %d, want 4, 1", topic, d.NumPartitions, d.ReplicationFactor)
		}
	})

	t.Run("DescribeTopics", func(t *testing.T) {
		md, err := adm.DescribeTopics([]string{topic})
		if err != nil {
			t.Fatalf("DescribeTopics: got %v, want nil", err)
		}
		if len(md) != 1 {
			t.Fatalf("DescribeTopics: got %d topics, want 1", len(md))
		}
		tm := md[0]
		if tm.Name != topic || !errors.Is(tm.Err, sarama.ErrNoError) || len(tm.Partitions) != 4 {
			t.Fatalf("DescribeTopics: got %s (%v) with %d partitions, want %s (no error) with 4", tm.Name, tm.Err, len(tm.Partitions), topic)
		}
		var ids []int32
		for _, p := range tm.Partitions {
			ids = append(ids, p.ID)
			if !errors.Is(p.Err, sarama.ErrNoError) || p.Leader < 0 || len(p.Replicas) != 1 || len(p.Isr) != 1 {
				t.Errorf("partition %d: got error %v, leader %d, replicas %v, isr %v, want no error, a leader, one replica in sync", p.ID, p.Err, p.Leader, p.Replicas, p.Isr)
			}
		}
		if got := slices.Sorted(slices.Values(ids)); !slices.Equal(got, []int32{0, 1, 2, 3}) {
			t.Fatalf("DescribeTopics: got partitions %v, want [0 1 2 3]", got)
		}
	})

	t.Run("DeleteTopic", func(t *testing.T) {
		if err := adm.DeleteTopic(topic); err != nil {
			t.Fatalf("DeleteTopic: got %v, want nil", err)
		}
		md, err := adm.DescribeTopics([]string{topic})
		if err != nil {
			t.Fatalf("DescribeTopics after delete: got %v, want nil", err)
		}
		if len(md) != 1 || !errors.Is(md[0].Err, sarama.ErrUnknownTopicOrPartition) {
			var got []string
			for _, tm := range md {
				got = append(got, fmt.Sprintf("%s (%v)", tm.Name, tm.Err))
			}
			t.Fatalf("DescribeTopics after delete: got %v, want %s (%v)", got, topic, sarama.ErrUnknownTopicOrPartition)
		}
		if err := adm.DeleteTopic(topic); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			t.Fatalf("DeleteTopic of a deleted topic: got %v, want %v", err, sarama.ErrUnknownTopicOrPartition)
		}
	})
}
