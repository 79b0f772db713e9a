package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/bbolt"

	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
)

// Config configures a Registry.
type Config struct {
	// Path is the bbolt file the registry is kept in; empty keeps it in
	// memory only.
	Path string
	// MaxDevices caps the devices kept (default 100000); beyond it the
	// least recently seen device is forgotten and counted as evicted.
	MaxDevices int
	// FlushInterval is how often changed devices are written to Path
	// (default 1s), in one transaction.
	FlushInterval time.Duration
	// MaxPending caps the commands queued for devices the downlink cannot
	// reach yet, all devices together (default 10000); MaxPendingBytes
	// caps their payload and header bytes (default 16 MiB). Past either,
	// Enqueue refuses with ErrQueueFull.
	MaxPending      int
	MaxPendingBytes int64
	// Logger receives the registry's logs; the zero value discards them.
	Logger zerolog.Logger
}

// Defaults.
const (
	DefaultMaxDevices      = 100000
	DefaultFlushInterval   = time.Second
	DefaultMaxPending      = 10000
	DefaultMaxPendingBytes = 16 << 20
)

// DefaultConfig returns an in-memory registry with the default caps.
func DefaultConfig() Config {
	return Config{
		MaxDevices:      DefaultMaxDevices,
		FlushInterval:   DefaultFlushInterval,
		MaxPending:      DefaultMaxPending,
		MaxPendingBytes: DefaultMaxPendingBytes,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MaxDevices <= 0:
		return errors.New("registry: max devices must be positive")
	case c.FlushInterval <= 0:
		return errors.New("registry: flush interval must be positive")
	case c.MaxPending <= 0 || c.MaxPendingBytes <= 0:
		return errors.New("registry: pending command caps must be positive")
	}
	return nil
}

// ErrQueueFull is returned by Enqueue past Config.MaxPending or
// MaxPendingBytes.
var ErrQueueFull = errors.New("registry: command queue full")

// Counts are per-lane counts.
type Counts struct {
	Telemetry int64 `json:"telemetry"`
	Alarm     int64 `json:"alarm"`
}

func (c *Counts) add(l spool.Lane, n int64) {
	if l == spool.Alarm {
		c.Alarm += n
	} else {
		c.Telemetry += n
	}
}

// Total is the sum over lanes.
func (c Counts) Total() int64 { return c.Telemetry + c.Alarm }

// Alarm is the last alarm a device raised.
type Alarm struct {
	Topic string    `json:"topic"`
	At    time.Time `json:"at"`
}

// Commands counts a device's commands by status.
type Commands struct {
	Pending   int64 `json:"pending"`   // queued at the edge, not yet delivered
	Delivered int64 `json:"delivered"` // handed to the device's session
	Acked     int64 `json:"acked"`     // answered by the device
	Expired   int64 `json:"expired"`   // past their expiry before delivery
	Rejected  int64 `json:"rejected"`  // refused (no topic, queue full)
}

// Device is what the registry knows of one device. The device id is the
// MQTT client id of a connection, and the second level of the topics the
// device publishes on ({fleet}/{device}/...).
type Device struct {
	ID           string    `json:"id"`
	Fleet        string    `json:"fleet,omitempty"`
	ClientID     string    `json:"client_id,omitempty"`
	Username     string    `json:"username,omitempty"`
	CertIdentity string    `json:"cert_identity,omitempty"`
	Protocol     byte      `json:"protocol,omitempty"` // MQTT protocol version: 3, 4 or 5
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
	Connected    bool      `json:"connected"`
	// Persistent: the device's session outlives its connection (MQTT 5
	// session expiry > 0, MQTT 3.1.1 clean session off).
	Persistent    bool     `json:"persistent"`
	Subscriptions []string `json:"subscriptions,omitempty"`
	Messages      Counts   `json:"messages"`
	Bytes         Counts   `json:"bytes"`
	LastAlarm     *Alarm   `json:"last_alarm,omitempty"`
	Commands      Commands `json:"commands"`
	// Recent are the device's last commands (at most MaxRecentCommands),
	// newest first, each with its latest status.
	Recent []CommandState `json:"recent_commands,omitempty"`
}

