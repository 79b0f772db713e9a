package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// # .txnindex: the aborted transactions of a segment
//
// Kafka's transaction index: one entry per aborted transaction whose abort
// marker is in the segment, in marker order, each 34 bytes, big-endian:
//
//	+---------+-------------+-------------+-------------+------------------+
//	| version | producerId  | firstOffset | lastOffset  | lastStableOffset |
//	| int16=0 | int64       | int64       | int64       | int64            |
//	+---------+-------------+-------------+-------------+------------------+
//
// firstOffset is the offset of the transaction's first data batch,
// lastOffset that of its abort marker, lastStableOffset the partition's
// last stable offset once the transaction was aborted (the first offset
// of the oldest transaction still open, or lastOffset+1). A read of
// [from, to) needs the entries with lastOffset >= from and firstOffset <
// to; it walks the segments from the one holding from and stops at the
// first entry whose lastStableOffset is past to (every later aborted
// transaction starts at or after it).
//
// The log's owner computes the entries (it knows where transactions
// start) and adds them with AddAbortedTxn once the marker is appended; the
// file is created on the first entry, appended to without fsync, and made
// durable by SyncTxnIndex. Open drops entries that do not parse, that
// are out of order, or whose marker is not (any more) in the log, and the
// owner adds again the entries of the markers it replays (AddAbortedTxn
// ignores one it has): an owner that replays from a state saved after a
// SyncTxnIndex finds every entry. Truncation cuts the entries past the new
// end, retention deletes the file with its segment, and the cleaner
// writes the entries of a cleaned segment beside it and swaps them in
// with it; a cleaning during which an entry is added to its segments
// gives up rather than lose it (swapIn).

const (
	txnEntrySize  = 2 + 8 + 8 + 8 + 8
	txnIndexExt   = "txnindex"
	txnIndexDotEx = "." + txnIndexExt
)

// AbortedTxn is an aborted transaction as a segment's transaction index
// keeps it.
type AbortedTxn struct {
	ProducerID       int64
	FirstOffset      int64 // the transaction's first data batch
	LastOffset       int64 // its abort marker
	LastStableOffset int64 // the partition's last stable offset once it was aborted
}

// txnIndex is a segment's aborted transactions, mirrored in memory.
// Guarded by Log.txnMu.
type txnIndex struct {
	entries []AbortedTxn // ascending LastOffset
	dirty   bool         // written since the last SyncTxnIndex
	created bool         // file created since the last SyncTxnIndex (the directory needs a sync)
	torn    bool         // a write failed: the file is rewritten whole by the next one
}

// ErrTxnIndex marks a transaction index entry that cannot be decoded.
var ErrTxnIndex = errors.New("commitlog: bad transaction index entry")

func txnIndexPath(s *segment) string { return txnPathFor(s.logPath) }

// txnPathFor is the transaction index path of the segment log at logPath.
func txnPathFor(logPath string) string {
	return strings.TrimSuffix(logPath, ".log") + txnIndexDotEx
}

func appendTxnEntry(b []byte, a AbortedTxn) []byte {
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(a.ProducerID))
	b = binary.BigEndian.AppendUint64(b, uint64(a.FirstOffset))
	b = binary.BigEndian.AppendUint64(b, uint64(a.LastOffset))
	return binary.BigEndian.AppendUint64(b, uint64(a.LastStableOffset))
}

// DecodeTxnEntry decodes one transaction index entry: version 0, a
// producer id and offsets that are not negative, the first offset at or
// below the marker's, the last stable offset at most one past it.
func DecodeTxnEntry(b []byte) (AbortedTxn, error) {
	if len(b) < txnEntrySize {
		return AbortedTxn{}, fmt.Errorf("%w: %d bytes", ErrTxnIndex, len(b))
	}
	if v := binary.BigEndian.Uint16(b); v != 0 {
		return AbortedTxn{}, fmt.Errorf("%w: version %d", ErrTxnIndex, v)
	}
	a := AbortedTxn{
		ProducerID:       int64(binary.BigEndian.Uint64(b[2:])),
		FirstOffset:      int64(binary.BigEndian.Uint64(b[10:])),
		LastOffset:       int64(binary.BigEndian.Uint64(b[18:])),
		LastStableOffset: int64(binary.BigEndian.Uint64(b[26:])),
	}
	if a.ProducerID < 0 || a.FirstOffset < 0 || a.FirstOffset > a.LastOffset || a.LastStableOffset < 0 || a.LastStableOffset > a.LastOffset+1 {
		return AbortedTxn{}, fmt.Errorf("%w: producer %d offsets %d-%d stable %d", ErrTxnIndex, a.ProducerID, a.FirstOffset, a.LastOffset, a.LastStableOffset)
	}
	return a, nil
}

