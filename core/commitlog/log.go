package commitlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Log is one partition's log: an ordered list of segments, the last of
// which takes appends.
//
// Concurrency: one appender at a time (Append serializes callers), any
// number of readers. Lock order, outermost first:
//
//	syncMu → appendMu → mu → segment.mu
//
// syncMu serializes fsyncs and every structural change that could close or
// delete a file a sync is about to fsync (truncation, deletion, Close);
// appendMu serializes writers; mu guards the segment list for readers.
type Log struct {
	dir string
	cfg Config
	log zerolog.Logger

	syncMu sync.Mutex

	gcMu    sync.Mutex    // guards gcRound; never held while taking another lock
	gcRound chan struct{} // closed when the group-commit fsync in flight ends; nil if none

	appendMu  sync.Mutex
	werr      error      // sticky write error; under appendMu
	unsynced  []*segment // sealed segments whose files await an fsync; under appendMu
	dirDirty  bool       // directory entries changed since the last sync; under appendMu
	sinceSync int        // batches appended since the last sync; under appendMu
	epochs    []EpochEntry

	mu   sync.RWMutex
	segs []*segment // ascending base offsets; the last is active

	epochMu   sync.RWMutex // guards epochs for readers; writers also hold appendMu
	leo       atomic.Int64 // log end offset: next offset to assign
	hw        atomic.Int64 // high watermark: readers see offsets below it
	logStart  atomic.Int64
	durable   atomic.Int64 // offsets below are fsynced
	failed    atomic.Bool  // werr is set
	closed    atomic.Bool
	hwMu      sync.Mutex
	hwCh      chan struct{} // closed when hw advances; made on demand (nil: nobody waits); under hwMu
	rpFile    *os.File      // recovery-point checkpoint, rewritten after each sync; under syncMu
	recovered RecoveryInfo
	stats     counters

	// Compaction (cleaner.go, swap.go). cleanedTo is the first dirty
	// offset: below it, segments were written by the cleaner and may have
	// offset gaps and cleaned batches (see ValidateStoredBatch).
	cleanedTo atomic.Int64
	cleanMu   sync.Mutex // one cleaning of this log at a time; taken before syncMu

	flushMu sync.Mutex    // guards quit; never held with syncMu
	quit    chan struct{} // closed to stop the flusher
	wg      sync.WaitGroup
}

// RecoveryInfo describes what Open found and repaired.
type RecoveryInfo struct {
	RecoveryPoint   int64 // checkpointed durable offset (-1 if none was readable)
	Segments        int   // segments after recovery
	ScannedBytes    int64 // bytes checked batch by batch
	TornBytes       int64 // non-zero bytes cut from torn or corrupt tails
	TornAtOffset    int64 // offset where a tail was cut; -1 if none
	SegmentsRemoved int   // segments dropped after a tear
	IndexesRebuilt  int   // segments whose indexes were rebuilt
	LogStartOffset  int64
	LogEndOffset    int64
}

type counters struct {
	appends, appendedBytes, syncs, tornTails, segmentsDeleted, rolls atomic.Int64
}

// Stats are cumulative counters since Open.
type Stats struct {
	Appends, AppendedBytes, Syncs, TornTails, SegmentsDeleted, Rolls int64
	Segments                                                         int
	Bytes                                                            int64
}

// Open opens or creates the log in dir and recovers it: segments after the
// recovery point are verified batch by batch (CRC and offset continuity) and
// a torn tail is cut; damage below the recovery point is reported as
// ErrCorrupt.
func Open(dir string, cfg Config) (*Log, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("commitlog: %w", err)
	}
	l := &Log{
		dir:  dir,
		cfg:  cfg,
		log:  cfg.Logger.With().Str("dir", dir).Logger(),
		quit: make(chan struct{}),
	}
	if err := l.load(); err != nil {
		l.release()
		return nil, err
	}
	if cfg.FlushInterval > 0 {
		l.wg.Add(1)
		go l.flusher(cfg.FlushInterval, l.quit)
	}
	return l, nil
}

