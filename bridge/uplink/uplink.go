package uplink

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/internal/logadapt"
)

// Config configures an Uplink.
type Config struct {
	// Brokers are the core's (or any Kafka cluster's) seed addresses.
	Brokers []string
	// ClientID names the edge to the core.
	ClientID string
	// TLS, when set, encrypts the connections to the brokers (and
	// presents a client certificate if it has one). Nil: plaintext.
	TLS *tls.Config
	// SASL, when set, authenticates each connection (PLAIN, SCRAM).
	// Nil: no SASL.
	SASL sasl.Mechanism
	// StateDir keeps each lane's producer state (next to the spool).
	StateDir string
	// Linger is how long the telemetry lane waits to fill a batch. The
	// alarm lane never lingers.
	Linger time.Duration
	// MaxBatchBytes bounds the records read into one send (before
	// compression), and so the size of one partition's batch. A lane has
	// one send in flight, so the link idles a round trip per send: on a
	// slow, high-latency link the send must be several round trips long
	// (see DefaultConfig).
	MaxBatchBytes int
	// Compress turns on snappy compression of batches.
	Compress bool
	// LiveFirst, when the telemetry backlog passes LiveFirstBacklog
	// records (the core was away), sends fresh records first and the
	// backlog behind them, alternating windows, each stream in device
	// order; the edge.received_ms header tells consumers which is which.
	// Off: the backlog drains in order first.
	LiveFirst        bool
	LiveFirstBacklog int64
	// MaxBytesPerSec caps the bytes sent per second (0: no cap), for
	// metered links. Alarms go ahead of telemetry under the cap.
	MaxBytesPerSec int64
	// RetryBackoff is the first wait after a failed send; it doubles up to
	// MaxRetryBackoff.
	RetryBackoff, MaxRetryBackoff time.Duration
	// AlarmMaxRetryBackoff caps the alarm lane's retry backoff below
	// MaxRetryBackoff, so that an alarm spooled during an outage goes
	// within about this long of the link's return plus the round trips of
	// a new connection, not after a whole MaxRetryBackoff (its retries
	// are small: a dial and a metadata request). Zero: MaxRetryBackoff.
	AlarmMaxRetryBackoff time.Duration
	// RequestTimeout bounds one produce round trip.
	RequestTimeout time.Duration
	// ParkBackoff is how long a parked lane (a permanent error: an ACL, a
	// missing topic, a credential, a size limit) waits before it probes
	// again; the wait doubles up to MaxParkBackoff while the cause lasts.
	ParkBackoff, MaxParkBackoff time.Duration
	// UnknownTopicTimeout is how long a topic may stay unknown to the
	// cluster (not created, auto-creation off or refused) before the lane
	// parks instead of retrying.
	UnknownTopicTimeout time.Duration
	// Logger receives uplink events. Zero value: no logs.
	Logger zerolog.Logger
}

// DefaultConfig returns an uplink to a core on 127.0.0.1:9092.
func DefaultConfig() Config {
	return Config{
		Brokers:  []string{"127.0.0.1:9092"},
		ClientID: "fluxo-edge",
		Linger:   time.Second,
		// 1000 KiB: a batch stays under Kafka's default
		// max.message.bytes (1 MiB + 12) even when nothing compresses,
		// and a window of fleet telemetry (about 6:1 with snappy) is
		// about 165 KB on the wire: 5 s of a 256 kbit/s cellular link,
		// so the round trip between sends (0.6 s there) costs about a
		// tenth of the link, not the quarter that 512 KiB windows cost
		// (benchmarks/link).
		MaxBatchBytes:    1000 << 10,
		Compress:         true,
		LiveFirstBacklog: 10000,
		RetryBackoff:     100 * time.Millisecond,
		MaxRetryBackoff:  5 * time.Second,
		// An alarm after a long cut reached the core 7.4 s after the
		// link's return with 5 s, 2 to 3 s with 1 s (benchmarks/link).
		AlarmMaxRetryBackoff: time.Second,
		RequestTimeout:       30 * time.Second,
		ParkBackoff:          5 * time.Second,
		MaxParkBackoff:       30 * time.Second,
		// Auto-creation answers at once; a topic still unknown after this
		// long will not appear by itself.
		UnknownTopicTimeout: 30 * time.Second,
		Logger:              zerolog.Nop(),
	}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("uplink: no brokers")
	case c.StateDir == "":
		return errors.New("uplink: no state directory")
	case c.MaxBatchBytes < 1024:
		return fmt.Errorf("uplink: MaxBatchBytes %d below 1 KiB", c.MaxBatchBytes)
	case c.RetryBackoff <= 0 || c.MaxRetryBackoff < c.RetryBackoff || c.AlarmMaxRetryBackoff < 0:
		return errors.New("uplink: bad retry backoff")
	case c.RequestTimeout <= 0:
		return errors.New("uplink: RequestTimeout must be positive")
	case c.ParkBackoff <= 0 || c.MaxParkBackoff < c.ParkBackoff:
		return errors.New("uplink: bad park backoff")
	case c.UnknownTopicTimeout < 0:
		return errors.New("uplink: negative UnknownTopicTimeout")
	case c.LiveFirst && c.LiveFirstBacklog <= 0:
		return errors.New("uplink: LiveFirstBacklog must be positive")
	case c.Linger < 0 || c.MaxBytesPerSec < 0:
		return errors.New("uplink: negative linger or rate")
	}
	return nil
}

