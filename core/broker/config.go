package broker

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// TopicConfigs lists the topic configs the broker understands, with the
// Kafka name of each.
var TopicConfigs = []string{
	"cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes",
	"segment.ms", "max.message.bytes", "flush.messages", "flush.ms",
	"min.insync.replicas", "min.cleanable.dirty.ratio", "min.compaction.lag.ms",
	"max.compaction.lag.ms", "delete.retention.ms", "message.timestamp.type",
}

// applyTopicConfig sets one Kafka topic config on a log config.
func applyTopicConfig(c *commitlog.Config, key, value string) error {
	num := func() (int64, error) {
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not an integer", key, value)
		}
		return n, nil
	}
	switch key {
	case "cleanup.policy":
		p, err := commitlog.ParseCleanupPolicy(value)
		if err != nil {
			return fmt.Errorf("cleanup.policy: %q is not delete, compact or compact,delete", value)
		}
		c.Cleanup = p
	case "min.cleanable.dirty.ratio":
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || f < 0 || f > 1 {
			return fmt.Errorf("min.cleanable.dirty.ratio: %q is not a number in [0, 1]", value)
		}
		c.MinCleanableDirtyRatio = f
	case "min.compaction.lag.ms", "max.compaction.lag.ms", "delete.retention.ms":
		n, err := num()
		if err != nil {
			return err
		}
		if n < 0 || (key == "max.compaction.lag.ms" && n == 0) {
			return fmt.Errorf("%s: %d out of range", key, n)
		}
		d := time.Duration(n) * time.Millisecond
		if n > int64(math.MaxInt64/time.Millisecond) {
			d = math.MaxInt64
		}
		switch key {
		case "min.compaction.lag.ms":
			c.MinCompactionLag = d
		case "max.compaction.lag.ms":
			c.MaxCompactionLag = d
		default:
			c.DeleteRetention = d
		}
	case "retention.ms":
		n, err := num()
		if err != nil {
			return err
		}
		c.RetentionAge = -1
		if n >= 0 {
			c.RetentionAge = time.Duration(n) * time.Millisecond
		}
	case "retention.bytes":
		n, err := num()
		if err != nil {
			return err
		}
		c.RetentionBytes = max(n, -1)
	case "segment.bytes":
		n, err := num()
		if err != nil {
			return err
		}
		c.SegmentBytes = n
		c.MaxBatchBytes = int(min(int64(c.MaxBatchBytes), n))
	case "segment.ms":
		n, err := num()
		if err != nil {
			return err
		}
		c.SegmentMaxAge = time.Duration(n) * time.Millisecond
	case "max.message.bytes":
		n, err := num()
		if err != nil {
			return err
		}
		c.MaxBatchBytes = int(n)
	case "flush.messages":
		n, err := num()
		if err != nil {
			return err
		}
		c.FlushBatches = int(min(n, 1<<30))
	case "flush.ms":
		n, err := num()
		if err != nil {
			return err
		}
		c.FlushInterval = time.Duration(n) * time.Millisecond
	case "message.timestamp.type":
		// Kafka Streams sets it on its changelog topics. Batches keep the
		// producer's timestamps: only CreateTime is what fluxo does.
		if value != "CreateTime" {
			return fmt.Errorf("message.timestamp.type: only CreateTime is supported, got %q", value)
		}
	case "min.insync.replicas":
		// Not a log setting: Partition reads it from the topic configs.
		if n, err := num(); err != nil || n < 1 {
			return fmt.Errorf("min.insync.replicas: %q is not a positive integer", value)
		}
	default:
		return fmt.Errorf("unknown topic config %q", key)
	}
	return nil
}