// load finds the segments, recovers them and activates the last one, in
// steps: list the segment files, read the checkpoints, open the segments,
// scan from the one holding the recovery point, restore the timestamps of
// the trusted ones, and merge the epoch history.
func (l *Log) load() error {
	if err := l.recoverSwap(); err != nil {
		return err
	}
	bases, err := l.listSegments()
	if err != nil {
		return err
	}
	cp := l.readCheckpoints(len(bases) > 0)
	l.recovered = RecoveryInfo{RecoveryPoint: cp.recoveryPoint, TornAtOffset: -1}
	now := l.cfg.Now()

	if len(bases) == 0 {
		base := max(cp.start, 0)
		s, err := createSegment(l.dir, base, &l.cfg, now)
		if err != nil {
			return fmt.Errorf("commitlog: cannot create segment: %w", err)
		}
		l.segs = []*segment{s}
		l.leo.Store(base)
		l.logStart.Store(base)
		return l.finishLoad(nil, base)
	}

	segs, err := l.openSegments(bases)
	if err != nil {
		return err
	}
	kept, trusted, scanned, err := l.scanTail(segs, cp.recoveryPoint)
	if err != nil {
		return err
	}
	if err := restoreTimestamps(kept[:trusted], now); err != nil {
		return err
	}
	l.segs = kept
	l.leo.Store(kept[len(kept)-1].next.Load())
	start := max(cp.start, kept[0].base)
	start = min(start, l.leo.Load())
	l.logStart.Store(start)
	return l.finishLoad(mergeEpochs(cp.epochs, scanned, kept[trusted].base), start)
}