// securityOpts returns the client options for TLS and SASL.
func (c *Config) securityOpts() []kgo.Opt {
	var opts []kgo.Opt
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS))
	}
	if c.SASL != nil {
		opts = append(opts, kgo.SASL(c.SASL))
	}
	return opts
}

// Uplink forwards the spool to the core: per lane, an idempotent producer
// that reads a window of records, plans it (partition and sequence of
// every batch, saved before sending), sends it with acks=all, and releases
// it from the spool once every batch is acknowledged. After a crash the
// saved plan is sent again as it was, so the core recognises what it
// already has.
type Uplink struct {
	cfg   Config
	log   zerolog.Logger
	sp    *spool.Spool
	lanes [2]*lane
	limit *limiter
}

// LaneStats describes one lane's forwarding.
type LaneStats struct {
	Lane             spool.Lane
	Connected        bool  // the last send succeeded
	Batches, Records int64 // acknowledged by the core
	// Requests are the Produce requests acknowledged (one per partition
	// leader per window): Records/Requests is how much a round trip
	// carries, which bounds the rate over a high-latency link.
	Requests              int64
	RawBytes, SentBytes   int64 // records before and after compression
	Retries, NewProducers int64
	LastAck               time.Time
	Backlog               int64 // records spooled and not yet acknowledged
	// Latency is, per acknowledged record, the time from the edge
	// receiving it to the core acknowledging it.
	Latency Latency
	// Parked is set while the lane holds on a permanent error (see
	// classify): it probes again every ParkBackoff..MaxParkBackoff and
	// resumes, with nothing lost, once the cause is fixed.
	Parked bool
	// ParkReason names the cause (a Kafka error code such as
	// TOPIC_AUTHORIZATION_FAILED, or TLS_CERTIFICATE), ParkError is the
	// full error, ParkedSince when the lane parked. Empty when not parked.
	ParkReason, ParkError string
	ParkedSince           time.Time
}

// CompressionRatio is raw bytes per byte sent (1 when nothing was sent).
func (s LaneStats) CompressionRatio() float64 {
	if s.SentBytes == 0 {
		return 1
	}
	return float64(s.RawBytes) / float64(s.SentBytes)
}

type lane struct {
	u     *Uplink
	id    spool.Lane
	cl    *kgo.Client
	state *stateFile
	st    laneState
	log   zerolog.Logger

	liveTurn bool // live-first: the next window comes from the live stream
	resumed  bool // st.Window was loaded from disk, not planned in this run
	// synced is the last plan known durable (loaded, or synced in this
	// run); nil when the durable state has no window. pinned holds the
	// partition counts of the loaded plan, which the first plan of this
	// run must use (see overlapSync).
	synced *window
	pinned map[string]int32

	connected                                                   atomic.Bool
	batches, records, requests, raw, sent, retries, newProducer atomic.Int64
	latency                                                     latencyHist
	lastAck                                                     atomic.Int64
	partitions                                                  map[string]int32    // cached partition counts
	leaderOf                                                    map[string]int32    // cached leader per "topic/partition"
	topicIDs                                                    map[string][16]byte // cached topic ids (Metadata v10+), if the cluster has them
	unknownSince                                                time.Time           // since when a topic is unknown to the cluster; zero if none
	// sendTimeout bounds one send's round trip: RequestTimeout, longer
	// on the telemetry lane once a send timed out (see nextTimeout).
	// Zero: RequestTimeout.
	sendTimeout time.Duration

	parkMu sync.Mutex // guards park; the lane's goroutine writes, Stats reads
	park   parkState

	// Buffers kept from window to window (the lane's goroutine only):
	// the window read from the spool, its records grouped by partition,
	// and its encoded batches. Dropped while the lane has nothing to send.
	reader  *spool.Reader
	grouped []spool.Record
	enc     batchEncoder
}

// parkState is a lane's parked state; the zero value is not parked.
type parkState struct {
	reason, err string
	since       time.Time
}

// New builds an uplink over the spool; Run starts it.
func New(cfg Config, sp *spool.Spool) (*Uplink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u := &Uplink{cfg: cfg, log: cfg.Logger, sp: sp}
	if cfg.MaxBytesPerSec > 0 {
		u.limit = newLimiter(cfg.MaxBytesPerSec)
	}
	for _, id := range []spool.Lane{spool.Telemetry, spool.Alarm} {
		sf, st, err := openStateFile(filepath.Join(cfg.StateDir, "uplink-"+id.String()+".state"))
		if err != nil {
			u.Close()
			return nil, err
		}
		if stale(st) {
			cfg.Logger.Warn().Str("lane", id.String()).Int64("producer_id", st.ProducerID).
				Msg("the machine restarted since the uplink state was written to the page cache (--spool-sync never): starting a new producer; what is still spooled is sent at least once")
			st = laneState{ProducerID: -1, ProducerEpoch: -1, Seqs: map[string]int32{}}
		}
		if sp.SyncPolicy() == spool.SyncNever {
			sf.unsynced()
		}
		// One client (so one connection per broker) per lane: an alarm
		// never waits behind a large telemetry request.
		cl, err := kgo.NewClient(append(cfg.securityOpts(),
			kgo.SeedBrokers(cfg.Brokers...),
			kgo.ClientID(cfg.ClientID+"-"+id.String()),
			kgo.WithLogger(logadapt.Kgo(cfg.Logger.With().Str("lane", id.String()).Logger(), kgo.LogLevelWarn)),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RequestTimeoutOverhead(cfg.RequestTimeout),
			kgo.RetryBackoffFn(func(int) time.Duration { return cfg.RetryBackoff }),
			kgo.RequestRetries(0),
		)...)
		if err != nil {
			sf.close()
			u.Close()
			return nil, err
		}
		u.lanes[id] = &lane{u: u, id: id, cl: cl, state: sf, st: st, resumed: st.Window != nil, reader: sp.NewReader(id), partitions: map[string]int32{}, leaderOf: map[string]int32{}, topicIDs: map[string][16]byte{},
			log: cfg.Logger.With().Str("lane", id.String()).Logger()}
		if w := st.Window; w != nil {
			u.lanes[id].synced, u.lanes[id].pinned = w, w.Partitions
		}
	}
	return u, nil
}

