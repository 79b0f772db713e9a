package broker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// keyedAt is a batch of records key=value at timestamp ts: transactional
// for producer pid >= 0, plain for pid < 0.
func keyedAt(pid int64, ts int64, kvs ...string) []byte {
	h := commitlog.BatchHeader{FirstTimestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, LeaderEpoch: -1}
	if pid >= 0 {
		h.ProducerID, h.ProducerEpoch, h.BaseSequence, h.Attributes = pid, 0, 0, 0x10
	}
	var recs []kmsg.Record
	for i := 0; i+1 < len(kvs); i += 2 {
		recs = append(recs, kmsg.Record{Key: []byte(kvs[i]), Value: []byte(kvs[i+1])})
	}
	return commitlog.AppendBatch(nil, h, recs)
}

type committedRec struct {
	off   int64
	value string
}

// readCommitted reads p from its log start to its last stable offset as
// a read_committed Kafka client does: it asks for the aborted
// transactions of the range, skips a producer's transactional batches
// from the first offset of one of them until that producer's abort
// marker, and skips control batches. It returns the last value read per
// key and every record read by offset.
func readCommitted(t *testing.T, p *Partition) (map[string]committedRec, map[int64]string) {
	t.Helper()
	lso := p.LastStableOffset()
	pending := p.AbortedTxns(p.LogStartOffset(), lso) // by marker, so not by first offset: scan all
	abortedPids := map[int64]bool{}
	last := map[string]committedRec{}
	seen := map[int64]string{}
	for off := p.LogStartOffset(); off < lso; {
		v, err := p.log.Read(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Data) == 0 {
			v.Release()
			break
		}
		err = commitlog.Batches(v.Data, func(b commitlog.Batch, raw []byte) bool {
			if b.BaseOffset >= lso {
				return false
			}
			for i := 0; i < len(pending); {
				if pending[i].FirstOffset <= b.LastOffset() {
					abortedPids[pending[i].ProducerID] = true
					pending = append(pending[:i], pending[i+1:]...)
					continue
				}
				i++
			}
			if b.IsControl() {
				commitlog.Records(b, raw, func(_, _ int64, r *kmsg.Record) bool {
					if cr, err := ParseControlRecord(r.Key, r.Value); err == nil && cr.Type == ControlAbort {
						delete(abortedPids, b.ProducerID)
					}
					return false
				})
				return true
			}
			if b.IsTransactional() && abortedPids[b.ProducerID] {
				return true
			}
			commitlog.Records(b, raw, func(o, _ int64, r *kmsg.Record) bool {
				last[string(r.Key)] = committedRec{o, string(r.Value)}
				seen[o] = string(r.Key) + "=" + string(r.Value)
				return true
			})
			return true
		})
		off = v.Next
		v.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	return last, seen
}

// TestTxnCleanProperty: random transactions (committed and aborted) and
// plain records over a few keys in a compacted partition, cleaned at
// random times over delete.retention.ms (so markers are removed as
// Kafka's rule allows), with restarts. After each cleaning and restart a
// read_committed reader finds, for every key, the newest committed value
// and never a record that was not committed; markers do go.
func TestTxnCleanProperty(t *testing.T) {
	seeds := 30
	if n, err := strconv.Atoi(os.Getenv("FLUXO_CRASH_CASES")); err == nil && n > 0 {
		seeds = n
	}
	root := crashDirFor(t)
	removed := int64(0)
	for seed := range seeds {
		removed += txnCleanCase(t, filepath.Join(root, strconv.Itoa(seed)), uint64(seed))
	}
	if removed == 0 {
		t.Fatalf("got no marker removed in %d cases, want some", seeds)
	}
}

func txnCleanCase(t *testing.T, dir string, seed uint64) (markersRemoved int64) {
	r := rand.New(rand.NewPCG(seed, 0xc1ea))
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := commitlog.DefaultConfig()
	cfg.SegmentBytes = 1 << 10
	cfg.MaxBatchBytes = 1 << 10
	cfg.IndexIntervalBytes = 128
	cfg.PreallocateBytes = 4 << 10
	cfg.Cleanup = commitlog.CleanupCompact
	cfg.MinCleanableDirtyRatio = 0
	cfg.DeleteRetention = time.Minute
	cfg.Now = func() time.Time { return clock }
	p, err := openPartition(bareBroker(), "t", 0, dir, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { p.log.Close() }()
	c, err := commitlog.NewCleaner(commitlog.DefaultCleanerConfig())
	if err != nil {
		t.Fatal(err)
	}

	newest := map[string]committedRec{} // the model: newest committed record per key
	committed := map[int64]string{}     // every committed record by offset
	type rec struct {
		off      int64
		key, val string
	}
	open := map[int64][]rec{}
	apply := func(rs []rec) {
		for _, x := range rs {
			committed[x.off] = x.key + "=" + x.val
			if n, ok := newest[x.key]; !ok || x.off > n.off {
				newest[x.key] = committedRec{x.off, x.val}
			}
		}
	}
	write := func(pid int64) {
		n := 1 + r.IntN(3)
		var kvs []string
		for range n {
			kvs = append(kvs, "k"+strconv.Itoa(r.IntN(6)), fmt.Sprintf("v%d", r.IntN(1000)))
		}
		raw := keyedAt(pid, clock.UnixMilli(), kvs...)
		appendNoted(t, p, raw)
		b, _ := commitlog.ParseHeader(raw)
		var rs []rec
		for i := 0; i < n; i++ {
			rs = append(rs, rec{b.BaseOffset + int64(i), kvs[2*i], kvs[2*i+1]})
		}
		if pid < 0 {
			apply(rs)
		} else {
			open[pid] = append(open[pid], rs...)
		}
	}
	end := func(pid int64, commit bool) {
		appendNoted(t, p, MarkerBatch(pid, 0, commit, 0, clock))
		if commit {
			apply(open[pid])
		}
		delete(open, pid)
	}
	check := func(when string) {
		t.Helper()
		last, seen := readCommitted(t, p)
		for k, want := range newest {
			if got := last[k]; got != want {
				t.Fatalf("seed %d, %s: key %s: got %+v, want %+v", seed, when, k, got, want)
			}
		}
		for off, kv := range seen {
			if committed[off] != kv {
				t.Fatalf("seed %d, %s: read %s at %d, which was not committed there (%q)", seed, when, kv, off, committed[off])
			}
		}
	}
	for round := range 12 {
		for range 10 + r.IntN(30) {
			pid := int64(1 + r.IntN(4))
			switch {
			case r.IntN(5) == 0:
				write(-1)
			case len(open[pid]) > 0 && r.IntN(3) == 0:
				end(pid, r.IntN(2) == 0)
			default:
				write(pid)
			}
		}
		// Sometimes a transaction stays open through the cleaning.
		for pid := range open {
			if r.IntN(4) != 0 {
				end(pid, r.IntN(2) == 0)
			}
		}
		if err := p.log.Roll(); err != nil {
			t.Fatal(err)
		}
		if err := p.log.Sync(); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Duration(r.IntN(90)) * time.Second)
		res, err := c.CleanTxn(context.Background(), p.log, clock, p.CleanerTxns())
		if err != nil {
			t.Fatal(err)
		}
		// Nothing changes the log during the cleaning: giving up would
		// mean that CleanerTxns missed an indexed aborted transaction.
		if n := c.Stats().GaveUp; n != 0 {
			t.Fatalf("seed %d, round %d: got %d cleanings given up, want none", seed, round, n)
		}
		markersRemoved += res.MarkersRemoved
		for pid := range open {
			end(pid, r.IntN(2) == 0)
		}
		check(fmt.Sprintf("round %d cleaned", round))
		if r.IntN(3) == 0 {
			if err := p.close(); err != nil {
				t.Fatal(err)
			}
			if r.IntN(2) == 0 {
				os.Remove(filepath.Join(dir, producerSnapshotFile))
			}
			if p, err = openPartition(bareBroker(), "t", 0, dir, cfg, zerolog.Nop()); err != nil {
				t.Fatal(err)
			}
			check(fmt.Sprintf("round %d reopened", round))
		}
	}
	return markersRemoved
}
