package broker

import (
	"fmt"
	"strconv"
	"time"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// TopicConfigs lists the topic configs the broker understands, with the
// Kafka name of each.
var TopicConfigs = []string{
	"cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes",
	"segment.ms", "max.message.bytes", "flush.messages", "flush.ms",
	"min.insync.replicas",
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
		if value != "delete" {
			return fmt.Errorf("cleanup.policy: only \"delete\" is supported, got %q", value)
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