// Run forwards both lanes until ctx ends. Failures do not end it: a
// transient one is retried with backoff, a permanent one parks the lane
// (LaneStats.Parked) until a probe succeeds.
func (u *Uplink) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, l := range u.lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.run(ctx)
		}()
	}
	wg.Wait()
}

// Close releases the Kafka clients and state files. Call it after Run
// returned.
func (u *Uplink) Close() {
	for _, l := range u.lanes {
		if l != nil {
			l.cl.Close()
			l.state.close()
		}
	}
}

// Stats returns both lanes' forwarding counters.
func (u *Uplink) Stats() []LaneStats {
	out := make([]LaneStats, 0, len(u.lanes))
	for _, l := range u.lanes {
		s := LaneStats{
			Lane: l.id, Connected: l.connected.Load(),
			Batches: l.batches.Load(), Records: l.records.Load(), Requests: l.requests.Load(),
			RawBytes: l.raw.Load(), SentBytes: l.sent.Load(),
			Retries: l.retries.Load(), NewProducers: l.newProducer.Load(),
			Backlog: u.sp.End(l.id) - u.sp.Start(l.id),
			Latency: l.latency.snapshot(),
		}
		l.parkMu.Lock()
		p := l.park
		l.parkMu.Unlock()
		if p.reason != "" {
			s.Parked, s.ParkReason, s.ParkError, s.ParkedSince = true, p.reason, p.err, p.since
		}
		if t := l.lastAck.Load(); t > 0 {
			s.LastAck = time.UnixMilli(t)
		}
		out = append(out, s)
	}
	return out
}

// errNewProducer means the core no longer knows this producer's sequence:
// the lane must start over with a new producer id.
var errNewProducer = errors.New("uplink: producer state lost")

