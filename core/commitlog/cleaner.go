package commitlog

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Compaction keeps the newest record of each key, as Kafka's log cleaner
// does. A compacted log (Config.Cleanup with CleanupCompact) has a clean
// section, [log start, first dirty offset), already cleaned, and a dirty
// section after it. A cleaning:
//
//  1. picks the cleanable range: the sealed segments (never the active
//     one) below the high watermark and the durable offset, whose newest
//     record is older than MinCompactionLag;
//  2. maps each key of the dirty part of that range to the offset of its
//     newest record (offsetMap, a fixed amount of memory; if it fills up,
//     the range ends at the last segment that fitted);
//  3. rewrites every segment of the range, clean and dirty, grouped into
//     segments of at most Config.SegmentBytes, keeping a record only if no
//     newer record of its key is in the map. Offsets never change: a
//     batch that loses records keeps its base offset, lastOffsetDelta,
//     timestamps and producer fields, and is re-encoded (and recompressed
//     with its codec) with the records left; offsets are left as gaps. A
//     batch that loses every record is dropped, except the last batch of
//     an idempotent producer, kept with no records so the producer's
//     sequence state survives a reload (as Kafka does). Control batches
//     (attributes bit 5) are kept as they are. Records without a key are
//     dropped. A tombstone (key, no value) is dropped once the newest
//     record of its segment is older than DeleteRetention;
//  4. swaps each cleaned group in (swap.go) and raises the first dirty
//     offset (cleaner-offset-checkpoint) to the end of the range.
//
// Readers keep the views they hold: a swapped-out segment's mappings are
// released when the last view goes.
//
// Transactions (CleanTxn, as Kafka's LogCleaner): the cleanable range also
// ends at the log's first unstable offset (Transactions.StableOffset), so
// the records of a transaction still open are never removed nor mapped.
// The batches of aborted transactions (Transactions.Aborted) are left out
// of the offset map, so that they never become a key's newest value nor
// shadow a committed one, and are dropped from the rewrite. Records of
// committed transactions follow the newest-per-key rule. Transaction
// markers (control batches) go as Kafka drops them (cleanmarkers.go): a
// marker stays while any batch of its transaction is left, and an abort
// marker's entry in the aborted-transaction index leaves in the same
// swap as the marker, once its segment is older than DeleteRetention, so
// a read_committed fetch is never told of an abort whose marker is gone.
// A producer's last batch always stays.

// errSegmentGone is returned by acquire for a segment the cleaner
// replaced; the caller looks the offset up again.
var errSegmentGone = errors.New("commitlog: segment replaced by the cleaner")

// errCleaningRace aborts a cleaning whose segments changed meanwhile
// (retention, truncation, an entry added to their transaction index);
// the next cleaning starts over.
var errCleaningRace = errors.New("commitlog: segments changed during cleaning")

// gapAllowed reports whether batch b may follow offset want with a gap:
// only in a range the cleaner wrote.
func (s *segment) gapAllowed(want int64, b Batch) bool {
	return b.BaseOffset > want && b.NextOffset() <= s.gapsBelow
}

// validateStored is ValidateBatch, but a batch the cleaner wrote (below
// gapsBelow) may hold fewer records than its offset span.
func (s *segment) validateStored(buf []byte) (Batch, error) {
	b, err := ValidateBatch(buf)
	if err == nil || b.NextOffset() > s.gapsBelow {
		return b, err
	}
	return ValidateStoredBatch(buf)
}

// ValidateStoredBatch is ValidateBatch for batches read from a log, which
// may have been compacted: a cleaned batch keeps its offset span
// (lastOffsetDelta) but may hold fewer records, none at all for the kept
// last batch of a producer. Replicas check what they fetch with it.
func ValidateStoredBatch(buf []byte) (Batch, error) {
	b, err := ParseHeader(buf)
	if err != nil {
		return b, err
	}
	if got := crc32.Checksum(buf[crcStart:b.Size], castagnoli); got != b.CRC {
		return b, fmt.Errorf("%w: crc %08x, computed %08x", ErrInvalidBatch, b.CRC, got)
	}
	if b.LastOffsetDelta < 0 || b.NumRecords < 0 || int64(b.NumRecords) > int64(b.LastOffsetDelta)+1 {
		return b, fmt.Errorf("%w: %d records but lastOffsetDelta %d", ErrInvalidBatch, b.NumRecords, b.LastOffsetDelta)
	}
	if b.Compression() > CompressionZstd {
		return b, fmt.Errorf("%w: unknown compression codec %d", ErrInvalidBatch, b.Compression())
	}
	return b, nil
}