// CommandState is a command's latest status, as a device's page shows it.
type CommandState struct {
	ID     string    `json:"id"`
	Name   string    `json:"name,omitempty"`
	Status Status    `json:"status"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"` // when it took this status
}

// MaxRecentCommands is how many commands a device keeps in Device.Recent.
const MaxRecentCommands = 20

// Subscribed reports whether one of the device's subscriptions matches
// the MQTT topic.
func (d *Device) Subscribed(topic string) bool {
	for _, f := range d.Subscriptions {
		if route.MatchFilter(f, topic) {
			return true
		}
	}
	return false
}

// entry is a device as the registry keeps it: what every device has
// inline (about 120 bytes), the rest (connection, subscriptions,
// commands) in x, nil for a device that only published. Device is built
// from it when asked (device). Times are unix nanoseconds, 0 for none.
type entry struct {
	prev, next  *entry // the LRU list, most recently seen first
	id, fleet   string
	first, last int64
	msgs, bytes Counts
	connected   bool
	x           *extra
}

// extra is the part of a device that a device publishing only has not.
type extra struct {
	clientID, username, certIdentity string
	protocol                         byte
	persistent                       bool
	subscriptions                    []string
	lastAlarm                        *Alarm
	commands                         Commands
	recent                           []CommandState
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// ext returns e.x, creating it.
func (e *entry) ext() *extra {
	if e.x == nil {
		e.x = &extra{}
	}
	return e.x
}

// device builds the Device e stands for; its slices are copies.
func (e *entry) device() Device {
	d := Device{ID: e.id, Fleet: e.fleet, FirstSeen: fromNano(e.first), LastSeen: fromNano(e.last),
		Connected: e.connected, Messages: e.msgs, Bytes: e.bytes}
	if x := e.x; x != nil {
		d.ClientID, d.Username, d.CertIdentity, d.Protocol, d.Persistent = x.clientID, x.username, x.certIdentity, x.protocol, x.persistent
		d.Subscriptions = append([]string(nil), x.subscriptions...)
		if x.lastAlarm != nil {
			a := *x.lastAlarm
			d.LastAlarm = &a
		}
		d.Commands = x.commands
		d.Recent = append([]CommandState(nil), x.recent...)
	}
	return d
}

// newEntry keeps d as an entry.
func newEntry(d Device) *entry {
	e := &entry{id: d.ID, fleet: d.Fleet, first: unixNano(d.FirstSeen), last: unixNano(d.LastSeen),
		connected: d.Connected, msgs: d.Messages, bytes: d.Bytes}
	if d.ClientID != "" || d.Username != "" || d.CertIdentity != "" || d.Protocol != 0 || d.Persistent ||
		len(d.Subscriptions) > 0 || d.LastAlarm != nil || d.Commands != (Commands{}) || len(d.Recent) > 0 {
		e.x = &extra{clientID: d.ClientID, username: d.Username, certIdentity: d.CertIdentity, protocol: d.Protocol,
			persistent: d.Persistent, subscriptions: d.Subscriptions, lastAlarm: d.LastAlarm, commands: d.Commands, recent: d.Recent}
	}
	return e
}

// lru is a doubly linked list of entries through their prev and next,
// around a sentinel, kept sorted by last seen: front is the most recently
// seen, back the least (ties in any order). touch places an entry by its
// last seen time rather than moving it to the front, so the order holds
// when timestamps arrive slightly out of order, and List reads its first
// pages by last seen off the front without scanning every device.
type lru struct {
	root entry
	n    int
}

func (l *lru) init() *lru { l.root.next, l.root.prev = &l.root, &l.root; return l }

func (l *lru) Len() int { return l.n }

func (l *lru) insertAfter(e, at *entry) {
	e.prev, e.next = at, at.next
	at.next.prev = e
	at.next = e
	l.n++
}

func (l *lru) remove(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	l.n--
}

func (l *lru) pushBack(e *entry) { l.insertAfter(e, l.root.prev) }

// place puts e (in the list or not) before the first entry seen no more
// recently than it. Touches carry the time of the call, so that is the
// front or a few entries behind it.
func (l *lru) place(e *entry) {
	at := &l.root // e goes after at
	for n := l.root.next; n != &l.root && (n == e || n.last > e.last); n = n.next {
		if n != e {
			at = n
		}
	}
	if at.next == e {
		return // already there
	}
	if e.next != nil {
		l.remove(e)
	}
	l.insertAfter(e, at)
}

// back is the least recently seen entry, nil when empty.
func (l *lru) back() *entry {
	if l.n == 0 {
		return nil
	}
	return l.root.prev
}

// Stats counts the registry's work.
type Stats struct {
	Devices        int   `json:"devices"`
	Evicted        int64 `json:"evicted"`
	Pending        int   `json:"pending"`
	PendingBytes   int64 `json:"pending_bytes"`
	Flushes        int64 `json:"flushes"`
	FlushErrors    int64 `json:"flush_errors"`
	Expectations   int   `json:"expectations"`
	DroppedAnswers int64 `json:"dropped_answers"`
}

// Registry keeps the devices; see the package documentation. All methods
// are safe for concurrent use.
type Registry struct {
	cfg Config
	log zerolog.Logger
	db  *bbolt.DB // nil in memory

	mu      sync.Mutex // guards the fields below
	m       map[string]*entry
	lru     *lru
	dirty   map[string]struct{}
	deleted map[string]struct{}
	pending map[string][]Command // device → its queue, oldest first
	pendN   int
	pendB   int64
	expect  map[string]Expectation // by command id
	byReply map[string]string      // response topic NUL correlation → command id

	expecting atomic.Int64 // len(expect), read without mu on the publish path
	evicted   atomic.Int64
	flushes   atomic.Int64
	flushErrs atomic.Int64
	dropped   atomic.Int64

	answers chan Answer   // responses matched to commands
	wake    chan struct{} // a device subscribed or connected
	stop    chan struct{}
	done    chan struct{}
	closed  atomic.Bool
}

var (
	bucketDevices = []byte("devices")
	bucketPending = []byte("pending")
	bucketExpect  = []byte("expect")
)

// Open opens (or creates) the registry at cfg.Path and loads it, and
// starts writing changes every FlushInterval until Close.
func Open(cfg Config) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Registry{
		cfg: cfg, log: cfg.Logger,
		m: map[string]*entry{}, lru: new(lru).init(),
		dirty: map[string]struct{}{}, deleted: map[string]struct{}{},
		pending: map[string][]Command{}, expect: map[string]Expectation{}, byReply: map[string]string{},
		answers: make(chan Answer, 1024), wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if cfg.Path != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o755); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		db, err := bbolt.Open(cfg.Path, 0o600, &bbolt.Options{Timeout: time.Second, NoFreelistSync: true})
		if err != nil {
			return nil, fmt.Errorf("registry: cannot open %s: %w", cfg.Path, err)
		}
		r.db = db
		if err := r.load(); err != nil {
			db.Close()
			return nil, fmt.Errorf("registry: cannot load %s: %w", cfg.Path, err)
		}
	}
	go r.flushLoop()
	return r, nil
}

