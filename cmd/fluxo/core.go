package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/fluxo-io/fluxo/core"
)

func init() { register(newCoreCmd) }

func newCoreCmd() *cobra.Command {
	cfg := core.DefaultConfig()
	var (
		retention     time.Duration
		flushMessages int
		flushInterval time.Duration
		shutdownWait  time.Duration
	)
	c := &cobra.Command{
		Use:   "core",
		Short: "Run a core broker: topics on the segment log, served over the Kafka protocol",
		Long: `Run a core broker. It keeps topic partitions in segment logs under --data-dir
and serves them over the Kafka wire protocol on --kafka-addr, so any Kafka client
(franz-go, librdkafka/kcat, sarama, kafka-python) produces and consumes, with
consumer groups. /healthz, /readyz and /metrics (Prometheus) are served on
--http-addr.

Durability on one node: by default the broker does not fsync on each write (as
Kafka: the OS page cache survives a broker crash, not a power cut); set
--flush-messages 1 to fsync every batch before it is acknowledged.

SIGTERM or Ctrl-C stops accepting, lets in-flight requests finish, flushes and
closes every log.`,
		Example: `  # a broker with its data in ./data
  fluxo core

  # elsewhere, durable on every write, reachable by other hosts
  fluxo core --data-dir /var/lib/fluxo --kafka-addr 0.0.0.0:9092 --flush-messages 1

  # then, with any Kafka client
  kcat -b 127.0.0.1:9092 -L`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := logger(cmd)
			cfg.Logger = log
			cfg.Broker.Log.RetentionAge = retention
			if retention <= 0 {
				cfg.Broker.Log.RetentionAge = -1
			}
			cfg.Broker.Log.FlushBatches = flushMessages
			cfg.Broker.Log.MaxBatchBytes = int(min(int64(cfg.Broker.Log.MaxBatchBytes), cfg.Broker.Log.SegmentBytes))
			cfg.Broker.Log.FlushInterval = flushInterval
			if cfg.KafkaAdvertise == "" {
				cfg.KafkaAdvertise = advertiseFor(cfg.KafkaAddr)
			}
			node, err := core.New(cfg)
			if err != nil {
				return err
			}
			if err := node.Start(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "fluxo core: Kafka on %s, HTTP on %s, data in %s\n", node.KafkaAddr(), node.HTTPAddr(), cfg.DataDir)
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
			defer cancel()
			return node.Shutdown(ctx)
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "./data", "directory for topic partitions and metadata")
	f.StringVar(&cfg.KafkaAddr, "kafka-addr", cfg.KafkaAddr, "Kafka protocol listen address")
	f.StringVar(&cfg.KafkaAdvertise, "kafka-advertise", "", "address given to clients in Metadata (default: the listen address, or the host name when listening on all addresses)")
	f.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "HTTP listen address for /healthz, /readyz and /metrics (empty: off)")
	f.Int32Var(&cfg.Kafka.NodeID, "node-id", 0, "this broker's node id")
	f.BoolVar(&cfg.Broker.AutoCreateTopics, "auto-create-topics", true, "create unknown topics on first produce or metadata request")
	f.Int32Var(&cfg.Broker.DefaultPartitions, "default-partitions", 1, "partitions of auto-created topics")
	f.Int64Var(&cfg.Broker.Log.SegmentBytes, "segment-bytes", cfg.Broker.Log.SegmentBytes, "roll segments at this size (topics may override with segment.bytes)")
	f.DurationVar(&retention, "retention", 7*24*time.Hour, "delete segments older than this (0: keep forever; topics may override with retention.ms)")
	f.Int64Var(&cfg.Broker.Log.RetentionBytes, "retention-bytes", -1, "delete the oldest segments while a partition is larger (-1: no limit)")
	f.IntVar(&flushMessages, "flush-messages", 0, "fsync after this many batches per partition, before acknowledging (0: leave it to the OS)")
	f.DurationVar(&flushInterval, "flush-interval", 0, "fsync pending writes at least this often (0: never by time)")
	f.IntVar(&cfg.Kafka.MaxRequestBytes, "max-request-bytes", cfg.Kafka.MaxRequestBytes, "largest request accepted (socket.request.max.bytes)")
	f.IntVar(&cfg.Kafka.MaxConnections, "max-connections", cfg.Kafka.MaxConnections, "client connections served at once")
	f.DurationVar(&cfg.Kafka.IdleTimeout, "idle-timeout", cfg.Kafka.IdleTimeout, "close connections idle this long")
	f.DurationVar(&shutdownWait, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight requests")
	return c
}

// advertiseFor is the address to give clients for a listen address: the
// address itself, or this host's name when it listens on all addresses.
func advertiseFor(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || (host != "" && host != "0.0.0.0" && host != "::") {
		return ""
	}
	name, err := os.Hostname()
	if err != nil {
		return ""
	}
	return net.JoinHostPort(name, port)
}
