package commitlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// keyedBatch builds a batch of records key=keys[i], value=values[i] (a nil
// value is a tombstone) at timestamp ts, compressed with codec.
func keyedBatch(ts int64, codec int, keys []string, values [][]byte) []byte {
	recs := make([]kmsg.Record, len(keys))
	for i := range keys {
		recs[i] = kmsg.Record{Value: values[i], TimestampDelta64: int64(i)}
		if keys[i] != "" {
			recs[i].Key = []byte(keys[i])
		}
	}
	b := AppendBatch(nil, NoProducer(ts), recs)
	if codec == CompressionNone {
		return b
	}
	for i := range recs {
		recs[i].OffsetDelta = int32(i)
	}
	h, _ := ParseHeader(b)
	h.Attributes = int16(codec)
	var cb bytes.Buffer
	return rewriteBatch(nil, &cb, b, h, recs)
}

func compactConfig() Config {
	cfg := smallConfig()
	cfg.SegmentBytes = 4 << 10
	cfg.MaxBatchBytes = 2 << 10
	cfg.Cleanup = CleanupCompact
	cfg.MinCleanableDirtyRatio = 0
	cfg.DeleteRetention = time.Hour
	cfg.Now = func() time.Time { return epoch }
	return cfg
}

type kv struct {
	off        int64
	key, value string
	tombstone  bool
}