func (r *Registry) load() error {
	var devs []Device
	err := r.db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketDevices, bucketPending, bucketExpect} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
			d, err := decodeDevice(string(k), v)
			if err != nil {
				return fmt.Errorf("device %q: %w", k, err)
			}
			// Whoever was connected when the edge stopped is not now.
			d.Connected = false
			devs = append(devs, d)
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketPending).ForEach(func(k, v []byte) error {
			var c Command
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("pending %q: %w", k, err)
			}
			r.pending[c.Device] = append(r.pending[c.Device], c)
			r.pendN++
			r.pendB += int64(c.size())
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketExpect).ForEach(func(k, v []byte) error {
			var x Expectation
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("expectation %q: %w", k, err)
			}
			r.addExpect(x)
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, q := range r.pending {
		sort.SliceStable(q, func(i, j int) bool { return q[i].Queued.Before(q[j].Queued) })
	}
	// Oldest last seen at the back of the LRU.
	sort.Slice(devs, func(i, j int) bool { return devs[i].LastSeen.After(devs[j].LastSeen) })
	for _, d := range devs {
		e := newEntry(d)
		r.lru.pushBack(e)
		r.m[d.ID] = e
	}
	for r.lru.Len() > r.cfg.MaxDevices {
		r.evictLocked()
	}
	return nil
}