// listSegments returns the base offsets of the segment logs in the
// directory, in order, removing leftovers on the way: temporary files and
// index files without their log (an interrupted delete).
func (l *Log) listSegments() ([]int64, error) {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("commitlog: %w", err)
	}
	var bases []int64
	seen := map[int64]bool{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(l.dir, name))
			continue
		}
		stem, ext, ok := strings.Cut(name, ".")
		if !ok || len(stem) != 20 || (ext != "log" && ext != "index" && ext != "timeindex") {
			continue
		}
		base, err := strconv.ParseInt(stem, 10, 64)
		if err != nil || base < 0 {
			continue
		}
		if ext == "log" {
			bases = append(bases, base)
			seen[base] = true
		}
	}
	for _, e := range entries {
		stem, ext, _ := strings.Cut(e.Name(), ".")
		if ext == "index" || ext == "timeindex" {
			if base, err := strconv.ParseInt(stem, 10, 64); err == nil && !seen[base] {
				os.Remove(filepath.Join(l.dir, e.Name()))
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

// checkpoints are what the log's checkpoint files say.
type checkpoints struct {
	recoveryPoint int64 // -1: unknown, scan everything
	start         int64 // the log start offset; 0 when absent
	epochs        []EpochEntry
}

// readCheckpoints reads the recovery point, the log start offset and the
// leader epoch history. Without a readable epoch history a log with data
// is scanned whole (the recovery point is dropped) to rebuild it.
func (l *Log) readCheckpoints(haveData bool) checkpoints {
	rp, rpOK := readOffsetFile(filepath.Join(l.dir, recoveryPointFile))
	start, _ := readOffsetFile(filepath.Join(l.dir, logStartFile))
	epochData, epochErr := os.ReadFile(filepath.Join(l.dir, epochFile))
	var epochs []EpochEntry
	if epochErr == nil {
		epochs, epochErr = decodeEpochs(epochData)
	}
	if epochErr != nil && haveData {
		l.log.Warn().Err(epochErr).Msg("leader epoch checkpoint unreadable, scanning the whole log")
		rpOK, epochs = false, nil
	}
	if !rpOK {
		rp = -1
	}
	return checkpoints{recoveryPoint: rp, start: start, epochs: epochs}
}

// openSegments opens the segments of bases, sealed, each knowing where
// the next begins.
func (l *Log) openSegments(bases []int64) ([]*segment, error) {
	segs := make([]*segment, 0, len(bases))
	for _, b := range bases {
		s, err := openSealed(l.dir, b, l.cfg.IndexIntervalBytes)
		if err != nil {
			return nil, fmt.Errorf("commitlog: segment %d: %w", b, err)
		}
		s.gapsBelow = l.cleanedTo.Load()
		segs = append(segs, s)
	}
	for i := 0; i+1 < len(segs); i++ {
		segs[i].next.Store(segs[i+1].base)
	}
	return segs, nil
}

// scanTail recovers the segments from the one holding the recovery point
// rp to the end: segments before it (the first trusted of kept) are
// trusted and checked lazily; the scanned ones are validated, a torn tail
// cut, and segments that no longer continue the log dropped. Damage below
// rp is ErrCorrupt. It returns the segments kept and the epochs the scan
// found.
func (l *Log) scanTail(segs []*segment, rp int64) (kept []*segment, trusted int, scanned []EpochEntry, err error) {
	k := 0
	for i, s := range segs {
		if rp >= 0 && s.base <= rp {
			k = i
		}
	}
	if k > 0 && segs[k].base > rp {
		return nil, 0, nil, fmt.Errorf("%w: recovery point %d precedes segment %d", ErrCorrupt, rp, segs[k].base)
	}
	want := segs[k].base
	kept = append(kept, segs[:k]...)
	for i := k; i < len(segs); i++ {
		s := segs[i]
		if s.base != want && !(s.base > want && s.base <= l.cleanedTo.Load()) {
			if want <= rp {
				return nil, 0, nil, fmt.Errorf("%w: segment %d follows data ending at offset %d, below the recovery point %d", ErrCorrupt, s.base, want, rp)
			}
			l.dropSegments(segs[i:], "does not continue the log")
			break
		}
		next, cut, err := l.recoverSegment(s, rp, &scanned)
		if err != nil {
			return nil, 0, nil, err
		}
		kept = append(kept, s)
		want = next
		if cut && i+1 < len(segs) && segs[i+1].base != next {
			l.dropSegments(segs[i+1:], "follows a torn tail")
			break
		}
	}
	if rp > want {
		return nil, 0, nil, fmt.Errorf("%w: log ends at offset %d, below the recovery point %d", ErrCorrupt, want, rp)
	}
	return kept, k, scanned, nil
}

// restoreTimestamps sets the largest timestamp of trusted segments from
// their time index; a damaged one is verified and rebuilt now, so that
// retention knows the segment's age.
func restoreTimestamps(segs []*segment, now time.Time) error {
	for _, s := range segs {
		if ts := readLastTimeEntry(s.tidxPath); ts >= 0 {
			s.maxTS.Store(ts)
			continue
		}
		r, err := s.acquire(now)
		if err != nil {
			return err
		}
		r.release()
	}
	return nil
}

// mergeEpochs is the epoch history of a recovered log: the checkpointed
// entries before scanFrom, then the newer epochs the scan found.
func mergeEpochs(checkpointed, scanned []EpochEntry, scanFrom int64) []EpochEntry {
	var merged []EpochEntry
	for _, e := range checkpointed {
		if e.StartOffset < scanFrom {
			merged = append(merged, e)
		}
	}
	for _, e := range scanned {
		if len(merged) == 0 || e.Epoch > merged[len(merged)-1].Epoch {
			merged = append(merged, e)
		}
	}
	return merged
}

// finishLoad activates the last segment, trims the epoch history to the
// log, makes the recovered state durable and records it.
func (l *Log) finishLoad(epochs []EpochEntry, start int64) error {
	last := l.segs[len(l.segs)-1]
	if last.logF == nil {
		last.created = l.cfg.Now()
		if err := last.activate(&l.cfg); err != nil {
			return fmt.Errorf("commitlog: cannot activate segment %d: %w", last.base, err)
		}
	}
	leo := l.leo.Load()
	for len(epochs) > 0 && epochs[len(epochs)-1].StartOffset >= leo {
		epochs = epochs[:len(epochs)-1]
	}
	l.epochs = truncateEpochsFront(epochs, start)
	if err := writeFileAtomic(filepath.Join(l.dir, epochFile), encodeEpochs(l.epochs)); err != nil {
		return fmt.Errorf("commitlog: cannot write epoch checkpoint: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(l.dir, logStartFile), encodeOffset(start)); err != nil {
		return fmt.Errorf("commitlog: cannot write log start checkpoint: %w", err)
	}
	var err error
	if l.rpFile, err = os.OpenFile(filepath.Join(l.dir, recoveryPointFile), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return fmt.Errorf("commitlog: %w", err)
	}
	if err := last.syncFiles(); err != nil {
		return err
	}
	if err := syncDir(l.dir); err != nil {
		return fmt.Errorf("commitlog: %w", err)
	}
	l.durable.Store(leo)
	if err := l.writeRecoveryPoint(leo, true); err != nil {
		return err
	}
	l.hw.Store(leo)
	l.recovered.Segments = len(l.segs)
	l.recovered.LogStartOffset = start
	l.recovered.LogEndOffset = leo
	if l.recovered.TornAtOffset >= 0 || l.recovered.SegmentsRemoved > 0 {
		l.log.Warn().Int64("offset", l.recovered.TornAtOffset).Int64("torn_bytes", l.recovered.TornBytes).
			Int("segments_removed", l.recovered.SegmentsRemoved).Msg("cut torn tail")
	}
	l.log.Debug().Int64("log_start", start).Int64("log_end", leo).Int("segments", len(l.segs)).
		Int64("scanned_bytes", l.recovered.ScannedBytes).Msg("log opened")
	return nil
}

// recoverSegment scans one segment from its start. Batches that end at or
// below the recovery point get header checks only (they were verified
// before they became durable); later ones are fully validated. The first
// bad batch above the recovery point ends the segment: the file is cut
// there. A bad batch below it is ErrCorrupt. The segment's indexes are
// rebuilt from the scan.
func (l *Log) recoverSegment(s *segment, rp int64, epochs *[]EpochEntry) (next int64, cut bool, err error) {
	fi, err := os.Stat(s.logPath)
	if err != nil {
		return 0, false, fmt.Errorf("commitlog: %w", err)
	}
	fileSize := fi.Size()
	m, err := mapReadOnly(s.logPath, fileSize)
	if err != nil {
		return 0, false, fmt.Errorf("commitlog: segment %d: %w", s.base, err)
	}
	data := m.data
	var idx, tidx []byte
	since, lastTS, maxTS := 0, int64(-1), int64(-1)
	pos, want := 0, s.base
	var bad error
	for pos < len(data) {
		var b Batch
		var err error
		if rp >= 0 && want < rp {
			b, err = ParseHeader(data[pos:])
			if err == nil && b.NextOffset() > rp {
				b, err = s.validateStored(data[pos:])
			}
		} else {
			b, err = s.validateStored(data[pos:])
		}
		if err == nil && b.BaseOffset != want && !s.gapAllowed(want, b) {
			err = fmt.Errorf("batch offset %d, want %d", b.BaseOffset, want)
		}
		if err != nil {
			if rp >= 0 && want < rp {
				m.release()
				return 0, false, fmt.Errorf("%w: segment %d at position %d, offset %d below the recovery point %d: %v", ErrCorrupt, s.base, pos, want, rp, err)
			}
			bad = err
			break
		}
		if b.LeaderEpoch >= 0 && (len(*epochs) == 0 || b.LeaderEpoch > (*epochs)[len(*epochs)-1].Epoch) {
			*epochs = append(*epochs, EpochEntry{Epoch: b.LeaderEpoch, StartOffset: b.BaseOffset})
		}
		maxTS = max(maxTS, b.MaxTimestamp)
		since += b.Size
		if len(idx) == 0 || since >= l.cfg.IndexIntervalBytes {
			since = 0
			idx = appendIndexEntry(idx, uint32(b.LastOffset()-s.base), uint32(pos))
			if maxTS > lastTS {
				tidx = appendTimeEntry(tidx, maxTS, uint32(b.LastOffset()-s.base))
				lastTS = maxTS
			}
		}
		want = b.NextOffset()
		pos += b.Size
	}
	tornBytes := int64(0)
	for _, c := range data[pos:] {
		if c != 0 {
			tornBytes++
		}
	}
	m.release()
	l.recovered.ScannedBytes += int64(pos)
	if bad != nil && tornBytes > 0 {
		l.stats.tornTails.Add(1)
		l.recovered.TornBytes += tornBytes
		if l.recovered.TornAtOffset < 0 {
			l.recovered.TornAtOffset = want
		}
		l.log.Warn().Int64("segment", s.base).Int("position", pos).Int64("offset", want).
			Str("reason", bad.Error()).Msg("torn tail")
	}
	if int64(pos) < fileSize {
		f, err := os.OpenFile(s.logPath, os.O_RDWR, 0)
		if err != nil {
			return 0, false, fmt.Errorf("commitlog: %w", err)
		}
		err = f.Truncate(int64(pos))
		if err == nil {
			err = f.Sync()
		}
		f.Close()
		if err != nil {
			return 0, false, fmt.Errorf("commitlog: segment %d: cannot cut tail: %w", s.base, err)
		}
	}
	if maxTS > lastTS && want > s.base {
		tidx = appendTimeEntry(tidx, maxTS, uint32(want-1-s.base))
	}
	if err := writeFileAtomic(s.idxPath, idx); err != nil {
		return 0, false, fmt.Errorf("commitlog: segment %d: %w", s.base, err)
	}
	if err := writeFileAtomic(s.tidxPath, tidx); err != nil {
		return 0, false, fmt.Errorf("commitlog: segment %d: %w", s.base, err)
	}
	l.recovered.IndexesRebuilt++
	s.size.Store(int64(pos))
	s.next.Store(want)
	s.maxTS.Store(maxTS)
	s.nIdx.Store(int32(len(idx) / offsetEntrySize))
	s.nTidx.Store(int32(len(tidx) / timeEntrySize))
	s.lastTidxTS = lastTS
	if len(tidx) > 0 {
		s.lastTidxTS = maxTS
	}
	s.sinceIndex = since
	s.checked = true
	return want, int64(pos) < fileSize, nil
}

func appendIndexEntry(b []byte, rel, pos uint32) []byte {
	b = append(b, byte(rel>>24), byte(rel>>16), byte(rel>>8), byte(rel))
	return append(b, byte(pos>>24), byte(pos>>16), byte(pos>>8), byte(pos))
}

func appendTimeEntry(b []byte, ts int64, rel uint32) []byte {
	u := uint64(ts)
	b = append(b, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32), byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	return append(b, byte(rel>>24), byte(rel>>16), byte(rel>>8), byte(rel))
}

func (l *Log) dropSegments(segs []*segment, why string) {
	for _, s := range segs {
		l.log.Warn().Int64("segment", s.base).Str("reason", why).Msg("removing segment")
		s.removeFiles()
		l.recovered.SegmentsRemoved++
	}
}

// AppendResult tells where an Append put its batches.
type AppendResult struct {
	FirstOffset  int64 // base offset given to the first batch
	LastOffset   int64 // offset of the last record
	MaxTimestamp int64 // largest MaxTimestamp among the batches
	Batches      int
}

// Append validates and writes one or more concatenated RecordBatch v2
// batches (a Produce request's records field). It assigns offsets by
// rewriting each batch's base offset field in buf, in place; nothing else
// in buf changes. Invalid input rejects the whole call. Batches are written
// in order, in one write per segment; should a multi-batch call that spans
// a segment roll fail halfway, the result reports the batches that made it.
//
// Errors: ErrInvalidBatch and ErrBatchTooLarge for bad input (nothing
// written; the log is fine); an error wrapping ENOSPC when space cannot be
// reserved (nothing written; retry after freeing space); any other write or
// fsync error is sticky: every later Append and Sync returns it.
func (l *Log) Append(buf []byte) (AppendResult, error) {
	var small [4]Batch
	batches := small[:0]
	for p := 0; p < len(buf); {
		b, err := ValidateBatch(buf[p:])
		if err != nil {
			return AppendResult{}, fmt.Errorf("batch %d at byte %d: %w", len(batches), p, err)
		}
		batches = append(batches, b)
		p += b.Size
	}
	return l.AppendValidated(buf, batches)
}

// AppendValidated is Append for a caller that has already run
// ValidateBatch over each batch of buf (batches are its results, in
// order), so the CRCs are not computed twice. The batches must cover buf
// exactly.
func (l *Log) AppendValidated(buf []byte, batches []Batch) (AppendResult, error) {
	return l.appendValidated(buf, batches, false)
}

// appendValidated is AppendValidated; with keepOffsets the batches keep
// the offsets they carry (a replica copying a compacted leader's log,
// gaps included: see AppendReplicated) instead of getting the next ones.
func (l *Log) appendValidated(buf []byte, batches []Batch, keepOffsets bool) (AppendResult, error) {
	var maxTS int64 = -1
	n := 0
	for _, b := range batches {
		if b.Size > l.cfg.MaxBatchBytes {
			return AppendResult{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBatchTooLarge, b.Size, l.cfg.MaxBatchBytes)
		}
		maxTS = max(maxTS, b.MaxTimestamp)
		n += b.Size
	}
	if len(batches) == 0 {
		return AppendResult{}, fmt.Errorf("%w: no batch", ErrInvalidBatch)
	}
	if n != len(buf) {
		panic("commitlog: AppendValidated: batches do not cover the buffer")
	}

	l.appendMu.Lock()
	if l.closed.Load() {
		l.appendMu.Unlock()
		return AppendResult{}, ErrClosed
	}
	if l.werr != nil {
		err := l.werr
		l.appendMu.Unlock()
		return AppendResult{}, err
	}
	first := l.leo.Load()
	next := first
	if keepOffsets {
		if err := l.checkReplicated(batches); err != nil {
			l.appendMu.Unlock()
			return AppendResult{}, err
		}
		first = batches[0].BaseOffset
		next = batches[len(batches)-1].NextOffset()
	}
	for i, p := 0, 0; i < len(batches) && !keepOffsets; i++ {
		batches[i].BaseOffset = next
		SetBaseOffset(buf[p:], next)
		next = batches[i].NextOffset()
		p += batches[i].Size
	}
	// Write runs of batches that fit in the active segment, rolling between.
	for i, p := 0, 0; i < len(batches); {
		active := l.segs[len(l.segs)-1]
		j, n := i, 0
		for j < len(batches) && active.fits(n+batches[j].Size) {
			n += batches[j].Size
			j++
		}
		if j == i {
			if active.size.Load() == 0 {
				l.appendMu.Unlock()
				panic("commitlog: a batch within MaxBatchBytes does not fit an empty segment")
			}
			if err := l.roll(); err != nil {
				l.appendMu.Unlock()
				return AppendResult{}, err
			}
			continue
		}
		sticky, err := active.write(buf[p:p+n], batches[i:j], &l.cfg)
		if err != nil {
			if sticky {
				l.fail(err)
			}
			l.appendMu.Unlock()
			if i > 0 {
				// An earlier run of this call is in the log, whole and
				// published: report it with the failure.
				return AppendResult{FirstOffset: first, LastOffset: batches[i-1].LastOffset(), MaxTimestamp: maxTS, Batches: i}, err
			}
			return AppendResult{}, err
		}
		l.leo.Store(batches[j-1].NextOffset())
		l.noteEpochs(batches[i:j])
		i, p = j, p+n
	}
	l.sinceSync += len(batches)
	needSync := l.cfg.FlushBatches > 0 && l.sinceSync >= l.cfg.FlushBatches
	l.appendMu.Unlock()
	l.stats.appends.Add(1)
	l.stats.appendedBytes.Add(int64(len(buf)))

	res := AppendResult{FirstOffset: first, LastOffset: next - 1, MaxTimestamp: maxTS, Batches: len(batches)}
	if needSync {
		if err := l.syncTo(next); err != nil {
			return res, err
		}
	}
	return res, nil
}

// noteEpochs records the first offset of each new leader epoch. Called with
// appendMu held. The checkpoint is rewritten (and fsynced) only when an
// epoch starts, which is rare.
func (l *Log) noteEpochs(batches []Batch) {
	changed := false
	for _, b := range batches {
		if b.LeaderEpoch < 0 {
			continue
		}
		if n := len(l.epochs); n == 0 || b.LeaderEpoch > l.epochs[n-1].Epoch {
			l.epochMu.Lock()
			l.epochs = append(l.epochs, EpochEntry{Epoch: b.LeaderEpoch, StartOffset: b.BaseOffset})
			l.epochMu.Unlock()
			changed = true
		}
	}
	if changed {
		if err := writeFileAtomic(filepath.Join(l.dir, epochFile), encodeEpochs(l.epochsCopy())); err != nil {
			l.fail(fmt.Errorf("commitlog: cannot write epoch checkpoint: %w", err))
		}
	}
}

func (l *Log) fail(err error) {
	if l.werr == nil {
		l.werr = err
		l.failed.Store(true)
		l.log.Error().Err(err).Msg("log failed, refusing further writes")
	}
}

// roll seals the active segment and starts a new one at the log end.
// Called with appendMu held. A failure to create the new segment (a full
// disk) leaves the log as it was.
func (l *Log) roll() error {
	old := l.segs[len(l.segs)-1]
	s, err := createSegment(l.dir, l.leo.Load(), &l.cfg, l.cfg.Now())
	if err != nil {
		return fmt.Errorf("commitlog: cannot roll to segment %d: %w", l.leo.Load(), err)
	}
	if err := old.seal(); err != nil {
		s.closeFiles()
		s.mu.Lock()
		s.dropMappingsLocked()
		s.mu.Unlock()
		s.removeFiles()
		err = fmt.Errorf("commitlog: cannot seal segment %d: %w", old.base, err)
		l.fail(err)
		return err
	}
	l.unsynced = append(l.unsynced, old)
	l.dirDirty = true
	l.mu.Lock()
	l.segs = append(l.segs[:len(l.segs):len(l.segs)], s)
	l.mu.Unlock()
	l.stats.rolls.Add(1)
	l.log.Debug().Int64("segment", s.base).Msg("rolled segment")
	return nil
}

// Sync makes every appended batch durable.
func (l *Log) Sync() error { return l.syncTo(l.leo.Load()) }

// syncTo returns once offsets below target are durable. Concurrent callers
// share fsyncs (group commit): one of them, the leader, fsyncs everything
// appended so far while the others wait for that round; when it ends they
// all wake at once, and those it did not cover elect the next leader, whose
// fsync covers every append made meanwhile.
func (l *Log) syncTo(target int64) error {
	for {
		if l.durable.Load() >= target {
			return nil
		}
		l.gcMu.Lock()
		if l.durable.Load() >= target {
			l.gcMu.Unlock()
			return nil
		}
		if l.gcRound != nil {
			// A round is in flight: wait for it, then look again.
			round := l.gcRound
			l.gcMu.Unlock()
			<-round
			if l.failed.Load() {
				l.appendMu.Lock()
				err := l.werr
				l.appendMu.Unlock()
				return err
			}
			continue
		}
		round := make(chan struct{})
		l.gcRound = round
		l.gcMu.Unlock()

		l.syncMu.Lock()
		var err error
		if l.durable.Load() < target {
			err = l.syncLocked()
		}
		l.syncMu.Unlock()

		l.gcMu.Lock()
		l.gcRound = nil
		close(round)
		l.gcMu.Unlock()
		if err != nil {
			return err
		}
	}
}

// syncLocked fsyncs all pending writes. Called with syncMu held.
func (l *Log) syncLocked() error {
	l.appendMu.Lock()
	if l.werr != nil {
		err := l.werr
		l.appendMu.Unlock()
		return err
	}
	upTo := l.leo.Load()
	pending := l.unsynced
	l.unsynced = nil
	active := l.segs[len(l.segs)-1]
	dirDirty := l.dirDirty
	l.dirDirty = false
	l.sinceSync = 0
	l.appendMu.Unlock()

	// The active segment's files cannot be closed under us: only holders
	// of syncMu close files. A concurrent roll moves it to l.unsynced.
	// Only the active segment's log needs the fsync: its indexes are
	// rebuilt from the log by recovery. Sealed segments sync everything,
	// as recovery trusts their indexes.
	err := active.syncLog()
	for _, s := range pending {
		if err == nil {
			err = s.syncFiles()
		}
	}
	if err == nil && dirDirty {
		err = syncDir(l.dir)
	}
	if err != nil {
		l.appendMu.Lock()
		l.fail(err)
		l.unsynced = append(pending, l.unsynced...)
		l.appendMu.Unlock()
		return err
	}
	l.appendMu.Lock()
	for _, s := range pending {
		if s != l.segs[len(l.segs)-1] {
			s.closeFiles()
		}
	}
	l.appendMu.Unlock()
	l.durable.Store(upTo)
	l.stats.syncs.Add(1)
	return l.writeRecoveryPoint(upTo, false)
}

// writeRecoveryPoint records that offsets below off are durable. Written
// after the data's fsync, so whatever version survives a crash is true; a
// torn write reads as absent and makes recovery scan everything.
func (l *Log) writeRecoveryPoint(off int64, sync bool) error {
	if _, err := l.rpFile.WriteAt(encodeOffset(off), 0); err != nil {
		return fmt.Errorf("commitlog: cannot write recovery point: %w", err)
	}
	if sync {
		if err := l.rpFile.Sync(); err != nil {
			return fmt.Errorf("commitlog: cannot sync recovery point: %w", err)
		}
	}
	return nil
}

func (l *Log) flusher(every time.Duration, quit <-chan struct{}) {
	defer l.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
			if l.durable.Load() < l.leo.Load() && !l.failed.Load() {
				if err := l.Sync(); err != nil && err != ErrClosed {
					l.log.Error().Err(err).Msg("periodic flush failed")
				}
			}
		}
	}
}

// LogEndOffset is the offset the next appended record will get.
func (l *Log) LogEndOffset() int64 { return l.leo.Load() }

// LogStartOffset is the first offset still readable.
func (l *Log) LogStartOffset() int64 { return l.logStart.Load() }

// HighWatermark is the offset below which readers see records.
func (l *Log) HighWatermark() int64 { return l.hw.Load() }

// DurableOffset is the offset below which records are fsynced.
func (l *Log) DurableOffset() int64 { return l.durable.Load() }

// Recovery describes what Open found.
func (l *Log) Recovery() RecoveryInfo { return l.recovered }

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// SetHighWatermark lets readers see offsets below off (clamped to the log
// end). It never moves the watermark back; TruncateTo does. On one node the
// owner sets it after each append (and its fsync, if the flush policy asks
// for one); with replication, once the in-sync replicas have the records.
func (l *Log) SetHighWatermark(off int64) {
	off = min(off, l.leo.Load())
	for {
		cur := l.hw.Load()
		if off <= cur {
			return
		}
		if l.hw.CompareAndSwap(cur, off) {
			break
		}
	}
	l.hwMu.Lock()
	if l.hwCh != nil {
		close(l.hwCh)
		l.hwCh = nil
	}
	l.hwMu.Unlock()
}

// HighWatermarkChanged returns a channel closed at the next advance of the
// high watermark (or at Close). Check the watermark after taking the
// channel to not miss an advance.
func (l *Log) HighWatermarkChanged() <-chan struct{} {
	l.hwMu.Lock()
	defer l.hwMu.Unlock()
	if l.hwCh == nil {
		l.hwCh = make(chan struct{})
		if l.closed.Load() {
			close(l.hwCh)
		}
	}
	return l.hwCh
}

// Wait blocks until the high watermark is above offset (a record at offset
// is readable), the context ends, or the log closes.
func (l *Log) Wait(ctx context.Context, offset int64) error {
	for {
		ch := l.HighWatermarkChanged()
		if l.hw.Load() > offset {
			return nil
		}
		if l.closed.Load() {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats returns counters since Open.
func (l *Log) Stats() Stats {
	l.mu.RLock()
	var n int64
	for _, s := range l.segs {
		n += s.size.Load()
	}
	segs := len(l.segs)
	l.mu.RUnlock()
	return Stats{
		Appends: l.stats.appends.Load(), AppendedBytes: l.stats.appendedBytes.Load(),
		Syncs: l.stats.syncs.Load(), TornTails: l.stats.tornTails.Load(),
		SegmentsDeleted: l.stats.segmentsDeleted.Load(), Rolls: l.stats.rolls.Load(),
		Segments: segs, Bytes: n,
	}
}

// Size is the total size of the log's segments in bytes.
func (l *Log) Size() int64 { return l.Stats().Bytes }

// Close makes everything durable, cuts the active segment's reservation
// and releases files and mappings. Outstanding Views stay valid until
// released. Waiters get ErrClosed.
func (l *Log) Close() error {
	if l.closed.Swap(true) {
		return ErrClosed
	}
	l.flushMu.Lock()
	close(l.quit)
	l.flushMu.Unlock()
	l.wg.Wait()
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	var err error
	if l.werr == nil {
		active := l.segs[len(l.segs)-1]
		if err = active.seal(); err == nil {
			l.unsynced = append(l.unsynced, active)
			for _, s := range l.unsynced {
				if err = s.syncFiles(); err != nil {
					break
				}
			}
		}
		if err == nil {
			err = syncDir(l.dir)
		}
		if err == nil {
			err = l.writeRecoveryPoint(l.leo.Load(), true)
		}
	}
	l.release()
	l.hwMu.Lock()
	if l.hwCh != nil {
		close(l.hwCh)
		l.hwCh = nil
	}
	l.hwMu.Unlock()
	if err == nil {
		err = l.werr
	}
	return err
}

// release closes every file and drops the log's own mapping references,
// with no fsync: what a crash leaves behind.
func (l *Log) release() {
	for _, s := range append(l.unsynced, l.segs...) {
		s.closeFiles()
		s.mu.Lock()
		s.dropMappingsLocked()
		s.mu.Unlock()
	}
	l.unsynced = nil
	if l.rpFile != nil {
		l.rpFile.Close()
	}
}