func (l *lane) run(ctx context.Context) {
	backoff := l.u.cfg.RetryBackoff
	probe := l.u.cfg.ParkBackoff
	for ctx.Err() == nil {
		err := l.step(ctx)
		if err == nil {
			backoff, probe = l.u.cfg.RetryBackoff, l.u.cfg.ParkBackoff
			continue
		}
		if ctx.Err() != nil {
			break
		}
		l.connected.Store(false)
		l.retries.Add(1)
		var wait time.Duration
		if pe := l.permanent(err); pe != nil {
			l.parkOn(pe)
		}
		if l.isParked() {
			// One error line when the lane parks (parkOn); the probes
			// that fail after it are not news.
			wait, probe = probe, min(2*probe, l.u.cfg.MaxParkBackoff)
			l.log.Debug().Err(err).Dur("backoff", wait).Msg("uplink lane still parked")
		} else {
			wait, backoff = backoff, min(2*backoff, l.maxRetryBackoff())
			l.log.Warn().Err(err).Dur("backoff", wait).Msg("uplink send failed, retrying")
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// maxRetryBackoff is the lane's cap on its retry backoff.
func (l *lane) maxRetryBackoff() time.Duration {
	c := l.u.cfg
	if l.id == spool.Alarm && c.AlarmMaxRetryBackoff > 0 {
		return max(min(c.AlarmMaxRetryBackoff, c.MaxRetryBackoff), c.RetryBackoff)
	}
	return c.MaxRetryBackoff
}

// permanent returns the permanent error in err, if any: one classify
// found, or a topic unknown to the cluster for UnknownTopicTimeout.
func (l *lane) permanent(err error) *permanentError {
	if errors.Is(err, errNewProducer) {
		return nil
	}
	var pe *permanentError
	if errors.As(err, &pe) {
		return pe
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		now := time.Now()
		if l.unknownSince.IsZero() {
			l.unknownSince = now
		}
		if now.Sub(l.unknownSince) >= l.u.cfg.UnknownTopicTimeout {
			return &permanentError{reason: kerr.UnknownTopicOrPartition.Message, err: err}
		}
	}
	return nil
}

// parkOn parks the lane on a permanent error, with one error log line;
// a parked lane whose reason changes logs again.
func (l *lane) parkOn(pe *permanentError) {
	l.parkMu.Lock()
	was := l.park.reason
	l.park.reason, l.park.err = pe.reason, pe.Error()
	if was == "" {
		l.park.since = time.Now()
	}
	l.parkMu.Unlock()
	if was != pe.reason {
		l.log.Error().Err(pe).Str("reason", pe.reason).Dur("probe", l.u.cfg.ParkBackoff).
			Msg("uplink lane parked on a permanent error; records stay spooled until the cause is fixed")
	}
}

func (l *lane) isParked() bool {
	l.parkMu.Lock()
	defer l.parkMu.Unlock()
	return l.park.reason != ""
}

// resume clears the parked state after a successful send, with one info
// log line.
func (l *lane) resume() {
	l.unknownSince = time.Time{}
	l.parkMu.Lock()
	p := l.park
	l.park = parkState{}
	l.parkMu.Unlock()
	if p.reason != "" {
		l.log.Info().Str("reason", p.reason).Dur("parked", time.Since(p.since)).Msg("uplink lane resumed")
	}
}

// step sends one window: the saved one if there is one, else a new one.
func (l *lane) step(ctx context.Context) error {
	if l.st.ProducerID < 0 {
		if err := l.initProducer(ctx); err != nil {
			return err
		}
	}
	w := l.st.Window
	if l.resumed {
		// The spool's release point is not fsynced; the saved plan is.
		// Everything before the plan's window (or the live-first
		// backlog cursor) was acknowledged: release it again.
		var done int64 = -1
		switch {
		case l.st.Live != nil:
			done = l.st.Live.Backlog
		case w != nil:
			done = w.From
		}
		if done > 0 {
			if err := l.u.sp.Release(l.id, done); err != nil {
				return err
			}
		}
	}
	if w != nil && w.Stream != streamLive && w.To < l.u.sp.Start(l.id) {
		if l.resumed {
			// A plan saved before a crash whose records are gone:
			// acknowledged and released then. Its batches used their
			// sequences.
			l.advance(w)
		} else {
			// Planned in this run and never acknowledged (or it would
			// be cleared): the budget evicted its records. A send that
			// failed may still have reached the core, so its sequences
			// cannot go to other records: start a new producer.
			l.log.Warn().Int64("from", w.From).Int64("to", w.To).Msg("window evicted before it was acknowledged; starting a new producer")
			l.st.ProducerID, l.st.Window = -1, nil
			return nil
		}
		w = nil
	}
	l.resumed = false
	var recs []spool.Record
	var err error
	if w != nil {
		recs, err = l.readWindow(w)
	} else {
		w, recs, err = l.plan(ctx)
	}
	if err != nil || w == nil {
		return err
	}
	// The plan is written, and synced before it is sent, or (overlapSync)
	// while it is on its way; either way the window is released only once
	// its plan is durable.
	if !l.overlapSync(w) {
		if err := l.state.sync(); err != nil {
			return err
		}
		l.synced = w
		err = l.send(ctx, w, recs)
	} else {
		synced := make(chan error, 1)
		go func() { synced <- l.state.sync() }()
		err = l.send(ctx, w, recs)
		serr := <-synced
		if serr == nil {
			l.synced = w
		} else if err == nil {
			err = serr
		}
	}
	if errors.Is(err, errNewProducer) {
		// The core forgot us (or fenced us). Start a new producer and
		// send the window again under it: at-least-once for this window.
		l.log.Warn().Int64("producer_id", l.st.ProducerID).Msg("core lost this producer's state; resending under a new producer id")
		l.st.ProducerID, l.st.Window = -1, nil
		l.st.Seqs = map[string]int32{}
		return errNewProducer
	}
	if err != nil {
		return err
	}
	// Acknowledged: advance sequences, release from the spool. The next
	// plan saves the new sequences; a crash before it is covered by the
	// check above.
	l.advance(w)
	if err := l.released(w); err != nil {
		return err
	}
	l.connected.Store(true)
	l.lastAck.Store(time.Now().UnixMilli())
	l.resume()
	return nil
}

// overlapSync reports whether the plan of w, written and not synced yet,
// may be fdatasynced while w is being sent, which takes the fsync off an
// alarm's way to the core. Only on the alarm lane (no eviction, no
// expiry, no live-first) and only for a window that directly follows the
// last durable plan, placed on the same partition counts. Then a power
// cut before the sync leaves that previous plan on disk and w's records
// in the spool (released only after the sync), so the next run's first
// plan starts at w.From with w's sequences and partition counts (pinned)
// over the same records (the uplink reads only what the spool made
// durable): each of its batches is either one of w's — same records,
// sequences and count, acknowledged as a duplicate — or differs from it
// in its last sequence, which the core refuses as out of order (a new
// producer: at least once). Never other records passed off as ones the
// core has.
func (l *lane) overlapSync(w *window) bool {
	s := l.synced
	if l.id != spool.Alarm || s == nil || s == w || s.Stream != streamInOrder || w.Stream != streamInOrder || w.From != s.To+1 {
		return false
	}
	for t, n := range w.Partitions {
		if s.Partitions[t] != n {
			return false
		}
	}
	return true
}

// advance moves the partitions' next sequences past an acknowledged window.
func (l *lane) advance(w *window) {
	for tp, n := range w.Counts {
		l.st.Seqs[tp] = addSeq(w.Seqs[tp], n)
	}
	l.st.Window = nil
}

func addSeq(seq int32, n int) int32 { return int32((int64(seq) + int64(n)) % (1 << 31)) }

func (l *lane) initProducer(ctx context.Context) error {
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionTimeoutMillis = 60000
	req.ProducerID, req.ProducerEpoch = -1, -1
	ctx, cancel := context.WithTimeout(ctx, l.u.cfg.RequestTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, l.cl)
	if err != nil {
		return judged(fmt.Errorf("uplink: InitProducerID: %w", err))
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return judged(fmt.Errorf("uplink: InitProducerID: %w", err))
	}
	l.st.ProducerID, l.st.ProducerEpoch = resp.ProducerID, resp.ProducerEpoch
	l.st.Seqs = map[string]int32{}
	l.synced, l.pinned = nil, nil
	l.newProducer.Add(1)
	l.log.Info().Int64("producer_id", resp.ProducerID).Int16("epoch", resp.ProducerEpoch).Msg("new producer")
	return l.state.save(&l.st)
}

// plan waits for records, reads a window, places every record and saves
// the plan. It returns a nil window when ctx ended first.
// released moves the spool and the live-first cursors past an
// acknowledged window.
func (l *lane) released(w *window) error {
	live := l.st.Live
	switch {
	case w.Stream == streamLive && live != nil:
		live.Next = max(live.Next, w.To+1)
		return nil
	case w.Stream == streamBacklog && live != nil:
		live.Backlog = max(live.Backlog, w.To+1)
		if live.Backlog >= live.Start {
			return l.endLiveFirst()
		}
		return l.u.sp.Release(l.id, live.Backlog)
	}
	return l.u.sp.Release(l.id, w.To+1)
}

// endLiveFirst ends a live-first drain once the backlog is sent: the spool
// is released up to the live stream's progress and the lane goes back to
// draining in order.
func (l *lane) endLiveFirst() error {
	next := l.st.Live.Next
	l.st.Live = nil
	l.log.Info().Int64("offset", next).Msg("backlog sent; draining in order again")
	return l.u.sp.Release(l.id, next)
}

// planLiveFirst picks the next live-first window's stream and range, or
// returns ok=false to drain in order (the mode is off, or just ended).
func (l *lane) planLiveFirst() (from, limit int64, stream string, ok bool, err error) {
	start, end := l.u.sp.Start(l.id), l.u.sp.End(l.id)
	if l.st.Live == nil {
		if !l.u.cfg.LiveFirst || l.id != spool.Telemetry || end-start <= l.u.cfg.LiveFirstBacklog {
			return 0, 0, "", false, nil
		}
		l.st.Live = &liveState{Start: end, Next: end, Backlog: start}
		l.log.Info().Int64("backlog", end-start).Msg("large backlog: sending fresh records first, the backlog behind them")
	}
	live := l.st.Live
	backlog := max(live.Backlog, start)
	if backlog >= live.Start {
		return 0, 0, "", false, l.endLiveFirst()
	}
	liveHas := end > max(live.Next, start)
	if liveHas && l.liveTurn {
		l.liveTurn = false
		return max(live.Next, start), end, streamLive, true, nil
	}
	l.liveTurn = true
	return backlog, live.Start, streamBacklog, true, nil
}

func (l *lane) plan(ctx context.Context) (*window, []spool.Record, error) {
	if from, limit, stream, ok, err := l.planLiveFirst(); err != nil {
		return nil, nil, err
	} else if ok {
		recs, _, err := l.reader.Read(from, l.u.cfg.MaxBatchBytes)
		if err != nil {
			return nil, nil, err
		}
		for len(recs) > 0 && recs[len(recs)-1].Offset >= limit {
			recs = recs[:len(recs)-1]
		}
		if len(recs) == 0 {
			return nil, nil, nil
		}
		return l.planWindow(ctx, recs, stream)
	}
	from := l.u.sp.Start(l.id)
	if l.u.sp.End(l.id) <= from {
		l.dropBuffers() // nothing to send: let them go while the lane waits
	}
	if err := l.u.sp.Wait(ctx, l.id, from); err != nil {
		return nil, nil, nil
	}
	if l.id == spool.Telemetry && l.u.cfg.Linger > 0 && !l.windowFull(from) {
		// Linger for a fuller batch, unless one is already there.
		deadline := time.Now().Add(l.u.cfg.Linger)
		for time.Now().Before(deadline) && l.u.sp.End(l.id)-from < 5000 {
			wctx, cancel := context.WithDeadline(ctx, deadline)
			l.u.sp.Wait(wctx, l.id, l.u.sp.End(l.id))
			cancel()
			if ctx.Err() != nil {
				return nil, nil, nil
			}
		}
	}
	recs, _, err := l.reader.Read(from, l.u.cfg.MaxBatchBytes)
	if err != nil || len(recs) == 0 {
		return nil, nil, err
	}
	return l.planWindow(ctx, recs, streamInOrder)
}

// dropBuffers lets go of the buffers the lane keeps from window to window.
func (l *lane) dropBuffers() {
	l.reader.Drop()
	l.grouped = nil
	l.enc.drop()
}

// windowFull reports whether the lane already holds more than one window
// from offset from (MaxBatchBytes of records): a backlog is sent at once,
// lingering is for a window that is not full yet.
func (l *lane) windowFull(from int64) bool {
	next, err := l.u.sp.Next(l.id, from, l.u.cfg.MaxBatchBytes)
	return err == nil && next < l.u.sp.End(l.id)
}

// planWindow places the records of a window, gives each partition's batch
// its sequences, and writes the plan before anything is sent (step syncs
// it while the window is on its way).
func (l *lane) planWindow(ctx context.Context, recs []spool.Record, stream string) (*window, []spool.Record, error) {
	from, to := recs[0].Offset, recs[len(recs)-1].Offset
	var skip []int64
	if l.id == spool.Telemetry {
		recs, skip = dropExpired(recs, time.Now())
		if len(skip) > 0 {
			l.u.sp.Expire(l.id, int64(len(skip)))
			l.log.Debug().Int("records", len(skip)).Msg("dropped telemetry past its message expiry")
		}
	}
	topics := map[string]bool{}
	for _, r := range recs {
		topics[r.Topic] = true
	}
	if err := l.learnTopics(ctx, topics); err != nil {
		return nil, nil, err
	}
	w := &window{From: from, To: to, Stream: stream, Skip: skip,
		Partitions: map[string]int32{}, Seqs: map[string]int32{}, Counts: map[string]int{}}
	for t := range topics {
		w.Partitions[t] = l.partitions[t]
		if n, ok := l.pinned[t]; ok {
			w.Partitions[t] = n
		}
	}
	l.pinned = nil
	counts := map[topicPartition]int{} // without a key string per record
	for i := range recs {
		counts[topicPartition{recs[i].Topic, partitionFor(recs[i].Key, w.Partitions[recs[i].Topic])}]++
	}
	for id, n := range counts {
		tp := tpKey(id.topic, id.p)
		w.Seqs[tp] = l.st.Seqs[tp]
		w.Counts[tp] = n
	}
	l.st.Window = w
	if err := l.state.write(&l.st); err != nil {
		return nil, nil, err
	}
	return w, recs, nil
}

// readWindow reads back the records of a saved window (with Spool.Read:
// a window may take more than one read, and the reader's records last
// only until its next).
func (l *lane) readWindow(w *window) ([]spool.Record, error) {
	var out []spool.Record
	seen := false
	for off := w.From; off <= w.To; {
		recs, next, err := l.u.sp.Read(l.id, off, l.u.cfg.MaxBatchBytes)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.Offset <= w.To && !slices.Contains(w.Skip, r.Offset) {
				out = append(out, r)
			}
			seen = true
		}
		off = next
	}
	if !seen {
		return nil, fmt.Errorf("uplink: saved window %d-%d is no longer in the spool", w.From, w.To)
	}
	return out, nil
}

// dropExpired splits off the records whose message expiry deadline
// (route.HeaderExpiryMS) is before now; it returns the others, in order,
// and the offsets of those dropped.
func dropExpired(recs []spool.Record, now time.Time) (keep []spool.Record, dropped []int64) {
	for i, r := range recs {
		if d, ok := route.Deadline(r.Headers); ok && d.Before(now) {
			if dropped == nil {
				// The first to drop: the kept ones go to a copy from
				// here on (recs may be a reader's, which is reused).
				keep = append(make([]spool.Record, 0, len(recs)-1), recs[:i]...)
			}
			dropped = append(dropped, r.Offset)
			continue
		}
		if dropped != nil {
			keep = append(keep, r)
		}
	}
	if dropped == nil {
		return recs, nil
	}
	return keep, dropped
}

func tpKey(topic string, p int32) string { return topic + "/" + strconv.Itoa(int(p)) }

// topicPartition is a partition as a map key, where a tpKey string made
// for every record would cost an allocation each.
type topicPartition struct {
	topic string
	p     int32
}

// learnTopics fetches the metadata of the topics not cached yet (creating
// them where the cluster allows it): their partition counts, each
// partition's leader and, from clusters that have them (Metadata v10+),
// their topic ids. The cache lives until a send fails.
func (l *lane) learnTopics(ctx context.Context, topics map[string]bool) error {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = true
	for t := range topics {
		if _, ok := l.partitions[t]; ok {
			continue
		}
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	if len(req.Topics) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.u.cfg.RequestTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, l.cl)
	if err != nil {
		return judged(fmt.Errorf("uplink: metadata: %w", err))
	}
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return judged(fmt.Errorf("uplink: topic %s: %w", *t.Topic, err))
		}
		if len(t.Partitions) == 0 {
			return fmt.Errorf("uplink: topic %s: no partitions yet", *t.Topic)
		}
		l.partitions[*t.Topic] = int32(len(t.Partitions))
		if t.TopicID != ([16]byte{}) {
			l.topicIDs[*t.Topic] = t.TopicID
		} else {
			delete(l.topicIDs, *t.Topic)
		}
		for _, p := range t.Partitions {
			if p.Leader >= 0 {
				l.leaderOf[tpKey(*t.Topic, p.Partition)] = p.Leader
			}
		}
	}
	return nil
}

