package broker

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
	"github.com/fluxo-io/fluxo/core/commitlog/crashtest"
)

// txnBatch is a transactional data batch of producer pid.
func txnBatch(pid int64, seq int32, n int) []byte {
	recs := make([]kmsg.Record, n)
	for i := range recs {
		recs[i] = kmsg.Record{Key: []byte(strconv.Itoa(i)), Value: []byte("value")}
	}
	return commitlog.AppendBatch(nil, commitlog.BatchHeader{ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq, LeaderEpoch: -1, Attributes: 0x10}, recs)
}

// bareBroker is what a partition opened on its own needs of its broker.
func bareBroker() *Broker { return &Broker{log: zerolog.Nop()} }

func txnLogConfig(r *rand.Rand) commitlog.Config {
	cfg := commitlog.DefaultConfig()
	cfg.SegmentBytes = int64(2<<10 + r.IntN(6<<10))
	cfg.MaxBatchBytes = 1 << 10
	cfg.IndexIntervalBytes = 256
	cfg.PreallocateBytes = 4 << 10
	return cfg
}

// appendNoted appends one batch to p's log and tracks it, as a follower
// does with what it copies.
func appendNoted(t testing.TB, p *Partition, raw []byte) {
	t.Helper()
	if _, err := p.log.Append(raw); err != nil { // sets raw's base offset
		t.Fatal(err)
	}
	b, err := commitlog.ValidateBatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.note(b, raw)
	p.mu.Unlock()
	p.log.SetHighWatermark(p.log.LogEndOffset())
}

// txnWorkload appends n random batches of four producers to p: plain
// idempotent ones, transactional ones, commits and aborts; at random it
// syncs the log and writes the producer snapshot. It returns the number
// of batches appended after the last snapshot.
func txnWorkload(t testing.TB, r *rand.Rand, p *Partition, n int) (sinceSnapshot int) {
	t.Helper()
	inTxn := map[int64]bool{}
	seq := map[int64]int32{}
	for range n {
		pid := int64(1 + r.IntN(4))
		switch {
		case inTxn[pid] && r.IntN(3) == 0:
			appendNoted(t, p, MarkerBatch(pid, 0, r.IntN(2) == 0, 0, time.Now()))
			inTxn[pid] = false
		case inTxn[pid] || r.IntN(3) != 0:
			k := 1 + r.IntN(3)
			appendNoted(t, p, txnBatch(pid, seq[pid], k))
			seq[pid] += int32(k)
			inTxn[pid] = true
		default:
			appendNoted(t, p, idemBatch(pid+100, 0, seq[pid+100], 2))
			seq[pid+100] += 2
		}
		sinceSnapshot++
		switch r.IntN(12) {
		case 0:
			if err := p.log.Sync(); err != nil {
				t.Fatal(err)
			}
		case 1:
			p.mu.Lock()
			err := p.snapshotProducersLocked()
			p.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			sinceSnapshot = 0
		}
	}
	return sinceSnapshot
}

