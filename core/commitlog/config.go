package commitlog

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Config tunes a Log. Zero values are not defaults: start from
// DefaultConfig and change what you need.
type Config struct {
	// SegmentBytes is the size at which the active segment is rolled
	// (Kafka's segment.bytes). The active segment maps this much address
	// space, so 32-bit platforms default to less.
	SegmentBytes int64
	// SegmentMaxAge rolls a non-empty active segment this long after it
	// was created (Kafka's segment.ms), checked by Maintain.
	SegmentMaxAge time.Duration
	// MaxBatchBytes is the largest batch Append accepts (Kafka's
	// message.max.bytes). It must not exceed SegmentBytes.
	MaxBatchBytes int
	// IndexIntervalBytes is how many log bytes go by between offset index
	// entries (Kafka's index.interval.bytes).
	IndexIntervalBytes int
	// MaxIndexBytes caps each index file; a segment whose index is full is
	// rolled (Kafka's segment.index.bytes). Space is reserved in 64 KiB steps.
	MaxIndexBytes int
	// PreallocateBytes is how far ahead of the end the log file is
	// reserved with fallocate.
	PreallocateBytes int64
	// FlushBatches fsyncs once this many batches have been appended since
	// the last fsync; Append returns after that fsync. 1 = every append is
	// durable on return (appenders share fsyncs). 0 = never by count.
	FlushBatches int
	// FlushInterval fsyncs pending writes at least this often, from a
	// background goroutine. 0 = never by time.
	FlushInterval time.Duration
	// RetentionBytes deletes the oldest segments while the log is larger
	// (Kafka's retention.bytes); -1 = no limit. Applied by Maintain.
	RetentionBytes int64
	// RetentionAge deletes segments whose newest record is older than this
	// (Kafka's retention.ms); -1 = no limit. Applied by Maintain.
	RetentionAge time.Duration
	// Cleanup is the cleanup policy (Kafka's cleanup.policy): which of
	// retention (delete) and compaction (compact) apply. Zero means
	// CleanupDelete.
	Cleanup CleanupPolicy
	// MinCleanableDirtyRatio is the share of dirty bytes (not yet cleaned)
	// in the sealed segments above which a compacted log is cleaned
	// (Kafka's min.cleanable.dirty.ratio).
	MinCleanableDirtyRatio float64
	// MinCompactionLag keeps records newer than this out of compaction
	// (Kafka's min.compaction.lag.ms): a segment is cleaned only once its
	// newest record is this old.
	MinCompactionLag time.Duration
	// MaxCompactionLag cleans a log whatever its dirty ratio once its
	// oldest dirty record is this old, and rolls an active segment that
	// old so it can be cleaned (Kafka's max.compaction.lag.ms).
	MaxCompactionLag time.Duration
	// DeleteRetention is how long a tombstone (a record with a key and no
	// value) stays readable in a compacted log: the cleaner drops it once
	// the newest record of its segment is this old (Kafka's
	// delete.retention.ms).
	DeleteRetention time.Duration
	// IdleUnmap unmaps sealed segments not read for this long (Maintain),
	// so thousands of logs fit the default mmap and file limits.
	IdleUnmap time.Duration
	// Logger receives recovery and maintenance events. Zero value: no logs.
	Logger zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns Kafka-like defaults with no fsync policy and no
// retention.
func DefaultConfig() Config {
	seg := int64(1 << 30)
	if strconv.IntSize == 32 {
		seg = 64 << 20
	}
	return Config{
		SegmentBytes:       seg,
		SegmentMaxAge:      7 * 24 * time.Hour,
		MaxBatchBytes:      1048588,
		IndexIntervalBytes: 4096,
		MaxIndexBytes:      10 << 20,
		PreallocateBytes:   8 << 20,
		RetentionBytes:     -1,
		RetentionAge:       -1,
		IdleUnmap:          time.Minute,
		Logger:             zerolog.Nop(),

		Cleanup:                CleanupDelete,
		MinCleanableDirtyRatio: 0.5,
		MaxCompactionLag:       math.MaxInt64,
		DeleteRetention:        24 * time.Hour,
	}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.SegmentBytes < HeaderSize || c.SegmentBytes > math.MaxInt32:
		return fmt.Errorf("commitlog: SegmentBytes %d out of range [%d, %d]", c.SegmentBytes, HeaderSize, math.MaxInt32)
	case c.MaxBatchBytes < HeaderSize || int64(c.MaxBatchBytes) > c.SegmentBytes:
		return fmt.Errorf("commitlog: MaxBatchBytes %d out of range [%d, SegmentBytes %d]", c.MaxBatchBytes, HeaderSize, c.SegmentBytes)
	case c.IndexIntervalBytes <= 0:
		return fmt.Errorf("commitlog: IndexIntervalBytes %d must be positive", c.IndexIntervalBytes)
	case c.MaxIndexBytes < 4*timeEntrySize:
		return fmt.Errorf("commitlog: MaxIndexBytes %d below %d", c.MaxIndexBytes, 4*timeEntrySize)
	case c.PreallocateBytes < 0:
		return fmt.Errorf("commitlog: PreallocateBytes %d is negative", c.PreallocateBytes)
	case c.FlushBatches < 0 || c.FlushInterval < 0:
		return fmt.Errorf("commitlog: negative flush policy")
	case c.SegmentMaxAge <= 0:
		return fmt.Errorf("commitlog: SegmentMaxAge %v must be positive", c.SegmentMaxAge)
	case c.IdleUnmap <= 0:
		return fmt.Errorf("commitlog: IdleUnmap %v must be positive", c.IdleUnmap)
	case c.Cleanup&^(CleanupDelete|CleanupCompact) != 0:
		return fmt.Errorf("commitlog: unknown cleanup policy %d", c.Cleanup)
	case c.MinCleanableDirtyRatio < 0 || c.MinCleanableDirtyRatio > 1:
		return fmt.Errorf("commitlog: MinCleanableDirtyRatio %v out of range [0, 1]", c.MinCleanableDirtyRatio)
	case c.MinCompactionLag < 0 || c.MaxCompactionLag < 0 || c.DeleteRetention < 0:
		return fmt.Errorf("commitlog: negative compaction lag or delete retention")
	}
	return nil
}

