package commitlog

import (
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// View is a run of whole batches read from a segment's mapping, without a
// copy. Data stays valid until Release, even if the segment is deleted or
// unmapped meanwhile. A View with no Data means nothing is readable yet at
// the requested offset.
type View struct {
	Data  []byte // whole batches, as stored
	First int64  // base offset of the first batch (may precede the offset asked for)
	Next  int64  // offset after the last batch: where the next read starts
	m     *mapping
}

// Release gives the view's bytes back. Data must not be used afterwards.
func (v *View) Release() {
	if v.m != nil {
		v.m.release()
		v.m = nil
		v.Data = nil
	}
}

// Read returns whole batches from the one holding offset up to maxBytes,
// below the high watermark. The first batch is returned whole even if it is
// larger than maxBytes, as Kafka's fetch does, so a reader always makes
// progress. Reads do not cross segments: read again from View.Next.
func (l *Log) Read(offset int64, maxBytes int) (View, error) {
	return l.read(offset, maxBytes, l.hw.Load())
}

// ReadUncommitted is Read bounded by the log end instead of the high
// watermark: what a follower replicating the log needs.
func (l *Log) ReadUncommitted(offset int64, maxBytes int) (View, error) {
	return l.read(offset, maxBytes, l.leo.Load())
}

// segmentFor returns the segment whose range may hold offset.
func (l *Log) segmentFor(offset int64) *segment {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset })
	return l.segs[max(i-1, 0)]
}

func (l *Log) read(offset int64, maxBytes int, limit int64) (View, error) {
	if l.closed.Load() {
		return View{}, ErrClosed
	}
	start, end := l.logStart.Load(), l.leo.Load()
	if offset < start || offset > end {
		return View{}, fmt.Errorf("%w: offset %d, log holds [%d, %d)", ErrOffsetOutOfRange, offset, start, end)
	}
	if offset >= limit {
		return View{First: offset, Next: offset}, nil
	}
	s := l.segmentFor(offset)
	r, err := s.acquire(l.cfg.Now())
	for err == errSegmentGone {
		// The cleaner swapped the segment out: its successor is listed.
		s = l.segmentFor(offset)
		r, err = s.acquire(l.cfg.Now())
	}
	if err != nil {
		return View{}, err
	}
	data := r.log.data[:r.size]
	pos := r.lookupPos(s.base, offset)
	for pos < int64(len(data)) {
		_, size, last, err := scanHeader(data, pos)
		if err != nil {
			r.release()
			return View{}, fmt.Errorf("%w: segment %d: %v", ErrCorrupt, s.base, err)
		}
		if last >= offset {
			break
		}
		pos += size
	}
	from, first, next := pos, int64(-1), offset
	for pos < int64(len(data)) {
		base, size, last, err := scanHeader(data, pos)
		if err != nil {
			r.release()
			return View{}, fmt.Errorf("%w: segment %d: %v", ErrCorrupt, s.base, err)
		}
		if last+1 > limit || (first >= 0 && pos-from+size > int64(maxBytes)) {
			break
		}
		if first < 0 {
			first = base
		}
		next = last + 1
		pos += size
	}
	if first < 0 {
		r.release()
		if next := l.segmentAfter(s); next != nil && pos >= int64(len(data)) && next.base <= limit {
			// Compaction left no batch at or after offset in this
			// segment: the read goes on in the next one.
			return l.read(max(offset, next.base), maxBytes, limit)
		}
		return View{First: offset, Next: offset}, nil
	}
	r.idx.release()
	r.tidx.release()
	return View{Data: data[from:pos], First: first, Next: next, m: r.log}, nil
}

// segmentAfter returns the segment that follows s, or nil.
func (l *Log) segmentAfter(s *segment) *segment {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > s.base })
	if i < len(l.segs) {
		return l.segs[i]
	}
	return nil
}

// decompressor is safe for concurrent use.
var decompressor = kgo.DefaultDecompressor()

// Records calls fn for each record of the batch in raw (as returned by
// ValidateBatch/Batches), with its absolute offset and timestamp,
// decompressing the batch if needed. fn returns false to stop.
func Records(b Batch, raw []byte, fn func(offset, timestamp int64, r *kmsg.Record) bool) error {
	return records(b, raw, false, fn)
}

// RecordsShared is Records for a batch that nobody changes while its
// records are in use: the header keys fn sees are strings that share
// raw's bytes (or the batch's decompressed records) instead of copies, so
// a record costs no allocation. The bytes must not change for as long as
// any of those strings is kept.
func RecordsShared(b Batch, raw []byte, fn func(offset, timestamp int64, r *kmsg.Record) bool) error {
	return records(b, raw, true, fn)
}