// groupWindow splits a window's records by topic partition (partOf
// gives a record's partition of its topic) and returns the partitions'
// keys (tpKey) sorted, and each one's records in the window's order; with
// byDevice, each device's records (same key) next to each other, in their
// order: at a fleet's pace a window holds a record or a few per device,
// and snappy only finds the repeats (topic, headers, JSON keys and slowly
// changing values) close together. The sort is stable and the same
// window always sorts the same, so a resent batch is the same batch. The
// records are placed by index and copied once, into one slice the groups
// share: appending and sorting the 120-byte records themselves, and a key
// string made for each, were a few percent of a busy edge's CPU. That
// slice is *into's backing when into is not nil (the lane's, reused from
// window to window), and is left in *into.
func groupWindow(recs []spool.Record, partOf func(*spool.Record) int32, byDevice bool, into *[]spool.Record) ([]string, map[string][]spool.Record) {
	group := map[topicPartition]int{}
	var keys []string
	var idx [][]int32
	for i := range recs {
		k := topicPartition{recs[i].Topic, partOf(&recs[i])}
		g, ok := group[k]
		if !ok {
			g = len(keys)
			group[k] = g
			keys = append(keys, tpKey(k.topic, k.p))
			idx = append(idx, nil)
		}
		idx[g] = append(idx[g], int32(i))
	}
	byKey := make(map[string][]int32, len(keys))
	for g, key := range keys {
		byKey[key] = idx[g]
	}
	sort.Strings(keys)
	var all []spool.Record
	if into != nil {
		all = (*into)[:0]
	}
	all = slices.Grow(all, len(recs))
	groups := make(map[string][]spool.Record, len(keys))
	for _, key := range keys {
		is := byKey[key]
		if byDevice {
			// Stable: equal keys keep the window's order (the indexes').
			slices.SortFunc(is, func(a, b int32) int {
				if c := bytes.Compare(recs[a].Key, recs[b].Key); c != 0 {
					return c
				}
				return cmp.Compare(a, b)
			})
		}
		start := len(all)
		for _, i := range is {
			all = append(all, recs[i])
		}
		groups[key] = all[start:len(all):len(all)]
	}
	if into != nil {
		*into = all
	}
	return keys, groups
}

