package kafka

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkProduceManyPartitions: franz-go producing 1 KiB records
// (idempotent, acks=all, uncompressed, spread over 1,000 partitions) to
// the server with a real broker, the -many scenario of benchmarks/kafka
// in one process. Its baseline in the same run is "serial": the server
// reading a connection's next frame only once the previous request is
// answered and appending a request's partitions one after the other;
// "read-ahead" reads the frame after a Produce while it is handled, and
// "parallel" also appends a large request's partitions side by side. The
// figures to read are their ratios to serial. One op is one record; the
// client's costs are in the same process.
func BenchmarkProduceManyPartitions(b *testing.B) {
	for _, mode := range []struct {
		name                string
		readAhead, parallel bool
	}{{"serial", false, false}, {"read-ahead", true, false}, {"parallel", true, true}} {
		b.Run(mode.name, func(b *testing.B) {
			defer func(r, p bool) { readAheadProduce, parallelAppends = r, p }(readAheadProduce, parallelAppends)
			readAheadProduce, parallelAppends = mode.readAhead, mode.parallel
			benchProduceMany(b)
		})
	}
}

func benchProduceMany(b *testing.B) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Broker = openBroker(b)
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(ctx)
	seed := kgo.SeedBrokers(s.Addr().String())
	adm, err := kgo.NewClient(seed)
	if err != nil {
		b.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, 1000, 1, nil, "many"); err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(seed, kgo.DefaultProduceTopic("many"),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	value := make([]byte, 1<<10)
	for i := range value {
		value[i] = byte(i * 31)
	}
	var failed atomic.Int64
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	// A warm-up gives every partition its first write (three files
	// created), untimed, then the producer's client fills its batches.
	warm, err := kgo.NewClient(seed, kgo.DefaultProduceTopic("many"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		b.Fatal(err)
	}
	for p := range int32(1000) {
		warm.Produce(ctx, &kgo.Record{Value: value, Partition: p}, promise)
	}
	err = warm.Flush(ctx)
	warm.Close()
	if err != nil {
		b.Fatal(err)
	}
	for range 16 << 10 {
		cl.Produce(ctx, &kgo.Record{Value: value}, promise)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		cl.Produce(ctx, &kgo.Record{Value: value}, promise)
	}
	// Timed: the op ends with its acknowledgement.
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("got %d records failed, want none", n)
	}
}