// CleanerConfig tunes a Cleaner. Start from DefaultCleanerConfig.
type CleanerConfig struct {
	// IOBytesPerSecond caps the bytes the cleaner reads and writes per
	// second, over all logs (Kafka's log.cleaner.io.max.bytes.per.second);
	// 0 = no limit.
	IOBytesPerSecond int64
	// DedupeBufferBytes is the memory of the offset map (Kafka's
	// log.cleaner.dedupe.buffer.size): 24 bytes per distinct key of a
	// dirty section.
	DedupeBufferBytes int
	// Logger receives cleaning events. Zero value: no logs.
	Logger zerolog.Logger
}

// DefaultCleanerConfig returns no I/O limit and a 16 MiB offset map
// (about 600,000 keys per cleaning).
func DefaultCleanerConfig() CleanerConfig {
	return CleanerConfig{DedupeBufferBytes: 16 << 20, Logger: zerolog.Nop()}
}

// Validate reports the first setting that cannot work.
func (c *CleanerConfig) Validate() error {
	switch {
	case c.IOBytesPerSecond < 0:
		return fmt.Errorf("commitlog: cleaner: IOBytesPerSecond %d is negative", c.IOBytesPerSecond)
	case c.DedupeBufferBytes < 1<<10:
		return fmt.Errorf("commitlog: cleaner: DedupeBufferBytes %d below 1024", c.DedupeBufferBytes)
	}
	return nil
}

// Cleaner compacts logs: one cleaning at a time, over any number of logs,
// sharing one offset map and one I/O budget. Its methods are safe for
// concurrent use; cleanings are serialized.
type Cleaner struct {
	cfg CleanerConfig
	log zerolog.Logger

	mu       sync.Mutex // serializes cleanings; guards m and throttle
	m        *offsetMap
	throttle throttle

	runs, bytesRead, bytesWritten, errs, gaveUp atomic.Int64
	lastRun, lastDuration                       atomic.Int64 // unix nanoseconds; nanoseconds
}

// NewCleaner returns a cleaner; the offset map is allocated on the first
// cleaning.
func NewCleaner(cfg CleanerConfig) (*Cleaner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Cleaner{cfg: cfg, log: cfg.Logger, throttle: throttle{rate: cfg.IOBytesPerSecond}}, nil
}

// CleanerStats are a cleaner's counters since it was made.
type CleanerStats struct {
	Runs         int64         // cleanings that rewrote segments
	BytesRead    int64         // bytes of segments read
	BytesWritten int64         // bytes of cleaned segments written
	Errors       int64         // cleanings that failed
	GaveUp       int64         // cleanings given up: the log changed under them (retention, truncation, an index entry added)
	LastRun      time.Time     // end of the last cleaning; zero if none
	LastDuration time.Duration // how long it took
}

// Stats returns the cleaner's counters.
func (c *Cleaner) Stats() CleanerStats {
	st := CleanerStats{
		Runs: c.runs.Load(), BytesRead: c.bytesRead.Load(), BytesWritten: c.bytesWritten.Load(),
		Errors: c.errs.Load(), GaveUp: c.gaveUp.Load(), LastDuration: time.Duration(c.lastDuration.Load()),
	}
	if t := c.lastRun.Load(); t != 0 {
		st.LastRun = time.Unix(0, t)
	}
	return st
}

// CleanResult says what one Clean did.
type CleanResult struct {
	Cleaned         bool  // segments were rewritten
	SegmentsBefore  int   // segments of the cleaned range before
	SegmentsAfter   int   // and after
	BytesBefore     int64 // bytes of the cleaned range before
	BytesAfter      int64 // and after
	RecordsRemoved  int64 // records dropped (older values, tombstones, keyless, aborted)
	MarkersRemoved  int64 // transaction markers dropped
	FirstDirty      int64 // the first dirty offset after the cleaning
	DirtyRatioSeen  float64
	TombstonesAlive int64 // tombstones kept (within DeleteRetention)
}

// DirtyRatio is the share of the sealed segments' bytes that the cleaner
// has not cleaned yet (0 for an empty log).
func (l *Log) DirtyRatio() float64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return dirtyRatio(l.segs[:len(l.segs)-1], l.cleanedTo.Load())
}

func dirtyRatio(segs []*segment, firstDirty int64) float64 {
	var total, dirty int64
	for _, s := range segs {
		n := s.size.Load()
		total += n
		if s.base >= firstDirty {
			dirty += n
		}
	}
	if total == 0 {
		return 0
	}
	return float64(dirty) / float64(total)
}

// FirstDirtyOffset is the cleaner checkpoint: offsets below it have been
// compacted.
func (l *Log) FirstDirtyOffset() int64 { return l.cleanedTo.Load() }

// Transactions is what a cleaning must know of a log's transactions,
// taken together at one instant (the partition computes them: the
// stable offset from its ongoing transactions, the aborted ones from the
// log's transaction indexes).
type Transactions struct {
	// StableOffset is the log's first unstable offset (the last stable
	// offset, LSO): the first offset of its oldest transaction not yet
	// decided, or the high watermark. The cleaner cleans below it only.
	StableOffset int64
	// Aborted are the log's aborted transactions, in any order; at least
	// every one whose data is below StableOffset. A cleaning that finds
	// in its segments' transaction indexes one not listed here (indexed
	// since) gives up; the next one is given it.
	Aborted []AbortedRange
}