// send produces the window's batches, one request per partition leader,
// and returns once all are acknowledged.
func (l *lane) send(ctx context.Context, w *window, recs []spool.Record) error {
	order, byTP := groupWindow(recs, func(r *spool.Record) int32 {
		return partitionFor(r.Key, w.Partitions[r.Topic])
	}, l.id == spool.Telemetry, &l.grouped)
	// The batches stay in the encoder's arena until the window's requests
	// are done with them.
	reuse := true
	defer func() { l.enc.done(reuse) }()
	leaders, err := l.leaders(ctx, w)
	if err != nil {
		return err
	}
	reqs := map[int32]*kmsg.ProduceRequest{}
	var raw, sent int64
	for _, tp := range order {
		rs := byTP[tp]
		topic, p := splitTP(tp)
		batch, n := l.enc.encode(rs, l.st.ProducerID, l.st.ProducerEpoch, w.Seqs[tp], l.u.cfg.Compress)
		raw += int64(n)
		sent += int64(len(batch))
		leader, ok := leaders[tp]
		if !ok {
			// Leaderless for now (its broker is failing over or
			// restarting): ask again before the retry.
			l.partitionsStale()
			return fmt.Errorf("uplink: no leader for %s", tp)
		}
		req := reqs[leader]
		if req == nil {
			req = kmsg.NewPtrProduceRequest()
			req.Acks = -1
			req.TimeoutMillis = int32(l.u.cfg.RequestTimeout.Milliseconds())
			reqs[leader] = req
		}
		var rt *kmsg.ProduceRequestTopic
		for i := range req.Topics {
			if req.Topics[i].Topic == topic {
				rt = &req.Topics[i]
			}
		}
		if rt == nil {
			req.Topics = append(req.Topics, kmsg.NewProduceRequestTopic())
			rt = &req.Topics[len(req.Topics)-1]
			// Both the name (Produce v0-v12) and the id (v13+, which
			// names topics by id only): kgo negotiates the version.
			rt.Topic, rt.TopicID = topic, l.topicIDs[topic]
		}
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = p
		rp.Records = batch
		rt.Partitions = append(rt.Partitions, rp)
	}
	if l.u.limit != nil {
		if err := l.u.limit.wait(ctx, sent, l.id == spool.Alarm); err != nil {
			return err
		}
	}
	type result struct {
		err  error
		lost bool // no response: the client may still hold the request
	}
	timeout := max(l.sendTimeout, l.u.cfg.RequestTimeout)
	for _, req := range reqs {
		req.TimeoutMillis = int32(timeout.Milliseconds())
	}
	start := time.Now()
	results := make(chan result, len(reqs))
	produce := func(leader int32, req *kmsg.ProduceRequest) {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		kresp, err := l.cl.Broker(int(leader)).Request(rctx, produceRequest(req))
		if err != nil {
			results <- result{judged(fmt.Errorf("uplink: produce to broker %d: %w", leader, err)), true}
			return
		}
		results <- result{err: checkProduce(req, kresp.(*kmsg.ProduceResponse))}
	}
	for leader, req := range reqs {
		if len(reqs) == 1 {
			produce(leader, req) // no goroutine to wake on the way
		} else {
			go produce(leader, req)
		}
	}
	var errs []error
	timedOut := false
	for range reqs {
		r := <-results
		reuse = reuse && !r.lost
		if r.err != nil {
			errs = append(errs, r.err)
			timedOut = timedOut || errors.Is(r.err, context.DeadlineExceeded) || errors.Is(r.err, os.ErrDeadlineExceeded)
		}
	}
	// Only telemetry windows get large enough to outlast RequestTimeout
	// on a slow link. An alarm send is small: one that times out met a
	// dead link, and a longer wait would only delay the next alarm.
	if l.id != spool.Alarm {
		l.sendTimeout = nextTimeout(l.u.cfg.RequestTimeout, timeout, time.Since(start), len(errs) == 0, timedOut && ctx.Err() == nil)
		if timedOut && ctx.Err() == nil {
			l.log.Info().Dur("timeout", l.sendTimeout).Msg("a send outlasted its timeout; the next ones get longer")
		}
	}
	for _, e := range errs {
		if errors.Is(e, errNewProducer) {
			return errNewProducer
		}
	}
	if len(errs) > 0 {
		// Leadership may have moved: learn it again before the retry.
		l.partitionsStale()
		return errors.Join(errs...)
	}
	l.batches.Add(int64(len(order)))
	l.records.Add(int64(len(recs)))
	l.requests.Add(int64(len(reqs)))
	now := time.Now()
	for i := range recs {
		l.latency.observe(now.Sub(recs[i].Time))
	}
	l.raw.Add(raw)
	l.sent.Add(sent)
	return nil
}

