package txn

import (
	"bytes"
	"context"
	"sync"
)

// Log is where the coordinator persists transaction states. The broker
// backs it with a __transaction_state partition.
//
// Append may be called from several goroutines at once, for different
// transactional ids; records of one id are appended one call at a time.
// Replay is called once, by New, before any Append.
type Log interface {
	// Append durably writes the records and returns once they are
	// durable (on every in-sync replica). It returns early with an error
	// when ctx ends. Any error answers the request
	// COORDINATOR_NOT_AVAILABLE (NOT_COORDINATOR for a *kerr.Error saying
	// this broker lost the partition), so that clients retry.
	Append(ctx context.Context, recs []Record) error
	// Replay calls fn for every record in append order. An error from fn
	// stops the replay and is returned.
	Replay(fn func(key, value []byte) error) error
}

// MemLog is a Log in memory, for tests. The zero value is ready to use.
type MemLog struct {
	mu   sync.Mutex
	recs []Record // guarded by mu
}

// Append keeps copies of recs.
func (l *MemLog) Append(ctx context.Context, recs []Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range recs {
		c := Record{Key: bytes.Clone(r.Key)}
		if r.Value != nil {
			c.Value = bytes.Clone(r.Value)
		}
		l.recs = append(l.recs, c)
	}
	return nil
}

// Replay calls fn for each record appended so far, oldest first.
func (l *MemLog) Replay(fn func(key, value []byte) error) error {
	l.mu.Lock()
	recs := l.recs
	l.mu.Unlock()
	for _, r := range recs {
		if err := fn(r.Key, r.Value); err != nil {
			return err
		}
	}
	return nil
}
