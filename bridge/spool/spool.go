package spool

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// SyncPolicy says when an accepted message is made durable.
type SyncPolicy uint8

const (
	// SyncAlways fsyncs before Append returns (before the device's
	// PUBACK): survives a power cut. Concurrent appends share fsyncs.
	SyncAlways SyncPolicy = iota
	// SyncBatch fsyncs in the background every SyncInterval: survives a
	// crash of the edge process at once, a power cut after the interval.
	SyncBatch
	// SyncNever leaves flushing to the OS: survives a process crash only.
	SyncNever
)

func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncBatch:
		return "batch"
	case SyncNever:
		return "never"
	}
	return "unknown"
}

// ParseSyncPolicy is the inverse of SyncPolicy.String.
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	for _, p := range []SyncPolicy{SyncAlways, SyncBatch, SyncNever} {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("spool: unknown sync policy %q: want always, batch or never", s)
}

// Config configures a Spool.
type Config struct {
	// Sync is the durability policy for accepted messages.
	Sync SyncPolicy
	// SyncInterval is the fsync period of SyncBatch.
	SyncInterval time.Duration
	// CommitDelay is how long the telemetry lane waits under SyncAlways,
	// when its last write carried at least 64 messages (many devices
	// publishing at once), for more messages to join the next write and
	// fsync. 0: never. Alarms never wait; neither does a lane at a
	// device's pace. See appender.run.
	CommitDelay time.Duration
	// MaxBytes is the disk budget of both lanes together. When an append
	// would pass it, the oldest telemetry is evicted; alarms never are.
	MaxBytes int64
	// MaxAge expires records older than this that are still spooled (0:
	// never). Expired records are counted, like evicted ones.
	MaxAge time.Duration
	// SegmentBytes is the size of the lanes' log segments: the unit of
	// eviction and of reclaiming space after delivery.
	SegmentBytes int64
	// MaxMessageBytes bounds one message (key, value and headers).
	MaxMessageBytes int
	// Logger receives spool events. Zero value: no logs.
	Logger zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns a power-cut-safe spool with a 1 GiB budget.
func DefaultConfig() Config {
	return Config{
		Sync:            SyncAlways,
		SyncInterval:    100 * time.Millisecond,
		CommitDelay:     2 * time.Millisecond,
		MaxBytes:        1 << 30,
		SegmentBytes:    8 << 20,
		MaxMessageBytes: 1 << 20,
		Logger:          zerolog.Nop(),
	}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Sync > SyncNever:
		return fmt.Errorf("spool: unknown sync policy %d", c.Sync)
	case c.Sync == SyncBatch && c.SyncInterval <= 0:
		return errors.New("spool: the batch sync policy needs a positive SyncInterval")
	case c.SegmentBytes < 64<<10:
		return fmt.Errorf("spool: SegmentBytes %d below 64 KiB", c.SegmentBytes)
	case c.MaxBytes < 4*c.SegmentBytes:
		return fmt.Errorf("spool: MaxBytes %d must be at least 4 segments (%d)", c.MaxBytes, 4*c.SegmentBytes)
	case c.MaxMessageBytes <= 0 || int64(c.MaxMessageBytes)+4096 > c.SegmentBytes:
		return fmt.Errorf("spool: MaxMessageBytes %d must be positive and fit a segment", c.MaxMessageBytes)
	case c.MaxAge < 0:
		return errors.New("spool: negative MaxAge")
	case c.CommitDelay < 0 || c.CommitDelay > time.Second:
		return fmt.Errorf("spool: CommitDelay %v outside [0, 1s]", c.CommitDelay)
	}
	return nil
}