// maxTimeoutFactor bounds how far nextTimeout stretches RequestTimeout.
const maxTimeoutFactor = 8

// nextTimeout is the timeout of a lane's next send, after a send that
// had timeout and took took: doubled after a send that timed out (a
// saved window is sent again as it is, so over a link too slow for it
// the same send would time out for ever), twice what a successful send
// took (so the following windows of that size fit too), and never below
// base or above maxTimeoutFactor times base.
func nextTimeout(base, timeout, took time.Duration, ok, timedOut bool) time.Duration {
	next := timeout
	switch {
	case timedOut:
		next = 2 * timeout
	case ok:
		next = 2 * took
	}
	return min(max(next, base), maxTimeoutFactor*base)
}

func (l *lane) partitionsStale() {
	l.partitions = map[string]int32{}
	l.leaderOf = map[string]int32{}
	l.topicIDs = map[string][16]byte{}
}

// namedProduce is a ProduceRequest kgo may send at v12 at most, the last
// version that names topics: for a request with a topic whose id the
// cluster did not give (Metadata below v10, or a broker without ids).
type namedProduce struct{ *kmsg.ProduceRequest }

// MaxVersion caps kgo's version negotiation.
func (namedProduce) MaxVersion() int16 { return 12 }

// produceRequest returns req as is when every topic carries its id (kgo
// then negotiates up to the newest version both sides know), or capped at
// v12 otherwise.
func produceRequest(req *kmsg.ProduceRequest) kmsg.Request {
	for _, t := range req.Topics {
		if t.TopicID == ([16]byte{}) {
			return namedProduce{req}
		}
	}
	return req
}

