package commitlog

import (
	"bytes"
	"context"
	"encoding/binary"
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
// txnMu (the segments' transaction indexes) is taken last and alone.
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

	appendMu   sync.Mutex
	werr       error      // sticky write error; under appendMu
	unsynced   []*segment // sealed segments whose files await an fsync; under appendMu
	dirDirty   bool       // directory entries changed since the last sync; under appendMu
	epochDirty bool       // the epoch checkpoint was rewritten since the last sync; under appendMu
	sinceSync  int        // batches appended since the last sync; under appendMu
	epochs     []EpochEntry

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
	rpFile    *os.File      // recovery-point checkpoint, rewritten after each sync; opened on demand; under syncMu
	rpOnDisk  int64         // what the recovery-point file holds; under syncMu
	newFiles  bool          // the segment files were created by Open: the first append dirties the directory; under appendMu
	recovered RecoveryInfo
	stats     counters

	// Compaction (cleaner.go, swap.go). cleanedTo is the first dirty
	// offset: below it, segments were written by the cleaner and may have
	// offset gaps and cleaned batches (see ValidateStoredBatch).
	cleanedTo atomic.Int64
	cleanMu   sync.Mutex // one cleaning of this log at a time; taken before syncMu
	// cutFrom is the lowest offset a truncation cut the log to since the
	// cleaning under way chose its segments (math.MaxInt64: none); under
	// appendMu.
	cutFrom int64

	txnMu    sync.Mutex  // guards the segments' txn (txnindex.go); never held while taking another lock
	txnDirty atomic.Bool // some segment's txn is dirty

	flushMu sync.Mutex    // guards quit; never held with syncMu
	quit    chan struct{} // closed to stop the flusher
	wg      sync.WaitGroup
}

// RecoveryInfo describes what Open found and repaired.
type RecoveryInfo struct {
	RecoveryPoint   int64 // checkpointed durable offset (-1 if none was readable)
	Segments        int   // segments after recovery
	ScanFrom        int64 // offset where the batch-by-batch scan began (the log end if none)
	ScannedBytes    int64 // bytes checked batch by batch
	ScannedBatches  int64 // batches checked, header or CRC
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
	bases, txnFiles, err := l.listSegments()
	if err != nil {
		return err
	}
	cp := l.readCheckpoints(len(bases) > 0)
	l.recovered = RecoveryInfo{RecoveryPoint: cp.recoveryPoint, TornAtOffset: -1}
	now := l.cfg.Now()

	if len(bases) == 0 {
		// The segment's files are made by its first write: a log that is
		// never written is an empty directory.
		base := max(cp.start, 0)
		s := newSegmentStruct(l.dir, base, l.cfg.IndexIntervalBytes)
		s.created = now
		l.segs = []*segment{s}
		l.leo.Store(base)
		l.logStart.Store(base)
		l.recovered.ScanFrom = base
		// Nothing to lose until the first append: the directory is synced
		// by the first sync after it, and an absent recovery point costs
		// an empty log nothing.
		l.newFiles = true
		if err := l.finishLoad(cp, nil, base, nil); err != nil {
			return err
		}
		l.rpOnDisk = base
		return nil
	}

	segs, err := l.openSegments(bases)
	if err != nil {
		return err
	}
	l.recovered.ScanFrom = -1
	kept, trusted, scanned, err := l.scanTail(segs, cp.recoveryPoint)
	if err != nil {
		return err
	}
	if err := restoreTimestamps(kept[:trusted], now); err != nil {
		return err
	}
	if err := l.loadTxnIndexes(kept, txnFiles); err != nil {
		return err
	}
	l.segs = kept
	l.leo.Store(kept[len(kept)-1].next.Load())
	if l.recovered.ScanFrom < 0 {
		l.recovered.ScanFrom = l.leo.Load()
	}
	start := max(cp.start, kept[0].base)
	start = min(start, l.leo.Load())
	l.logStart.Store(start)
	return l.finishLoad(cp, mergeEpochs(cp.epochs, scanned, l.recovered.ScanFrom), start, kept[trusted:])
}

