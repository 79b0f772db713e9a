package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

const (
	offsetEntrySize = 8  // relative offset uint32, position uint32
	timeEntrySize   = 12 // timestamp int64, relative offset uint32
	indexChunk      = 64 << 10
)

// segment is one <base>.log file with its .index and .timeindex.
//
// The active (last) segment is mapped at full capacity and written with
// pwrite; its files are opened by the first write and closed again when it
// has been idle for Config.IdleUnmap (sleep), so an idle log holds no file
// open. A segment that starts without index entries keeps its indexes in
// anonymous memory (memIdx), so its first write creates one file, the
// .log; they get their files (persistIndexes) when it is sealed, put to
// sleep, truncated or closed, synced once it holds memIndexSyncBytes, or
// written past memIndexMaxBytes. Sealed segments are mapped read-only on
// first use and unmapped again when idle. Published fields (size, next,
// maxTS, nIdx, nTidx) are atomics: the appender stores them after the
// bytes they describe are in place, readers load them without a lock.
type segment struct {
	base                       int64
	logPath, idxPath, tidxPath string

	size  atomic.Int64 // bytes of whole batches in the log file
	next  atomic.Int64 // offset after the last batch
	maxTS atomic.Int64 // largest batch MaxTimestamp; -1 when empty
	nIdx  atomic.Int32 // valid offset index entries
	nTidx atomic.Int32 // valid time index entries

	// Writer state, guarded by Log.appendMu. The files are open while the
	// active segment is awake (from its first write until it has been
	// idle for Config.IdleUnmap) and, once sealed, until a sync has
	// covered its last write.
	logF, idxF, tidxF         *os.File
	awake                     bool  // files open, indexes mapped read-write
	memIdx                    bool  // awake, indexes in memory: no index files open (persistIndexes)
	logRes, idxRes, tidxRes   int64 // bytes reserved on disk
	resStep                   int64 // the log's current reservation step
	lastReserve, lastWrite    time.Time
	cfg                       *Config // the log's, from markActive on
	sinceIndex                int     // log bytes since the last index entry
	lastTidxTS                int64   // timestamp of the last time index entry
	created                   time.Time
	capacity, idxCap, tidxCap int // bytes mapped while active

	mu      sync.Mutex // guards the fields below
	logM    *mapping   // nil until first use when sealed
	idxM    *mapping
	tidxM   *mapping
	active  bool
	lastUse time.Time
	checked bool // sealed indexes verified against the log

	interval int // index interval in bytes, for rebuilds

	// gapsBelow is the log's cleaner checkpoint when the segment was
	// opened or written by the cleaner: batches below it may leave offset
	// gaps and hold fewer records than their offset span (cleaner.go).
	gapsBelow int64
	gone      bool // replaced by the cleaner; under mu (acquire fails with errSegmentGone)

	txn *txnIndex // aborted transactions (txnindex.go); nil if none; guarded by Log.txnMu
}

func segmentPaths(dir string, base int64) (string, string, string) {
	name := fmt.Sprintf("%020d", base)
	return filepath.Join(dir, name+".log"), filepath.Join(dir, name+".index"), filepath.Join(dir, name+".timeindex")
}

func newSegmentStruct(dir string, base int64, interval int) *segment {
	s := &segment{base: base, interval: interval}
	s.logPath, s.idxPath, s.tidxPath = segmentPaths(dir, base)
	s.next.Store(base)
	s.maxTS.Store(-1)
	s.lastTidxTS = -1
	return s
}

