package commitlog

import (
	"fmt"
	"path/filepath"
	"time"
)

// DeleteBefore makes offset the new log start (Kafka's DeleteRecords, the
// spool's release after an acknowledgement): records below it are no longer
// readable and whole segments below it are deleted. offset may not pass the
// high watermark. It returns the new log start.
func (l *Log) DeleteBefore(offset int64) (int64, error) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed.Load() {
		return 0, ErrClosed
	}
	if hw := l.hw.Load(); offset > hw {
		return 0, fmt.Errorf("%w: cannot delete below %d, past the high watermark %d", ErrOffsetOutOfRange, offset, hw)
	}
	if offset <= l.logStart.Load() {
		return l.logStart.Load(), nil
	}
	if err := l.setLogStart(offset); err != nil {
		return 0, err
	}
	return offset, l.deleteSegmentsBelow(offset)
}

// setLogStart records a new log start. Called with syncMu and appendMu held.
func (l *Log) setLogStart(offset int64) error {
	l.logStart.Store(offset)
	l.epochMu.Lock()
	l.epochs = truncateEpochsFront(l.epochs, offset)
	l.epochMu.Unlock()
	// Replaced atomically but not fsynced: a power cut may bring back an
	// older log start (records reappear, never vanish), as with Kafka's
	// periodic log-start checkpoint. Owners that need the release point
	// durable keep it themselves (the edge's uplink does).
	if err := writeFileRename(filepath.Join(l.dir, logStartFile), encodeOffset(offset)); err != nil {
		return fmt.Errorf("commitlog: cannot write log start checkpoint: %w", err)
	}
	return nil
}

// deleteSegmentsBelow deletes segments that end at or before offset. The
// active segment goes too, once rolled, when all its records are below
// offset and it holds any. Called with syncMu and appendMu held.
func (l *Log) deleteSegmentsBelow(offset int64) error {
	// An active segment whose records are all below offset is rolled away
	// once it holds a quarter of a segment: often enough to give the
	// space back, rarely enough that a queue emptied at every release
	// (the edge's spool) does not create and delete files each time.
	if active := l.segs[len(l.segs)-1]; active.size.Load() >= l.cfg.SegmentBytes/4 && active.next.Load() <= offset {
		if err := l.roll(); err != nil {
			return err
		}
	}
	n := 0
	for n < len(l.segs)-1 && l.segs[n].next.Load() <= offset {
		n++
	}
	return l.deleteFront(n, "below log start")
}

