package group

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/rs/zerolog"
)

// Config tunes a Coordinator. Start from DefaultConfig; the defaults are
// Kafka's, and each field names the Kafka broker setting it mirrors.
type Config struct {
	// Logger receives the coordinator's logs. The zero value logs nothing.
	Logger zerolog.Logger

	// MinSessionTimeout and MaxSessionTimeout bound the session timeout a
	// member may ask for in JoinGroup; outside them the join fails with
	// INVALID_SESSION_TIMEOUT (group.min.session.timeout.ms,
	// group.max.session.timeout.ms).
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration

	// InitialRebalanceDelay is how long the first rebalance of an empty
	// group waits for more members before it completes; each new member
	// extends the wait by as much again, up to the group's rebalance
	// timeout (group.initial.rebalance.delay.ms). Zero completes the
	// rebalance as soon as every known member has joined.
	InitialRebalanceDelay time.Duration

	// MaxGroupSize is the most members a group may hold; a member beyond
	// it gets GROUP_MAX_SIZE_REACHED (group.max.size).
	MaxGroupSize int

	// OffsetsRetention is how long committed offsets are kept: for a group
	// with a protocol, counted from when it became Empty; for a group used
	// only to store offsets, from the commit (offsets.retention.minutes).
	OffsetsRetention time.Duration

	// OffsetsRetentionCheckInterval is how often expired offsets are
	// removed (offsets.retention.check.interval.ms).
	OffsetsRetentionCheckInterval time.Duration

	// OffsetMetadataMaxBytes is the longest metadata string a commit may
	// carry; a longer one fails its partition with OFFSET_METADATA_TOO_LARGE
	// (offset.metadata.max.bytes).
	OffsetMetadataMaxBytes int

	// Now returns the current time, for commit timestamps and retention.
	// Nil means time.Now. Timers always run on the real clock.
	Now func() time.Time
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		MinSessionTimeout:             6 * time.Second,
		MaxSessionTimeout:             30 * time.Minute,
		InitialRebalanceDelay:         3 * time.Second,
		MaxGroupSize:                  math.MaxInt32,
		OffsetsRetention:              7 * 24 * time.Hour,
		OffsetsRetentionCheckInterval: 10 * time.Minute,
		OffsetMetadataMaxBytes:        4096,
	}
}

// Validate reports every field that is out of range.
func (c *Config) Validate() error {
	var errs []error
	if c.MinSessionTimeout < time.Millisecond {
		errs = append(errs, fmt.Errorf("group: MinSessionTimeout %v: must be at least 1ms", c.MinSessionTimeout))
	}
	if c.MaxSessionTimeout < c.MinSessionTimeout {
		errs = append(errs, fmt.Errorf("group: MaxSessionTimeout %v: must not be below MinSessionTimeout %v", c.MaxSessionTimeout, c.MinSessionTimeout))
	}
	if c.MaxSessionTimeout > math.MaxInt32*time.Millisecond {
		errs = append(errs, fmt.Errorf("group: MaxSessionTimeout %v: must fit in int32 milliseconds", c.MaxSessionTimeout))
	}
	if c.InitialRebalanceDelay < 0 {
		errs = append(errs, fmt.Errorf("group: InitialRebalanceDelay %v: must not be negative", c.InitialRebalanceDelay))
	}
	if c.MaxGroupSize < 1 {
		errs = append(errs, fmt.Errorf("group: MaxGroupSize %d: must be at least 1", c.MaxGroupSize))
	}
	if c.OffsetsRetention <= 0 {
		errs = append(errs, fmt.Errorf("group: OffsetsRetention %v: must be positive", c.OffsetsRetention))
	}
	if c.OffsetsRetentionCheckInterval <= 0 {
		errs = append(errs, fmt.Errorf("group: OffsetsRetentionCheckInterval %v: must be positive", c.OffsetsRetentionCheckInterval))
	}
	if c.OffsetMetadataMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("group: OffsetMetadataMaxBytes %d: must not be negative", c.OffsetMetadataMaxBytes))
	}
	return errors.Join(errs...)
}