// AbortedRange is an aborted transaction of one producer: its data
// batches are at offsets [FirstOffset, LastOffset), LastOffset being the
// offset of its abort marker.
type AbortedRange struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
}

// abortedIndex answers whether a transactional batch was aborted.
type abortedIndex map[int64][]AbortedRange // producer id → ranges by FirstOffset

func newAbortedIndex(rs []AbortedRange) abortedIndex {
	if len(rs) == 0 {
		return nil
	}
	ix := abortedIndex{}
	for _, r := range rs {
		ix[r.ProducerID] = append(ix[r.ProducerID], r)
	}
	for _, v := range ix {
		slices.SortFunc(v, func(a, b AbortedRange) int { return cmp.Compare(a.FirstOffset, b.FirstOffset) })
	}
	return ix
}

// aborted reports whether b is a data batch of an aborted transaction.
func (ix abortedIndex) aborted(b Batch) bool {
	_, ok := ix.find(b)
	return ok
}

// find returns the aborted transaction that data batch b belongs to.
func (ix abortedIndex) find(b Batch) (AbortedRange, bool) {
	if ix == nil || !b.IsTransactional() || b.IsControl() || b.ProducerID < 0 {
		return AbortedRange{}, false
	}
	rs := ix[b.ProducerID]
	i, _ := slices.BinarySearchFunc(rs, b.BaseOffset, func(r AbortedRange, off int64) int {
		if r.FirstOffset <= off {
			return -1
		}
		return 1
	})
	// rs[i-1] is the last range starting at or before the batch.
	if i > 0 && b.BaseOffset < rs[i-1].LastOffset {
		return rs[i-1], true
	}
	return AbortedRange{}, false
}

// Clean compacts l once if its cleanup policy compacts and it is due: its
// dirty ratio at least MinCleanableDirtyRatio, or its oldest dirty record
// older than MaxCompactionLag. now is the cleaner's clock (for the lags
// and DeleteRetention). A log changed under the cleaning (retention,
// truncation, an aborted transaction indexed) is left as it was and
// cleaned next time (CleanerStats.GaveUp). Clean is for logs
// without transactions (it gives up on a log whose transaction indexes
// list aborted ones); CleanTxn is Clean for a log that may hold some.
func (c *Cleaner) Clean(ctx context.Context, l *Log, now time.Time) (CleanResult, error) {
	return c.CleanTxn(ctx, l, now, Transactions{StableOffset: math.MaxInt64})
}

// CleanTxn is Clean over a log with transactions: it cleans only below
// txns.StableOffset and discards the data of the aborted transactions
// txns.Aborted.
func (c *Cleaner) CleanTxn(ctx context.Context, l *Log, now time.Time, txns Transactions) (CleanResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	if l.closed.Load() {
		return CleanResult{}, ErrClosed
	}
	start := time.Now()
	res, err := c.clean(ctx, l, now, txns)
	if err != nil {
		if errors.Is(err, errCleaningRace) {
			c.gaveUp.Add(1)
			c.log.Debug().Err(err).Str("dir", l.dir).Msg("cleaning given up")
			return res, nil
		}
		if ctx.Err() != nil {
			return res, ctx.Err() // stopped, not failed
		}
		c.errs.Add(1)
		return res, err
	}
	if res.Cleaned {
		c.runs.Add(1)
		c.lastRun.Store(time.Now().UnixNano())
		c.lastDuration.Store(int64(time.Since(start)))
		c.log.Info().Str("dir", l.dir).Int("segments_before", res.SegmentsBefore).Int("segments_after", res.SegmentsAfter).
			Int64("bytes_before", res.BytesBefore).Int64("bytes_after", res.BytesAfter).
			Int64("records_removed", res.RecordsRemoved).Int64("first_dirty", res.FirstDirty).Msg("log cleaned")
	}
	return res, nil
}

// cleanable returns the sealed segments the cleaner may rewrite: below the
// high watermark, the durable offset and stable (the first unstable
// offset), fsynced, and past the minimum compaction lag.
func (l *Log) cleanable(now time.Time, stable int64) []*segment {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.cutFrom = math.MaxInt64
	limit := min(l.hw.Load(), l.durable.Load(), stable)
	lagCut := now.Add(-l.cfg.MinCompactionLag).UnixMilli()
	segs := l.segs[:len(l.segs)-1]
	n := 0
	for n < len(segs) {
		s := segs[n]
		if l.segs[n+1].base > limit || s.maxTS.Load() > lagCut || l.isUnsynced(s) {
			break
		}
		n++
	}
	return append([]*segment(nil), segs[:n]...)
}