// createSegment makes a new, empty, active segment. Stale files of the same
// name (left by a crash during a roll or a truncation) are replaced. Its
// files are opened and mapped by the first write (wake), not here: a log
// that is created and never written holds no file open.
func createSegment(dir string, base int64, cfg *Config, now time.Time) (*segment, error) {
	s := newSegmentStruct(dir, base, cfg.IndexIntervalBytes)
	s.created = now
	// The index files are made by the first write (wake); stale ones go.
	for _, p := range []string{s.idxPath, s.tidxPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	f, err := os.OpenFile(s.logPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	f.Close()
	s.markActive(cfg)
	return s, nil
}

// markActive makes s the segment that takes appends, without opening or
// mapping anything: wake does that on the first write. Called with
// Log.appendMu held (or before the log is shared).
func (s *segment) markActive(cfg *Config) {
	s.cfg = cfg
	s.capacity = int(max(cfg.SegmentBytes, s.size.Load()))
	s.idxCap = cfg.MaxIndexBytes / offsetEntrySize * offsetEntrySize
	s.tidxCap = cfg.MaxIndexBytes / timeEntrySize * timeEntrySize
	s.mu.Lock()
	s.active = true
	s.checked = true
	// A log mapping made while the segment was sealed ends at its size:
	// the next reader maps it at capacity.
	s.logM.release()
	s.logM = nil
	s.mu.Unlock()
}

// memIndexSyncBytes is the size from which a sync gives the active
// segment's in-memory indexes their files. Recovery is correct without
// them (it scans the segment from its start, see recoverSegment), but
// with them it resumes after the last indexed batch below the recovery
// point: a crash rescans at most this much more than the unflushed tail.
const memIndexSyncBytes = 4 << 20

// memIndexMaxBytes is the size from which a write gives the active
// segment's in-memory indexes their files, whether or not a sync came:
// it bounds the memory they take (about 5 bytes per KiB of log), which
// unlike the file's pages cannot be written back and dropped.
const memIndexMaxBytes = 64 << 20

// eagerIndexFiles makes wake create the index files at once, as the first
// write did before indexes were kept in memory (a knob for benchmarks).
var eagerIndexFiles = false

// wake opens the active segment for appending: files read-write, the log
// mapped at its full capacity (read-only: writes go through pwrite), the
// indexes mapped read-write (in memory if they have no entries yet).
// Mappings a reader made while the segment slept are replaced. Called
// with Log.appendMu held.
func (s *segment) wake(cfg *Config) error {
	if s.awake {
		return nil
	}
	err := s.openWriter(cfg)
	if err != nil {
		s.closeFiles()
		return err
	}
	s.awake = true
	return nil
}

func (s *segment) openWriter(cfg *Config) error {
	var err error
	// A new log's first segment has no file until its first write.
	if s.logF, err = os.OpenFile(s.logPath, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return err
	}
	if fi, err := s.logF.Stat(); err == nil {
		s.logRes = fi.Size()
	}
	if s.nIdx.Load() == 0 && s.nTidx.Load() == 0 && !eagerIndexFiles {
		// Nothing to carry over: the indexes start in memory. An index
		// file left on disk is replaced when they get their files, and
		// recovery checks any entry it would use.
		idxM, err := mapAnon(s.idxCap)
		if err != nil {
			return err
		}
		tidxM, err := mapAnon(s.tidxCap)
		if err != nil {
			idxM.release()
			return err
		}
		s.memIdx = true
		s.idxRes, s.tidxRes = 0, 0
		s.swapIndexMappings(idxM, tidxM, cfg.Now())
		return nil
	}
	// The index files are cut to their entries: past them, nothing is
	// allocated, so reserve before the first write through the mapping.
	if s.idxF, err = openIndex(s.idxPath, int64(s.nIdx.Load())*offsetEntrySize); err != nil {
		return err
	}
	s.idxRes = int64(s.nIdx.Load()) * offsetEntrySize
	if s.tidxF, err = openIndex(s.tidxPath, int64(s.nTidx.Load())*timeEntrySize); err != nil {
		return err
	}
	s.tidxRes = int64(s.nTidx.Load()) * timeEntrySize
	idxM, err := mapFile(s.idxF, s.idxCap, true)
	if err != nil {
		return err
	}
	tidxM, err := mapFile(s.tidxF, s.tidxCap, true)
	if err != nil {
		idxM.release()
		return err
	}
	// The log itself is mapped by its first reader (mapActiveLocked):
	// writes go through pwrite.
	s.swapIndexMappings(idxM, tidxM, cfg.Now())
	return nil
}

// swapIndexMappings makes idxM and tidxM the indexes readers and the
// writer use. Readers holding the old ones keep them until they release
// them.
func (s *segment) swapIndexMappings(idxM, tidxM *mapping, now time.Time) {
	s.mu.Lock()
	s.idxM.release()
	s.tidxM.release()
	s.idxM, s.tidxM = idxM, tidxM
	s.lastUse = now
	s.mu.Unlock()
}

// persistIndexes gives indexes kept in memory their files: each created
// with the entries so far and mapped read-write in place of the memory,
// as wake maps the indexes of a segment that has files. Nothing changes
// on failure (a file may be left with some entries; recovery checks
// them). Called with Log.appendMu held.
func (s *segment) persistIndexes() error {
	if !s.memIdx {
		return nil
	}
	ni, nt := int64(s.nIdx.Load())*offsetEntrySize, int64(s.nTidx.Load())*timeEntrySize
	idxF, err := writeIndexFile(s.idxPath, s.idxM.data[:ni])
	if err != nil {
		return fmt.Errorf("commitlog: segment %d: cannot write index: %w", s.base, err)
	}
	tidxF, err := writeIndexFile(s.tidxPath, s.tidxM.data[:nt])
	if err != nil {
		idxF.Close()
		return fmt.Errorf("commitlog: segment %d: cannot write time index: %w", s.base, err)
	}
	idxM, err := mapFile(idxF, s.idxCap, true)
	if err == nil {
		var tidxM *mapping
		if tidxM, err = mapFile(tidxF, s.tidxCap, true); err == nil {
			s.idxF, s.tidxF = idxF, tidxF
			s.idxRes, s.tidxRes = ni, nt
			s.memIdx = false
			s.swapIndexMappings(idxM, tidxM, s.cfg.Now())
			return nil
		}
		idxM.release()
	}
	idxF.Close()
	tidxF.Close()
	return fmt.Errorf("commitlog: segment %d: %w", s.base, err)
}

// writeIndexFile creates (or empties) an index file and writes entries to
// it; the file stays open read-write.
func writeIndexFile(path string, entries []byte) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	if len(entries) > 0 {
		if _, err := f.WriteAt(entries, 0); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// openIndex opens an index file read-write, cut to its n bytes of entries.
func openIndex(path string, n int64) (*os.File, error) {
	if n == 0 {
		return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(n); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sleep closes an idle active segment: the log's reservation is given
// back (the file cut to its batches), the index files cut to their
// entries, every file closed and the owner's mappings dropped (readers
// keep theirs until they release them). The next write wakes it. Called
// with Log.syncMu and Log.appendMu held, once a sync has covered it.
func (s *segment) sleep() error {
	if !s.awake {
		return nil
	}
	if err := s.persistIndexes(); err != nil {
		return err
	}
	var err error
	if e := s.logF.Truncate(s.size.Load()); e != nil {
		err = e
	}
	if e := s.idxF.Truncate(int64(s.nIdx.Load()) * offsetEntrySize); e != nil && err == nil {
		err = e
	}
	if e := s.tidxF.Truncate(int64(s.nTidx.Load()) * timeEntrySize); e != nil && err == nil {
		err = e
	}
	s.closeFiles()
	s.logRes, s.idxRes, s.tidxRes = 0, 0, 0
	s.resStep = 0
	s.mu.Lock()
	s.dropMappingsLocked()
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("commitlog: segment %d: cannot cut reserved space: %w", s.base, err)
	}
	return nil
}

// openSealed describes an existing segment without touching its contents;
// mappings come on first use.
func openSealed(dir string, base int64, interval int) (*segment, error) {
	s := newSegmentStruct(dir, base, interval)
	fi, err := os.Stat(s.logPath)
	if err != nil {
		return nil, err
	}
	s.size.Store(fi.Size())
	s.created = fi.ModTime()
	return s, nil
}

// fits reports whether n more bytes and one more index entry of each kind
// fit in the active segment.
func (s *segment) fits(n int) bool {
	if s.size.Load()+int64(n) > int64(s.capacity) {
		return false
	}
	return int(s.nIdx.Load()+1)*offsetEntrySize <= s.idxCap && int(s.nTidx.Load()+2)*timeEntrySize <= s.tidxCap
}

// minReserveStep is the first step in which a segment's log reserves
// disk space ahead of its end.
const minReserveStep = 64 << 10

// reserveGrowWindow is how soon a reservation must be used up for the
// next step to double. Each fallocate costs tens of microseconds whatever
// its size, so a log written steadily, even slowly (a thousand partitions
// sharing a few hundred MB/s get a few hundred KB/s each), should reach
// steps of megabytes: with a window of one second those logs stayed at
// 256-512 KiB and called fallocate about once a second each.
const reserveGrowWindow = 10 * time.Second

// growStep sets the next reservation step from the write rate: it doubles
// when the previous reservation was used up within reserveGrowWindow, up
// to Config.PreallocateBytes, and halves otherwise, down to 64 KiB. As it
// only doubles, a step is never much larger than what the log took before
// it: a log that takes a little data holds little reserved space; a busy
// one reserves in large steps and calls fallocate rarely.
func (s *segment) growStep(cfg *Config, now time.Time) {
	lo := min(int64(minReserveStep), cfg.PreallocateBytes)
	switch {
	case s.resStep == 0:
		s.resStep = lo
	case now.Sub(s.lastReserve) < reserveGrowWindow:
		s.resStep = min(s.resStep*2, cfg.PreallocateBytes)
	default:
		s.resStep = max(s.resStep/2, lo)
	}
	s.resStep = max(s.resStep, lo)
	s.lastReserve = now
}

// ensureReserved grows the on-disk reservation of f to at least need bytes,
// in steps of chunk, clipped to limit. A full disk fails here, before any
// byte is written; the caller's state is untouched.
func ensureReserved(f *os.File, have *int64, need, chunk, limit int64) error {
	if need <= *have {
		return nil
	}
	want := min(max(need, *have+chunk), limit)
	want = max(want, need)
	if err := reserve(f, want); err != nil {
		if want > need && errors.Is(err, errNoSpace) {
			// Not enough room for a whole chunk: take only what this write needs.
			if err2 := reserve(f, need); err2 == nil {
				*have = need
				return nil
			}
		}
		return err
	}
	*have = want
	return nil
}

// write appends whole batches (already validated and given offsets) at the
// end of the log and indexes them. It returns a sticky error only when bytes
// may have reached the file; a failed reservation leaves everything as it was.
func (s *segment) write(buf []byte, batches []Batch, cfg *Config) (sticky bool, err error) {
	if err := s.wake(cfg); err != nil {
		return false, fmt.Errorf("commitlog: segment %d: cannot open: %w", s.base, err)
	}
	pos := s.size.Load()
	if s.memIdx && pos >= memIndexMaxBytes {
		if err := s.persistIndexes(); err != nil {
			return false, err
		}
	}
	end := pos + int64(len(buf))
	now := cfg.Now()
	s.lastWrite = now
	if end > s.logRes {
		s.growStep(cfg, now)
	}
	if err := ensureReserved(s.logF, &s.logRes, end, s.resStep, int64(s.capacity)); err != nil {
		return false, fmt.Errorf("commitlog: segment %d: cannot reserve space: %w", s.base, err)
	}
	// Index space is reserved ahead as well, so index writes through the
	// mapping never touch unallocated pages (indexes in memory need none).
	if !s.memIdx {
		if err := ensureReserved(s.idxF, &s.idxRes, int64(s.nIdx.Load()+int32(len(batches)))*offsetEntrySize, indexChunk, int64(s.idxCap)); err != nil {
			return false, fmt.Errorf("commitlog: segment %d: cannot reserve index space: %w", s.base, err)
		}
		if err := ensureReserved(s.tidxF, &s.tidxRes, int64(s.nTidx.Load()+int32(len(batches))+1)*timeEntrySize, indexChunk, int64(s.tidxCap)); err != nil {
			return false, fmt.Errorf("commitlog: segment %d: cannot reserve index space: %w", s.base, err)
		}
	}
	if _, err := s.logF.WriteAt(buf, pos); err != nil {
		return true, fmt.Errorf("commitlog: segment %d: write at %d: %w", s.base, pos, err)
	}
	p := pos
	for _, b := range batches {
		s.indexBatch(b, p, cfg.IndexIntervalBytes)
		p += int64(b.Size)
	}
	s.size.Store(end)
	s.next.Store(batches[len(batches)-1].NextOffset())
	return false, nil
}

// indexBatch adds index entries for the batch written at pos when at least
// interval bytes have gone by since the last entry (the first batch of a
// segment is always indexed). Entries are written before the counts that
// publish them.
func (s *segment) indexBatch(b Batch, pos int64, interval int) {
	if b.MaxTimestamp > s.maxTS.Load() {
		s.maxTS.Store(b.MaxTimestamp)
	}
	s.sinceIndex += b.Size
	if s.nIdx.Load() > 0 && s.sinceIndex < interval {
		return
	}
	s.sinceIndex = 0
	n := s.nIdx.Load()
	if int(n+1)*offsetEntrySize <= s.idxCap {
		e := s.idxM.data[int(n)*offsetEntrySize:]
		binary.BigEndian.PutUint32(e, uint32(b.LastOffset()-s.base))
		binary.BigEndian.PutUint32(e[4:], uint32(pos))
		s.nIdx.Store(n + 1)
	}
	s.maybeTimeEntry(s.maxTS.Load(), b.LastOffset())
}

func (s *segment) maybeTimeEntry(ts, offset int64) {
	if ts <= s.lastTidxTS {
		return
	}
	n := s.nTidx.Load()
	if int(n+1)*timeEntrySize > s.tidxCap {
		return
	}
	e := s.tidxM.data[int(n)*timeEntrySize:]
	binary.BigEndian.PutUint64(e, uint64(ts))
	binary.BigEndian.PutUint32(e[8:], uint32(offset-s.base))
	s.lastTidxTS = ts
	s.nTidx.Store(n + 1)
}

// seal ends the segment's active life: a last time index entry for its
// largest timestamp, indexes kept in memory written to their files, and
// the files cut to their contents. The files stay open until a sync
// covers them.
func (s *segment) seal() error {
	if !s.awake && s.cfg != nil {
		if err := s.wake(s.cfg); err != nil {
			return err
		}
	}
	if ts := s.maxTS.Load(); ts >= 0 && ts > s.lastTidxTS && s.next.Load() > s.base {
		// Find the offset of the largest timestamp's batch: the last one
		// that reached it. Cheap: at most one index interval to scan.
		s.maybeTimeEntry(ts, s.next.Load()-1)
	}
	if err := s.persistIndexes(); err != nil {
		return err
	}
	if err := s.logF.Truncate(s.size.Load()); err != nil {
		return err
	}
	if err := s.idxF.Truncate(int64(s.nIdx.Load()) * offsetEntrySize); err != nil {
		return err
	}
	if err := s.tidxF.Truncate(int64(s.nTidx.Load()) * timeEntrySize); err != nil {
		return err
	}
	s.logRes, s.idxRes, s.tidxRes = s.size.Load(), int64(s.nIdx.Load())*offsetEntrySize, int64(s.nTidx.Load())*timeEntrySize
	s.mu.Lock()
	s.active = false
	s.mu.Unlock()
	return nil
}

// syncFiles fsyncs the segment's three files, through a file opened for
// the purpose where the writer's is closed.
func (s *segment) syncFiles() error {
	for i, f := range []*os.File{s.logF, s.idxF, s.tidxF} {
		var err error
		if f == nil {
			err = fsyncPath([]string{s.logPath, s.idxPath, s.tidxPath}[i])
		} else {
			err = f.Sync()
		}
		if err != nil {
			return fmt.Errorf("commitlog: segment %d: fsync %s: %w", s.base, filepath.Base([]string{s.logPath, s.idxPath, s.tidxPath}[i]), err)
		}
	}
	return nil
}

// syncLog fsyncs the log file only: through f, its open file as the
// caller read it under appendMu, or through its path when it was closed.
func (s *segment) syncLog(f *os.File) error {
	var err error
	if f == nil {
		err = fsyncPath(s.logPath)
	} else {
		err = f.Sync()
	}
	if err != nil {
		return fmt.Errorf("commitlog: segment %d: fsync: %w", s.base, err)
	}
	return nil
}

// fsyncPath fsyncs a file that nobody holds open; a missing file has
// nothing to sync.
func fsyncPath(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (s *segment) closeFiles() {
	s.awake = false
	s.memIdx = false
	for _, f := range []**os.File{&s.logF, &s.idxF, &s.tidxF} {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
}

// dropMappingsLocked releases the owner's references; readers holding views
// keep theirs. Called with s.mu held.
func (s *segment) dropMappingsLocked() {
	s.logM.release()
	s.idxM.release()
	s.tidxM.release()
	s.logM, s.idxM, s.tidxM = nil, nil, nil
}

func (s *segment) removeFiles() error {
	var first error
	for _, p := range []string{s.logPath, s.idxPath, s.tidxPath, txnIndexPath(s)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = err
		}
	}
	return first
}

// refs is the set of mappings a reader holds while it looks at a segment.
type refs struct {
	log, idx, tidx *mapping
	size           int64
	nIdx, nTidx    int32
}

func (r *refs) release() {
	r.log.release()
	r.idx.release()
	r.tidx.release()
}

// acquire maps the segment if needed and takes a reference on each mapping.
// Sealed indexes are checked against the log on their first use and rebuilt
// if damaged.
func (s *segment) acquire(now time.Time) (refs, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return refs{}, errSegmentGone
	}
	s.lastUse = now
	var err error
	switch {
	case s.active:
		err = s.mapActiveLocked()
	case s.logM == nil:
		err = s.mapSealedLocked()
	}
	if err != nil {
		return refs{}, err
	}
	r := refs{log: s.logM, idx: s.idxM, tidx: s.tidxM, size: s.size.Load(), nIdx: s.nIdx.Load(), nTidx: s.nTidx.Load()}
	for _, m := range []*mapping{r.log, r.idx, r.tidx} {
		if m.data != nil {
			m.acquire()
		}
	}
	return r, nil
}

func mapReadOnly(path string, size int64) (*mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return mapFile(f, int(size), false)
}

// mapActiveLocked maps what readers of the active segment need and is
// not mapped yet: the log at its capacity (so that later appends stay
// visible through it; nothing while it is empty), and, while the segment
// sleeps, the indexes as far as their entries go (wake replaces these
// with read-write mappings).
func (s *segment) mapActiveLocked() error {
	size := s.size.Load()
	if s.logM == nil || (s.logM.data == nil && size > 0) {
		m := &mapping{}
		if size > 0 {
			var err error
			if m, err = mapReadOnly(s.logPath, int64(s.capacity)); err != nil {
				return fmt.Errorf("commitlog: segment %d: %w", s.base, err)
			}
		}
		s.logM.release()
		s.logM = m
	}
	if s.idxM == nil {
		m, err := mapEntries(s.idxPath, int64(s.nIdx.Load())*offsetEntrySize)
		if err != nil {
			return fmt.Errorf("commitlog: segment %d: %w", s.base, err)
		}
		s.idxM = m
	}
	if s.tidxM == nil {
		m, err := mapEntries(s.tidxPath, int64(s.nTidx.Load())*timeEntrySize)
		if err != nil {
			return fmt.Errorf("commitlog: segment %d: %w", s.base, err)
		}
		s.tidxM = m
	}
	return nil
}

// mapEntries maps n bytes of an index file read-only; nothing when n is 0.
func mapEntries(path string, n int64) (*mapping, error) {
	if n == 0 {
		return &mapping{}, nil
	}
	return mapReadOnly(path, n)
}

// mapSealedLocked maps a sealed segment read-only, verifying (once) that its
// indexes agree with the log and rebuilding them if not.
func (s *segment) mapSealedLocked() error {
	size := s.size.Load()
	logM, err := mapReadOnly(s.logPath, size)
	if err != nil {
		return fmt.Errorf("commitlog: segment %d: %w", s.base, err)
	}
	if !s.checked {
		if err := s.checkIndexes(logM.data[:size]); err != nil {
			logM.release()
			return err
		}
		s.checked = true
		if s.size.Load() != size {
			// The check cut reserved space off the file: map what is left.
			logM.release()
			if logM, err = mapReadOnly(s.logPath, s.size.Load()); err != nil {
				return fmt.Errorf("commitlog: segment %d: %w", s.base, err)
			}
		}
	}
	// Indexes still mapped from the segment's active life (it awaits a
	// sync) are kept: they hold every entry.
	idxM, tidxM := s.idxM, s.tidxM
	if idxM == nil {
		if idxM, err = mapReadOnly(s.idxPath, int64(s.nIdx.Load())*offsetEntrySize); err != nil {
			logM.release()
			return fmt.Errorf("commitlog: segment %d: %w", s.base, err)
		}
	}
	if tidxM == nil {
		if tidxM, err = mapReadOnly(s.tidxPath, int64(s.nTidx.Load())*timeEntrySize); err != nil {
			logM.release()
			if idxM != s.idxM {
				idxM.release()
			}
			return fmt.Errorf("commitlog: segment %d: %w", s.base, err)
		}
	}
	s.logM, s.idxM, s.tidxM = logM, idxM, tidxM
	return nil
}

// checkIndexes verifies a sealed segment's index files: whole entries,
// strictly increasing, pointing inside the log at batch starts. Damaged or
// missing indexes are rebuilt from the log.
func (s *segment) checkIndexes(data []byte) error {
	idx, err1 := os.ReadFile(s.idxPath)
	tidx, err2 := os.ReadFile(s.tidxPath)
	if err1 == nil && err2 == nil && s.indexesSane(idx, tidx, data) {
		s.nIdx.Store(int32(len(idx) / offsetEntrySize))
		s.nTidx.Store(int32(len(tidx) / timeEntrySize))
		if n := len(tidx); n >= timeEntrySize {
			s.maxTS.Store(int64(binary.BigEndian.Uint64(tidx[n-timeEntrySize:])))
		}
		return nil
	}
	return s.rebuildIndexes(data)
}

func (s *segment) indexesSane(idx, tidx, data []byte) bool {
	if len(idx)%offsetEntrySize != 0 || len(tidx)%timeEntrySize != 0 {
		return false
	}
	if len(data) > 0 && len(idx) == 0 {
		return false
	}
	span := s.next.Load() - s.base
	prevRel, prevPos := int64(-1), int64(-1)
	for i := 0; i < len(idx); i += offsetEntrySize {
		rel := int64(binary.BigEndian.Uint32(idx[i:]))
		pos := int64(binary.BigEndian.Uint32(idx[i+4:]))
		if rel <= prevRel || pos <= prevPos || rel >= span || pos+HeaderSize > int64(len(data)) {
			return false
		}
		b, err := ParseHeader(data[pos:])
		if err != nil || b.LastOffset() != s.base+rel {
			return false
		}
		prevRel, prevPos = rel, pos
	}
	prevTS, prevRel := int64(-1<<63), int64(-1)
	for i := 0; i < len(tidx); i += timeEntrySize {
		ts := int64(binary.BigEndian.Uint64(tidx[i:]))
		rel := int64(binary.BigEndian.Uint32(tidx[i+8:]))
		if ts < prevTS || rel < prevRel || rel >= span {
			return false
		}
		prevTS, prevRel = ts, rel
	}
	return true
}

// rebuildIndexes scans a sealed segment's batches (headers and lengths; the
// CRCs were verified when the data was first recovered) and writes fresh
// index files. Damage in the log itself is corruption: this data lies below
// the recovery point.
func (s *segment) rebuildIndexes(data []byte) error {
	var idx, tidx []byte
	since, lastTS, maxTS := 0, int64(-1), int64(-1)
	pos, want := 0, s.base
	for pos < len(data) {
		b, err := ParseHeader(data[pos:])
		if err != nil && want == s.next.Load() && allZero(data[pos:]) {
			// Every batch is there and the rest is reserved space: the
			// segment was rolled but its seal (cutting the file to its
			// batches) did not happen or did not reach the disk. Finish it.
			if err := os.Truncate(s.logPath, int64(pos)); err != nil {
				return fmt.Errorf("commitlog: segment %d: cannot cut reserved space: %w", s.base, err)
			}
			s.size.Store(int64(pos))
			break
		}
		if err != nil {
			return fmt.Errorf("%w: segment %d at position %d: %v", ErrCorrupt, s.base, pos, err)
		}
		if b.BaseOffset != want && !s.gapAllowed(want, b) {
			return fmt.Errorf("%w: segment %d at position %d: batch offset %d, want %d", ErrCorrupt, s.base, pos, b.BaseOffset, want)
		}
		maxTS = max(maxTS, b.MaxTimestamp)
		since += b.Size
		if len(idx) == 0 || since >= s.interval {
			since = 0
			idx = binary.BigEndian.AppendUint32(idx, uint32(b.LastOffset()-s.base))
			idx = binary.BigEndian.AppendUint32(idx, uint32(pos))
			if maxTS > lastTS {
				tidx = binary.BigEndian.AppendUint64(tidx, uint64(maxTS))
				tidx = binary.BigEndian.AppendUint32(tidx, uint32(b.LastOffset()-s.base))
				lastTS = maxTS
			}
		}
		want = b.NextOffset()
		pos += b.Size
	}
	if want != s.next.Load() && !(want < s.next.Load() && s.next.Load() <= s.gapsBelow) {
		return fmt.Errorf("%w: segment %d ends at offset %d, the next segment starts at %d", ErrCorrupt, s.base, want, s.next.Load())
	}
	if maxTS > lastTS {
		tidx = binary.BigEndian.AppendUint64(tidx, uint64(maxTS))
		tidx = binary.BigEndian.AppendUint32(tidx, uint32(want-1-s.base))
	}
	if err := writeFileAtomic(s.idxPath, idx); err != nil {
		return err
	}
	if err := writeFileAtomic(s.tidxPath, tidx); err != nil {
		return err
	}
	s.nIdx.Store(int32(len(idx) / offsetEntrySize))
	s.nTidx.Store(int32(len(tidx) / timeEntrySize))
	s.maxTS.Store(maxTS)
	return nil
}

// lookupPos returns the position of an indexed batch at or before the one
// holding offset: where a scan for offset starts.
func (r *refs) lookupPos(base, offset int64) int64 {
	n := int(r.nIdx)
	if n == 0 || r.idx == nil || r.idx.data == nil {
		return 0
	}
	d := r.idx.data
	i := sort.Search(n, func(i int) bool {
		return base+int64(binary.BigEndian.Uint32(d[i*offsetEntrySize:])) > offset
	})
	if i == 0 {
		return 0
	}
	return int64(binary.BigEndian.Uint32(d[(i-1)*offsetEntrySize+4:]))
}

// lookupTime returns an offset below which every record is older than ts
// (-1 if the index knows none).
func (r *refs) lookupTime(base, ts int64) int64 {
	n := int(r.nTidx)
	if n == 0 || r.tidx == nil || r.tidx.data == nil {
		return -1
	}
	d := r.tidx.data
	i := sort.Search(n, func(i int) bool {
		return int64(binary.BigEndian.Uint64(d[i*timeEntrySize:])) >= ts
	})
	if i == 0 {
		return -1
	}
	return base + int64(binary.BigEndian.Uint32(d[(i-1)*timeEntrySize+8:]))
}

// readLastTimeEntry returns the timestamp of a sealed segment's last time
// index entry without mapping it (-1 if none or unreadable).
func readLastTimeEntry(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < timeEntrySize || fi.Size()%timeEntrySize != 0 {
		return -1
	}
	var e [timeEntrySize]byte
	if _, err := f.ReadAt(e[:], fi.Size()-timeEntrySize); err != nil && err != io.EOF {
		return -1
	}
	return int64(binary.BigEndian.Uint64(e[:]))
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func (s *segment) isActive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}