// Spool is the edge's store-and-forward queue: one segment log per lane,
// records stored as RecordBatch v2 (the core topic in a header), released
// once the core acknowledged them.
//
// Every accepted message ends in exactly one of four counters: delivered
// (released after an acknowledgement), evicted (budget), expired (MaxAge),
// or still spooled.
//
// A release only moves the lane's start (Start, Read and Stats follow it
// at once); the log itself is trimmed to it later, by the maintenance
// goroutine (once a second), by admit when the budget is short, and by
// Close. Trimming writes the log's start checkpoint and may roll and
// delete segment files, with the log's append lock held: done at every
// release, it kept the next message of the lane (an alarm, at the alarm
// lane's one release per alarm) waiting behind file-system work. The
// checkpoint is not fsynced either way, so what the uplink's saved plan
// covers after a crash is unchanged: records released and not yet
// trimmed come back like records released before a power cut, and the
// uplink sends its saved window again (the core recognises it).
type Spool struct {
	cfg       Config
	log       zerolog.Logger
	lanes     [numLanes]*commitlog.Log
	appenders [numLanes]*appender // Submit's group commit, one goroutine each

	budgetMu sync.Mutex   // serializes budget checks and evictions
	pending  atomic.Int64 // bytes admitted but not yet appended

	// acctMu, one per lane, makes the lane's counters and start offset
	// change together, so Stats never shows a record both spooled and
	// delivered (or neither). Taken after budgetMu; never two at once.
	// One per lane so that the alarm lane's appender never waits for a
	// telemetry eviction.
	acctMu                                [numLanes]sync.Mutex
	accepted, delivered, evicted, expired [numLanes]atomic.Int64
	expiredPending                        [numLanes]int64 // Expire'd, not released yet; under acctMu[lane]
	// released is each lane's start as the uplink released it: the log
	// is trimmed to it lazily (see trim), so the lane starts at the
	// greater of it and the log's own start. Written under acctMu[lane].
	released     [numLanes]atomic.Int64
	bytesEvicted atomic.Int64

	quit chan struct{}
	wg   sync.WaitGroup
}

// topicHeader carries the core topic of a spooled record; the uplink
// strips it.
const topicHeader = "fluxo.core_topic"

// Open opens or creates the spool in dir (one subdirectory per lane) and
// recovers it.
func Open(dir string, cfg Config) (*Spool, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Spool{cfg: cfg, log: cfg.Logger, quit: make(chan struct{})}
	for l := Lane(0); l < numLanes; l++ {
		lc := commitlog.DefaultConfig()
		lc.SegmentBytes = cfg.SegmentBytes
		lc.MaxBatchBytes = int(cfg.SegmentBytes)
		lc.PreallocateBytes = min(lc.PreallocateBytes, cfg.SegmentBytes/4)
		lc.MaxIndexBytes = 1 << 20
		lc.Now = cfg.Now
		lc.Logger = cfg.Logger.With().Str("lane", l.String()).Logger()
		// SyncAlways: Append and the appenders fsync themselves, once
		// per call or round, not the log once per batch.
		if cfg.Sync == SyncBatch {
			lc.FlushInterval = cfg.SyncInterval
		}
		log, err := commitlog.Open(filepath.Join(dir, l.String()), lc)
		if err != nil {
			s.closeLanes()
			return nil, fmt.Errorf("spool: lane %s: %w", l, err)
		}
		s.lanes[l] = log
	}
	for l := range s.appenders {
		a := newAppender(s, Lane(l))
		s.appenders[l] = a
		go a.run()
	}
	s.wg.Add(1)
	go s.maintain()
	return s, nil
}

// check refuses a message that is too large or names no lane, and
// returns its size (key, value, topic and headers).
func (s *Spool) check(m Message) (int, error) {
	n := len(m.Key) + len(m.Value) + len(m.Topic)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	if n > s.cfg.MaxMessageBytes {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, s.cfg.MaxMessageBytes)
	}
	if m.Lane >= numLanes {
		return 0, fmt.Errorf("spool: unknown lane %d", m.Lane)
	}
	return n, nil
}

