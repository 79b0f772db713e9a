package main

import (
	"context"
	"encoding/base64"
	"fmt"
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
		serfKey       string
		security      coreSecurityFlags
	)
	c := &cobra.Command{
		Use:   "core",
		Short: "Run a core broker: topics on the segment log, served over the Kafka protocol",
		Long: `Run a core broker. It keeps topic partitions in segment logs under --data-dir
and serves them over the Kafka wire protocol on --kafka-addr, so any Kafka client
(franz-go, librdkafka/kcat, sarama, kafka-python) produces and consumes, with
consumer groups. /healthz, /readyz and /metrics (Prometheus) are served on
--http-addr.

Several brokers form a cluster: each gets a unique --node-id, its own --serf-addr
and --raft-addr, and --join with the others' Serf addresses; --bootstrap-expect
names how many form a fresh cluster. Serf notices a broker that dies; the Raft
leader (the controller) then moves leadership of its partitions to an in-sync
replica. Without --join a broker is a cluster of one.

Durability: by default the broker does not fsync on each write (as
Kafka: the OS page cache survives a broker crash, not a power cut); set
--flush-messages 1 to fsync every batch before it is acknowledged.

Transactions (transactional producers, read_committed consumers): transactional
ids are spread over the partitions of __transaction_state, created on first use
with --transaction-state-partitions partitions (keep the flag unchanged from then
on); a producer may ask for a transaction timeout up to --transaction-max-timeout;
an id without a transaction for --transactional-id-expiration (7 days) is forgotten.

Many partitions: an idle partition holds no open file and no mapping (its files
open on its first write and close after a minute without one), so a broker
hosts thousands; --max-partitions-per-broker (4000 by default) is the guard
against more, raise it to host more.

SIGTERM or Ctrl-C stops accepting, lets in-flight requests finish, flushes and
closes every log.`,
		Example: `  # a broker with its data in ./data
  fluxo core

  # elsewhere, durable on every write, reachable by other hosts
  fluxo core --data-dir /var/lib/fluxo --kafka-addr 0.0.0.0:9092 --flush-messages 1

  # then, with any Kafka client
  kcat -b 127.0.0.1:9092 -L

  # three brokers on one host
  fluxo core --node-id 1 --data-dir d1 --kafka-addr 127.0.0.1:9092 --http-addr 127.0.0.1:8080 \
    --serf-addr 127.0.0.1:7946 --raft-addr 127.0.0.1:7947 --bootstrap-expect 3 \
    --join 127.0.0.1:7946,127.0.0.1:7956,127.0.0.1:7966
  fluxo core --node-id 2 --data-dir d2 --kafka-addr 127.0.0.1:9093 --http-addr 127.0.0.1:8090 \
    --serf-addr 127.0.0.1:7956 --raft-addr 127.0.0.1:7957 --bootstrap-expect 3 \
    --join 127.0.0.1:7946,127.0.0.1:7956,127.0.0.1:7966
  fluxo core --node-id 3 ...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := logger(cmd)
			cfg.Logger = log
			logFileLimit(log, "clients")
			cfg.Broker.Log.RetentionAge = retention
			if retention <= 0 {
				cfg.Broker.Log.RetentionAge = -1
			}
			cfg.Broker.Log.FlushBatches = flushMessages
			cfg.Broker.Log.MaxBatchBytes = int(min(int64(cfg.Broker.Log.MaxBatchBytes), cfg.Broker.Log.SegmentBytes))
			cfg.Broker.Log.FlushInterval = flushInterval
			if serfKey != "" {
				key, err := base64.StdEncoding.DecodeString(serfKey)
				if err != nil {
					return fmt.Errorf("--serf-key: %w", err)
				}
				cfg.Cluster.SerfKey = key
			}
			if cfg.TxnPartitions < 1 {
				return fmt.Errorf("--transaction-state-partitions: got %d, want at least 1", cfg.TxnPartitions)
			}
			if cfg.Txn.MaxTimeout <= 0 {
				return fmt.Errorf("--transaction-max-timeout: got %s, want a positive duration", cfg.Txn.MaxTimeout)
			}
			if cfg.Txn.IDExpiration <= 0 {
				return fmt.Errorf("--transactional-id-expiration: got %s, want a positive duration", cfg.Txn.IDExpiration)
			}
			reload, err := security.apply(&cfg, cmd.Flags().Changed("kafka-addr"))
			if err != nil {
				return err
			}
			node, err := core.New(cfg)
			if err != nil {
				return err
			}
			if err := node.Start(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "fluxo core: Kafka on %s, HTTP on %s, data in %s\n", node.KafkaAddr(), node.HTTPAddr(), cfg.DataDir)
			rctx, stopReload := context.WithCancel(cmd.Context())
			go reload.run(rctx, node, log)
			var failed error
			select {
			case <-cmd.Context().Done():
			case failed = <-node.Failed():
			}
			stopReload()
			ctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
			defer cancel()
			if err := node.Shutdown(ctx); err != nil && failed == nil {
				return err
			}
			return failed
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "./data", "directory for topic partitions and metadata")
	f.StringVar(&cfg.KafkaAddr, "kafka-addr", cfg.KafkaAddr, "Kafka protocol listen address")
	f.StringVar(&cfg.KafkaAdvertise, "kafka-advertise", "", "address given to clients in Metadata (default: the listen address, or the host name when listening on all addresses)")
	f.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "HTTP listen address for /healthz, /readyz and /metrics (empty: off)")
	f.Int32Var(&cfg.NodeID, "node-id", 0, "this broker's node id, unique in the cluster")
	f.StringVar(&cfg.Cluster.SerfAddr, "serf-addr", "127.0.0.1:7946", "Serf gossip listen address (membership and failure detection; TCP and UDP)")
	f.StringVar(&cfg.Cluster.SerfAdvertise, "serf-advertise", "", "Serf address given to peers (default: the listen address)")
	f.StringVar(&cfg.Cluster.RaftAddr, "raft-addr", "127.0.0.1:7947", "Raft listen address (cluster metadata)")
	f.StringVar(&cfg.Cluster.RaftAdvertise, "raft-advertise", "", "Raft address given to peers (default: the listen address)")
	f.StringSliceVar(&cfg.Cluster.Join, "join", nil, "Serf addresses of brokers to join (HOST:PORT,...; empty: start alone)")
	f.IntVar(&cfg.Cluster.BootstrapExpect, "bootstrap-expect", 0, "on a fresh cluster, wait for this many brokers and form the Raft cluster with them (0 or 1: alone at once)")
	f.StringVar(&serfKey, "serf-key", "", "base64 gossip encryption key, 16, 24 or 32 bytes (empty: no encryption)")
	f.Int16Var(&cfg.Broker.DefaultReplicationFactor, "default-replication-factor", 0, "replicas of auto-created topics and of requests that leave it to the broker (0: min(3, live brokers))")
	f.DurationVar(&cfg.Broker.LeaderLease, "leader-lease", cfg.Broker.LeaderLease, "stop acting as leader of any partition after this long without contact with the controller (0: never)")
	f.DurationVar(&cfg.Broker.ReplicaLagMax, "replica-lag-max", cfg.Broker.ReplicaLagMax, "drop a follower from the ISR after it has not caught up for this long (replica.lag.time.max.ms)")
	f.BoolVar(&cfg.Broker.AutoCreateTopics, "auto-create-topics", true, "create unknown topics on first produce or metadata request")
	f.StringSliceVar(&cfg.Broker.CompactedTopics, "compacted-topics", cfg.Broker.CompactedTopics, "topics auto-created with cleanup.policy=compact (the edge's device state topic by default)")
	f.Int32Var(&cfg.Broker.DefaultPartitions, "default-partitions", 1, "partitions of auto-created topics")
	f.Int32Var(&cfg.Broker.MaxPartitionsPerTopic, "max-partitions-per-topic", cfg.Broker.MaxPartitionsPerTopic, "refuse topics of more partitions (INVALID_PARTITIONS)")
	f.Int32Var(&cfg.Broker.MaxPartitionsPerBroker, "max-partitions-per-broker", cfg.Broker.MaxPartitionsPerBroker, "refuse creations that would put more partition replicas on a broker (max.broker.partitions; POLICY_VIOLATION)")
	f.Int64Var(&cfg.Broker.Log.SegmentBytes, "segment-bytes", cfg.Broker.Log.SegmentBytes, "roll segments at this size (topics may override with segment.bytes)")
	f.DurationVar(&retention, "retention", 7*24*time.Hour, "delete segments older than this (0: keep forever; topics may override with retention.ms)")
	f.Int64Var(&cfg.Broker.Log.RetentionBytes, "retention-bytes", -1, "delete the oldest segments while a partition is larger (-1: no limit)")
	f.Int64Var(&cfg.Broker.Cleaner.IOBytesPerSecond, "log-cleaner-io-bytes-per-second", 0, "cap the log cleaner's reads and writes at this many bytes/s (log.cleaner.io.max.bytes.per.second; 0: no limit)")
	f.IntVar(&cfg.Broker.Cleaner.DedupeBufferBytes, "log-cleaner-dedupe-buffer-bytes", cfg.Broker.Cleaner.DedupeBufferBytes, "memory of the log cleaner's key → offset map, 24 bytes per key of a dirty section (log.cleaner.dedupe.buffer.size)")
	f.DurationVar(&cfg.Broker.CleanInterval, "log-cleaner-backoff", cfg.Broker.CleanInterval, "how often the log cleaner looks for compacted partitions to clean (log.cleaner.backoff.ms)")
	f.Int32Var(&cfg.TxnPartitions, "transaction-state-partitions", cfg.TxnPartitions, "partitions of the __transaction_state topic, created on the first transactional producer; keep it unchanged once the topic exists, transactional ids are hashed over it (transaction.state.log.num.partitions; Kafka's default is 50)")
	f.DurationVar(&cfg.Txn.MaxTimeout, "transaction-max-timeout", cfg.Txn.MaxTimeout, "largest transaction timeout a producer may ask for; larger ones get INVALID_TRANSACTION_TIMEOUT (transaction.max.timeout.ms)")
	f.DurationVar(&cfg.Txn.IDExpiration, "transactional-id-expiration", cfg.Txn.IDExpiration, "forget a transactional id that has had no transaction for this long: its state gets a tombstone in __transaction_state, checked hourly (transactional.id.expiration.ms)")
	f.IntVar(&flushMessages, "flush-messages", 0, "fsync after this many batches per partition, before acknowledging (0: leave it to the OS)")
	f.DurationVar(&flushInterval, "flush-interval", 0, "fsync pending writes at least this often (0: never by time)")
	f.IntVar(&cfg.Kafka.MaxRequestBytes, "max-request-bytes", cfg.Kafka.MaxRequestBytes, "largest request accepted (socket.request.max.bytes)")
	f.IntVar(&cfg.Kafka.MaxConnections, "max-connections", cfg.Kafka.MaxConnections, "client connections served at once")
	f.DurationVar(&cfg.Kafka.IdleTimeout, "idle-timeout", cfg.Kafka.IdleTimeout, "close connections idle this long")
	f.DurationVar(&shutdownWait, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight requests")
	security.add(f)
	return c
}