func splitTP(tp string) (string, int32) {
	for i := len(tp) - 1; i >= 0; i-- {
		if tp[i] == '/' {
			p, _ := strconv.Atoi(tp[i+1:])
			return tp[:i], int32(p)
		}
	}
	return tp, 0
}

// leaders finds the leader broker of each partition in the window, from
// the metadata cache (filled for topics it lacks).
func (l *lane) leaders(ctx context.Context, w *window) (map[string]int32, error) {
	topics := map[string]bool{}
	for t := range w.Partitions {
		topics[t] = true
	}
	if err := l.learnTopics(ctx, topics); err != nil {
		return nil, err
	}
	for t, n := range w.Partitions {
		if have := l.partitions[t]; have < n {
			return nil, fmt.Errorf("uplink: topic %s has %d partitions, the window was placed on %d", t, have, n)
		}
	}
	return l.leaderOf, nil
}

// checkProduce turns the response to req into nil (every batch stored,
// or already stored: a duplicate), an error wrapping errNewProducer, a
// *permanentError, or a retriable error (see classify). A response to
// v13+ names topics by id only: the request maps them back to names.
func checkProduce(req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse) error {
	names := map[[16]byte]string{}
	for _, t := range req.Topics {
		names[t.TopicID] = t.Topic
	}
	var errs []error
	var perm *permanentError
	for _, t := range resp.Topics {
		topic := t.Topic
		if topic == "" {
			topic = names[t.TopicID]
		}
		for _, p := range t.Partitions {
			err := kerr.ErrorForCode(p.ErrorCode)
			if err == nil || errors.Is(err, kerr.DuplicateSequenceNumber) {
				continue
			}
			err = judged(fmt.Errorf("uplink: %s/%d: %w", topic, p.Partition, err))
			switch {
			case errors.Is(err, errNewProducer):
				return err
			case errors.As(err, new(*permanentError)):
				if perm == nil {
					perm = err.(*permanentError)
				}
			}
			errs = append(errs, err)
		}
	}
	if perm != nil {
		// One permanent failure parks the lane, whatever else failed.
		return &permanentError{reason: perm.reason, err: errors.Join(errs...)}
	}
	return errors.Join(errs...)
}