func encodeTxnEntries(es []AbortedTxn) []byte {
	b := make([]byte, 0, len(es)*txnEntrySize)
	for _, e := range es {
		b = appendTxnEntry(b, e)
	}
	return b
}

// loadTxnIndexes reads the transaction indexes of the recovered segments
// (those listSegments saw) and keeps their entries whose marker is in the
// segment, in order, after the entries of the segments before; a file
// with others is rewritten without them. Called by Open.
func (l *Log) loadTxnIndexes(segs []*segment, have map[int64]bool) error {
	prev := int64(-1)
	for _, s := range segs {
		if !have[s.base] {
			continue
		}
		path := txnIndexPath(s)
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("commitlog: segment %d: %w", s.base, err)
		}
		var es []AbortedTxn
		bad := len(data)%txnEntrySize != 0
		for p := 0; p+txnEntrySize <= len(data); p += txnEntrySize {
			a, err := DecodeTxnEntry(data[p:])
			if err != nil || a.LastOffset <= prev || a.LastOffset < s.base || a.LastOffset >= s.next.Load() {
				bad = true
				break
			}
			es = append(es, a)
			prev = a.LastOffset
		}
		if bad {
			l.log.Warn().Int64("segment", s.base).Int("kept", len(es)).Msg("cut transaction index")
			if err := writeFileRename(path, encodeTxnEntries(es)); err != nil {
				return fmt.Errorf("commitlog: segment %d: cannot rewrite transaction index: %w", s.base, err)
			}
		}
		s.txn = &txnIndex{entries: es, dirty: bad}
		if bad {
			l.txnDirty.Store(true)
		}
	}
	return nil
}

