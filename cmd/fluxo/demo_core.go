package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/core"
)

func newDemoCoreCmd() *cobra.Command {
	var (
		records int
		keep    bool
	)
	c := &cobra.Command{
		Use:   "core",
		Short: "Show the core alone: a producer, a consumer group and a restart",
		Long: `Run the demo, with no configuration: a core broker on a loopback port and a
temporary data directory; a producer (franz-go, idempotent, acks=all) sending
sensor readings keyed by device; a consumer group of two members reading them
back; then a restart of the broker on the same data, after which every
acknowledged record is read again.`,
		Example: `  fluxo demo core
  fluxo demo core --records 100000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCoreDemo(cmd.Context(), records, keep, cmd.OutOrStdout())
		},
	}
	c.Flags().IntVar(&records, "records", 20000, "sensor readings to produce")
	c.Flags().BoolVar(&keep, "keep", false, "keep the data directory")
	return c
}

func runCoreDemo(ctx context.Context, records int, keep bool, out io.Writer) error {
	if records < 1 {
		return errors.New("demo: --records must be at least 1")
	}
	dir, err := os.MkdirTemp("", "fluxo-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(out, "data directory: %s (kept)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	start := func() (*core.Node, error) {
		cfg := core.DefaultConfig()
		cfg.DataDir = dir
		cfg.KafkaAddr = "127.0.0.1:0"
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.Group.InitialRebalanceDelay = 100 * time.Millisecond
		n, err := core.New(cfg)
		if err != nil {
			return nil, err
		}
		return n, n.Start()
	}
	node, err := start()
	if err != nil {
		return err
	}
	defer func() { node.Shutdown(context.Background()) }()
	fmt.Fprintf(out, "fluxo demo core: a core broker on %s (metrics on http://%s/metrics, console on http://%s/), data in %s\n\n", node.KafkaAddr(), node.HTTPAddr(), node.HTTPAddr(), dir)

	// 1. Topic and producer.
	cl, err := kgo.NewClient(kgo.SeedBrokers(node.KafkaAddr()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopics(ctx, 4, 1, nil, "telemetry"); err != nil {
		return err
	}
	fmt.Fprintf(out, "1. created topic telemetry with 4 partitions\n")
	t0 := time.Now()
	var failed atomic.Int64
	var firstErr atomic.Value
	for i := 0; i < records; i++ {
		dev := fmt.Sprintf("sensor-%03d", i%50)
		v := fmt.Sprintf(`{"device":%q,"seq":%d,"temperature_c":%.1f}`, dev, i, 18+float64(i%70)/10)
		cl.Produce(ctx, &kgo.Record{Topic: "telemetry", Key: []byte(dev), Value: []byte(v)}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("demo: %d records failed: %v", n, firstErr.Load())
	}
	el := time.Since(t0)
	fmt.Fprintf(out, "2. produced %d readings from 50 sensors, idempotent, acks=all: %v (%.0f records/s)\n",
		records, el.Round(time.Millisecond), float64(records)/el.Seconds())

	// 2. A consumer group of two members.
	counts, err := demoGroup(ctx, node.KafkaAddr(), records)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "3. consumer group \"dashboard\" (2 members, cooperative-sticky) read %d readings: %v per member\n", sum(counts), counts)

	// 3. Restart and read again.
	if err := node.Shutdown(ctx); err != nil {
		return err
	}
	if node, err = start(); err != nil {
		return err
	}
	n, err := demoCountAll(ctx, node.KafkaAddr(), "telemetry", records)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "4. restarted the broker on the same data: all %d acknowledged readings are there (read %d)\n", records, n)
	ecl, err := kgo.NewClient(kgo.SeedBrokers(node.KafkaAddr()))
	if err != nil {
		return err
	}
	defer ecl.Close()
	ends, err := kadm.NewClient(ecl).ListEndOffsets(ctx, "telemetry")
	if err == nil {
		var parts []string
		ends.Each(func(o kadm.ListedOffset) { parts = append(parts, fmt.Sprintf("p%d=%d", o.Partition, o.Offset)) })
		sort.Strings(parts)
		fmt.Fprintf(out, "   end offsets: %v\n", parts)
	}
	fmt.Fprintf(out, "\nrun a broker for your own clients with 'fluxo core', then e.g. 'kcat -b 127.0.0.1:9092 -L'\n")
	return nil
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// demoGroup runs two group members until they have read want records
// between them, committing as they go.
func demoGroup(ctx context.Context, addr string, want int) ([]int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var total atomic.Int64
	counts := make([]int, 2)
	errc := make(chan error, 2)
	for i := range counts {
		go func(i int) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("dashboard"), kgo.ConsumeTopics("telemetry"),
				kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				errc <- err
				return
			}
			defer cl.Close()
			for total.Load() < int64(want) && ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				n := fs.NumRecords()
				counts[i] += n
				if total.Add(int64(n)) >= int64(want) {
					cancel() // wakes the other member's poll
				}
			}
			cl.CommitUncommittedOffsets(context.Background())
			errc <- nil
		}(i)
	}
	if err := errors.Join(<-errc, <-errc); err != nil {
		return counts, err
	}
	if total.Load() < int64(want) {
		return counts, fmt.Errorf("demo: the group read %d of %d records in a minute", total.Load(), want)
	}
	return counts, nil
}

// demoCountAll reads a topic from the start with a direct consumer until
// want records have come.
func demoCountAll(ctx context.Context, addr, topic string, want int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	n := 0
	for n < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return n, fmt.Errorf("demo: read %d of %d records after the restart", n, want)
		}
		n += fs.NumRecords()
	}
	return n, nil
}
