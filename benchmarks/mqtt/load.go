package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fluxo-io/fluxo/benchmarks/internal/proc"
)

// connect connects one MQTT 3.1.1 client per id to addr, with clean
// sessions, a few at a time.
func connect(ctx context.Context, addr string, ids []string) ([]paho.Client, error) {
	clients := make([]paho.Client, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range clients {
		opts := paho.NewClientOptions().
			AddBroker("tcp://" + addr).
			SetClientID(ids[i]).
			SetProtocolVersion(4).
			SetCleanSession(true).
			SetAutoReconnect(false).
			SetConnectRetry(false).
			SetConnectTimeout(10 * time.Second).
			SetKeepAlive(60 * time.Second).
			SetWriteTimeout(30 * time.Second)
		clients[i] = paho.NewClient(opts)
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			errs[i] = waitToken(clients[i].Connect(), 15*time.Second)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		disconnect(clients)
		return nil, fmt.Errorf("connect: %w", err)
	}
	return clients, nil
}

// disconnect closes the clients' connections, without waiting for work
// in flight (the runs have waited for what they measure).
func disconnect(clients []paho.Client) {
	var wg sync.WaitGroup
	for _, c := range clients {
		if c != nil && c.IsConnectionOpen() {
			wg.Go(func() { c.Disconnect(50) })
		}
	}
	wg.Wait()
}

// counter is an atomic count on its own cache line.
type counter struct {
	atomic.Int64
	_ [56]byte
}

func sum(cs []counter) int64 {
	var t int64
	for i := range cs {
		t += cs[i].Load()
	}
	return t
}

// loadSpec is one flood: publishers publishing as fast as their QoS
// allows.
type loadSpec struct {
	publishers int
	qos        byte
	inflight   int           // QoS 1: unacknowledged publishes per publisher
	warmup     time.Duration // before the timed window
	duration   time.Duration // the timed window
	// payload returns publisher p's next payload, appended to b[:0].
	payload func(p int, b []byte) []byte
	// topic is publisher p's topic.
	topic func(p int) string
	// id is publisher p's MQTT client id.
	id      func(p int) string
	corePID int // a fluxo core to measure the CPU of, 0: none
}

// loadResult is what one flood measured.
type loadResult struct {
	msgs      int64         // PUBLISH packets the server received in the window
	elapsed   time.Duration // the window, as the server's counts were read
	client    int64         // publishes done in the window, client side: acknowledged (QoS 1) or written (QoS 0)
	bytes     int64         // payload bytes done, warm-up included
	serverCPU time.Duration // in the window; 0 when the server runs in this process
	coreCPU   time.Duration
	clientCPU time.Duration // this process
	errors    int64         // publishes that failed
}

func (r loadResult) rate() float64 { return float64(r.msgs) / r.elapsed.Seconds() }

// cpuSnap is the CPU time of the processes a run measures.
type cpuSnap struct{ server, core, self time.Duration }

func snapCPU(serverPID, corePID int) cpuSnap {
	var s cpuSnap
	if serverPID != 0 {
		s.server, _ = proc.CPUTime(serverPID)
	}
	if corePID != 0 {
		s.core, _ = proc.CPUTime(corePID)
	}
	s.self, _ = proc.CPUTime(0)
	return s
}

// runLoad connects the publishers to t, lets them publish for warm-up
// plus duration, and reads the server's count of PUBLISH packets at the
// start and at the end of the timed window: for QoS 0 the client only
// knows what it handed to its socket, not what the server read.
//
// QoS 1: each publisher keeps up to inflight publishes unacknowledged
// and waits for the oldest PUBACK before sending more (paho has no window
// of its own for MQTT 3.1.1). QoS 0: each publisher calls Publish in a
// loop; paho writes every packet to the socket before the next Publish
// returns, so TCP is the only throttle.
func runLoad(ctx context.Context, t target, s loadSpec) (loadResult, error) {
	var res loadResult
	ids := make([]string, s.publishers)
	for p := range ids {
		ids[p] = s.id(p)
	}
	clients, err := connect(ctx, t.MQTTAddr(), ids)
	if err != nil {
		return res, err
	}
	defer disconnect(clients)

	ctx, cancel := context.WithTimeout(ctx, s.warmup+s.duration+time.Minute)
	defer cancel()
	var (
		stop   atomic.Bool
		done   = make([]counter, s.publishers)
		bytes  = make([]counter, s.publishers)
		failed atomic.Int64
		wg     sync.WaitGroup

		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		if s.qos == 0 && stop.Load() {
			return // a publish cut short by the end of the run
		}
		errOnce.Do(func() { firstErr = err })
		failed.Add(1)
	}
	for p, c := range clients {
		wg.Go(func() {
			topic := s.topic(p)
			var buf []byte
			if s.qos == 0 {
				var last paho.Token
				for i := 0; !stop.Load() && ctx.Err() == nil; i++ {
					buf = s.payload(p, buf[:0])
					last = c.Publish(topic, 0, false, buf)
					if i%1024 == 0 && last.Error() != nil {
						fail(last.Error())
						return
					}
					done[p].Add(1)
					bytes[p].Add(int64(len(buf)))
				}
				// The last publishes may still sit in the socket buffers
				// (the server reads slower than TCP accepts); they are not
				// counted, and closing the connection drops them.
				return
			}
			// paho keeps a reference to the payload until the PUBACK:
			// every publish in flight needs its own buffer.
			ring := make([]paho.Token, s.inflight)
			bufs := make([][]byte, s.inflight)
			sizes := make([]int, s.inflight)
			head, n := 0, 0
			wait := func() bool {
				tok := ring[head]
				select {
				case <-tok.Done():
				case <-ctx.Done():
					return false
				}
				if tok.Error() != nil {
					fail(tok.Error())
					return false
				}
				done[p].Add(1)
				bytes[p].Add(int64(sizes[head]))
				head = (head + 1) % len(ring)
				n--
				return true
			}
			for !stop.Load() && ctx.Err() == nil {
				if n == len(ring) && !wait() {
					return
				}
				slot := (head + n) % len(ring)
				bufs[slot] = s.payload(p, bufs[slot][:0])
				sizes[slot] = len(bufs[slot])
				ring[slot] = c.Publish(topic, 1, false, bufs[slot])
				n++
			}
			for n > 0 && wait() {
			}
		})
	}

	sleep(ctx, s.warmup)
	n0, t0, err0 := t.Published(ctx)
	c0, cpu0 := sum(done), snapCPU(t.PID(), s.corePID)
	sleep(ctx, time.Until(t0.Add(s.duration)))
	n1, t1, err1 := t.Published(ctx)
	c1, cpu1 := sum(done), snapCPU(t.PID(), s.corePID)
	stop.Store(true)
	if s.qos == 0 {
		// A QoS 0 publisher may be blocked in Publish behind megabytes
		// of socket buffer the server has yet to read: closing the
		// connections releases it.
		disconnect(clients)
	}
	wg.Wait()
	if err := errors.Join(err0, err1, ctx.Err()); err != nil {
		return res, err
	}
	res = loadResult{
		msgs: n1 - n0, elapsed: t1.Sub(t0), client: c1 - c0, bytes: sum(bytes),
		serverCPU: cpu1.server - cpu0.server, coreCPU: cpu1.core - cpu0.core, clientCPU: cpu1.self - cpu0.self,
		errors: failed.Load(),
	}
	if res.errors > 0 {
		return res, fmt.Errorf("%d publishers failed, first: %w", res.errors, firstErr)
	}
	return res, nil
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