// listSegments returns the base offsets of the segment logs in the
// directory, in order, and those with a transaction index, removing
// leftovers on the way: temporary files and index files without their log
// (an interrupted delete).
func (l *Log) listSegments() ([]int64, map[int64]bool, error) {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("commitlog: %w", err)
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
		if !ok || len(stem) != 20 || (ext != "log" && ext != "index" && ext != "timeindex" && ext != txnIndexExt) {
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
	var txnFiles map[int64]bool
	for _, e := range entries {
		stem, ext, _ := strings.Cut(e.Name(), ".")
		if ext == "index" || ext == "timeindex" || ext == txnIndexExt {
			base, err := strconv.ParseInt(stem, 10, 64)
			if err != nil || len(stem) != 20 {
				continue
			}
			if !seen[base] {
				os.Remove(filepath.Join(l.dir, e.Name()))
			} else if ext == txnIndexExt {
				if txnFiles == nil {
					txnFiles = map[int64]bool{}
				}
				txnFiles[base] = true
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, txnFiles, nil
}

// checkpoints are what the log's checkpoint files say.
type checkpoints struct {
	recoveryPoint int64 // -1: unknown, scan everything
	start         int64 // the log start offset; 0 when absent
	startOK       bool  // the log start checkpoint was readable
	epochs        []EpochEntry
	epochRaw      []byte // the epoch checkpoint as read; nil if absent
}

// readCheckpoints reads the recovery point, the log start offset and the
// leader epoch history. Without a readable epoch history a log with data
// is scanned whole (the recovery point is dropped) to rebuild it.
func (l *Log) readCheckpoints(haveData bool) checkpoints {
	rp, rpOK := readOffsetFile(filepath.Join(l.dir, recoveryPointFile))
	start, startOK := readOffsetFile(filepath.Join(l.dir, logStartFile))
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
	return checkpoints{recoveryPoint: rp, start: start, startOK: startOK, epochs: epochs, epochRaw: epochData}
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

// finishLoad makes the last segment the active one (its files are opened
// by the first write), trims the epoch history to the log and rewrites the
// checkpoints that changed. It fsyncs nothing: scanned segments with data
// past the recovery point wait for the next sync (Sync, the flush policy,
// Close), and until then DurableOffset stays at the recovery point.
func (l *Log) finishLoad(cp checkpoints, epochs []EpochEntry, start int64, scanned []*segment) error {
	last := l.segs[len(l.segs)-1]
	last.created = l.cfg.Now()
	last.markActive(&l.cfg)
	leo := l.leo.Load()
	for len(epochs) > 0 && epochs[len(epochs)-1].StartOffset >= leo {
		epochs = epochs[:len(epochs)-1]
	}
	l.epochs = truncateEpochsFront(epochs, start)
	// Replaced atomically but not fsynced: an older version brought back
	// by a power cut is trimmed the same way at the next open.
	if enc := encodeEpochs(l.epochs); !bytes.Equal(enc, cp.epochRaw) && !l.newFiles {
		l.epochDirty = true // written by the next sync
	}
	if (!cp.startOK && start != 0) || (cp.startOK && cp.start != start) {
		if err := writeFileRename(filepath.Join(l.dir, logStartFile), encodeOffset(start)); err != nil {
			return fmt.Errorf("commitlog: cannot write log start checkpoint: %w", err)
		}
	}
	durable := leo
	if rp := cp.recoveryPoint; rp < leo {
		durable = max(rp, l.segs[0].base, start)
		for _, s := range scanned {
			if s != last && s.next.Load() > rp {
				l.unsynced = append(l.unsynced, s)
			}
		}
	}
	if l.recovered.TornAtOffset >= 0 || l.recovered.SegmentsRemoved > 0 {
		l.dirDirty = true
	}
	l.durable.Store(min(durable, leo))
	l.rpOnDisk = cp.recoveryPoint
	if leo == l.segs[0].base {
		l.rpOnDisk = leo // an empty log has nothing to recover
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
	// The last segment's index files may be stale (not fsynced), or
	// missing even with the recovery point inside it: an active segment
	// keeps its indexes in memory until it is sealed, put to sleep,
	// truncated, closed, or synced once it holds memIndexSyncBytes.
	// Recovery needs none of them: resumePoint checks every entry it uses
	// against the log, and without one the scan starts at the segment's
	// start (headers only below rp, where the data was verified before it
	// became durable) and rebuilds both indexes.
	oldIdx, _ := os.ReadFile(s.idxPath)
	oldTidx, errTidx := os.ReadFile(s.tidxPath)
	if rp > s.base {
		// Resume after the last indexed batch below the recovery point:
		// what precedes it was made durable and checked before.
		pos, want, idx, tidx, maxTS = resumePoint(s, data, rp, oldIdx, oldTidx)
		lastTS = maxTS
	}
	if l.recovered.ScanFrom < 0 {
		l.recovered.ScanFrom = want
	}
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
		l.recovered.ScannedBatches++
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
	last := s.next.Load() == s.base // openSegments sets next for all but the last
	if maxTS > lastTS && want > s.base {
		tidx = appendTimeEntry(tidx, maxTS, uint32(want-1-s.base))
	}
	// A sealed segment's indexes are trusted by later opens: they are
	// made durable. The last segment's are rebuilt by every recovery, so
	// they are only replaced.
	write := writeFileAtomic
	if last {
		write = writeFileRename
	}
	// Files that already hold these entries are left alone (a missing
	// one reads as empty: the last segment's are made by its first write).
	if !bytes.Equal(oldIdx, idx) || (len(idx) == 0 && !last) {
		if err := write(s.idxPath, idx); err != nil {
			return 0, false, fmt.Errorf("commitlog: segment %d: %w", s.base, err)
		}
		l.recovered.IndexesRebuilt++
	}
	if !bytes.Equal(oldTidx, tidx) || (errTidx != nil && !last) {
		if err := write(s.tidxPath, tidx); err != nil {
			return 0, false, fmt.Errorf("commitlog: segment %d: %w", s.base, err)
		}
	}
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

// resumePoint finds in the segment's offset index the last batch that
// ends below the recovery point rp, checking each entry on the way against
// the log (increasing, at a batch start, with the offset it claims). It
// returns the position and offset after that batch, the index entries up
// to it and the time index entries up to it (with the largest timestamp
// they record), so that recovery scans only what follows. Without a usable
// entry it returns the segment's start.
func resumePoint(s *segment, data []byte, rp int64, raw, traw []byte) (pos int, want int64, idx, tidx []byte, maxTS int64) {
	pos, want, maxTS = 0, s.base, -1
	n, lastRel := 0, int64(-1)
	prevRel, prevPos := int64(-1), int64(-1)
	for i := 0; i+offsetEntrySize <= len(raw); i += offsetEntrySize {
		rel := int64(binary.BigEndian.Uint32(raw[i:]))
		p := int64(binary.BigEndian.Uint32(raw[i+4:]))
		if rel <= prevRel || p <= prevPos || p+HeaderSize > int64(len(data)) {
			break
		}
		b, err := ParseHeader(data[p:])
		if err != nil || b.LastOffset() != s.base+rel || p+int64(b.Size) > int64(len(data)) || b.LastOffset() >= rp {
			break
		}
		prevRel, prevPos = rel, p
		n, lastRel = i+offsetEntrySize, rel
		pos, want = int(p)+b.Size, b.NextOffset()
	}
	if n == 0 {
		return 0, s.base, nil, nil, -1
	}
	idx = append([]byte(nil), raw[:n]...)
	prevTS, prevRel := int64(-1<<63), int64(-1)
	for i := 0; i+timeEntrySize <= len(traw); i += timeEntrySize {
		ts := int64(binary.BigEndian.Uint64(traw[i:]))
		rel := int64(binary.BigEndian.Uint32(traw[i+8:]))
		if ts < prevTS || rel < prevRel || rel > lastRel {
			break
		}
		prevTS, prevRel = ts, rel
		tidx = traw[:i+timeEntrySize]
		maxTS = ts
	}
	tidx = append([]byte(nil), tidx...)
	return pos, want, idx, tidx, maxTS
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
	if l.newFiles {
		// The first append to a new log: the next sync writes its epoch
		// checkpoint (a log with data and no readable checkpoint is
		// scanned whole at Open, as one without a recovery point is).
		l.epochDirty, l.dirDirty, l.newFiles = true, true, false
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
		// Written and made durable by the next sync, before it moves the
		// recovery point: until then recovery scans the batches that
		// started the epoch and finds it again.
		l.epochDirty = true
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
	if active.memIdx && active.size.Load() >= memIndexSyncBytes {
		// Not needed for correctness (see recoverSegment): it bounds what
		// a crash makes recovery rescan. A failure leaves them in memory.
		if err := active.persistIndexes(); err != nil {
			l.log.Warn().Err(err).Int64("segment", active.base).Msg("index files not written, kept in memory")
		}
	}
	// The appender opens a sleeping segment's file under appendMu (wake):
	// read it here, not after. A file opened later holds nothing below
	// upTo that the path's fsync does not cover.
	activeF := active.logF
	dirDirty, epochDirty := l.dirDirty, l.epochDirty
	l.dirDirty, l.epochDirty = false, false
	l.sinceSync = 0
	l.appendMu.Unlock()

	// The active segment's files cannot be closed under us: only holders
	// of syncMu close files. A concurrent roll moves it to l.unsynced.
	// Only the active segment's log needs the fsync: its indexes are
	// rebuilt from the log by recovery (and may have no files yet).
	// Sealed segments sync everything, as recovery trusts their indexes.
	err := active.syncLog(activeF)
	for _, s := range pending {
		if err == nil {
			err = s.syncFiles()
		}
	}
	if err == nil && epochDirty {
		err = l.writeEpochs()
		dirDirty = true
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

// writeEpochs replaces the epoch checkpoint and fsyncs it (the directory
// is the caller's). Called with syncMu held.
func (l *Log) writeEpochs() error {
	path := filepath.Join(l.dir, epochFile)
	if err := writeFileRename(path, encodeEpochs(l.epochsCopy())); err != nil {
		return fmt.Errorf("commitlog: cannot write epoch checkpoint: %w", err)
	}
	if err := fsyncPath(path); err != nil {
		return fmt.Errorf("commitlog: cannot sync epoch checkpoint: %w", err)
	}
	return nil
}

// writeRecoveryPoint records that offsets below off are durable. Written
// after the data's fsync, so whatever version survives a crash is true; a
// torn write reads as absent and makes recovery scan everything.
func (l *Log) writeRecoveryPoint(off int64, sync bool) error {
	if l.rpFile == nil {
		f, err := os.OpenFile(filepath.Join(l.dir, recoveryPointFile), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("commitlog: %w", err)
		}
		l.rpFile = f
	}
	if _, err := l.rpFile.WriteAt(encodeOffset(off), 0); err != nil {
		return fmt.Errorf("commitlog: cannot write recovery point: %w", err)
	}
	l.rpOnDisk = off
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
	active := l.segs[len(l.segs)-1]
	if l.werr == nil {
		// A sleeping segment was cut to its data when it went to sleep (or
		// was never written since Open): it needs a sync only if Open
		// left a recovered tail undurable.
		if active.awake {
			err = active.seal()
			l.unsynced = append(l.unsynced, active)
		} else if l.durable.Load() < l.leo.Load() {
			l.unsynced = append(l.unsynced, active)
		}
		if err == nil {
			for _, s := range l.unsynced {
				if err = s.syncFiles(); err != nil {
					break
				}
			}
		}
		if err == nil && l.epochDirty {
			err = l.writeEpochs()
		}
		if err == nil && (l.dirDirty || l.epochDirty || len(l.unsynced) > 0) {
			err = syncDir(l.dir)
		}
		if err == nil && l.rpOnDisk != l.leo.Load() {
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

// Discard closes a log that is about to be deleted: like Close, but
// nothing is synced, sealed or checkpointed (a deleted topic's data need
// not reach the disk first). Outstanding Views stay valid until released.
func (l *Log) Discard() {
	if l.closed.Swap(true) {
		return
	}
	l.flushMu.Lock()
	close(l.quit)
	l.flushMu.Unlock()
	l.wg.Wait()
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.release()
	l.hwMu.Lock()
	if l.hwCh != nil {
		close(l.hwCh)
		l.hwCh = nil
	}
	l.hwMu.Unlock()
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
		l.rpFile = nil
	}
}
