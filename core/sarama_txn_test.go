package core

import (
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// TestSaramaTransactions: sarama's transactional producer commits and
// aborts against a node, and a sarama consumer reading with
// read_committed gets only the committed records, in order; one reading
// with read_uncommitted gets the aborted ones too.
func TestSaramaTransactions(t *testing.T) {
	saramaLog(t)
	node := startNode(t, t.TempDir())
	addrs := []string{node.KafkaAddr()}
	createTopic(t, addrs, "stxn", 1, 1)

	cfg := saramaConfig(saramaVersion)
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Transaction.ID = "sarama-tx"
	cfg.Producer.Transaction.Retry.Backoff = 50 * time.Millisecond
	cfg.Net.MaxOpenRequests = 1
	p, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		t.Fatalf("NewSyncProducer: got %v, want nil", err)
	}
	t.Cleanup(func() { p.Close() })
	txn := func(commit bool, values ...string) {
		t.Helper()
		if err := p.BeginTxn(); err != nil {
			t.Fatalf("BeginTxn: %v", err)
		}
		for _, v := range values {
			if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "stxn", Partition: 0, Value: sarama.StringEncoder(v)}); err != nil {
				t.Fatalf("send %s: %v", v, err)
			}
		}
		end := p.CommitTxn
		if !commit {
			end = p.AbortTxn
		}
		if err := end(); err != nil {
			t.Fatalf("end (commit=%v): %v", commit, err)
		}
	}
	txn(true, "c1", "c2")
	txn(false, "a1", "a2")
	txn(true, "c3")

	read := func(level sarama.IsolationLevel, n int) []string {
		t.Helper()
		ccfg := saramaConfig(saramaVersion)
		ccfg.Consumer.IsolationLevel = level
		c, err := sarama.NewConsumer(addrs, ccfg)
		if err != nil {
			t.Fatalf("NewConsumer: %v", err)
		}
		defer c.Close()
		pc, err := c.ConsumePartition("stxn", 0, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("ConsumePartition: %v", err)
		}
		defer pc.Close()
		var out []string
		ctx := ctxT(t)
		for len(out) < n {
			select {
			case m := <-pc.Messages():
				out = append(out, string(m.Value))
			case <-ctx.Done():
				t.Fatalf("read %v of %d records", out, n)
			}
		}
		return out
	}
	if got, want := read(sarama.ReadCommitted, 3), []string{"c1", "c2", "c3"}; !slices.Equal(got, want) {
		t.Errorf("read_committed: got %v, want %v", got, want)
	}
	if got, want := read(sarama.ReadUncommitted, 5), []string{"c1", "c2", "a1", "a2", "c3"}; !slices.Equal(got, want) {
		t.Errorf("read_uncommitted: got %v, want %v", got, want)
	}
}
