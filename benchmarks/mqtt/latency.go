package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/benchmarks/internal/hist"
)

// latencySpec is the alarm latency scenario: devices publishing at a
// steady total rate, mostly telemetry and some alarms, all at QoS 1,
// through the edge to the core, where a consumer reads them.
type latencySpec struct {
	devices    int
	rate       float64 // messages per second, all devices together
	alarmShare float64 // fraction of the messages that are alarms
	warmup     time.Duration
	duration   time.Duration
	seed       uint64
}

// latencyResult is what the scenario measured. Latencies are of the
// messages sent in the timed window.
type latencyResult struct {
	alarmE2E, alarmAck, telemetryE2E *hist.Hist    // telemetry: ms resolution
	telemetry                        []*kgo.Record // telemetry records of the window, as the consumer read them
	alarmsSent, alarmsSeen           int64         // in the timed window
	lateTicks                        int64         // PUBACKs slower than a device's send interval
	bytes                            [2]int64
	msgs                             [2]int64 // payload bytes and messages acknowledged, warm-up included: [telemetry, alarm]
}

// maxKeptRecords bounds the telemetry records a latency run keeps for
// estimateCompression.
const maxKeptRecords = 200000

const (
	laneTelemetry = 0
	laneAlarm     = 1
)

// runLatency starts a consumer of each core topic, alarms and telemetry,
// at its end, connects the devices to the edge and has each publish every
// devices/rate seconds (first at a random phase), waiting for each PUBACK
// before its next message. Every payload carries its send time (ts_ns);
// the consumer subtracts it from the time it reads the record (one
// machine, one clock). After the window the devices stop and the run
// waits, at most 30 s, for the consumer to have read every alarm of the
// window.
func runLatency(ctx context.Context, t target, coreAddr string, s latencySpec) (latencyResult, error) {
	res := latencyResult{alarmE2E: new(hist.Hist), alarmAck: new(hist.Hist), telemetryE2E: new(hist.Hist)}
	ctx, cancel := context.WithTimeout(ctx, s.warmup+s.duration+2*time.Minute)
	defer cancel()

	// Only records sent in [from, to) are measured.
	var from, to atomic.Int64
	from.Store(1<<63 - 1)
	stopConsumerAndWait := func() {}
	var consumerErr error
	var alarmsSeen atomic.Int64
	if coreAddr != "" {
		// One consumer per topic, as an alarm monitor and a telemetry
		// backend would be: an alarm is not decoded behind a second's
		// telemetry batch.
		var errMu sync.Mutex
		cctx, stopConsumer := context.WithCancel(ctx)
		var cwg sync.WaitGroup
		for _, topic := range []string{"alarms", "telemetry"} {
			cl, err := kgo.NewClient(
				kgo.SeedBrokers(coreAddr),
				kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
				kgo.FetchMaxWait(time.Second),
			)
			if err != nil {
				stopConsumer()
				cwg.Wait()
				return res, err
			}
			defer cl.Close()
			cwg.Go(func() {
				for cctx.Err() == nil {
					fs := cl.PollFetches(cctx)
					now := time.Now().UnixNano()
					fs.EachError(func(topic string, p int32, err error) {
						errMu.Lock()
						defer errMu.Unlock()
						if !errors.Is(err, context.Canceled) && consumerErr == nil {
							consumerErr = fmt.Errorf("consume %s/%d: %w", topic, p, err)
						}
					})
					fs.EachRecord(func(r *kgo.Record) {
						// Alarms carry their send time in ns, telemetry (as
						// devices send it) in ms only.
						ts, alarm := tsNs(r.Value), r.Topic == "alarms"
						if !alarm {
							ts = tsMs(r.Value) * 1e6
						}
						if ts < from.Load() || ts >= to.Load() && to.Load() != 0 {
							return
						}
						d := time.Duration(now - ts)
						if alarm {
							res.alarmE2E.Record(d)
							alarmsSeen.Add(1)
						} else {
							res.telemetryE2E.Record(d)
							if len(res.telemetry) < maxKeptRecords {
								res.telemetry = append(res.telemetry, r)
							}
						}
					})
				}
			})
		}
		stopped := false
		stop := func() {
			if !stopped {
				stopped = true
				stopConsumer()
				cwg.Wait()
			}
		}
		defer stop()
		stopConsumerAndWait = stop
	}

	cars := make([]*car, s.devices)
	ids := make([]string, s.devices)
	for i := range cars {
		cars[i] = newCar(i, s.seed)
		ids[i] = cars[i].id
	}
	// Client id = device id, as the devices package connects.
	clients, err := connect(ctx, t.MQTTAddr(), ids)
	if err != nil {
		return res, err
	}
	defer disconnect(clients)

	interval := time.Duration(float64(s.devices) / s.rate * float64(time.Second))
	var (
		stop                atomic.Bool
		alarmsSent, late    atomic.Int64
		laneBytes, laneMsgs [2]atomic.Int64
		failed              atomic.Int64
		wg                  sync.WaitGroup
		errOnce             sync.Once
		firstErr            error
		phase               = rand.New(rand.NewPCG(s.seed, 1))
		phases              = make([]time.Duration, s.devices)
	)
	measuring := func(ts int64) bool { return ts >= from.Load() && (to.Load() == 0 || ts < to.Load()) }
	recordErr := func(err error) {
		errOnce.Do(func() { firstErr = err })
		failed.Add(1)
	}
	for i := range phases {
		phases[i] = time.Duration(phase.Int64N(int64(interval)))
	}
	for i, c := range clients {
		wg.Go(func() {
			car, r := cars[i], rand.New(rand.NewPCG(s.seed, uint64(i)+1000))
			sleep(ctx, phases[i])
			tick := time.NewTicker(interval)
			defer tick.Stop()
			var buf []byte
			for !stop.Load() {
				ts := time.Now().UnixNano()
				alarm := r.Float64() < s.alarmShare
				var topic string
				lane := laneTelemetry
				if alarm {
					buf, topic, lane = car.alarm(buf[:0], ts), car.topic("alarm/engine-overheat"), laneAlarm
				} else {
					// Telemetry as devices send it: ts_ms only.
					buf, topic = car.telemetry(buf[:0], ts, false), car.topic("telemetry")
				}
				tok := c.Publish(topic, 1, false, buf)
				if err := waitToken(tok, 30*time.Second); err != nil {
					recordErr(fmt.Errorf("publish %s: %w", topic, err))
					return
				}
				acked := time.Now().UnixNano()
				laneBytes[lane].Add(int64(len(buf)))
				laneMsgs[lane].Add(1)
				if alarm && measuring(ts) {
					res.alarmAck.Record(time.Duration(acked - ts))
					alarmsSent.Add(1)
				}
				// A PUBACK slower than the interval makes the next send late
				// (the ticker drops the ticks it could not deliver).
				if acked-ts > int64(interval) {
					late.Add(1)
				}
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
		})
	}

	sleep(ctx, s.warmup)
	from.Store(time.Now().UnixNano())
	sleep(ctx, s.duration)
	to.Store(time.Now().UnixNano())
	stop.Store(true)
	wg.Wait()
	if firstErr != nil {
		return res, fmt.Errorf("%d devices failed, first: %w", failed.Load(), firstErr)
	}

	res.alarmsSent, res.lateTicks = alarmsSent.Load(), late.Load()
	for l := range laneBytes {
		res.bytes[l], res.msgs[l] = laneBytes[l].Load(), laneMsgs[l].Load()
	}
	if coreAddr == "" {
		return res, ctx.Err()
	}
	// Wait for the alarms of the window to reach the consumer.
	deadline := time.Now().Add(30 * time.Second)
	for alarmsSeen.Load() < res.alarmsSent && time.Now().Before(deadline) && ctx.Err() == nil {
		sleep(ctx, 20*time.Millisecond)
	}
	stopConsumerAndWait()
	if consumerErr != nil {
		return res, consumerErr
	}
	res.alarmsSeen = alarmsSeen.Load()
	if res.alarmsSeen < res.alarmsSent {
		return res, fmt.Errorf("the consumer read %d of the %d alarms sent in the window", res.alarmsSeen, res.alarmsSent)
	}
	return res, ctx.Err()
}
