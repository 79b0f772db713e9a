// Package faultlink puts a bad network link between two TCP endpoints, for
// tests and benchmarks: toxiproxy's proxy (github.com/Shopify/toxiproxy/v2)
// run in this process, with its toxics (latency and jitter, limit_data)
// and three of ours: a bandwidth cap shared by every connection of the
// link (one radio, not one pipe per connection), a byte counter, and a
// cut that holds the bytes in flight until the link is back, as TCP
// retransmission delivers them after an outage.
//
// A Link listens on 127.0.0.1 and forwards each connection it accepts to
// the upstream address. Faults are added and removed while connections
// are open; they apply to open and new connections alike.
//
// Only tests and the benchmark programs import this package; the fluxo
// binary never does (a test checks it).
package faultlink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Direction is one way through the link.
type Direction int

const (
	// Up is client to upstream (an edge's produce requests).
	Up Direction = iota
	// Down is upstream to client (the core's responses).
	Down
)

// String is toxiproxy's name of the stream.
func (d Direction) String() string {
	if d == Down {
		return "downstream"
	}
	return "upstream"
}

var (
	registerOnce sync.Once
	linkSeq      atomic.Int64
	// shared holds each link's per-direction state that our toxics find
	// by key (toxiproxy builds a toxic from JSON, so the toxic names its
	// state instead of holding it). Guarded by sharedMu.
	sharedMu sync.Mutex
	shared   = map[string]*linkShared{}
)

// linkShared is what every connection of one link has in common.
type linkShared struct {
	bytes  [2]atomic.Int64 // bytes that entered the link, per direction
	bucket [2]bucket       // the shared bandwidth cap, per direction
}

// Link is a fault-injecting TCP proxy in front of one upstream address.
// Its methods may be called from any goroutine.
type Link struct {
	key   string
	proxy *toxiproxy.Proxy
	sh    *linkShared

	mu     sync.Mutex // guards the fields below, the toxics' order, the proxy's start and stop
	cut    bool
	closed bool
	// faults are the toxics in place besides the cut and the counters,
	// in the order added. The chain is always: cut (if cut), faults,
	// counters; so a cut holds bytes before they cost latency or
	// bandwidth, and the counters count what left the link.
	faults []fault
}

// fault is one toxic as added.
type fault struct {
	name, typ string
	dir       Direction
	attrs     map[string]any
}

// Start starts a link on a free port of 127.0.0.1 to upstream. log
// receives toxiproxy's own logs (zero value: none). Close stops it.
func Start(upstream string, log zerolog.Logger) (*Link, error) {
	registerOnce.Do(func() {
		toxics.Register("fluxo_count", new(countToxic))
		toxics.Register("fluxo_bandwidth", new(bandwidthToxic))
	})
	key := "link-" + strconv.FormatInt(linkSeq.Add(1), 10)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), log)
	p := toxiproxy.NewProxy(srv, key, "127.0.0.1:0", upstream)
	sh := &linkShared{}
	sharedMu.Lock()
	shared[key] = sh
	sharedMu.Unlock()
	l := &Link{key: key, proxy: p, sh: sh}
	if err := p.Start(); err != nil {
		l.forget()
		return nil, fmt.Errorf("faultlink: start: %w", err)
	}
	if err := l.addCounters(); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Addr is the link's address: give it to the client (and advertise it,
// when the upstream names itself to clients, as a Kafka broker does).
func (l *Link) Addr() string { return l.proxy.Listen }

// Bytes returns how many bytes the link carried in direction d since it
// started (counted after the faults: what left the link).
func (l *Link) Bytes(d Direction) int64 { return l.sh.bytes[d].Load() }

// Latency delays every chunk in both directions by d ± jitter (so a round
// trip takes 2d more).
func (l *Link) Latency(d, jitter time.Duration) error {
	for _, dir := range []Direction{Up, Down} {
		if err := l.addFault(fault{"latency_" + dir.String(), "latency", dir, map[string]any{
			"latency": d.Milliseconds(), "jitter": jitter.Milliseconds()}}); err != nil {
			return err
		}
	}
	return nil
}