// syncSealed fsyncs the sealed segments that await it.
func (l *Log) syncSealed() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.appendMu.Lock()
	need := len(l.unsynced) > 0 || l.durable.Load() < l.segs[len(l.segs)-1].base
	l.appendMu.Unlock()
	if !need {
		return nil
	}
	return l.syncLocked()
}

func (l *Log) isUnsynced(s *segment) bool {
	for _, u := range l.unsynced {
		if u == s {
			return true
		}
	}
	return false
}

func (c *Cleaner) clean(ctx context.Context, l *Log, now time.Time, txns Transactions) (CleanResult, error) {
	res := CleanResult{FirstDirty: l.cleanedTo.Load()}
	// The settings as they are now: Reconfigure changes them under
	// appendMu, and a cleaning runs without it.
	l.appendMu.Lock()
	cfg := l.cfg
	l.appendMu.Unlock()
	if !cfg.Cleanup.Compacts() {
		return res, nil
	}
	// Sealed segments not yet fsynced (a roll since the last sync) are
	// synced first: the cleaner only rewrites durable data.
	if err := l.syncSealed(); err != nil {
		return res, err
	}
	segs := l.cleanable(now, txns.StableOffset)
	aborted := newAbortedIndex(txns.Aborted)
	firstDirty := l.cleanedTo.Load()
	d := 0
	for d < len(segs) && segs[d].base < firstDirty {
		d++
	}
	if d == len(segs) {
		return res, nil // nothing dirty to clean
	}
	res.DirtyRatioSeen = dirtyRatio(segs, firstDirty)
	if res.DirtyRatioSeen < cfg.MinCleanableDirtyRatio && !l.overdue(segs[d], now, cfg.MaxCompactionLag) {
		return res, nil
	}
	if c.m == nil {
		c.m = newOffsetMap(c.cfg.DedupeBufferBytes)
	}
	c.m.reset()
	// Map the dirty segments, as many whole ones as the map holds.
	e := d
	for e < len(segs) {
		ok, err := c.mapSegment(ctx, l, segs[e], aborted)
		if err != nil {
			return res, err
		}
		if !ok {
			break
		}
		e++
	}
	if e == d {
		return res, fmt.Errorf("commitlog: cleaner: segment %d has more keys than the offset map holds (%d bytes)", segs[d].base, c.cfg.DedupeBufferBytes)
	}
	after := l.segmentAfter(segs[e-1])
	if after == nil {
		return res, errCleaningRace // truncated meanwhile
	}
	end := after.base // the new first dirty offset
	lastOfProducer, err := l.producerLastBatches()
	if err != nil {
		return res, err
	}
	deleteCut := now.Add(-cfg.DeleteRetention).UnixMilli()
	tc := newTxnCleaning(aborted)
	for _, g := range groupSegments(segs[:e], cfg.SegmentBytes) {
		after := l.segmentAfter(g[len(g)-1])
		if after == nil {
			return res, errCleaningRace
		}
		next := after.base
		cs, seen, st, err := c.cleanGroup(ctx, l, g, next, lastOfProducer, deleteCut, tc)
		if err != nil {
			return res, err
		}
		if err := l.swapIn(g, cs, seen, swapPlan{next: next, cleanedTo: max(next, l.cleanedTo.Load()), old: bases(g)}); err != nil {
			cs.closeFiles()
			return res, err
		}
		res.Cleaned = true
		res.SegmentsBefore += len(g)
		res.SegmentsAfter++
		res.BytesBefore += st.bytesIn
		res.BytesAfter += cs.size.Load()
		res.RecordsRemoved += st.removed
		res.MarkersRemoved += st.markers
		res.TombstonesAlive += st.tombstones
	}
	// The groups moved the checkpoint group by group; the last sets end.
	if err := l.raiseCleanedTo(end); err != nil {
		return res, err
	}
	res.FirstDirty = l.cleanedTo.Load()
	return res, nil
}

// overdue reports whether the first dirty segment's oldest record is past
// MaxCompactionLag.
func (l *Log) overdue(s *segment, now time.Time, maxLag time.Duration) bool {
	if maxLag <= 0 || maxLag == math.MaxInt64 {
		return false
	}
	r, err := s.acquire(now)
	if err != nil {
		return false
	}
	defer r.release()
	b, err := ParseHeader(r.log.data[:r.size])
	return err == nil && b.FirstTimestamp < now.Add(-maxLag).UnixMilli()
}

func bases(segs []*segment) []int64 {
	out := make([]int64, len(segs))
	for i, s := range segs {
		out[i] = s.base
	}
	return out
}

// raiseCleanedTo records the first dirty offset, when it rises.
func (l *Log) raiseCleanedTo(off int64) error {
	if off <= l.cleanedTo.Load() {
		return nil
	}
	if err := writeFileAtomic(filepath.Join(l.dir, cleanerFile), encodeOffset(off)); err != nil {
		return fmt.Errorf("commitlog: cannot write cleaner checkpoint: %w", err)
	}
	l.cleanedTo.Store(off)
	return nil
}

