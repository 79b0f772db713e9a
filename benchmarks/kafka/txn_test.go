package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestRunScenarioTxn runs a bounded transactional scenario against a core
// node in process: every record is acknowledged, several transactions
// commit, and the read_committed read-back finds the warm-up and the timed
// records, nothing more.
func TestRunScenarioTxn(t *testing.T) {
	b, err := startNodeBroker(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const (
		warmup  = 100
		records = 3000
	)
	s := scenario{partitions: 2, acksAll: true, txn: true}
	if s.name() != "p2-txn" {
		t.Errorf("name: got %q, want p2-txn", s.name())
	}
	// -records bounds the run; with a 1 ms interval a commit is due
	// before nearly every check, every 64 records.
	lim := limits{duration: time.Minute, records: records, warmup: warmup, txnInterval: time.Millisecond}
	r, err := runScenario(ctx, []string{b.KafkaAddr()}, "bench-txn-test", s, lim, newPool(), 512)
	if err != nil {
		t.Fatal(err)
	}
	if r.records != records {
		t.Errorf("acknowledged records: got %d, want %d", r.records, records)
	}
	if r.txn.commits < 2 {
		t.Errorf("commits: got %d, want at least 2", r.txn.commits)
	}
	if r.consumed != warmup+records {
		t.Errorf("records read back read_committed: got %d, want %d", r.consumed, warmup+records)
	}
}