// deleteFront deletes the n oldest segments. Called with syncMu and
// appendMu held; never deletes the active segment.
func (l *Log) deleteFront(n int, why string) error {
	if n <= 0 {
		return nil
	}
	if n >= len(l.segs) {
		panic("commitlog: deleting the active segment")
	}
	gone := l.segs[:n]
	l.mu.Lock()
	l.segs = append([]*segment(nil), l.segs[n:]...)
	l.mu.Unlock()
	var firstErr error
	for _, s := range gone {
		l.forgetUnsynced(s)
		s.closeFiles()
		s.mu.Lock()
		s.dropMappingsLocked()
		s.mu.Unlock()
		if err := s.removeFiles(); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("commitlog: cannot delete segment %d: %w", s.base, err)
		}
		l.stats.segmentsDeleted.Add(1)
		l.log.Debug().Int64("segment", s.base).Str("reason", why).Msg("deleted segment")
	}
	l.dirDirty = true
	if start := l.segs[0].base; start > l.logStart.Load() {
		if err := l.setLogStart(start); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

func (l *Log) forgetUnsynced(s *segment) {
	for i, u := range l.unsynced {
		if u == s {
			l.unsynced = append(l.unsynced[:i], l.unsynced[i+1:]...)
			return
		}
	}
}

// TruncateTo removes every record at or after offset (replication uses it
// when a follower's log diverges from its leader's). A truncation point
// inside a batch cuts the whole batch. The cut bytes are zeroed on disk and
// the result made durable before TruncateTo returns, so a crash cannot bring
// them back. It returns the new log end.
func (l *Log) TruncateTo(offset int64) (int64, error) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed.Load() {
		return 0, ErrClosed
	}
	if l.werr != nil {
		return 0, l.werr
	}
	if offset >= l.leo.Load() {
		return l.leo.Load(), nil
	}
	if offset < l.logStart.Load() {
		return 0, fmt.Errorf("%w: cannot truncate to %d, below the log start %d", ErrOffsetOutOfRange, offset, l.logStart.Load())
	}
	k := len(l.segs) - 1
	for k > 0 && l.segs[k].base > offset {
		k--
	}
	s := l.segs[k]
	if k > 0 && offset <= s.base {
		// Cutting at a segment's first batch: drop the segment whole and
		// continue in the previous one.
		k--
		s = l.segs[k]
	}
	newEnd, newNext, err := l.findCut(s, offset)
	if err != nil {
		return 0, err
	}
	// In a compacted log the cut may fall in a gap: the log then ends at
	// offset, not at the next batch that exists.
	newNext = min(newNext, offset)
	l.cutFrom = min(l.cutFrom, newNext)
	// Drop later segments.
	later := l.segs[k+1:]
	l.mu.Lock()
	l.segs = append([]*segment(nil), l.segs[:k+1]...)
	l.mu.Unlock()
	for _, d := range later {
		l.forgetUnsynced(d)
		d.closeFiles()
		d.mu.Lock()
		d.dropMappingsLocked()
		d.mu.Unlock()
		if err := d.removeFiles(); err != nil {
			l.fail(fmt.Errorf("commitlog: cannot delete segment %d: %w", d.base, err))
			return 0, l.werr
		}
		l.stats.segmentsDeleted.Add(1)
	}
	if !s.isActive() {
		// A sealed segment becomes the active one again.
		l.forgetUnsynced(s)
		s.created = l.cfg.Now()
		s.markActive(&l.cfg)
	}
	if err := s.wake(&l.cfg); err != nil {
		l.fail(fmt.Errorf("commitlog: cannot reactivate segment %d: %w", s.base, err))
		return 0, l.werr
	}
	if err := l.cutSegment(s, newEnd, newNext); err != nil {
		l.fail(err)
		return 0, err
	}
	if err := s.persistIndexes(); err != nil {
		l.fail(err)
		return 0, err
	}
	if err := l.truncateTxnIndex(s, newNext); err != nil {
		l.fail(err)
		return 0, err
	}
	l.leo.Store(newNext)
	if l.hw.Load() > newNext {
		l.hw.Store(newNext)
	}
	if l.durable.Load() > newNext {
		l.durable.Store(newNext)
	}
	if err := l.lowerCleanedTo(newNext); err != nil {
		l.fail(fmt.Errorf("commitlog: truncate: %w", err))
		return 0, l.werr
	}
	l.epochMu.Lock()
	for len(l.epochs) > 0 && l.epochs[len(l.epochs)-1].StartOffset >= newNext {
		l.epochs = l.epochs[:len(l.epochs)-1]
	}
	l.epochMu.Unlock()
	err = writeFileAtomic(filepath.Join(l.dir, epochFile), encodeEpochs(l.epochsCopy()))
	if err == nil {
		err = s.syncFiles()
	}
	if err == nil {
		err = syncDir(l.dir)
	}
	if err == nil {
		err = l.writeRecoveryPoint(min(l.durable.Load(), newNext), true)
	}
	if err != nil {
		l.fail(fmt.Errorf("commitlog: truncate: %w", err))
		return 0, l.werr
	}
	l.durable.Store(newNext)
	l.log.Info().Int64("offset", newNext).Msg("truncated log")
	return newNext, nil
}

// findCut returns the position and offset of the first batch of s whose
// last offset is at or after offset.
func (l *Log) findCut(s *segment, offset int64) (int64, int64, error) {
	r, err := s.acquire(l.cfg.Now())
	if err != nil {
		return 0, 0, err
	}
	defer r.release()
	data := r.log.data[:r.size]
	pos := r.lookupPos(s.base, offset)
	for pos < int64(len(data)) {
		b, err := ParseHeader(data[pos:])
		if err != nil {
			return 0, 0, fmt.Errorf("%w: segment %d at position %d: %v", ErrCorrupt, s.base, pos, err)
		}
		if b.LastOffset() >= offset {
			return pos, b.BaseOffset, nil
		}
		pos += int64(b.Size)
	}
	return int64(len(data)), s.next.Load(), nil
}