func records(b Batch, raw []byte, shared bool, fn func(offset, timestamp int64, r *kmsg.Record) bool) error {
	recs := raw[HeaderSize:b.Size]
	if c := b.Compression(); c != CompressionNone {
		out, err := decompressor.Decompress(recs, kgo.CompressionCodecType(c))
		if err != nil {
			return fmt.Errorf("%w: batch %d: cannot decompress: %v", ErrInvalidBatch, b.BaseOffset, err)
		}
		recs = out
	}
	var r kmsg.Record
	for i := int32(0); i < b.NumRecords; i++ {
		n, size := varint(recs)
		if size <= 0 || n < 0 || int64(size)+n > int64(len(recs)) {
			return fmt.Errorf("%w: batch %d: record %d truncated", ErrInvalidBatch, b.BaseOffset, i)
		}
		end := size + int(n)
		read := r.ReadFrom
		if shared {
			read = r.UnsafeReadFrom
		}
		if err := read(recs[:end]); err != nil {
			return fmt.Errorf("%w: batch %d: record %d: %v", ErrInvalidBatch, b.BaseOffset, i, err)
		}
		if !fn(b.BaseOffset+int64(r.OffsetDelta), b.FirstTimestamp+r.TimestampDelta64, &r) {
			return nil
		}
		recs = recs[end:]
	}
	return nil
}

// varint decodes a zig-zag varint (Kafka's record length) and returns it
// with the number of bytes it took, or size <= 0 on bad input.
func varint(b []byte) (int64, int) {
	var ux uint64
	var s uint
	for i, c := range b {
		if i == 10 {
			return 0, -1
		}
		if c < 0x80 {
			ux |= uint64(c) << s
			x := int64(ux >> 1)
			if ux&1 != 0 {
				x = ^x
			}
			return x, i + 1
		}
		ux |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, 0
}

// OffsetForTimestamp returns the first offset whose record timestamp is at
// or after ts (Kafka's ListOffsets by time), with that record's timestamp.
// found is false when every readable record is older.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool, err error) {
	limit := l.hw.Load()
	start := l.logStart.Load()
	l.mu.RLock()
	segs := append([]*segment(nil), l.segs...)
	l.mu.RUnlock()
	for _, s := range segs {
		if s.next.Load() <= start || s.maxTS.Load() < ts {
			continue
		}
		r, err := s.acquire(l.cfg.Now())
		if err == errSegmentGone {
			return l.OffsetForTimestamp(ts) // swapped by the cleaner: look again
		}
		if err != nil {
			return 0, 0, false, err
		}
		from := max(r.lookupTime(s.base, ts)+1, start, s.base)
		data := r.log.data[:r.size]
		pos := r.lookupPos(s.base, from)
		for pos < int64(len(data)) {
			b, err := ParseHeader(data[pos:])
			if err != nil {
				r.release()
				return 0, 0, false, fmt.Errorf("%w: segment %d at position %d: %v", ErrCorrupt, s.base, pos, err)
			}
			if b.NextOffset() > limit {
				break
			}
			if b.LastOffset() >= from && b.MaxTimestamp >= ts {
				rerr := Records(b, data[pos:pos+int64(b.Size)], func(o, t int64, _ *kmsg.Record) bool {
					if o >= from && t >= ts {
						offset, timestamp, found = o, t, true
						return false
					}
					return true
				})
				if rerr != nil || !found {
					// Unreadable records, or a MaxTimestamp the records do
					// not bear out: answer at batch granularity.
					offset, timestamp, found = max(b.BaseOffset, from), b.MaxTimestamp, true
				}
				r.release()
				return offset, timestamp, true, nil
			}
			pos += int64(b.Size)
		}
		r.release()
	}
	return 0, 0, false, nil
}

// scanHeader reads just what a read needs from the stored batch at pos:
// base offset, size and last offset. Stored batches were validated on
// append; this checks only that the length and magic are sane, and falls
// back to ParseHeader to explain a failure.
func scanHeader(data []byte, pos int64) (base, size, last int64, err error) {
	b := data[pos:]
	if len(b) >= HeaderSize && b[offMagic] == Magic {
		length := int64(int32(be32(b[offLength:])))
		if length >= HeaderSize-lengthPrefix && length+lengthPrefix <= int64(len(b)) {
			base = int64(be64(b[offBaseOffset:]))
			return base, length + lengthPrefix, base + int64(int32(be32(b[offLastOffsetDelta:]))), nil
		}
	}
	if _, err := ParseHeader(b); err != nil {
		return 0, 0, 0, fmt.Errorf("position %d: %w", pos, err)
	}
	return 0, 0, 0, fmt.Errorf("position %d: bad batch header", pos)
}