// Append stores messages and returns once they are as durable as the sync
// policy promises. Either all are stored or none: ErrFull when the budget
// cannot make room, ErrTooLarge for an oversized message. Submit is the
// asynchronous form for one message, and shares writes and fsyncs with
// other messages.
func (s *Spool) Append(msgs ...Message) error {
	var batches [numLanes][]kmsg.Record
	var first [numLanes]time.Time
	var size int64
	for _, m := range msgs {
		n, err := s.check(m)
		if err != nil {
			return err
		}
		if len(batches[m.Lane]) == 0 {
			first[m.Lane] = m.Time
		}
		hs := make([]kmsg.Header, 0, len(m.Headers)+1)
		hs = append(hs, kmsg.Header{Key: topicHeader, Value: []byte(m.Topic)})
		hs = append(hs, m.Headers...)
		batches[m.Lane] = append(batches[m.Lane], kmsg.Record{
			Key: m.Key, Value: m.Value, Headers: hs,
			TimestampDelta64: m.Time.Sub(first[m.Lane]).Milliseconds(),
		})
		size += int64(n) + 32
	}
	var bufs [numLanes][]byte
	for l := range batches {
		if len(batches[l]) > 0 {
			bufs[l] = commitlog.AppendBatch(nil, commitlog.NoProducer(first[l].UnixMilli()), batches[l])
			size += int64(len(bufs[l]))
		}
	}
	if err := s.admit(size); err != nil {
		return err
	}
	defer s.pending.Add(-size)
	for l := range bufs {
		if bufs[l] == nil {
			continue
		}
		res, err := s.lanes[l].Append(bufs[l])
		if err == nil && s.cfg.Sync == SyncAlways {
			err = s.lanes[l].Sync()
		}
		if err != nil {
			return s.appendError(Lane(l), err)
		}
		s.acctMu[l].Lock()
		s.lanes[l].SetHighWatermark(res.LastOffset + 1)
		s.accepted[l].Add(int64(len(batches[l])))
		s.acctMu[l].Unlock()
	}
	return nil
}

// admit makes room for size more bytes within the budget, evicting the
// oldest telemetry if needed.
func (s *Spool) admit(size int64) error {
	s.budgetMu.Lock()
	defer s.budgetMu.Unlock()
	if s.size()+s.pending.Load()+size > s.cfg.MaxBytes {
		// Delivered records first: they may still be on disk.
		s.trim()
	}
	for s.size()+s.pending.Load()+size > s.cfg.MaxBytes {
		if !s.evictOldestTelemetry("budget") {
			return fmt.Errorf("%w: %d of %d bytes used, nothing left to evict", ErrFull, s.size(), s.cfg.MaxBytes)
		}
	}
	s.pending.Add(size)
	return nil
}

func (s *Spool) size() int64 {
	return s.lanes[Alarm].Size() + s.lanes[Telemetry].Size()
}

// evictOldestTelemetry drops the oldest telemetry segment, undelivered
// records and all. It reports whether anything was freed.
func (s *Spool) evictOldestTelemetry(why string) bool {
	l := s.lanes[Telemetry]
	segs := l.Segments()
	if len(segs) == 0 || segs[0].Bytes == 0 {
		return false
	}
	if len(segs) == 1 {
		// Only the active segment: seal it so it can go whole.
		if err := l.Roll(); err != nil {
			s.log.Error().Err(err).Msg("cannot roll telemetry for eviction")
			return false
		}
		segs = l.Segments()
	}
	s.acctMu[Telemetry].Lock()
	defer s.acctMu[Telemetry].Unlock()
	start := s.Start(Telemetry)
	to := segs[0].Next
	n := max(to-start, 0) // records below start were delivered
	if _, err := l.DeleteBefore(to); err != nil {
		s.log.Error().Err(err).Msg("cannot evict telemetry")
		return false
	}
	if after := l.Segments(); len(after) > 0 && after[0].Base < to {
		return false // nothing freed: do not loop
	}
	if n > 0 {
		if why == "budget" {
			s.evicted[Telemetry].Add(n)
		} else {
			s.expired[Telemetry].Add(n)
		}
		s.bytesEvicted.Add(segs[0].Bytes)
		s.log.Warn().Int64("records", n).Int64("from", start).Int64("to", to).Str("reason", why).Msg("evicted telemetry")
	}
	return true
}

// Record is a spooled message as the uplink reads it back.
type Record struct {
	Offset  int64
	Topic   string
	Key     []byte
	Value   []byte
	Headers []kmsg.Header
	Time    time.Time
}

// Read returns the records of a lane from offset on, at most about
// maxBytes of stored batches, and the offset to read next. An offset below
// the lane's start (released or evicted) is moved up to it. The records
// are the caller's to keep; a Reader reads the same into buffers it
// reuses.
func (s *Spool) Read(lane Lane, offset int64, maxBytes int) ([]Record, int64, error) {
	r := Reader{s: s, lane: lane}
	return r.Read(offset, maxBytes)
}