// Bandwidth caps each direction at bytesPerSec, shared by all the link's
// connections (a cellular link is one radio: an alarm's connection and a
// telemetry connection split it).
func (l *Link) Bandwidth(bytesPerSec int64) error {
	if bytesPerSec <= 0 {
		return errors.New("faultlink: bandwidth must be positive")
	}
	for _, dir := range []Direction{Up, Down} {
		if err := l.addFault(fault{"bandwidth_" + dir.String(), "fluxo_bandwidth", dir, map[string]any{
			"key": l.key, "dir": int(dir), "rate": bytesPerSec}}); err != nil {
			return err
		}
	}
	return nil
}

// LimitData closes each connection once n bytes went through it in
// direction d (counted from now for open connections, from their start
// for new ones): toxiproxy's limit_data, a link that drops mid-transfer.
func (l *Link) LimitData(d Direction, n int64) error {
	return l.addFault(fault{"limit_" + d.String(), "limit_data", d, map[string]any{"bytes": n}})
}

// Cut stops the link: nothing goes through in either direction, on open
// or new connections (new ones are accepted and then hear nothing, like a
// dead radio link, not refused). What was sent meanwhile is held, not
// dropped, and delivered on Heal, as TCP retransmits it.
func (l *Link) Cut() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return nil
	}
	// Taken out and put back behind the cut: nothing is dropped when a
	// toxic leaves the chain.
	if err := l.removeAll(); err != nil {
		return err
	}
	for _, dir := range []Direction{Up, Down} {
		// A latency far beyond any test: removing it delivers at once
		// what it holds (toxiproxy's latency toxic never drops data).
		if err := l.add("cut_"+dir.String(), "latency", dir, map[string]any{"latency": (24 * time.Hour).Milliseconds()}); err != nil {
			return err
		}
	}
	l.cut = true
	for _, f := range l.faults {
		if err := l.add(f.name, f.typ, f.dir, f.attrs); err != nil {
			return err
		}
	}
	return l.addCounters()
}

// Heal ends a Cut.
func (l *Link) Heal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.cut {
		return nil
	}
	l.cut = false
	return errors.Join(l.remove("cut_upstream"), l.remove("cut_downstream"))
}

// Reset closes every open connection of the link (the client sees them
// end mid-stream, with whatever was in flight lost) and goes on accepting
// new ones on the same address.
func (l *Link) Reset() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("faultlink: closed")
	}
	l.proxy.Stop()
	if err := l.proxy.Start(); err != nil {
		return fmt.Errorf("faultlink: start again on %s: %w", l.proxy.Listen, err)
	}
	return nil
}

// Clear removes every fault (Latency, Bandwidth, LimitData, Cut): the
// link forwards as fast as it can again. The byte counters stay.
func (l *Link) Clear() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.removeAll(); err != nil {
		return err
	}
	l.cut, l.faults = false, nil
	return l.addCounters()
}

// Close stops the link and closes its connections.
func (l *Link) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	l.proxy.Stop()
	l.forget()
}

func (l *Link) forget() {
	sharedMu.Lock()
	delete(shared, l.key)
	sharedMu.Unlock()
}

// Remove removes one fault by kind: "latency", "bandwidth", "limit" (in
// both directions where it applies).
func (l *Link) Remove(kind string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	keep := l.faults[:0]
	for _, f := range l.faults {
		if strings.HasPrefix(f.name, kind+"_") {
			errs = append(errs, l.remove(f.name))
			continue
		}
		keep = append(keep, f)
	}
	l.faults = keep
	return errors.Join(errs...)
}

// addFault puts f (replacing one of the same name) before the counters.
func (l *Link) addFault(f fault) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, g := range l.faults {
		if g.name == f.name {
			if err := l.remove(g.name); err != nil {
				return err
			}
			l.faults = append(l.faults[:i], l.faults[i+1:]...)
			break
		}
	}
	if err := l.removeCounters(); err != nil {
		return err
	}
	if err := l.add(f.name, f.typ, f.dir, f.attrs); err != nil {
		return err
	}
	l.faults = append(l.faults, f)
	return l.addCounters()
}

func (l *Link) addCounters() error {
	for _, d := range []Direction{Up, Down} {
		if err := l.add("count_"+d.String(), "fluxo_count", d, map[string]any{"key": l.key, "dir": int(d)}); err != nil {
			return err
		}
	}
	return nil
}