// touch returns id's entry, creating it (and evicting the least recently
// seen device past the cap), and marks it seen at t and dirty. r.mu held.
func (r *Registry) touch(id string, t time.Time) *entry {
	e, ok := r.m[id]
	if !ok {
		for r.lru.Len() >= r.cfg.MaxDevices {
			r.evictLocked() // room first: the new device is never the one to go
		}
		e = &entry{id: id, first: unixNano(t), last: unixNano(t)}
		r.lru.place(e)
		r.m[id] = e
		delete(r.deleted, id)
	} else if ns := unixNano(t); ns > e.last {
		e.last = ns
		r.lru.place(e)
	}
	if _, ok := r.dirty[id]; !ok {
		r.dirty[id] = struct{}{}
	}
	return e
}

// evictLocked forgets the least recently seen device. r.mu held.
func (r *Registry) evictLocked() {
	e := r.lru.back()
	if e == nil {
		return
	}
	r.lru.remove(e)
	delete(r.m, e.id)
	delete(r.dirty, e.id)
	if r.db != nil {
		r.deleted[e.id] = struct{}{}
	}
	r.evicted.Add(1)
}

// Conn describes a connection as the MQTT server accepted it.
type Conn struct {
	ClientID     string
	Username     string
	CertIdentity string // the client certificate's identity, if any
	Protocol     byte
	Persistent   bool
	At           time.Time
}

// Connected records a connection.
func (r *Registry) Connected(c Conn) {
	r.mu.Lock()
	e := r.touch(c.ClientID, c.At)
	x := e.ext()
	x.clientID, x.username, x.certIdentity, x.protocol = c.ClientID, c.Username, c.CertIdentity, c.Protocol
	if !c.Persistent || !x.persistent {
		// A clean start, or a session that was not kept: mochi starts
		// it without subscriptions.
		x.subscriptions = nil
	}
	e.connected, x.persistent = true, c.Persistent
	r.mu.Unlock()
	r.notify()
}

// Disconnected records the end of a connection; expire says the session
// ended with it (its subscriptions are gone).
func (r *Registry) Disconnected(clientID string, at time.Time, expire bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[clientID]; !ok {
		return
	}
	e := r.touch(clientID, at)
	e.connected = false
	if expire && e.x != nil {
		e.x.persistent = false
		e.x.subscriptions = nil
	}
}

// Subscribed records the filters a client subscribed to. A filter
// {fleet}/{client id}/... teaches the device's fleet.
func (r *Registry) Subscribed(clientID string, filters []string, at time.Time) {
	r.mu.Lock()
	e := r.touch(clientID, at)
	x := e.ext()
	for _, f := range filters {
		found := false
		for _, s := range x.subscriptions {
			if s == f {
				found = true
				break
			}
		}
		if !found {
			x.subscriptions = append(x.subscriptions, f)
		}
		if fleet, dev, ok := fleetDevice(f); ok && dev == clientID && !strings.ContainsAny(fleet, "+#") {
			e.fleet = fleet
		}
	}
	r.mu.Unlock()
	r.notify()
}