// A Reader reads one lane as Spool.Read does, into buffers it keeps from
// one Read to the next: the copy of the stored batches, the records and
// their headers. A lane's sender reads a window after window of the same
// size, and allocating each one anew made the collector run several times
// as often. The records one Read returns are valid until the next Read or
// Drop. A Reader is for one goroutine.
type Reader struct {
	s    *Spool
	lane Lane
	data []byte
	recs []Record
	hdrs []kmsg.Header
}

// NewReader returns a Reader of lane.
func (s *Spool) NewReader(lane Lane) *Reader { return &Reader{s: s, lane: lane} }

// Drop lets go of the buffers, for a reader that may idle for long: the
// next Read allocates them again.
func (r *Reader) Drop() { r.data, r.recs, r.hdrs = nil, nil, nil }

// Read is Spool.Read into the reader's buffers.
func (r *Reader) Read(offset int64, maxBytes int) ([]Record, int64, error) {
	s, lane := r.s, r.lane
	l := s.lanes[lane]
	offset = max(offset, s.Start(lane))
	v, err := l.Read(offset, maxBytes)
	if errors.Is(err, commitlog.ErrOffsetOutOfRange) {
		// Evicted between the two calls: start over.
		offset = max(offset, s.Start(lane))
		v, err = l.Read(offset, maxBytes)
	}
	if err != nil {
		return nil, offset, err
	}
	// One copy of the stored batches, which the records' slices share,
	// instead of a copy of every key, value and header.
	data := append(r.data[:0], v.Data...)
	vnext := v.Next
	v.Release()
	out := r.recs[:0]
	hdrs := r.hdrs[:0] // shared backing of the records' headers
	var topic string   // the last topic seen, so equal ones share the string
	var derr error
	err = commitlog.Batches(data, func(b commitlog.Batch, raw []byte) bool {
		// Room for the batch's records, and for as many headers again
		// per record as the records so far had.
		if n := int(max(b.NumRecords, 0)); n > 0 {
			if len(out) > 0 {
				hdrs = slices.Grow(hdrs, n*len(hdrs)/len(out))
			}
			out = slices.Grow(out, n)
		}
		// data is this read's copy, which nothing writes until the
		// next read: the header keys may share it.
		derr = commitlog.RecordsShared(b, raw, func(off, ts int64, kr *kmsg.Record) bool {
			if off < offset {
				return true
			}
			rec := Record{Offset: off, Key: kr.Key, Value: kr.Value, Time: time.UnixMilli(ts)}
			start := len(hdrs)
			for _, h := range kr.Headers {
				if h.Key == topicHeader {
					if string(h.Value) != topic {
						topic = string(h.Value)
					}
					rec.Topic = topic
					continue
				}
				hdrs = append(hdrs, h)
			}
			if len(hdrs) > start {
				rec.Headers = hdrs[start:len(hdrs):len(hdrs)]
			}
			out = append(out, rec)
			return true
		})
		return derr == nil
	})
	r.data, r.recs, r.hdrs = data, out, hdrs
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, offset, fmt.Errorf("spool: lane %s: %w", lane, err)
	}
	next := offset
	if len(data) > 0 {
		next = vnext
	}
	return out, next, nil
}

// Next returns the offset Read(lane, offset, maxBytes) would return to
// read next, without copying or decoding the records: what the uplink
// asks to learn whether a full window is already spooled.
func (s *Spool) Next(lane Lane, offset int64, maxBytes int) (int64, error) {
	l := s.lanes[lane]
	offset = max(offset, s.Start(lane))
	v, err := l.Read(offset, maxBytes)
	if errors.Is(err, commitlog.ErrOffsetOutOfRange) {
		offset = max(offset, s.Start(lane))
		v, err = l.Read(offset, maxBytes)
	}
	if err != nil {
		return offset, err
	}
	next := offset
	if len(v.Data) > 0 {
		next = v.Next
	}
	v.Release()
	return next, nil
}

// Wait blocks until a record at offset exists in the lane, or ctx ends.
func (s *Spool) Wait(ctx context.Context, lane Lane, offset int64) error {
	return s.lanes[lane].Wait(ctx, offset)
}

// SyncPolicy is the spool's durability policy.
func (s *Spool) SyncPolicy() SyncPolicy { return s.cfg.Sync }

// MaxBytes is the spool's disk budget.
func (s *Spool) MaxBytes() int64 { return s.cfg.MaxBytes }

// Start is the lane's first offset still spooled.
func (s *Spool) Start(lane Lane) int64 {
	return max(s.released[lane].Load(), s.lanes[lane].LogStartOffset())
}

