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

	mu     sync.Mutex // guards cut, the proxy's start and stop
	cut    bool
	closed bool
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
	for _, d := range []Direction{Up, Down} {
		if err := l.add("count_"+d.String(), "fluxo_count", d, map[string]any{"key": key, "dir": int(d)}); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// Addr is the link's address: give it to the client (and advertise it,
// when the upstream names itself to clients, as a Kafka broker does).
func (l *Link) Addr() string { return l.proxy.Listen }

// Bytes returns how many bytes entered the link in direction d since it
// started (counted before the faults: what the sender handed to it).
func (l *Link) Bytes(d Direction) int64 { return l.sh.bytes[d].Load() }

// Latency delays every chunk in both directions by d ± jitter (so a round
// trip takes 2d more).
func (l *Link) Latency(d, jitter time.Duration) error {
	for _, dir := range []Direction{Up, Down} {
		if err := l.add("latency_"+dir.String(), "latency", dir, map[string]any{
			"latency": d.Milliseconds(), "jitter": jitter.Milliseconds()}); err != nil {
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
		if err := l.add("bandwidth_"+dir.String(), "fluxo_bandwidth", dir, map[string]any{
			"key": l.key, "dir": int(dir), "rate": bytesPerSec}); err != nil {
			return err
		}
	}
	return nil
}

// LimitData closes each connection once n bytes went through it in
// direction d (counted from now for open connections, from their start
// for new ones): toxiproxy's limit_data, a link that drops mid-transfer.
func (l *Link) LimitData(d Direction, n int64) error {
	return l.add("limit_"+d.String(), "limit_data", d, map[string]any{"bytes": n})
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
	for _, dir := range []Direction{Up, Down} {
		// A latency far beyond any test: removing it delivers at once
		// what it holds (toxiproxy's latency toxic never drops data).
		if err := l.add("cut_"+dir.String(), "latency", dir, map[string]any{"latency": (24 * time.Hour).Milliseconds()}); err != nil {
			return err
		}
	}
	l.cut = true
	return nil
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
	l.cut = false
	l.mu.Unlock()
	var errs []error
	for _, t := range l.proxy.Toxics.GetToxicArray() {
		w, ok := t.(*toxics.ToxicWrapper)
		if !ok || strings.HasPrefix(w.Name, "count_") {
			continue
		}
		errs = append(errs, l.remove(w.Name))
	}
	return errors.Join(errs...)
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
	var errs []error
	for _, dir := range []Direction{Up, Down} {
		name := kind + "_" + dir.String()
		if l.proxy.Toxics.GetToxic(name) != nil {
			errs = append(errs, l.remove(name))
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
// the last one ended (or now, if the link was idle).
type bucket struct {
	mu   sync.Mutex
	next time.Time // when the link is free again
}

// book reserves n bytes at rate bytes/s and returns when they have gone.
func (b *bucket) book(n int, rate int64) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.next.Before(now) {
		b.next = now
	}
	b.next = b.next.Add(time.Duration(int64(n) * int64(time.Second) / rate))
	return b.next
}