// Unsubscribed removes filters from a client's subscriptions.
func (r *Registry) Unsubscribed(clientID string, filters []string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[clientID]; !ok {
		return
	}
	e := r.touch(clientID, at)
	if e.x == nil {
		return
	}
	kept := e.x.subscriptions[:0]
	for _, s := range e.x.subscriptions {
		drop := false
		for _, f := range filters {
			if s == f {
				drop = true
				break
			}
		}
		if !drop {
			kept = append(kept, s)
		}
	}
	e.x.subscriptions = kept
}

// Publish describes a message a device published.
type Publish struct {
	Device string // the record key: the device id
	Fleet  string // the topic's first level when the topic is {fleet}/{device}/...; may be empty
	Topic  string
	Lane   spool.Lane
	Bytes  int
	At     time.Time
}

// Published counts a message. It costs a map update under a lock: no
// allocation for a device already known, no I/O.
func (r *Registry) Published(p Publish) {
	r.mu.Lock()
	e := r.touch(p.Device, p.At)
	if p.Fleet != "" && e.fleet != p.Fleet {
		e.fleet = p.Fleet
	}
	e.msgs.add(p.Lane, 1)
	e.bytes.add(p.Lane, int64(p.Bytes))
	if p.Lane == spool.Alarm {
		x := e.ext()
		if x.lastAlarm == nil {
			x.lastAlarm = &Alarm{}
		}
		if x.lastAlarm.Topic != p.Topic {
			x.lastAlarm.Topic = p.Topic
		}
		x.lastAlarm.At = p.At
	}
	r.mu.Unlock()
}

// fleetDevice splits {fleet}/{device}/... (three levels or more).
func fleetDevice(topic string) (fleet, device string, ok bool) {
	i := strings.IndexByte(topic, '/')
	if i <= 0 {
		return "", "", false
	}
	rest := topic[i+1:]
	j := strings.IndexByte(rest, '/')
	if j <= 0 {
		return "", "", false
	}
	return topic[:i], rest[:j], true
}

// FleetDevice splits an MQTT topic {fleet}/{device}/{stream}... into its
// fleet and device; ok is false for any other shape.
func FleetDevice(topic string) (fleet, device string, ok bool) { return fleetDevice(topic) }

// Get returns a copy of a device.
func (r *Registry) Get(id string) (Device, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[id]
	if !ok {
		return Device{}, false
	}
	return e.device(), true
}

// CountCommand adds n to one of a device's command counts (status is
// one of the Status constants), creating the device if it is new.
func (r *Registry) CountCommand(id string, status Status, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[id]
	if !ok {
		e = r.touch(id, time.Now())
	} else if _, ok := r.dirty[id]; !ok {
		r.dirty[id] = struct{}{}
	}
	c := &e.ext().commands
	switch status {
	case StatusQueued:
		c.Pending += n
	case StatusDelivered:
		c.Delivered += n
	case StatusAcked:
		c.Acked += n
	case StatusExpired:
		c.Expired += n
	case StatusRejected:
		c.Rejected += n
	}
}

// Track records a command's latest status on its device's page
// (Device.Recent), creating the device if it is new. A status never
// replaces a later one: acked stays acked when a delivered status is
// written after it. An empty name keeps the one known.
func (r *Registry) Track(device string, s CommandState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[device]
	if !ok {
		e = r.touch(device, s.At)
	} else if _, ok := r.dirty[device]; !ok {
		r.dirty[device] = struct{}{}
	}
	rs := e.ext().recent
	for i := range rs {
		if rs[i].ID != s.ID {
			continue
		}
		if s.Name == "" {
			s.Name = rs[i].Name
		}
		if rank(s.Status) >= rank(rs[i].Status) {
			rs[i] = s
		}
		return
	}
	if len(rs) < MaxRecentCommands {
		rs = append(rs, CommandState{})
	}
	copy(rs[1:], rs)
	rs[0] = s
	e.x.recent = rs
}

