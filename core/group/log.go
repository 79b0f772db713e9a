package group

import (
	"bytes"
	"context"
	"sync"
)

// Record is one key/value pair of the coordinator's log, encoded as in
// Kafka's __consumer_offsets topic (see the package documentation).
type Record struct {
	Key []byte
	// Value is nil for a tombstone: the key's earlier values are void.
	Value []byte
}

// Log is where the coordinator persists offset commits and group metadata.
// The broker backs it with an internal __consumer_offsets partition.
//
// Append may be called from several goroutines at once, for different
// groups; records of one group are appended one call at a time. Replay is
// called once, by New, before any Append.
type Log interface {
	// Append durably writes key/value records (value nil = tombstone) and
	// returns once they are durable. The records of one call are written
	// together or not at all. It returns early with an error when ctx ends.
	// An error that is a *kerr.Error is mapped to a response code the way
	// Kafka maps log append errors; any other error answers
	// COORDINATOR_NOT_AVAILABLE, so that clients retry.
	Append(ctx context.Context, recs []Record) error
	// Replay calls fn for every record in append order, on startup. An
	// error from fn stops the replay and is returned.
	Replay(fn func(key, value []byte) error) error
}

// MemLog is a Log in memory, for tests and for brokers that keep no state
// across restarts. The zero value is empty and ready to use.
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

// Len returns the number of records appended so far, tombstones included.
func (l *MemLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recs)
}

// TxnLog is a Log that keeps transactional offset commits as Kafka keeps
// them in __consumer_offsets: TxnOffsetCommit's records go to the log at
// once, in a batch marked with the producer's id, and count only once the
// transaction's commit marker follows them (written to the same log by the
// transaction's coordinator, through the partition). The broker's
// __consumer_offsets log is one; a Log that is not keeps such commits in
// memory until the transaction ends, and then writes them as ordinary
// commits.
type TxnLog interface {
	Log
	// AppendTxn durably writes recs as one transactional batch of
	// producer id at epoch, as Append writes.
	AppendTxn(ctx context.Context, producerID int64, epoch int16, recs []Record) error
	// ReplayTxn is Replay with each record's origin: the producer id of a
	// transactional record (-1 for others), and the transaction markers.
	ReplayTxn(fn func(r Replayed) error) error
}

// Replayed is one record of a TxnLog's replay.
type Replayed struct {
	Key, Value []byte // nil for a marker
	ProducerID int64  // the producer of a transactional record or marker; -1 otherwise
	Marker     bool   // a transaction marker: Commit says how the transaction ended
	Commit     bool
}
