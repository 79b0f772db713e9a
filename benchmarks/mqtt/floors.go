package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sys/unix"

	"github.com/fluxo-io/fluxo/benchmarks/internal/hist"
)

// floors are the latencies of the parts an alarm's trip chains, each
// measured alone in the same run at the alarm rate: the trip through the
// edge cannot be faster than their sum on this machine.
type floors struct {
	kafka *hist.Hist // franz-go producer → core → franz-go consumer
	fsync *hist.Hist // a small append and fdatasync in the spool's file system
}

// floorTopic is the core topic of the Kafka floor.
const floorTopic = "latency-floor"

// measureKafkaFloor produces n records, one every interval, with a
// franz-go producer (acks=all, no linger) to the core, and measures each
// from its send to a franz-go consumer's receipt, the consumer set up as
// the alarm consumer of runLatency.
func measureKafkaFloor(ctx context.Context, coreAddr string, n int, interval time.Duration) (*hist.Hist, error) {
	h := new(hist.Hist)
	prod, err := kgo.NewClient(kgo.SeedBrokers(coreAddr),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	// The topic exists before the consumer starts at its end.
	resp, err := kadm.NewClient(prod).CreateTopic(ctx, -1, -1, nil, floorTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return nil, fmt.Errorf("kafka floor: create %s: %w", floorTopic, err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(coreAddr), kgo.ConsumeTopics(floorTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(time.Second))
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	cctx, cancel := context.WithTimeout(ctx, time.Duration(n)*interval+30*time.Second)
	defer cancel()
	seen := make(chan struct{})
	go func() {
		defer close(seen)
		got := 0
		for got < n && cctx.Err() == nil {
			fs := cons.PollFetches(cctx)
			now := time.Now().UnixNano()
			fs.EachRecord(func(r *kgo.Record) {
				if ts, err := strconv.ParseInt(string(r.Value), 10, 64); err == nil {
					h.Record(time.Duration(now - ts))
					got++
				}
			})
		}
	}()
	// Let the consumer find its start offset first.
	sleep(cctx, time.Second)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for range n {
		r := &kgo.Record{Topic: floorTopic, Value: strconv.AppendInt(nil, time.Now().UnixNano(), 10)}
		if err := prod.ProduceSync(cctx, r).FirstErr(); err != nil {
			return nil, fmt.Errorf("kafka floor: produce: %w", err)
		}
		select {
		case <-tick.C:
		case <-cctx.Done():
		}
	}
	<-seen
	if h.Count() < int64(n) {
		return nil, fmt.Errorf("kafka floor: the consumer read %d of %d records", h.Count(), n)
	}
	return h, nil
}

// measureFsyncFloor appends 512 bytes to a file in dir and fdatasyncs it,
// n times, one every interval: the wait an alarm has under --spool-sync
// always before the uplink may read it.
func measureFsyncFloor(ctx context.Context, dir string, n int, interval time.Duration) (*hist.Hist, error) {
	f, err := os.CreateTemp(dir, "fsync-floor-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := new(hist.Hist)
	buf := make([]byte, 512)
	for range n {
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			return nil, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return nil, fmt.Errorf("fsync floor: %s: %w", filepath.Base(f.Name()), err)
		}
		h.Record(time.Since(t))
		sleep(ctx, interval)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return h, nil
}