// lowerCleanedTo brings the first dirty offset down to a truncation point,
// so that records appended again after it count as dirty. Called with
// appendMu held.
func (l *Log) lowerCleanedTo(off int64) error {
	if off >= l.cleanedTo.Load() {
		return nil
	}
	l.cleanedTo.Store(off)
	return writeFileAtomic(filepath.Join(l.dir, cleanerFile), encodeOffset(off))
}

// groupSegments cuts segs into runs to be cleaned into one segment each:
// at most maxBytes of input and an offset span that the index's 32-bit
// relative offsets can hold.
func groupSegments(segs []*segment, maxBytes int64) [][]*segment {
	var out [][]*segment
	for i := 0; i < len(segs); {
		j, n := i+1, segs[i].size.Load()
		for j < len(segs) {
			span := segs[j].next.Load() - segs[i].base
			if n+segs[j].size.Load() > maxBytes || span > math.MaxInt32 {
				break
			}
			n += segs[j].size.Load()
			j++
		}
		out = append(out, segs[i:j])
		i = j
	}
	return out
}

// eachBatch calls fn for each batch of segment s, throttled.
func (c *Cleaner) eachBatch(ctx context.Context, l *Log, s *segment, fn func(b Batch, raw []byte) error) error {
	r, err := s.acquire(l.cfg.Now())
	if err != nil {
		if err == errSegmentGone || errors.Is(err, os.ErrNotExist) {
			return errCleaningRace // swapped, or deleted by retention
		}
		return err
	}
	defer r.release()
	data := r.log.data[:r.size]
	for pos := 0; pos < len(data); {
		b, err := ParseHeader(data[pos:])
		if err != nil {
			return fmt.Errorf("%w: segment %d at position %d: %v", ErrCorrupt, s.base, pos, err)
		}
		if err := c.throttle.wait(ctx, b.Size); err != nil {
			return err
		}
		c.bytesRead.Add(int64(b.Size))
		if err := fn(b, data[pos:pos+b.Size]); err != nil {
			return err
		}
		pos += b.Size
	}
	return nil
}

// mapSegment puts every keyed record of s in the offset map, but those of
// aborted transactions. It returns false, with the map holding part of s,
// when the map filled up.
func (c *Cleaner) mapSegment(ctx context.Context, l *Log, s *segment, aborted abortedIndex) (bool, error) {
	full := false
	err := c.eachBatch(ctx, l, s, func(b Batch, raw []byte) error {
		if b.IsControl() || b.NumRecords == 0 || aborted.aborted(b) {
			return nil
		}
		return Records(b, raw, func(off, _ int64, r *kmsg.Record) bool {
			if r.Key != nil && !c.m.put(r.Key, off) {
				full = true
				return false
			}
			return true
		})
	})
	if full {
		return false, nil
	}
	return err == nil, err
}