// copyDir copies the files of a partition's directory as they are: what a
// killed process leaves on disk (the kernel has every write).
func copyDir(t testing.TB, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	es, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func partitionState(p *Partition) (aborted []AbortedTxn, ongoing map[int64]int64, lso int64) {
	p.mu.Lock()
	ongoing = maps.Clone(p.txns.ongoing)
	p.mu.Unlock()
	if len(ongoing) == 0 {
		ongoing = nil
	}
	return p.AbortedTxns(0, math.MaxInt64), ongoing, p.LastStableOffset()
}

// TestTxnIndexCrashRecovery is the property test of the transaction
// index and the producer snapshot with transactions: a random workload
// of transactions on a partition, snapshots and syncs at random, then a
// crash at a random point (the files as they are) and what a power cut
// may do to what was not synced: the log's tail (crashtest.PowerCut),
// the transaction indexes past the entries synced before the snapshot,
// the snapshot itself. After reopening, the aborted transactions are
// those before the crash whose marker survived, and the aborted list,
// the ongoing transactions and the last stable offset are what a replay
// of the whole recovered log (no snapshot, no index) finds.
func TestTxnIndexCrashRecovery(t *testing.T) {
	cases := 150
	if n, err := strconv.Atoi(os.Getenv("FLUXO_CRASH_CASES")); err == nil && n > 0 {
		cases = n
	}
	root := crashDirFor(t)
	for seed := range cases {
		dir := filepath.Join(root, strconv.Itoa(seed))
		if err := txnCrashCase(t, dir, uint64(seed)); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		os.RemoveAll(dir)
	}
}

func crashDirFor(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "fluxo-txncrash-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

func txnCrashCase(t *testing.T, dir string, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 0x7e4))
	cfg := txnLogConfig(r)
	live, crashed, ref := filepath.Join(dir, "live"), filepath.Join(dir, "crashed"), filepath.Join(dir, "ref")
	p, err := openPartition(bareBroker(), "t", 0, live, cfg, zerolog.Nop())
	if err != nil {
		return err
	}
	txnWorkload(t, r, p, 20+r.IntN(150))
	before, _, _ := partitionState(p)
	snapOff := int64(-1)
	if off, _, _, ok := readProducerSnapshot(live); ok {
		snapOff = off
	}
	durable := p.log.DurableOffset()
	copyDir(t, live, crashed)
	if err := p.log.Close(); err != nil {
		return err
	}

	// The power cut: the log's unsynced tail, the index entries not
	// synced before the snapshot, the snapshot (never fsynced).
	if _, err := crashtest.PowerCut(r, crashed, durable); err != nil {
		return err
	}
	synced := 0
	for _, a := range before {
		if a.LastOffset < snapOff {
			synced++
		}
	}
	idx, _ := filepath.Glob(filepath.Join(crashed, "*.txnindex"))
	slices.Sort(idx)
	for _, path := range idx {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		n := int(fi.Size() / 34)
		keep := min(n, synced)
		synced -= keep
		if r.IntN(3) == 0 && fi.Size() > int64(keep)*34 {
			os.Truncate(path, int64(keep)*34+r.Int64N(fi.Size()-int64(keep)*34))
		}
	}
	if r.IntN(8) == 0 {
		os.Remove(filepath.Join(crashed, producerSnapshotFile))
	}

	p, err = openPartition(bareBroker(), "t", 0, crashed, cfg, zerolog.Nop())
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	end := p.log.LogEndOffset()
	got, gotOngoing, gotLSO := partitionState(p)
	// A read of a range walks the indexes from the segment of its start
	// and stops early: it finds what a filter of the whole list finds.
	for range 20 {
		from := r.Int64N(end + 1)
		to := from + r.Int64N(end-from+1)
		var all []AbortedTxn
		for _, a := range got {
			if a.LastOffset >= from && a.FirstOffset < to {
				all = append(all, a)
			}
		}
		if part := p.AbortedTxns(from, to); !reflect.DeepEqual(part, all) {
			p.log.Close()
			return fmt.Errorf("range [%d, %d): got %v, want %v", from, to, part, all)
		}
	}
	if err := p.log.Close(); err != nil {
		return err
	}
	var want []AbortedTxn
	for _, a := range before {
		if a.LastOffset < end {
			want = append(want, a)
		}
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("log end %d: got aborted %v, want %v", end, got, want)
	}

	// The reference: the recovered log replayed whole.
	copyDir(t, crashed, ref)
	os.Remove(filepath.Join(ref, producerSnapshotFile))
	idx, _ = filepath.Glob(filepath.Join(ref, "*.txnindex"))
	for _, path := range idx {
		os.Remove(path)
	}
	p, err = openPartition(bareBroker(), "t", 0, ref, cfg, zerolog.Nop())
	if err != nil {
		return fmt.Errorf("reference: %w", err)
	}
	refAborted, refOngoing, refLSO := partitionState(p)
	if err := p.log.Close(); err != nil {
		return err
	}
	if !reflect.DeepEqual(got, refAborted) || !reflect.DeepEqual(gotOngoing, refOngoing) || gotLSO != refLSO {
		return fmt.Errorf("got aborted %v, ongoing %v, LSO %d; want %v, %v, %d (whole replay)", got, gotOngoing, gotLSO, refAborted, refOngoing, refLSO)
	}
	return nil
}