// AddAbortedTxn adds an aborted transaction to the transaction index of
// the segment holding its marker (a.LastOffset, which must be in the log).
// An entry for that marker already there is kept as it is; one below the
// log start is not added. The entry is written to the file, not fsynced:
// SyncTxnIndex does that.
func (l *Log) AddAbortedTxn(a AbortedTxn) error {
	if a.ProducerID < 0 || a.FirstOffset < 0 || a.FirstOffset > a.LastOffset || a.LastStableOffset < 0 || a.LastStableOffset > a.LastOffset+1 {
		return fmt.Errorf("%w: producer %d offsets %d-%d stable %d", ErrTxnIndex, a.ProducerID, a.FirstOffset, a.LastOffset, a.LastStableOffset)
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	if a.LastOffset >= l.leo.Load() {
		return fmt.Errorf("commitlog: aborted transaction marker %d past the log end %d", a.LastOffset, l.leo.Load())
	}
	if a.LastOffset < l.logStart.Load() || a.LastOffset < l.segs[0].base {
		return nil
	}
	k := len(l.segs) - 1
	for l.segs[k].base > a.LastOffset {
		k--
	}
	s := l.segs[k]
	l.txnMu.Lock()
	defer l.txnMu.Unlock()
	ti := s.txn
	if ti == nil {
		ti = &txnIndex{}
	}
	i, found := slices.BinarySearchFunc(ti.entries, a.LastOffset, func(e AbortedTxn, off int64) int {
		switch {
		case e.LastOffset < off:
			return -1
		case e.LastOffset > off:
			return 1
		}
		return 0
	})
	if found {
		return nil
	}
	path := txnIndexPath(s)
	if s.txn != nil && i == len(ti.entries) && !ti.torn {
		if err := appendFile(path, appendTxnEntry(nil, a)); err != nil {
			ti.torn = true // rewrite the file whole next time
			return fmt.Errorf("commitlog: segment %d: cannot write transaction index: %w", s.base, err)
		}
		ti.entries = append(ti.entries, a)
	} else {
		// The first entry (a stale file is replaced), one missing before
		// the last (a replay filling a hole), or after a failed write.
		es := slices.Insert(slices.Clone(ti.entries), i, a)
		if err := writeFileRename(path, encodeTxnEntries(es)); err != nil {
			return fmt.Errorf("commitlog: segment %d: cannot write transaction index: %w", s.base, err)
		}
		ti.entries, ti.torn = es, false
		if s.txn == nil {
			ti.created = true
			s.txn = ti
		}
	}
	ti.dirty = true
	l.txnDirty.Store(true)
	return nil
}

// appendFile appends data to the file at path.
func appendFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// AbortedTxns returns the aborted transactions that a reader of offsets
// [from, to) must know of, oldest marker first: those whose marker is at
// or after from (and the log start) and whose first batch is before to.
// It reads the transaction indexes of the segment holding from and of
// later ones until an entry shows that no later transaction starts below
// to.
func (l *Log) AbortedTxns(from, to int64) []AbortedTxn {
	l.mu.RLock()
	segs := l.segs
	l.mu.RUnlock()
	from = max(from, l.logStart.Load())
	k := 0
	for k+1 < len(segs) && segs[k+1].base <= from {
		k++
	}
	var out []AbortedTxn
	l.txnMu.Lock()
	defer l.txnMu.Unlock()
	for _, s := range segs[k:] {
		if s.txn == nil {
			continue
		}
		for _, e := range s.txn.entries {
			if e.LastOffset < from {
				continue
			}
			if e.FirstOffset < to {
				out = append(out, e)
			}
			if e.LastStableOffset > to {
				return out
			}
		}
	}
	return out
}

// SyncTxnIndex makes the transaction index entries added so far durable.
// An owner that saves its own state as of an offset calls it first, so
// that a restart from that state finds every entry below it.
func (l *Log) SyncTxnIndex() error {
	if !l.txnDirty.Load() {
		return nil // the common case: no abort since the last call
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.appendMu.Lock()
	if l.closed.Load() {
		l.appendMu.Unlock()
		return ErrClosed
	}
	var paths []string
	var pending []*txnIndex
	dir := false
	l.txnMu.Lock()
	l.txnDirty.Store(false)
	for _, s := range l.segs {
		if s.txn != nil && s.txn.dirty {
			paths = append(paths, txnIndexPath(s))
			pending = append(pending, s.txn)
			dir = dir || s.txn.created
			s.txn.dirty, s.txn.created = false, false
		}
	}
	l.txnMu.Unlock()
	l.appendMu.Unlock()
	// syncMu keeps truncation, retention and swaps (which remove files)
	// away meanwhile.
	var err error
	for _, p := range paths {
		if err = fsyncPath(p); err != nil {
			break
		}
	}
	if err == nil && dir {
		err = syncDir(l.dir)
	}
	if err != nil {
		l.txnMu.Lock()
		for _, ti := range pending {
			ti.dirty = true
			ti.created = ti.created || dir
		}
		l.txnDirty.Store(true)
		l.txnMu.Unlock()
		return fmt.Errorf("commitlog: cannot sync transaction index: %w", err)
	}
	return nil
}

// truncateTxnIndex drops the entries of s whose marker is at or after
// end and makes the cut durable. Called with appendMu held.
func (l *Log) truncateTxnIndex(s *segment, end int64) error {
	l.txnMu.Lock()
	defer l.txnMu.Unlock()
	ti := s.txn
	if ti == nil {
		return nil
	}
	n := len(ti.entries)
	for n > 0 && ti.entries[n-1].LastOffset >= end {
		n--
	}
	if n == len(ti.entries) {
		return nil
	}
	path := txnIndexPath(s)
	if err := os.Truncate(path, int64(n)*txnEntrySize); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("commitlog: segment %d: cannot cut transaction index: %w", s.base, err)
	}
	if err := fsyncPath(path); err != nil {
		return fmt.Errorf("commitlog: segment %d: cannot sync transaction index: %w", s.base, err)
	}
	ti.entries = ti.entries[:n:n]
	return nil
}

// txnEntriesOf returns the entries of the segments g, in order.
func (l *Log) txnEntriesOf(g []*segment) (out []AbortedTxn, any bool) {
	l.txnMu.Lock()
	defer l.txnMu.Unlock()
	for _, s := range g {
		if s.txn != nil {
			any = true
			out = append(out, s.txn.entries...)
		}
	}
	return out, any
}