// CleanupPolicy says how a log sheds old records: by retention (delete),
// by compaction (compact: the newest record of each key is kept), or both.
type CleanupPolicy uint8

// Cleanup policies; combine them with |.
const (
	CleanupDelete CleanupPolicy = 1 << iota
	CleanupCompact
)

// String is Kafka's name of the policy: "delete", "compact" or
// "compact,delete".
func (p CleanupPolicy) String() string {
	switch p {
	case 0, CleanupDelete:
		return "delete"
	case CleanupCompact:
		return "compact"
	case CleanupCompact | CleanupDelete:
		return "compact,delete"
	}
	return fmt.Sprintf("CleanupPolicy(%d)", uint8(p))
}

// Deletes reports whether retention applies (Kafka: "delete" in the policy).
func (p CleanupPolicy) Deletes() bool { return p == 0 || p&CleanupDelete != 0 }

// Compacts reports whether the cleaner compacts the log.
func (p CleanupPolicy) Compacts() bool { return p&CleanupCompact != 0 }

// ParseCleanupPolicy reads Kafka's cleanup.policy list: "delete",
// "compact", "compact,delete" or "delete,compact" (spaces allowed).
func ParseCleanupPolicy(s string) (CleanupPolicy, error) {
	var p CleanupPolicy
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "delete":
			p |= CleanupDelete
		case "compact":
			p |= CleanupCompact
		default:
			return 0, fmt.Errorf("commitlog: cleanup policy %q: want delete, compact or both", s)
		}
	}
	return p, nil
}

// Reconfigure applies a new configuration to an open log: retention,
// segment size and age, batch limit and flush policy take effect from the
// next append, roll or Maintain (a smaller SegmentBytes rolls the active
// segment on its next append), the cleanup policy and compaction settings
// from the next Maintain or cleaning. Logger, Now, IdleUnmap and the index
// settings keep the values the log was opened with.
func (l *Log) Reconfigure(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	l.syncMu.Lock()
	l.appendMu.Lock()
	old := l.cfg
	l.cfg.SegmentBytes = cfg.SegmentBytes
	l.cfg.SegmentMaxAge = cfg.SegmentMaxAge
	l.cfg.MaxBatchBytes = cfg.MaxBatchBytes
	l.cfg.PreallocateBytes = cfg.PreallocateBytes
	l.cfg.FlushBatches = cfg.FlushBatches
	l.cfg.RetentionBytes = cfg.RetentionBytes
	l.cfg.RetentionAge = cfg.RetentionAge
	l.cfg.FlushInterval = cfg.FlushInterval
	l.cfg.Cleanup = cfg.Cleanup
	l.cfg.MinCleanableDirtyRatio = cfg.MinCleanableDirtyRatio
	l.cfg.MinCompactionLag = cfg.MinCompactionLag
	l.cfg.MaxCompactionLag = cfg.MaxCompactionLag
	l.cfg.DeleteRetention = cfg.DeleteRetention
	active := l.segs[len(l.segs)-1]
	if int64(active.capacity) > cfg.SegmentBytes {
		// The active segment keeps its mapping; it simply fills up sooner.
		active.capacity = int(max(cfg.SegmentBytes, active.size.Load()))
	}
	l.appendMu.Unlock()
	l.syncMu.Unlock()
	if old.FlushInterval != cfg.FlushInterval {
		// Restart the flusher outside syncMu: it takes syncMu to sync.
		l.flushMu.Lock()
		defer l.flushMu.Unlock()
		if l.closed.Load() {
			return nil
		}
		close(l.quit)
		l.wg.Wait()
		l.quit = make(chan struct{})
		if cfg.FlushInterval > 0 {
			l.wg.Add(1)
			go l.flusher(cfg.FlushInterval, l.quit)
		}
	}
	return nil
}