func (l *Link) removeCounters() error {
	return errors.Join(l.remove("count_upstream"), l.remove("count_downstream"))
}

// removeAll takes every toxic out of the chain (the cut too: what it
// held goes on).
func (l *Link) removeAll() error {
	var errs []error
	for _, t := range l.proxy.Toxics.GetToxicArray() {
		if w, ok := t.(*toxics.ToxicWrapper); ok {
			errs = append(errs, l.remove(w.Name))
		}
	}
	return errors.Join(errs...)
}

// add adds toxic name (of type typ) in direction d; one of that name
// already there is replaced.
func (l *Link) add(name, typ string, d Direction, attrs map[string]any) error {
	if l.proxy.Toxics.GetToxic(name) != nil {
		if err := l.remove(name); err != nil {
			return err
		}
	}
	body, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": d.String(), "toxicity": 1.0, "attributes": attrs})
	if err != nil {
		return fmt.Errorf("faultlink: %s: %w", name, err)
	}
	if _, err := l.proxy.Toxics.AddToxicJson(strings.NewReader(string(body))); err != nil {
		return fmt.Errorf("faultlink: add %s: %w", name, err)
	}
	return nil
}

func (l *Link) remove(name string) error {
	if err := l.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		return fmt.Errorf("faultlink: remove %s: %w", name, err)
	}
	return nil
}

func lookup(key string) *linkShared {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	return shared[key]
}

// countToxic counts the bytes going through into its link's counter.
type countToxic struct {
	Key string `json:"key"`
	Dir int    `json:"dir"`
}

func (t *countToxic) Pipe(stub *toxics.ToxicStub) {
	sh := lookup(t.Key)
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			if sh != nil {
				sh.bytes[t.Dir].Add(int64(len(c.Data)))
			}
			stub.Output <- c
		}
	}
}

// bandwidthToxic passes bytes at Rate bytes/s, shared by every
// connection of its link in its direction: each slice of a chunk books
// its time on the link's bucket, so two busy connections interleave
// slice by slice.
type bandwidthToxic struct {
	Key  string `json:"key"`
	Dir  int    `json:"dir"`
	Rate int64  `json:"rate"`
}

// GetBufferSize lets a sender queue ahead of the cap, as a modem does.
func (t *bandwidthToxic) GetBufferSize() int { return 64 }

func (t *bandwidthToxic) Pipe(stub *toxics.ToxicStub) {
	sh := lookup(t.Key)
	if sh == nil || t.Rate <= 0 {
		new(toxics.NoopToxic).Pipe(stub)
		return
	}
	b := &sh.bucket[t.Dir]
	slice := max(int(t.Rate/50), 256) // 20 ms of the link
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			for data := c.Data; len(data) > 0; {
				n := min(len(data), slice)
				wait := time.Until(b.book(n, t.Rate))
				if wait > 0 {
					timer := time.NewTimer(wait)
					select {
					case <-timer.C:
					case <-stub.Interrupt:
						timer.Stop()
						// Removed: hand on the rest, drop nothing.
						stub.Output <- &stream.StreamChunk{Data: data, Timestamp: c.Timestamp}
						return
					}
				}
				stub.Output <- &stream.StreamChunk{Data: data[:n], Timestamp: c.Timestamp}
				data = data[n:]
			}
		}
	}
}

// bucket books time on a link of a given rate: each booking starts where
// the last one ended, or, if the link was idle, at most burst before now.
// The burst keeps a sender's late wake-ups (timer and scheduling delays)
// from being lost time on a busy link, which would make the link slower
// than its rate.
type bucket struct {
	mu   sync.Mutex
	next time.Time // when the link is free again
}

// burst is how far back an idle link's next booking may start: 50 ms of
// its rate may go at once.
const burst = 50 * time.Millisecond

// book reserves n bytes at rate bytes/s and returns when they have gone.
func (b *bucket) book(n int, rate int64) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.next.Before(now.Add(-burst)) {
		b.next = now.Add(-burst)
	}
	b.next = b.next.Add(time.Duration(int64(n) * int64(time.Second) / rate))
	return b.next
}
