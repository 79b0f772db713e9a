package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// car publishes telemetry (and, when asked, alarms) over MQTT at QoS 1
// with paho, keeping up to inflight publishes unacknowledged, and records
// which seqs the edge acknowledged.
type car struct {
	id       string
	c        mqtt.Client
	r        *rand.Rand
	inflight chan struct{}

	lat, lon, speed, temp float64

	mu      sync.Mutex
	next    uint64              // seq of the next message
	acked   map[uint64]bool     // seqs acknowledged by the edge
	alarms  map[uint64]struct{} // seqs that were alarms
	bytes   int64               // payload bytes acknowledged
	failed  int                 // publishes that got no PUBACK
	pending sync.WaitGroup
}

func newCar(broker string, i int) (*car, error) {
	c := &car{id: fmt.Sprintf("c-%04d", i+1), r: rand.New(rand.NewPCG(uint64(i), 7)), inflight: make(chan struct{}, 32),
		acked: map[uint64]bool{}, alarms: map[uint64]struct{}{}}
	c.lat, c.lon, c.speed, c.temp = 48.1+c.r.Float64()*0.1, 11.5+c.r.Float64()*0.1, c.r.Float64()*100, 90
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + broker).SetClientID(c.id).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetWriteTimeout(10 * time.Second)
	c.c = mqtt.NewClient(opts)
	tok := c.c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("car %s: connect: %v", c.id, tok.Error())
	}
	return c, nil
}

// payload is the next message, shaped like the devices package's car
// telemetry (or engine-overheat alarm): slowly changing values.
func (c *car) payload(seq uint64, alarm bool) []byte {
	c.speed = min(max(c.speed+c.r.NormFloat64()*3, 0), 180)
	c.lat += c.speed * 1e-6 * math.Cos(float64(seq))
	c.lon += c.speed * 1e-6 * math.Sin(float64(seq))
	c.temp = min(max(c.temp+c.r.NormFloat64()*0.3, 70), 125)
	b := fmt.Appendf(nil, `{"device":"%s","seq":%d,"ts_ms":%d,"lat":%.6f,"lon":%.6f`, c.id, seq, time.Now().UnixMilli(), c.lat, c.lon)
	if alarm {
		b = fmt.Appendf(b, `,"alarm":"engine-overheat","engine_temp_c":%.1f,"threshold_c":110}`, max(c.temp, 110.1))
	} else {
		b = fmt.Appendf(b, `,"speed_kmh":%.1f,"heading_deg":%d,"fuel_pct":%.1f,"engine_temp_c":%.1f}`, c.speed, c.r.IntN(360), 50+c.r.Float64()*10, c.temp)
	}
	return b
}

// publish sends one message; it blocks while inflight publishes are
// unacknowledged.
func (c *car) publish(ctx context.Context, alarm bool) error {
	select {
	case c.inflight <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	seq := c.next
	c.next++
	if alarm {
		c.alarms[seq] = struct{}{}
	}
	p := c.payload(seq, alarm)
	c.mu.Unlock()
	topic := "cars/" + c.id + "/telemetry"
	if alarm {
		topic = "cars/" + c.id + "/alarm/engine-overheat"
	}
	tok := c.c.Publish(topic, 1, false, p)
	c.pending.Add(1)
	go func() {
		defer c.pending.Done()
		defer func() { <-c.inflight }()
		ok := tok.WaitTimeout(30*time.Second) && tok.Error() == nil
		c.mu.Lock()
		defer c.mu.Unlock()
		if ok {
			c.acked[seq] = true
			c.bytes += int64(len(p))
		} else {
			c.failed++
		}
	}()
	return nil
}

// run publishes at rate messages per second until ctx ends.
func (c *car) run(ctx context.Context, rate float64) error {
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := c.publish(ctx, false); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
		}
	}
}

// close waits for the outstanding PUBACKs and disconnects.
func (c *car) close() {
	c.pending.Wait()
	c.c.Disconnect(100)
}

// parseIDSeq reads "device" and "seq" of a payload.
func parseIDSeq(v []byte) (string, uint64, bool) {
	i := bytes.Index(v, []byte(`"device":"`))
	if i < 0 {
		return "", 0, false
	}
	rest := v[i+len(`"device":"`):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", 0, false
	}
	id := string(rest[:j])
	k := bytes.Index(v, []byte(`"seq":`))
	if k < 0 {
		return "", 0, false
	}
	num := v[k+len(`"seq":`):]
	e := 0
	for e < len(num) && num[e] >= '0' && num[e] <= '9' {
		e++
	}
	seq, err := strconv.ParseUint(string(num[:e]), 10, 64)
	return id, seq, err == nil
}

// fleet is the cars of one run.
type fleet []*car

func startFleet(broker string, n int) (fleet, error) {
	var f fleet
	for i := range n {
		c, err := newCar(broker, i)
		if err != nil {
			f.close()
			return nil, err
		}
		f = append(f, c)
	}
	return f, nil
}

func (f fleet) close() {
	for _, c := range f {
		c.close()
	}
}

// acked counts the messages acknowledged by the edge and their payload
// bytes.
func (f fleet) acked() (n int, bytes int64, failed int) {
	for _, c := range f {
		c.mu.Lock()
		n += len(c.acked)
		bytes += c.bytes
		failed += c.failed
		c.mu.Unlock()
	}
	return n, bytes, failed
}

// check matches what the core holds (device → seq → count) against what
// the edge acknowledged: lost are acknowledged seqs missing, dups seqs
// there more than once.
func (f fleet) check(got map[string]map[uint64]int) (lost, dups int) {
	for _, c := range f {
		c.mu.Lock()
		for seq := range c.acked {
			if got[c.id][seq] == 0 {
				lost++
			}
		}
		c.mu.Unlock()
		for _, n := range got[c.id] {
			if n > 1 {
				dups += n - 1
			}
		}
	}
	return lost, dups
}