// cutSegment ends the active segment s at position end (offset next):
// zeroes the bytes after it, drops index entries past it and recomputes its
// largest timestamp. Called with appendMu held.
func (l *Log) cutSegment(s *segment, end, next int64) error {
	fi, err := s.logF.Stat()
	if err != nil {
		return err
	}
	if err := zeroRange(s.logF, end, fi.Size()-end); err != nil {
		return fmt.Errorf("commitlog: segment %d: cannot zero the cut tail: %w", s.base, err)
	}
	s.size.Store(end)
	s.next.Store(next)
	r, err := s.acquire(l.cfg.Now())
	if err != nil {
		return err
	}
	defer r.release()
	data := r.log.data[:end]
	n := s.nIdx.Load()
	for n > 0 && int64(be32(s.idxM.data[int(n-1)*offsetEntrySize+4:])) >= end {
		n--
	}
	s.nIdx.Store(n)
	t := s.nTidx.Load()
	for t > 0 && s.base+int64(be32(s.tidxM.data[int(t-1)*timeEntrySize+8:])) >= next {
		t--
	}
	s.nTidx.Store(t)
	s.lastTidxTS = -1
	if t > 0 {
		s.lastTidxTS = int64(be64(s.tidxM.data[int(t-1)*timeEntrySize:]))
	}
	maxTS := int64(-1)
	lastIdx := int64(0)
	if n > 0 {
		lastIdx = int64(be32(s.idxM.data[int(n-1)*offsetEntrySize+4:]))
	}
	for p := int64(0); p < end; {
		b, err := ParseHeader(data[p:])
		if err != nil {
			return fmt.Errorf("%w: segment %d at position %d: %v", ErrCorrupt, s.base, p, err)
		}
		maxTS = max(maxTS, b.MaxTimestamp)
		p += int64(b.Size)
	}
	s.maxTS.Store(maxTS)
	s.sinceIndex = int(end - lastIdx)
	return nil
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func be64(b []byte) uint64 { return uint64(be32(b))<<32 | uint64(be32(b[4:])) }

// Maintain does the periodic work: deletes segments past the retention
// limits (only below the high watermark), rolls an active segment past its
// age, and unmaps sealed segments idle for Config.IdleUnmap. Owners call it
// every few seconds.
func (l *Log) Maintain(now time.Time) error {
	if l.closed.Load() {
		return ErrClosed
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.appendMu.Lock()
	err := l.retainLocked(now)
	l.appendMu.Unlock()
	if err == nil {
		err = l.sleepIfIdle(now)
	}

	l.appendMu.Lock()
	l.mu.RLock()
	for _, s := range l.segs {
		s.mu.Lock()
		if s.logM != nil && !s.awake && now.Sub(s.lastUse) >= l.cfg.IdleUnmap {
			s.dropMappingsLocked()
		}
		s.mu.Unlock()
	}
	l.mu.RUnlock()
	l.appendMu.Unlock()
	return err
}

// sleepIfIdle closes the active segment once nothing has been appended for
// Config.IdleUnmap: pending writes are synced first (the files are about to
// close), then its files are closed, its reservation given back and its
// mappings dropped, along with the recovery point's file. The next append
// opens them again. Called with syncMu held.
func (l *Log) sleepIfIdle(now time.Time) error {
	l.appendMu.Lock()
	active := l.segs[len(l.segs)-1]
	busy := active.awake || len(l.unsynced) > 0 || l.dirDirty || l.epochDirty || l.rpFile != nil || l.durable.Load() < l.leo.Load()
	idle := busy && now.Sub(active.lastWrite) >= l.cfg.IdleUnmap && l.werr == nil
	l.appendMu.Unlock()
	if !idle {
		return nil
	}
	if l.durable.Load() < l.leo.Load() || l.hasUnsynced() {
		if err := l.syncLocked(); err != nil {
			return err
		}
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if active != l.segs[len(l.segs)-1] || now.Sub(active.lastWrite) < l.cfg.IdleUnmap ||
		l.durable.Load() < l.leo.Load() || len(l.unsynced) > 0 {
		return nil // written or rolled meanwhile
	}
	if err := active.sleep(); err != nil {
		l.fail(err)
		return err
	}
	if l.rpFile != nil {
		l.rpFile.Close()
		l.rpFile = nil
	}
	return nil
}

func (l *Log) hasUnsynced() bool {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	return len(l.unsynced) > 0 || l.dirDirty || l.epochDirty
}

func (l *Log) retainLocked(now time.Time) error {
	if l.werr != nil {
		return l.werr
	}
	hw := l.hw.Load()
	active := l.segs[len(l.segs)-1]
	maxAge := l.cfg.SegmentMaxAge
	if l.cfg.Cleanup.Compacts() {
		// A compacted log rolls by max.compaction.lag.ms too, so that
		// its active segment becomes cleanable in time.
		maxAge = min(maxAge, max(l.cfg.MaxCompactionLag, time.Millisecond))
	}
	if active.size.Load() > 0 && now.Sub(active.created) >= maxAge {
		if err := l.roll(); err != nil {
			return err
		}
	}
	if l.cfg.RetentionAge >= 0 && l.cfg.Cleanup.Deletes() {
		cutoff := now.Add(-l.cfg.RetentionAge).UnixMilli()
		if a := l.segs[len(l.segs)-1]; a.size.Load() > 0 && a.maxTS.Load() < cutoff && a.next.Load() <= hw {
			// Everything has expired: roll so the active segment can go.
			if err := l.roll(); err != nil {
				return err
			}
		}
		n := 0
		for n < len(l.segs)-1 {
			s := l.segs[n]
			if s.maxTS.Load() >= cutoff || s.next.Load() > hw {
				break
			}
			n++
		}
		if err := l.deleteFront(n, "retention.ms"); err != nil {
			return err
		}
	}
	if l.cfg.RetentionBytes >= 0 && l.cfg.Cleanup.Deletes() {
		var total int64
		for _, s := range l.segs {
			total += s.size.Load()
		}
		n := 0
		for n < len(l.segs)-1 {
			s := l.segs[n]
			if total-s.size.Load() < l.cfg.RetentionBytes || s.next.Load() > hw {
				break
			}
			total -= s.size.Load()
			n++
		}
		if err := l.deleteFront(n, "retention.bytes"); err != nil {
			return err
		}
	}
	return nil
}

// LeaderEpochs returns the leader epoch history: the first offset each
// epoch wrote, oldest first.
func (l *Log) LeaderEpochs() []EpochEntry { return l.epochsCopy() }

func (l *Log) epochsCopy() []EpochEntry {
	l.epochMu.RLock()
	defer l.epochMu.RUnlock()
	return append([]EpochEntry(nil), l.epochs...)
}

// EndOffsetForEpoch answers Kafka's OffsetForLeaderEpoch: the largest epoch
// at or below the one asked for, and the offset where it ended (the start
// of the next epoch, or the log end for the latest). It returns (-1, -1)
// when the log knows no such epoch.
func (l *Log) EndOffsetForEpoch(epoch int32) (int32, int64) {
	l.epochMu.RLock()
	defer l.epochMu.RUnlock()
	for i := len(l.epochs) - 1; i >= 0; i-- {
		if l.epochs[i].Epoch <= epoch {
			if i == len(l.epochs)-1 {
				return l.epochs[i].Epoch, l.leo.Load()
			}
			return l.epochs[i].Epoch, l.epochs[i+1].StartOffset
		}
	}
	return -1, -1
}

// truncateEpochsFront drops epochs that end before start and moves the
// start of the first remaining one up to start, as Kafka does when the log
// start advances.
func truncateEpochsFront(es []EpochEntry, start int64) []EpochEntry {
	i := 0
	for i+1 < len(es) && es[i+1].StartOffset <= start {
		i++
	}
	es = append([]EpochEntry(nil), es[i:]...)
	if len(es) > 0 && es[0].StartOffset < start {
		es[0].StartOffset = start
	}
	return es
}

// SegmentInfo describes one segment of a log.
type SegmentInfo struct {
	Base, Next   int64 // offsets [Base, Next)
	Bytes        int64
	MaxTimestamp int64 // newest batch timestamp; -1 when empty
}

// Segments lists the log's segments, oldest first; the last is active.
func (l *Log) Segments() []SegmentInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]SegmentInfo, len(l.segs))
	for i, s := range l.segs {
		out[i] = SegmentInfo{Base: s.base, Next: s.next.Load(), Bytes: s.size.Load(), MaxTimestamp: s.maxTS.Load()}
	}
	return out
}

// Roll seals the active segment, if it holds anything, and starts a new
// one, so that everything written so far can be deleted as whole segments.
func (l *Log) Roll() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	if l.werr != nil {
		return l.werr
	}
	if l.segs[len(l.segs)-1].size.Load() == 0 {
		return nil
	}
	return l.roll()
}
