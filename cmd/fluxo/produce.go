package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() { register(newProduceCmd) }

const (
	// maxLineBytes is the longest line fluxo produce reads from stdin.
	maxLineBytes = 1 << 20

	// produceFlushGrace bounds how long an interrupted produce waits for
	// the records already read to be acknowledged.
	produceFlushGrace = 5 * time.Second

	// defaultBatchMaxBytes is franz-go's default batch limit, which stays
	// under Kafka's default max.message.bytes (1048588) once framed.
	defaultBatchMaxBytes = 1000012
)

type produceOptions struct {
	brokers   *[]string
	key       string
	keySep    string
	headers   []string
	acks      acksFlag
	partition int32
	batchMax  int32
	timeout   time.Duration
}

func newProduceCmd() *cobra.Command {
	o := produceOptions{acks: acksAll}
	c := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce one record per line of standard input",
		Long: `Read standard input line by line and produce each line as one record to
TOPIC (an empty line is a record with an empty value). Lines may be up to
1 MiB long; the trailing newline (and a carriage return before it) is not
part of the record.

Keys: --key gives every record the same key; --key-separator splits each line
at the first separator into key and value (a line without the separator has
no key). Keyed records go to the partition Kafka's default partitioner would
pick (murmur2 of the key), so fluxo, the edge and any Kafka producer agree;
records without a key are spread over the partitions. --partition sends every
record to one partition.

A record larger than --max-batch-bytes fails with MESSAGE_TOO_LARGE; the
default suits brokers with Kafka's default max.message.bytes.

With --acks all (the default) the producer is idempotent: a retried batch is
never written twice. With --acks 1 or 0 it is not. A record the brokers have
not acknowledged within --delivery-timeout (Kafka's delivery.timeout.ms) is
failed, for instance when no broker can be reached.

At the end of the input, or on Ctrl-C (lines already read are still
delivered), a summary line goes to standard error: records acknowledged,
their bytes (keys and values), partitions written to and time taken.

` + clientSecHelp,
		Example: `  echo '{"temp": 21.5}' | fluxo produce telemetry
  printf 'car-7:{"speed": 88}\ncar-9:{"speed": 42}\n' | fluxo produce telemetry --key-separator :
  fluxo produce alarms --key panel-3 --header source=cli --header fleet=north < alarms.jsonl
  seq 1000 | fluxo produce numbers --acks 1 --partition 0
  FLUXO_SASL_PASSWORD=secret fluxo produce telemetry --brokers core-1:9093 --tls-ca ca.pem \
    --sasl-mechanism SCRAM-SHA-512 --sasl-user ops < lines.txt
  fluxo produce telemetry --client-config kcat.conf < lines.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProduce(cmd, args[0], o)
		},
	}
	o.brokers = brokersFlag(c)
	f := c.Flags()
	f.StringVar(&o.key, "key", "", "key of every record")
	f.StringVar(&o.keySep, "key-separator", "", "split each line at the first SEP into key and value")
	f.StringArrayVar(&o.headers, "header", nil, "record header KEY=VALUE (repeatable)")
	f.Var(&o.acks, "acks", "acknowledgements to wait for: all, 1 or 0")
	f.Int32Var(&o.partition, "partition", -1, "partition to produce to (-1: the default partitioner)")
	f.DurationVar(&o.timeout, "delivery-timeout", 30*time.Second, "give up on a record not acknowledged within this time (0: never)")
	f.Int32Var(&o.batchMax, "max-batch-bytes", defaultBatchMaxBytes, "largest record batch to send; raise it with the topic's max.message.bytes for records near 1 MiB")
	c.MarkFlagsMutuallyExclusive("key", "key-separator")
	return c
}

// acksFlag is the value of --acks.
type acksFlag int8

const (
	acksAll    acksFlag = -1
	acksNone   acksFlag = 0
	acksLeader acksFlag = 1
)

func (a *acksFlag) Set(s string) error {
	switch strings.ToLower(s) {
	case "all", "-1":
		*a = acksAll
	case "1":
		*a = acksLeader
	case "0":
		*a = acksNone
	default:
		return fmt.Errorf("got %q, want all, 1 or 0", s)
	}
	return nil
}

func (a *acksFlag) String() string {
	switch *a {
	case acksAll:
		return "all"
	case acksLeader:
		return "1"
	case acksNone:
		return "0"
	}
	return fmt.Sprintf("acksFlag(%d)", int8(*a))
}

func (a *acksFlag) Type() string { return "acks" }

// opts returns the producer options for these acks: kgo's idempotent
// producer needs acks=all, so it is turned off for the others.
func (a acksFlag) opts() []kgo.Opt {
	switch a {
	case acksLeader:
		return []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}
	case acksNone:
		return []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}
	}
	return []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}
}

// parseHeaders turns --header KEY=VALUE flags into record headers, in order;
// a key may repeat, as Kafka headers may.
func parseHeaders(pairs []string) ([]kgo.RecordHeader, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	hs := make([]kgo.RecordHeader, 0, len(pairs))
	for _, kv := range pairs {
		k, v, err := parseKeyValue("header", kv)
		if err != nil {
			return nil, err
		}
		hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return hs, nil
}

// splitLine returns the key and value of a line: with sep empty, the whole
// line is the value and key is nil; otherwise the line is split at the first
// sep, and a line without sep is a value with no key.
func splitLine(line []byte, sep string) (key, value []byte) {
	if sep == "" {
		return nil, line
	}
	k, v, ok := strings.Cut(string(line), sep)
	if !ok {
		return nil, line
	}
	return []byte(k), []byte(v)
}

// produceStats is what fluxo produce reports at the end. It is updated by
// the produce callbacks, hence the lock.
type produceStats struct {
	mu         sync.Mutex
	records    int
	bytes      int
	partitions map[int32]bool
	failed     int
	firstErr   error
}

func (s *produceStats) done(r *kgo.Record, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failed++
		if s.firstErr == nil {
			s.firstErr = err
		}
		return
	}
	s.records++
	s.bytes += len(r.Key) + len(r.Value)
	s.partitions[r.Partition] = true
}

func runProduce(cmd *cobra.Command, topic string, o produceOptions) error {
	if o.partition < -1 {
		return fmt.Errorf("--partition: got %d, want a partition number or -1", o.partition)
	}
	headers, err := parseHeaders(o.headers)
	if err != nil {
		return err
	}
	if o.timeout < 0 {
		return fmt.Errorf("--delivery-timeout: got %s, want 0 or more", o.timeout)
	}
	if o.batchMax < 1<<10 {
		return fmt.Errorf("--max-batch-bytes: got %d, want at least 1024", o.batchMax)
	}
	opts := append(o.acks.opts(), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchMaxBytes(o.batchMax))
	if o.partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	if o.timeout > 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(o.timeout))
	}
	cl, err := newClient(cmd, *o.brokers, opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	ctx := cmd.Context()
	start := time.Now()
	stats := &produceStats{partitions: make(map[int32]bool)}
	readErr := produceLines(ctx, cl, cmd.InOrStdin(), o, headers, stats.done)
	flushCtx := ctx
	if ctx.Err() != nil {
		// Interrupted: deliver the lines already read, for a while.
		var cancel context.CancelFunc
		flushCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), produceFlushGrace)
		defer cancel()
	}
	flushErr := cl.Flush(flushCtx)
	elapsed := time.Since(start)

	stats.mu.Lock()
	defer stats.mu.Unlock()
	fmt.Fprintf(cmd.ErrOrStderr(), "produced %s (%s) to %s of %s in %s\n",
		plural(stats.records, "record"), plural(stats.bytes, "byte"), plural(len(stats.partitions), "partition"),
		topic, elapsed.Round(time.Millisecond))
	switch {
	case readErr != nil:
		return readErr
	case stats.firstErr != nil:
		return fmt.Errorf("%s failed, first: %w", plural(stats.failed, "record"), topicError(topic, stats.firstErr, ""))
	case flushErr != nil:
		return fmt.Errorf("records not delivered: %w", flushErr)
	}
	return nil
}

// produceLines produces one record per line of r until r ends or ctx is
// done, calling done for each once the broker answered. Lines are read by a
// goroutine, so that an interrupt stops the command even while a read from
// a terminal blocks; that goroutine ends at the end of r, or, if a read
// never returns, with the process.
func produceLines(ctx context.Context, cl *kgo.Client, r io.Reader, o produceOptions, headers []kgo.RecordHeader, done func(*kgo.Record, error)) error {
	stop := make(chan struct{})
	defer close(stop)
	lines := make(chan []byte, 256)
	readErr := make(chan error, 1)
	go func() {
		defer close(lines)
		readErr <- readLines(r, lines, stop)
	}()

	var fixedKey []byte
	if o.key != "" {
		fixedKey = []byte(o.key)
	}
	// Records outlive an interrupt: the caller flushes those already read.
	produceCtx := context.WithoutCancel(ctx)
	for {
		var line []byte
		select {
		case <-ctx.Done():
			return nil
		case l, ok := <-lines:
			if !ok {
				return <-readErr
			}
			line = l
		}
		key, value := splitLine(line, o.keySep)
		rec := &kgo.Record{Value: value, Headers: headers}
		switch {
		case fixedKey != nil:
			rec.Key = fixedKey
		case key != nil:
			rec.Key = key
		}
		if o.partition >= 0 {
			rec.Partition = o.partition
		}
		cl.Produce(produceCtx, rec, done)
	}
}

// readLines sends each line of r, without its line ending, to lines until r
// ends or stop is closed. Every line is a new slice.
func readLines(r io.Reader, lines chan<- []byte, stop <-chan struct{}) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes+2) // room for "\r\n"; longer lines are caught below
	n := 0
	for sc.Scan() {
		n++
		if len(sc.Bytes()) > maxLineBytes {
			return fmt.Errorf("stdin: line %d: longer than %d bytes", n, maxLineBytes)
		}
		select {
		case lines <- bytes.Clone(sc.Bytes()):
		case <-stop:
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("stdin: line %d: longer than %d bytes", n+1, maxLineBytes)
		}
		return fmt.Errorf("stdin: %w", err)
	}
	return nil
}