// producerLastBatches returns, per idempotent producer, the base offset of
// its last batch in the log (headers only).
func (l *Log) producerLastBatches() (map[int64]int64, error) {
	out := map[int64]int64{}
	for off := l.logStart.Load(); off < l.leo.Load(); {
		v, err := l.ReadUncommitted(off, 8<<20)
		if err != nil {
			return nil, err
		}
		if len(v.Data) == 0 {
			v.Release()
			break
		}
		err = Batches(v.Data, func(b Batch, _ []byte) bool {
			if b.ProducerID >= 0 {
				out[b.ProducerID] = b.BaseOffset
			}
			return true
		})
		off = v.Next
		v.Release()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

type groupStats struct {
	bytesIn, removed, tombstones, markers int64
}

// cleanGroup writes the cleaned form of the segments g (covering offsets
// up to next) as <base>.*.cleaned files, fsynced, and returns the sealed
// segment that describes them once renamed, with the transaction index
// entries of g it read (swapIn checks them). tc follows the transactions
// through the groups of one cleaning (cleanmarkers.go).
func (c *Cleaner) cleanGroup(ctx context.Context, l *Log, g []*segment, next int64, lastOfProducer map[int64]int64, deleteCut int64, tc *txnCleaning) (*segment, []AbortedTxn, groupStats, error) {
	var st groupStats
	out := newSegmentStruct(l.dir, g[0].base, l.cfg.IndexIntervalBytes)
	out.gapsBelow = max(next, l.cleanedTo.Load())
	f, err := os.OpenFile(out.logPath+cleanedSuffix, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, nil, st, fmt.Errorf("commitlog: cleaner: %w", err)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	var idx, tidx []byte
	var pos int64
	since, lastTS, maxTS := 0, int64(-1), int64(-1)
	var lastOff int64 = -1
	var enc []byte
	var cbuf bytes.Buffer
	var keep []kmsg.Record
	for _, s := range g {
		st.bytesIn += s.size.Load()
		dropTombstones := s.maxTS.Load() < deleteCut
		err := c.eachBatch(ctx, l, s, func(b Batch, raw []byte) error {
			outRaw := raw
			if b.IsControl() {
				lastOfIt := b.ProducerID >= 0 && lastOfProducer[b.ProducerID] == b.BaseOffset
				if tc.marker(b, raw) && dropTombstones && !lastOfIt {
					st.markers++
					return nil
				}
			} else {
				keep = keep[:0]
				total := 0
				discard := tc.data(b) // an aborted transaction's data
				rerr := Records(b, raw, func(off, _ int64, r *kmsg.Record) bool {
					total++
					if r.Key == nil || discard {
						return true
					}
					if newest := c.m.get(r.Key); newest > off {
						return true
					}
					if r.Value == nil {
						if dropTombstones {
							return true
						}
						st.tombstones++
					}
					keep = append(keep, *r)
					return true
				})
				if rerr != nil {
					return fmt.Errorf("commitlog: cleaner: segment %d: %w", s.base, rerr)
				}
				st.removed += int64(total - len(keep))
				switch {
				case len(keep) == total:
				case len(keep) == 0 && (b.ProducerID < 0 || lastOfProducer[b.ProducerID] != b.BaseOffset):
					return nil // nothing left, and no producer state to keep
				default:
					enc = rewriteBatch(enc[:0], &cbuf, raw, b, keep)
					outRaw = enc
				}
			}
			if _, err := w.Write(outRaw); err != nil {
				return err
			}
			ob, _ := ParseHeader(outRaw)
			maxTS = max(maxTS, ob.MaxTimestamp)
			since += ob.Size
			if len(idx) == 0 || since >= l.cfg.IndexIntervalBytes {
				since = 0
				idx = appendIndexEntry(idx, uint32(ob.LastOffset()-out.base), uint32(pos))
				if maxTS > lastTS {
					tidx = appendTimeEntry(tidx, maxTS, uint32(ob.LastOffset()-out.base))
					lastTS = maxTS
				}
			}
			lastOff = ob.LastOffset()
			pos += int64(ob.Size)
			return c.throttle.wait(ctx, ob.Size)
		})
		if err != nil {
			f.Close()
			os.Remove(out.logPath + cleanedSuffix)
			return nil, nil, st, err
		}
	}
	if maxTS > lastTS && lastOff >= 0 {
		tidx = appendTimeEntry(tidx, maxTS, uint32(lastOff-out.base))
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = swapStep("cleaned log")
	}
	if err == nil {
		err = writeSynced(out.idxPath+cleanedSuffix, idx)
	}
	if err == nil {
		err = writeSynced(out.tidxPath+cleanedSuffix, tidx)
	}
	// Read under txnMu alone: swapIn checks under appendMu that no entry
	// was added to g since.
	seen, anyTxn := l.txnEntriesOf(g)
	if err == nil {
		err = tc.knows(seen, l.logStart.Load())
	}
	txns := slices.DeleteFunc(slices.Clone(seen), func(a AbortedTxn) bool { return !tc.keepEntry(a) })
	if err == nil && anyTxn {
		err = writeSynced(txnIndexPath(out)+cleanedSuffix, encodeTxnEntries(txns))
	}
	if err == nil {
		err = swapStep("cleaned")
	}
	if err != nil {
		for _, p := range []string{out.logPath, out.idxPath, out.tidxPath, txnIndexPath(out)} {
			os.Remove(p + cleanedSuffix)
		}
		return nil, nil, st, fmt.Errorf("commitlog: cleaner: segment %d: %w", out.base, err)
	}
	c.bytesWritten.Add(pos)
	out.size.Store(pos)
	out.next.Store(next)
	out.maxTS.Store(maxTS)
	out.nIdx.Store(int32(len(idx) / offsetEntrySize))
	out.nTidx.Store(int32(len(tidx) / timeEntrySize))
	out.lastTidxTS = lastTS
	out.created = g[0].created
	out.checked = true
	if anyTxn {
		out.txn = &txnIndex{entries: txns}
	}
	return out, seen, st, nil
}

// writeSynced writes data to path and fsyncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// compressors per codec, made on first use; safe for concurrent use.
var compressors sync.Map // int → kgo.Compressor

func compressorFor(codec int) kgo.Compressor {
	if c, ok := compressors.Load(codec); ok {
		return c.(kgo.Compressor)
	}
	var cc kgo.CompressionCodec
	switch codec {
	case CompressionGzip:
		cc = kgo.GzipCompression()
	case CompressionSnappy:
		cc = kgo.SnappyCompression()
	case CompressionLZ4:
		cc = kgo.Lz4Compression()
	case CompressionZstd:
		cc = kgo.ZstdCompression()
	default:
		return nil
	}
	comp, err := kgo.DefaultCompressor(cc)
	if err != nil {
		return nil
	}
	compressors.Store(codec, comp)
	return comp
}

// rewriteBatch appends to dst the batch b (raw) with only the records
// keep, which keep their offset and timestamp deltas. Every header field
// but the length, record count and CRC stays, lastOffsetDelta included,
// so offsets and producer sequences are unchanged; the records are
// recompressed with the batch's codec (stored uncompressed if that
// fails).
func rewriteBatch(dst []byte, cbuf *bytes.Buffer, raw []byte, b Batch, keep []kmsg.Record) []byte {
	start := len(dst)
	dst = append(dst, raw[:HeaderSize]...)
	recStart := len(dst)
	for i := range keep {
		r := &keep[i]
		dst = AppendRecord(dst, r.OffsetDelta, r.TimestampDelta64, r.Key, r.Value, r.Headers)
	}
	attrs := b.Attributes
	if codec := b.Compression(); codec != CompressionNone && len(keep) > 0 {
		attrs &^= 0x07
		if comp := compressorFor(codec); comp != nil {
			cbuf.Reset()
			out, used := comp.Compress(cbuf, dst[recStart:])
			if out != nil && int(used) == codec {
				dst = append(dst[:recStart], out...)
				attrs |= int16(codec)
			}
		}
	}
	h := dst[start:]
	binary.BigEndian.PutUint32(h[offLength:], uint32(len(h)-lengthPrefix))
	binary.BigEndian.PutUint16(h[offAttributes:], uint16(attrs))
	binary.BigEndian.PutUint32(h[offNumRecords:], uint32(len(keep)))
	binary.BigEndian.PutUint32(h[offCRC:], crc32c(h[crcStart:]))
	return dst
}

// swapIn replaces the segments g of the log by the cleaned segment cs,
// whose files wait as .cleaned: checks that g is still in place, commits
// the swap (swap.go) and updates the segment list. Readers holding views
// of the old segments keep them.
func (l *Log) swapIn(g []*segment, cs *segment, seen []AbortedTxn, p swapPlan) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	abort := func(err error) error {
		for _, path := range []string{cs.logPath, cs.idxPath, cs.tidxPath, txnIndexPath(cs)} {
			os.Remove(path + cleanedSuffix)
		}
		return err
	}
	if l.closed.Load() {
		return abort(ErrClosed)
	}
	if l.werr != nil {
		return abort(l.werr)
	}
	i := 0
	for i < len(l.segs) && l.segs[i] != g[0] {
		i++
	}
	if i+len(g) >= len(l.segs) {
		return abort(errCleaningRace)
	}
	for j, s := range g {
		if l.segs[i+j] != s || l.isUnsynced(s) {
			return abort(errCleaningRace)
		}
	}
	// A truncation to at most p.next since the cleaning chose its
	// segments (below the high watermark: a follower whose leader lost
	// an unsynced tail) cut into g or reopened its last segment: the
	// batches there may differ from those cleaned, even once new
	// segments make g look in place again.
	if l.cutFrom <= p.next {
		return abort(errCleaningRace)
	}
	// cs's transaction index was computed from seen, g's entries as
	// cleanGroup read them without appendMu. AddAbortedTxn holds
	// appendMu, and so does the swap from here until cs replaces g in
	// the list: an entry added to g before this point is in g's entries
	// now, one added after goes to cs. So if they are still seen, cs's
	// index has every entry it must; if not, one was added meanwhile (a
	// replay adding back a missing entry, after a follower's truncation
	// say), which the swap would lose: it gives up, and the next
	// cleaning reads that entry.
	if now, _ := l.txnEntriesOf(g); !slices.Equal(now, seen) {
		return abort(errCleaningRace)
	}
	// The cleaned segment is mapped from its .cleaned files and listed
	// before any file moves, and the old segments are marked gone: a
	// reader never maps a path while the swap renames it (it retries
	// on the new list instead). The mappings follow the inodes through
	// the renames.
	if err := cs.mapCleaned(); err != nil {
		return abort(fmt.Errorf("commitlog: cleaner: segment %d: %w", cs.base, err))
	}
	cs.lastUse = l.cfg.Now()
	old := l.segs
	segs := make([]*segment, 0, len(l.segs)-len(g)+1)
	segs = append(segs, l.segs[:i]...)
	segs = append(segs, cs)
	segs = append(segs, l.segs[i+len(g):]...)
	l.mu.Lock()
	l.segs = segs
	l.mu.Unlock()
	setGone := func(gone bool) {
		for _, s := range g {
			s.mu.Lock()
			s.gone = gone
			s.mu.Unlock()
		}
	}
	setGone(true)
	if err := l.commitSwap(p); err != nil {
		if _, serr := os.Stat(filepath.Join(l.dir, swapFile)); serr == nil {
			// Past the manifest the swap is decided: Open finishes it,
			// and readers already see what it will leave. The log cannot
			// tell which files are in place, so it stops writing.
			l.fail(err)
			return err
		}
		l.mu.Lock()
		l.segs = old
		l.mu.Unlock()
		setGone(false)
		cs.mu.Lock()
		cs.dropMappingsLocked()
		cs.mu.Unlock()
		return abort(err)
	}
	for _, s := range g {
		s.closeFiles()
		s.mu.Lock()
		s.dropMappingsLocked()
		s.mu.Unlock()
	}
	l.dirDirty = true
	return nil
}

// mapCleaned maps a cleaned segment's .cleaned files read-only.
func (s *segment) mapCleaned() error {
	logM, err := mapReadOnly(s.logPath+cleanedSuffix, s.size.Load())
	if err != nil {
		return err
	}
	idxM, err := mapReadOnly(s.idxPath+cleanedSuffix, int64(s.nIdx.Load())*offsetEntrySize)
	if err != nil {
		logM.release()
		return err
	}
	tidxM, err := mapReadOnly(s.tidxPath+cleanedSuffix, int64(s.nTidx.Load())*timeEntrySize)
	if err != nil {
		logM.release()
		idxM.release()
		return err
	}
	s.mu.Lock()
	s.logM, s.idxM, s.tidxM = logM, idxM, tidxM
	s.mu.Unlock()
	return nil
}

// throttle keeps the cleaner's I/O under a rate, in bytes per second, by
// sleeping when it runs ahead (Kafka's Throttler). Used under Cleaner.mu.
type throttle struct {
	rate  int64
	start time.Time
	bytes int64
}

func (t *throttle) wait(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if t.rate <= 0 {
		return nil
	}
	now := time.Now()
	if t.start.IsZero() || now.Sub(t.start) > time.Second {
		t.start, t.bytes = now, 0
	}
	t.bytes += int64(n)
	ahead := time.Duration(float64(t.bytes)/float64(t.rate)*float64(time.Second)) - now.Sub(t.start)
	if ahead <= 0 {
		return nil
	}
	tm := time.NewTimer(ahead)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Compacted reports whether the log's cleanup policy includes compact.
func (l *Log) Compacted() bool {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	return l.cfg.Cleanup.Compacts()
}

// CheckKeys returns an error naming the first record without a key in
// the batches of buf (validated, as Append takes them): a compacted log
// cannot keep such records (Kafka answers INVALID_RECORD). Control
// batches are not checked.
func CheckKeys(buf []byte, batches []Batch) error {
	for p, i := 0, 0; i < len(batches); i++ {
		b := batches[i]
		raw := buf[p : p+b.Size]
		p += b.Size
		if b.IsControl() {
			continue
		}
		var missing int64 = -1
		err := Records(b, raw, func(off, _ int64, r *kmsg.Record) bool {
			if r.Key == nil {
				missing = off - b.BaseOffset
				return false
			}
			return true
		})
		if err != nil {
			return err
		}
		if missing >= 0 {
			return fmt.Errorf("commitlog: batch %d, record %d: a compacted topic needs a key on every record", i, missing)
		}
	}
	return nil
}

// AppendReplicated appends batches copied from a leader's log, keeping
// their offsets: a compacted leader serves cleaned batches with offset
// gaps, which a replica keeps as they are. batches are the results of
// ValidateStoredBatch over buf, in order; the first may start past the
// log end (a gap), each later one at or after the end of the one before.
// The range holding gaps or cleaned batches is recorded as cleaned (the
// leader cleaned it), so that recovery accepts it.
func (l *Log) AppendReplicated(buf []byte, batches []Batch) (AppendResult, error) {
	return l.appendValidated(buf, batches, true)
}

// checkReplicated checks the offsets of batches for AppendReplicated and
// raises the cleaner checkpoint over any gap or cleaned batch. Called
// with appendMu held.
func (l *Log) checkReplicated(batches []Batch) error {
	want := l.leo.Load()
	cleanedTo := int64(-1)
	for _, b := range batches {
		if b.BaseOffset < want {
			return fmt.Errorf("%w: batch at offset %d, below the log end %d", ErrInvalidBatch, b.BaseOffset, want)
		}
		if b.BaseOffset > want || int64(b.NumRecords) != int64(b.LastOffsetDelta)+1 {
			cleanedTo = b.NextOffset()
		}
		want = b.NextOffset()
	}
	if cleanedTo > l.cleanedTo.Load() {
		if err := writeFileAtomic(filepath.Join(l.dir, cleanerFile), encodeOffset(cleanedTo)); err != nil {
			return fmt.Errorf("commitlog: cannot write cleaner checkpoint: %w", err)
		}
		l.cleanedTo.Store(cleanedTo)
		// The active segment may now hold cleaned batches.
		l.segs[len(l.segs)-1].gapsBelow = cleanedTo
	}
	return nil
}