// rank orders statuses along a command's life: a status of lower rank
// arriving late (status records of one command are written by different
// paths) does not hide a later one.
func rank(s Status) int {
	switch s {
	case StatusSent:
		return 0
	case StatusQueued:
		return 1
	case StatusDelivered:
		return 2
	default: // acked, expired, rejected: final
		return 3
	}
}

// Stats returns the registry's counters.
func (r *Registry) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.statsLocked()
}

// statsLocked: r.mu held.
func (r *Registry) statsLocked() Stats {
	return Stats{
		Devices: len(r.m), Evicted: r.evicted.Load(), Pending: r.pendN, PendingBytes: r.pendB,
		Flushes: r.flushes.Load(), FlushErrors: r.flushErrs.Load(), Expectations: len(r.expect),
		DroppedAnswers: r.dropped.Load(),
	}
}

// Len is the number of devices.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

func (r *Registry) notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Wake is signalled (without blocking the sender, so coalesced) when a
// device connects or subscribes: the downlink then looks at the queued
// commands again.
func (r *Registry) Wake() <-chan struct{} { return r.wake }

func (r *Registry) flushLoop() {
	defer close(r.done)
	t := time.NewTicker(r.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			if err := r.Flush(); err != nil {
				r.log.Warn().Err(err).Msg("cannot write device registry")
			}
		}
	}
}

// flushChunk is how many devices one flush transaction writes at most:
// a flush after many devices changed (an edge restart, a fleet
// reconnecting) costs a few small transactions instead of one that holds
// every device's JSON and bbolt's copy of it in memory at once.
const flushChunk = 1024

// Flush writes the devices changed since the last flush, in transactions
// of at most flushChunk devices (one fsync each), keys in order. A failed
// write keeps its devices marked for the next.
func (r *Registry) Flush() error {
	if r.db == nil {
		return nil
	}
	r.mu.Lock()
	rounds := len(r.dirty)/flushChunk + 1
	r.mu.Unlock()
	for range rounds {
		puts, dels, more, err := r.takeDirty(flushChunk)
		if err != nil {
			return err
		}
		if len(puts) > 0 || len(dels) > 0 {
			if err := r.write(puts, dels); err != nil {
				return err
			}
		}
		if !more {
			break
		}
	}
	return nil
}

type kv struct {
	k string
	v []byte
}

// takeDirty takes up to n changed devices, encoded and sorted by id, and
// every deleted id; more says changed devices remain.
func (r *Registry) takeDirty(n int) (puts []kv, dels []string, more bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	puts = make([]kv, 0, min(n, len(r.dirty)))
	for id := range r.dirty {
		if len(puts) == n {
			break
		}
		delete(r.dirty, id)
		e, ok := r.m[id]
		if !ok {
			continue
		}
		puts = append(puts, kv{id, appendEntry(nil, e)})
	}
	for id := range r.deleted {
		dels = append(dels, id)
	}
	clear(r.deleted)
	sort.Slice(puts, func(i, j int) bool { return puts[i].k < puts[j].k })
	return puts, dels, len(r.dirty) > 0, nil
}

// write stores puts and dels in one transaction; on failure it marks
// them again for the next flush.
func (r *Registry) write(puts []kv, dels []string) error {
	err := r.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		for _, p := range puts {
			if err := b.Put([]byte(p.k), p.v); err != nil {
				return err
			}
		}
		for _, id := range dels {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		r.flushErrs.Add(1)
		r.mu.Lock()
		for _, p := range puts {
			if _, ok := r.m[p.k]; ok {
				r.dirty[p.k] = struct{}{}
			}
		}
		for _, id := range dels {
			if _, ok := r.m[id]; !ok {
				r.deleted[id] = struct{}{}
			}
		}
		r.mu.Unlock()
		return fmt.Errorf("registry: cannot write devices: %w", err)
	}
	r.flushes.Add(1)
	return nil
}

// Close writes what changed and closes the file.
func (r *Registry) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	close(r.stop)
	<-r.done
	err := r.Flush()
	if r.db != nil {
		err = errors.Join(err, r.db.Close())
	}
	return err
}