// End is the offset the lane's next message will get.
func (s *Spool) End(lane Lane) int64 { return s.lanes[lane].LogEndOffset() }

// Release marks a lane's records below offset as delivered: the lane
// starts at offset from now on. It does no I/O: their space is freed
// later, once whole segments are delivered (see Spool).
func (s *Spool) Release(lane Lane, offset int64) error {
	l := s.lanes[lane]
	s.acctMu[lane].Lock()
	defer s.acctMu[lane].Unlock()
	start := s.Start(lane)
	offset = min(offset, l.HighWatermark())
	if offset <= start {
		return nil
	}
	s.released[lane].Store(offset)
	n := offset - start
	if p := min(s.expiredPending[lane], n); p > 0 {
		s.expiredPending[lane] -= p // counted as expired, not as delivered
		n -= p
	}
	s.delivered[lane].Add(n)
	return nil
}

// Expire counts n records of a lane as expired: records the reader
// skipped because their own deadline passed (the uplink, for the MQTT 5
// message expiry) and releases with the records around them. Those n
// are then not counted as delivered by Release.
func (s *Spool) Expire(lane Lane, n int64) {
	s.acctMu[lane].Lock()
	defer s.acctMu[lane].Unlock()
	s.expired[lane].Add(n)
	s.expiredPending[lane] += n
}

// Stats is the spool's accounting.
type Stats struct {
	Lane                                         Lane
	Accepted, Delivered, Evicted, Expired, Spool int64 // records
	Bytes                                        int64 // on disk
}

// Stats returns the accounting of each lane since Open; Spooled counts the
// records still waiting, including those recovered from before Open.
func (s *Spool) Stats() [numLanes]Stats {
	var out [numLanes]Stats
	for l := Lane(0); l < numLanes; l++ {
		lg := s.lanes[l]
		s.acctMu[l].Lock()
		out[l] = Stats{
			Lane: l, Accepted: s.accepted[l].Load(), Delivered: s.delivered[l].Load(),
			Evicted: s.evicted[l].Load(), Expired: s.expired[l].Load(),
			Spool: lg.HighWatermark() - s.Start(l), Bytes: lg.Size(),
		}
		s.acctMu[l].Unlock()
	}
	return out
}

// trim cuts each lane's log to the start the uplink released: rewrites
// the log's start checkpoint and deletes the segments wholly below it.
// It changes nothing a reader sees (Start was already there).
func (s *Spool) trim() {
	for l, lg := range s.lanes {
		to := s.released[l].Load()
		if to <= lg.LogStartOffset() {
			continue
		}
		if _, err := lg.DeleteBefore(to); err != nil && !errors.Is(err, commitlog.ErrClosed) {
			s.log.Error().Err(err).Str("lane", Lane(l).String()).Msg("cannot trim delivered records")
		}
	}
}

// maintain expires old telemetry, applies log maintenance and unmaps idle
// segments.
func (s *Spool) maintain() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			now := s.cfg.Now()
			s.trim()
			if s.cfg.MaxAge > 0 {
				s.expire(now)
			}
			for _, l := range s.lanes {
				l.Maintain(now)
			}
		}
	}
}

// expire drops whole telemetry segments whose newest record is older than
// MaxAge. Alarms are never dropped.
func (s *Spool) expire(now time.Time) {
	s.budgetMu.Lock()
	defer s.budgetMu.Unlock()
	cutoff := now.Add(-s.cfg.MaxAge).UnixMilli()
	for {
		segs := s.lanes[Telemetry].Segments()
		if len(segs) == 0 || segs[0].Bytes == 0 || segs[0].MaxTimestamp >= cutoff {
			return
		}
		if !s.evictOldestTelemetry("max-age") {
			return
		}
	}
}

// Close writes what was submitted, stops maintenance and closes both
// lanes, flushing them.
func (s *Spool) Close() error {
	for _, a := range s.appenders {
		a.close()
	}
	close(s.quit)
	s.wg.Wait()
	s.trim()
	return s.closeLanes()
}

func (s *Spool) closeLanes() error {
	var errs []error
	for _, l := range s.lanes {
		if l != nil {
			errs = append(errs, l.Close())
		}
	}
	return errors.Join(errs...)
}