// A partition with transactions restarts from its producer snapshot: it
// replays only the batches after it, and finds the same aborted
// transactions, ongoing ones and last stable offset as before.
func TestTxnRestartReplaysOnlyTail(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	dir := t.TempDir()
	cfg := txnLogConfig(r)
	p, err := openPartition(bareBroker(), "t", 0, dir, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	txnWorkload(t, r, p, 400)
	aborted, ongoing, lso := partitionState(p)
	if len(aborted) == 0 || len(ongoing) == 0 {
		t.Fatalf("got %d aborted and %d ongoing transactions, want some of each", len(aborted), len(ongoing))
	}
	if err := p.close(); err != nil { // writes the snapshot at the log end
		t.Fatal(err)
	}

	p, err = openPartition(bareBroker(), "t", 0, dir, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if p.replayed != 0 {
		t.Fatalf("got %d batches replayed after a clean stop, want 0", p.replayed)
	}
	a2, o2, l2 := partitionState(p)
	if !reflect.DeepEqual(a2, aborted) || !reflect.DeepEqual(o2, ongoing) || l2 != lso {
		t.Fatalf("got aborted %v, ongoing %v, LSO %d; want %v, %v, %d", a2, o2, l2, aborted, ongoing, lso)
	}

	// More transactions, a snapshot, then k more batches and a crash:
	// the restart replays those k.
	txnWorkload(t, r, p, 100)
	p.mu.Lock()
	if err := p.snapshotProducersLocked(); err != nil {
		t.Fatal(err)
	}
	p.mu.Unlock()
	k := 37
	for i := range k {
		appendNoted(t, p, txnBatch(9, int32(i), 1))
	}
	appendNoted(t, p, MarkerBatch(9, 0, false, 0, time.Now()))
	aborted, ongoing, lso = partitionState(p)
	crashed := filepath.Join(t.TempDir(), "crashed")
	copyDir(t, dir, crashed)
	if err := p.log.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = openPartition(bareBroker(), "t", 0, crashed, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.log.Close()
	if p.replayed != int64(k+1) {
		t.Fatalf("got %d batches replayed, want %d (those after the snapshot)", p.replayed, k+1)
	}
	a2, o2, l2 = partitionState(p)
	if !reflect.DeepEqual(a2, aborted) || !reflect.DeepEqual(o2, ongoing) || l2 != lso {
		t.Fatalf("got aborted %v, ongoing %v, LSO %d; want %v, %v, %d", a2, o2, l2, aborted, ongoing, lso)
	}
	if a := a2[len(a2)-1]; a.ProducerID != 9 {
		t.Fatalf("got last aborted %+v, want producer 9's", a)
	}
	// The index files are per segment, named as the segments.
	idx, _ := filepath.Glob(filepath.Join(crashed, "*.txnindex"))
	if len(idx) == 0 {
		t.Fatalf("got no .txnindex file, want one per segment with an abort")
	}
	for _, path := range idx {
		if _, err := os.Stat(strings.TrimSuffix(path, ".txnindex") + ".log"); err != nil {
			t.Fatalf("got %s without its segment: %v", path, err)
		}
	}
}

// BenchmarkTxnPartitionOpen measures opening a partition whose log holds
// transactions (a third of them aborted) after a clean stop: from its
// producer snapshot (replaying nothing), and, as the baseline in the same
// run, with the snapshot removed (replaying the whole log, which is what
// opening such a partition did before its transactions were saved with
// the snapshot). The ratio of the two is the restart gain.
func BenchmarkTxnPartitionOpen(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		dir := b.TempDir()
		cfg := commitlog.DefaultConfig()
		cfg.SegmentBytes = 8 << 20
		cfg.MaxBatchBytes = 1 << 20
		p, err := openPartition(bareBroker(), "t", 0, dir, cfg, zerolog.Nop())
		if err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, uint64(n)))
		for i := range n {
			pid := int64(1 + r.IntN(8))
			if i%10 == 9 {
				appendNoted(b, p, MarkerBatch(pid, 0, r.IntN(3) != 0, 0, time.Now()))
			} else {
				appendNoted(b, p, txnBatch(pid, int32(i), 4))
			}
		}
		if err := p.close(); err != nil {
			b.Fatal(err)
		}
		snap, err := os.ReadFile(filepath.Join(dir, producerSnapshotFile))
		if err != nil {
			b.Fatal(err)
		}
		open := func(b *testing.B, withSnapshot bool) {
			for range b.N {
				b.StopTimer()
				os.Remove(filepath.Join(dir, producerSnapshotFile))
				if withSnapshot {
					os.WriteFile(filepath.Join(dir, producerSnapshotFile), snap, 0o644)
				}
				b.StartTimer()
				p, err := openPartition(bareBroker(), "t", 0, dir, cfg, zerolog.Nop())
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if withSnapshot != (p.replayed == 0) {
					b.Fatalf("replayed %d batches with snapshot %v", p.replayed, withSnapshot)
				}
				p.log.Discard()
				b.StartTimer()
			}
		}
		b.Run(fmt.Sprintf("batches=%d/snapshot", n), func(b *testing.B) { open(b, true) })
		b.Run(fmt.Sprintf("batches=%d/replay", n), func(b *testing.B) { open(b, false) })
	}
}