// readRecords reads every record from offset from to the high
// watermark, checking that offsets only grow.
func readRecords(t testing.TB, l *Log, from int64) []kv {
	t.Helper()
	out, err := readRecordsFrom(l, from)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var t0ctx = context.Background()

func readRecordsErr(l *Log) ([]kv, error) { return readRecordsFrom(l, 0) }

func readRecordsFrom(l *Log, from int64) ([]kv, error) {
	var out []kv
	last := int64(-1)
	for off := max(from, l.LogStartOffset()); off < l.HighWatermark(); {
		v, err := l.Read(off, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("read %d: %w", off, err)
		}
		if len(v.Data) == 0 {
			v.Release()
			return nil, fmt.Errorf("read %d: nothing below the high watermark %d", off, l.HighWatermark())
		}
		var ferr error
		err = Batches(v.Data, func(b Batch, raw []byte) bool {
			if _, err := ValidateStoredBatch(raw); err != nil {
				ferr = fmt.Errorf("batch %d: %w", b.BaseOffset, err)
				return false
			}
			if b.BaseOffset <= last {
				ferr = fmt.Errorf("batch at %d after offset %d", b.BaseOffset, last)
				return false
			}
			last = b.LastOffset()
			ferr = Records(b, raw, func(o, _ int64, r *kmsg.Record) bool {
				if o >= from {
					out = append(out, kv{off: o, key: string(r.Key), value: string(r.Value), tombstone: r.Value == nil})
				}
				return true
			})
			return ferr == nil
		})
		off = v.Next
		v.Release()
		if err == nil {
			err = ferr
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fillKeyed appends n batches of 3 records over keys k0..k(keys-1),
// values "v<offset>", and returns the newest offset and value per key.
func fillKeyed(t testing.TB, l *Log, r *rand.Rand, n, keys int, codec int) map[string]kv {
	t.Helper()
	newest := map[string]kv{}
	for i := 0; i < n; i++ {
		off := l.LogEndOffset()
		var ks []string
		var vs [][]byte
		for j := 0; j < 3; j++ {
			k := fmt.Sprintf("k%d", r.IntN(keys))
			ks = append(ks, k)
			vs = append(vs, []byte(fmt.Sprintf("v%d-%s", off+int64(j), "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")))
		}
		mustAppend(t, l, keyedBatch(1000+int64(i), codec, ks, vs))
		for j, k := range ks {
			newest[k] = kv{off: off + int64(j), key: k, value: string(vs[j])}
		}
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	return newest
}

func mustClean(t testing.TB, c *Cleaner, l *Log, now time.Time) CleanResult {
	t.Helper()
	res, err := c.Clean(context.Background(), l, now)
	if err != nil {
		t.Fatalf("Clean: %v", err)
	}
	return res
}

func checkNewest(t *testing.T, got []kv, want map[string]kv) {
	t.Helper()
	seen := map[string]bool{}
	for _, g := range got {
		if seen[g.key] {
			t.Fatalf("key %s twice after cleaning (offset %d)", g.key, g.off)
		}
		seen[g.key] = true
		w, ok := want[g.key]
		if !ok {
			t.Fatalf("got key %q, want none", g.key)
		}
		if g.off != w.off || g.value != w.value {
			t.Fatalf("key %s: got offset %d value %.8q, want offset %d value %.8q", g.key, g.off, g.value, w.off, w.value)
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("got %d keys, want %d", len(seen), len(want))
	}
}

func TestCleanKeepsNewestPerKey(t *testing.T) {
	for _, codec := range []int{CompressionNone, CompressionSnappy, CompressionZstd} {
		t.Run(fmt.Sprint(codec), func(t *testing.T) {
			dir := t.TempDir()
			cfg := compactConfig()
			l := mustOpen(t, dir, cfg)
			defer func() { l.Close() }()
			r := rand.New(rand.NewPCG(1, uint64(codec)))
			want := fillKeyed(t, l, r, 200, 20, codec)
			// The active segment keeps its duplicates: only sealed ones
			// are cleaned, so roll to make everything cleanable.
			if err := l.Roll(); err != nil {
				t.Fatal(err)
			}
			before := l.Size()
			segsBefore := len(l.Segments())
			// A reader holds a view of the first segment across the swap.
			v, err := l.Read(0, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			held := append([]byte(nil), v.Data...)

			c, err := NewCleaner(DefaultCleanerConfig())
			if err != nil {
				t.Fatal(err)
			}
			res := mustClean(t, c, l, epoch)
			if !res.Cleaned || res.RecordsRemoved == 0 {
				t.Fatalf("got %+v, want a cleaning that removed records", res)
			}
			if string(v.Data) != string(held) {
				t.Fatal("a view held across the swap changed")
			}
			v.Release()
			if after := l.Size(); after >= before {
				t.Fatalf("got %d bytes after cleaning, want fewer than %d", after, before)
			}
			checkNewest(t, readRecords(t, l, 0), want)
			if got := l.FirstDirtyOffset(); got != l.LogEndOffset() {
				t.Fatalf("got first dirty offset %d, want the log end %d", got, l.LogEndOffset())
			}

			// A second cleaning with nothing dirty does nothing.
			if res := mustClean(t, c, l, epoch); res.Cleaned {
				t.Fatalf("got %+v from a clean log, want nothing done", res)
			}

			// More writes, then clean again: the clean section loses the
			// keys rewritten in the new dirty section.
			for k, v := range fillKeyed(t, l, r, 60, 30, codec) {
				want[k] = v
			}
			if err := l.Roll(); err != nil {
				t.Fatal(err)
			}
			mustClean(t, c, l, epoch)
			checkNewest(t, readRecords(t, l, 0), want)
			// Small cleaned segments are merged by the next cleaning.
			if n := len(l.Segments()); n >= segsBefore {
				t.Fatalf("got %d segments after cleaning, want fewer than %d", n, segsBefore)
			}

			// Appends go on at the log end; reopening (with and without a
			// recovery point) gives the same records back.
			end := l.LogEndOffset()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			for _, dropRP := range []bool{false, true} {
				if dropRP {
					os.Remove(filepath.Join(dir, recoveryPointFile))
				}
				l = mustOpen(t, dir, cfg)
				if l.LogEndOffset() != end {
					t.Fatalf("reopened log ends at %d, want %d", l.LogEndOffset(), end)
				}
				checkNewest(t, readRecords(t, l, 0), want)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
			l = mustOpen(t, dir, cfg)
			if res := mustAppend(t, l, testBatch(1, 10, 1, "z")); res.FirstOffset != end {
				t.Fatalf("append after reopen got offset %d, want %d", res.FirstOffset, end)
			}
		})
	}
}

// TestCleanReadMidLog: a consumer positioned anywhere, in a gap or not,
// reads on from the next kept record, across cleaned segments.
func TestCleanReadMidLog(t *testing.T) {
	cfg := compactConfig()
	l := mustOpen(t, t.TempDir(), cfg)
	defer l.Close()
	r := rand.New(rand.NewPCG(2, 2))
	want := fillKeyed(t, l, r, 150, 10, CompressionNone)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	c, _ := NewCleaner(DefaultCleanerConfig())
	mustClean(t, c, l, epoch)
	all := readRecords(t, l, 0)
	checkNewest(t, all, want)
	for from := int64(0); from < l.LogEndOffset(); from += 7 {
		got := readRecords(t, l, from)
		var exp []kv
		for _, k := range all {
			if k.off >= from {
				exp = append(exp, k)
			}
		}
		if len(got) != len(exp) {
			t.Fatalf("from %d: got %d records, want %d", from, len(got), len(exp))
		}
		for i := range got {
			if got[i] != exp[i] {
				t.Fatalf("from %d: record %d: got %+v, want %+v", from, i, got[i], exp[i])
			}
		}
	}
}

// TestCleanTombstones: a tombstone hides its key's older values at once
// and is itself dropped once its segment is older than DeleteRetention.
// Records without a key are dropped too.
func TestCleanTombstones(t *testing.T) {
	cfg := compactConfig()
	cfg.DeleteRetention = time.Minute
	l := mustOpen(t, t.TempDir(), cfg)
	defer l.Close()
	ts := epoch.UnixMilli()
	for i := 0; i < 40; i++ {
		mustAppend(t, l, keyedBatch(ts, CompressionNone, []string{"a", "b", ""}, [][]byte{[]byte(fmt.Sprint("a", i)), []byte(fmt.Sprint("b", i)), []byte("nokey")}))
	}
	mustAppend(t, l, keyedBatch(ts, CompressionNone, []string{"a"}, [][]byte{nil}))
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	c, _ := NewCleaner(DefaultCleanerConfig())
	mustClean(t, c, l, epoch.Add(time.Second))
	got := readRecords(t, l, 0)
	if len(got) != 2 || got[0].key != "b" || got[0].value != "b39" || got[1].key != "a" || !got[1].tombstone {
		t.Fatalf("got %+v, want b=b39 then the tombstone of a", got)
	}
	// New dirty data so the cleaner runs again, past delete.retention.ms.
	mustAppend(t, l, keyedBatch(ts, CompressionNone, []string{"c"}, [][]byte{[]byte("c0")}))
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	mustClean(t, c, l, epoch.Add(2*time.Minute))
	got = readRecords(t, l, 0)
	if len(got) != 2 || got[0].key != "b" || got[1].key != "c" {
		t.Fatalf("got %+v, want b and c, the tombstone gone", got)
	}
}

// TestCleanKeepsProducerState: the last batch of an idempotent producer
// stays, empty, when all its records are cleaned away; earlier ones go.
func TestCleanKeepsProducerState(t *testing.T) {
	cfg := compactConfig()
	l := mustOpen(t, t.TempDir(), cfg)
	defer l.Close()
	for i := 0; i < 4; i++ {
		h := NoProducer(1)
		h.ProducerID, h.ProducerEpoch, h.BaseSequence = 7, 0, int32(2*i)
		mustAppend(t, l, AppendBatch(nil, h, []kmsg.Record{{Key: []byte("p"), Value: []byte("x")}, {Key: []byte("p"), Value: []byte("y")}}))
	}
	mustAppend(t, l, keyedBatch(1, CompressionNone, []string{"p"}, [][]byte{[]byte("last")}))
	l.Sync()
	l.Roll()
	c, _ := NewCleaner(DefaultCleanerConfig())
	mustClean(t, c, l, epoch)
	var got []Batch
	v, err := l.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	Batches(v.Data, func(b Batch, _ []byte) bool { got = append(got, b); return true })
	v.Release()
	if len(got) != 2 {
		t.Fatalf("got %d batches, want 2 (the producer's last, empty, and the newest record)", len(got))
	}
	if b := got[0]; b.ProducerID != 7 || b.BaseSequence != 6 || b.NumRecords != 0 || b.BaseOffset != 6 || b.LastOffsetDelta != 1 {
		t.Fatalf("got producer batch %+v, want producer 7 sequence 6 at offset 6, empty, lastOffsetDelta 1", b)
	}
	if got[1].BaseOffset != 8 {
		t.Fatalf("got newest batch at %d, want 8", got[1].BaseOffset)
	}
}

// TestCleanLag: segments newer than min.compaction.lag.ms are not
// cleaned; a dirty ratio under min.cleanable.dirty.ratio waits, unless
// max.compaction.lag.ms has passed.
func TestCleanLag(t *testing.T) {
	cfg := compactConfig()
	cfg.MinCompactionLag = time.Hour
	l := mustOpen(t, t.TempDir(), cfg)
	defer l.Close()
	r := rand.New(rand.NewPCG(3, 3))
	ts := epoch.UnixMilli()
	for i := 0; i < 100; i++ {
		mustAppend(t, l, keyedBatch(ts, CompressionNone, []string{fmt.Sprint(r.IntN(5))}, [][]byte{make([]byte, 100)}))
	}
	l.Sync()
	l.Roll()
	c, _ := NewCleaner(DefaultCleanerConfig())
	if res := mustClean(t, c, l, epoch.Add(time.Minute)); res.Cleaned {
		t.Fatal("cleaned records newer than min.compaction.lag.ms")
	}
	cfg.MinCompactionLag = 0
	cfg.MinCleanableDirtyRatio = 1
	cfg.MaxCompactionLag = 2 * time.Hour
	if err := l.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	// Dirty ratio 1 is reached: the log is all dirty.
	if res := mustClean(t, c, l, epoch.Add(time.Minute)); !res.Cleaned {
		t.Fatalf("got %+v, want a cleaning at dirty ratio 1", res)
	}
	for i := 0; i < 100; i++ {
		mustAppend(t, l, keyedBatch(ts, CompressionNone, []string{fmt.Sprint(r.IntN(5))}, [][]byte{make([]byte, 100)}))
	}
	l.Sync()
	l.Roll()
	if res := mustClean(t, c, l, epoch.Add(time.Minute)); res.Cleaned {
		t.Fatalf("got %+v, want no cleaning under the dirty ratio before max.compaction.lag.ms", res)
	}
	if res := mustClean(t, c, l, epoch.Add(3*time.Hour)); !res.Cleaned {
		t.Fatalf("got %+v, want a cleaning past max.compaction.lag.ms", res)
	}
}

// TestCleanThrottle: with an I/O limit, the cleaner reads no faster than
// it allows. The bound is one-sided (sleeping only ever makes it slower),
// so the check cannot fail on a slow machine.
func TestCleanThrottle(t *testing.T) {
	cfg := compactConfig()
	l := mustOpen(t, t.TempDir(), cfg)
	defer l.Close()
	r := rand.New(rand.NewPCG(4, 4))
	fillKeyed(t, l, r, 100, 10, CompressionNone)
	l.Roll()
	ccfg := DefaultCleanerConfig()
	ccfg.IOBytesPerSecond = 64 << 10
	c, _ := NewCleaner(ccfg)
	start := time.Now()
	mustClean(t, c, l, epoch)
	io := c.Stats().BytesRead + c.Stats().BytesWritten
	if min := time.Duration(float64(io-2*ccfg.IOBytesPerSecond) / float64(ccfg.IOBytesPerSecond) * float64(time.Second)); time.Since(start) < min {
		t.Fatalf("got %v for %d bytes, want at least %v at %d bytes/s", time.Since(start), io, min, ccfg.IOBytesPerSecond)
	}
}

func TestSwapManifestRoundTrip(t *testing.T) {
	p := swapPlan{next: 500, cleanedTo: 900, old: []int64{10, 100, 300}}
	got, err := decodeSwap(encodeSwap(p))
	if err != nil {
		t.Fatal(err)
	}
	if got.next != p.next || got.cleanedTo != p.cleanedTo || fmt.Sprint(got.old) != fmt.Sprint(p.old) {
		t.Fatalf("got %+v, want %+v", got, p)
	}
	b := encodeSwap(p)
	b[7] ^= 1
	if _, err := decodeSwap(b); err == nil {
		t.Fatal("got a flipped manifest decoded, want an error")
	}
}

// TestCleanConcurrent: appends, readers and retention go on while the
// cleaner runs; every read sees only appended records at their offsets,
// in order. Run it with -race.
func TestCleanConcurrent(t *testing.T) {
	cfg := compactConfig()
	cfg.Cleanup = CleanupCompact | CleanupDelete
	cfg.RetentionBytes = 48 << 10
	l := mustOpen(t, t.TempDir(), cfg)
	defer l.Close()
	c, _ := NewCleaner(DefaultCleanerConfig())
	stop := make(chan struct{})
	errs := make(chan error, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			recs, err := readRecordsFrom(l, 0)
			if err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
				errs <- err
				return
			}
			for _, r := range recs {
				if !strings.HasPrefix(r.value, fmt.Sprintf("%s@%d", r.key, r.off)) {
					errs <- fmt.Errorf("offset %d holds %s=%.20q", r.off, r.key, r.value)
					return
				}
			}
		}
	}()
	r := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 400; i++ {
		off := l.LogEndOffset()
		k := fmt.Sprint("k", r.IntN(30))
		mustAppend(t, l, keyedBatch(epoch.UnixMilli(), CompressionNone, []string{k}, [][]byte{[]byte(fmt.Sprintf("%s@%d%s", k, off, strings.Repeat("-", 80)))}))
		if i%25 == 0 {
			if _, err := c.Clean(context.Background(), l, epoch); err != nil {
				t.Fatal(err)
			}
			if err := l.Maintain(epoch); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	<-done
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// TestAppendReplicatedFromCleanedLog: a replica copies a cleaned log
// fetch by fetch with AppendReplicated, gaps and cleaned batches included,
// and reads back the same records, also after a reopen that scans
// everything (no recovery point). AppendReplicated refuses to go back.
func TestAppendReplicatedFromCleanedLog(t *testing.T) {
	cfg := compactConfig()
	leader := mustOpen(t, t.TempDir(), cfg)
	defer leader.Close()
	r := rand.New(rand.NewPCG(5, 5))
	fillKeyed(t, leader, r, 150, 12, CompressionSnappy)
	leader.Roll()
	c, _ := NewCleaner(DefaultCleanerConfig())
	mustClean(t, c, leader, epoch)
	fillKeyed(t, leader, r, 10, 12, CompressionNone) // an uncleaned tail
	want := readRecords(t, leader, 0)

	dir := t.TempDir()
	rcfg := smallConfig() // the replica's own policy does not matter
	replica := mustOpen(t, dir, rcfg)
	for off := int64(0); off < leader.HighWatermark(); {
		v, err := leader.Read(off, 700)
		if err != nil {
			t.Fatal(err)
		}
		var bs []Batch
		if err := Batches(v.Data, func(b Batch, raw []byte) bool {
			sb, err := ValidateStoredBatch(raw)
			if err != nil {
				t.Fatalf("leader batch %d: %v", b.BaseOffset, err)
			}
			bs = append(bs, sb)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		buf := append([]byte(nil), v.Data...)
		off = v.Next
		v.Release()
		if _, err := replica.AppendReplicated(buf, bs); err != nil {
			t.Fatalf("AppendReplicated at %d: %v", bs[0].BaseOffset, err)
		}
		replica.SetHighWatermark(replica.LogEndOffset())
		if _, err := replica.AppendReplicated(buf, bs); err == nil {
			t.Fatal("got the same batches appended twice, want an error")
		}
	}
	if replica.LogEndOffset() != leader.LogEndOffset() {
		t.Fatalf("got replica log end %d, want %d", replica.LogEndOffset(), leader.LogEndOffset())
	}
	check := func(l *Log) {
		got := readRecords(t, l, 0)
		if len(got) != len(want) {
			t.Fatalf("got %d records, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("record %d: got %+v, want %+v", i, got[i], want[i])
			}
		}
	}
	check(replica)
	if err := replica.Close(); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, recoveryPointFile))
	replica = mustOpen(t, dir, rcfg)
	defer replica.Close()
	check(replica)
}

// TestTruncateIntoGap: truncating a cleaned log at an offset compaction
// removed ends the log at that offset, and the first dirty offset comes
// down with it so that new records there are cleaned again.
func TestTruncateIntoGap(t *testing.T) {
	cfg := compactConfig()
	l := mustOpen(t, t.TempDir(), cfg)
	defer l.Close()
	for i := 0; i < 60; i++ {
		mustAppend(t, l, keyedBatch(1, CompressionNone, []string{"same"}, [][]byte{make([]byte, 100)}))
	}
	mustAppend(t, l, keyedBatch(1, CompressionNone, []string{"other"}, [][]byte{[]byte("x")}))
	l.Roll()
	c, _ := NewCleaner(DefaultCleanerConfig())
	mustClean(t, c, l, epoch)
	// Offset 30 held an older value of "same": it is a gap now.
	end, err := l.TruncateTo(30)
	if err != nil {
		t.Fatal(err)
	}
	if end != 30 || l.LogEndOffset() != 30 {
		t.Fatalf("got log end %d (%d), want 30", end, l.LogEndOffset())
	}
	if got := l.FirstDirtyOffset(); got > 30 {
		t.Fatalf("got first dirty offset %d, want at most 30", got)
	}
	if res := mustAppend(t, l, keyedBatch(1, CompressionNone, []string{"n"}, [][]byte{[]byte("y")})); res.FirstOffset != 30 {
		t.Fatalf("got offset %d after the truncation, want 30", res.FirstOffset)
	}
}
