package source

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
)

// Sink takes the messages the subscriber receives: the spool, or a
// forwarder's. Append is called from one goroutine at a time and returns
// nil only once every message is stored; the subscriber acknowledges them
// to the broker only then. It may keep the messages but must not modify
// them.
type Sink interface {
	Append(msgs ...spool.Message) error
}

// Subscriber subscribes to a third-party MQTT broker and appends what it
// receives to a Sink, acknowledging each message to the broker only once
// the Sink has stored it. Build it with New, run it with Run.
type Subscriber struct {
	cfg    Config
	sink   Sink
	router *route.Router
	log    zerolog.Logger
	plog   zerolog.Logger // sampled, for events that may come per message

	subs map[string]byte // subscriptions as sent: filter (with $share/) → QoS

	// queue carries messages from paho's router goroutine (the handler)
	// to the worker, which appends them to the sink in batches.
	queue chan item

	received, redelivered, spooled, unrouted, failed, discarded atomic.Int64
	connects                                                    atomic.Int64
	connected                                                   atomic.Bool

	running atomic.Bool // set by Run, so that it runs once at a time
}

// item is a message as paho handed it over, with the connection it came
// on and its receive time.
type item struct {
	c  *conn
	m  paho.Message
	at time.Time
}

// conn is one MQTT connection to the source broker. A connection ends
// (dead closes) when it is lost, when an append fails, or when Run stops;
// what arrived on it and is not yet appended is then discarded without an
// acknowledgement, for the broker to deliver again on the next
// connection.
type conn struct {
	dead    chan struct{}
	once    sync.Once
	why     error       // set before dead closes
	spooled atomic.Bool // something was appended from this connection
}

func newConn() *conn { return &conn{dead: make(chan struct{})} }

// end closes the connection for the reason why; the first reason wins.
func (c *conn) end(why error) {
	c.once.Do(func() {
		c.why = why
		close(c.dead)
	})
}

func (c *conn) ended() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// Reasons a connection ends.
var (
	errStopping   = errors.New("stopping")
	errSinkFailed = errors.New("sink append failed")
)

// Stats are the subscriber's counters since New. Every message received
// is, at any time, in exactly one of: spooled, unrouted (acknowledged and
// dropped), failed (refused by the sink, not acknowledged), discarded
// (not acknowledged because its connection had ended), or in progress.
type Stats struct {
	// Received counts messages the broker delivered, redeliveries included.
	Received int64
	// Redelivered counts those that came with the DUP flag: delivered
	// again after a connection ended before their acknowledgement.
	Redelivered int64
	// Spooled counts messages appended to the sink (and acknowledged).
	Spooled int64
	// Unrouted counts messages no route matched (acknowledged, dropped).
	Unrouted int64
	// Failed counts messages the sink refused: not acknowledged, so
	// delivered again (QoS 1 and 2) or lost (QoS 0).
	Failed int64
	// Discarded counts messages dropped unacknowledged because their
	// connection had already ended; the broker delivers them again.
	Discarded int64
	// Reconnects counts connections made after the first.
	Reconnects int64
	// Connected is true while subscribed to the source broker.
	Connected bool
}

// New checks the configuration (zero settings take their defaults, except
// QoS) and builds a Subscriber; Run connects it.
func New(cfg Config, sink Sink) (*Subscriber, error) {
	if sink == nil {
		return nil, errors.New("source: nil sink")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Filters = append([]string(nil), cfg.Filters...)
	cfg.Routes = append([]route.Route(nil), cfg.Routes...)
	s := &Subscriber{
		cfg:    cfg,
		sink:   sink,
		router: route.NewRouter(cfg.Routes, cfg.BridgeID),
		log:    cfg.Logger.With().Str("component", "source").Logger(),
		subs:   make(map[string]byte, len(cfg.Filters)),
		queue:  make(chan item, cfg.MaxBatch),
	}
	s.plog = s.log.Sample(&zerolog.BurstSampler{Burst: 20, Period: time.Second})
	for _, f := range cfg.Filters {
		s.subs[cfg.subscription(f)] = cfg.QoS
	}
	return s, nil
}

// Run builds a Subscriber and runs it until ctx is done (see
// Subscriber.Run).
func Run(ctx context.Context, cfg Config, sink Sink) error {
	s, err := New(cfg, sink)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// Run connects to the source broker and bridges its messages to the sink
// until ctx is done; it reconnects after every failure, waiting
// RetryBackoff, doubled after each failure up to MaxRetryBackoff. On
// return the connection is closed: messages appended by then are
// acknowledged, the others stay the broker's to deliver again. Run returns
// nil once ctx is done, and an error only if it is already running.
func (s *Subscriber) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("source: already running")
	}
	defer s.running.Store(false)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.work(stop)
	}()
	stopWorker := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopWorker()

	backoff := s.cfg.RetryBackoff
	subscribed := false // in this Run
	for {
		c := newConn()
		began := time.Now()
		client, err := s.connect(ctx, c, !subscribed)
		if err == nil {
			subscribed = true
			if s.connects.Add(1) > 1 {
				s.log.Info().Str("source", s.cfg.Source).Str("client", s.cfg.ClientID).Msg("reconnected to source")
			} else {
				s.log.Info().Str("source", s.cfg.Source).Str("client", s.cfg.ClientID).Strs("filters", s.Subscriptions()).Msg("subscribed to source")
			}
			s.connected.Store(true)
			select {
			case <-ctx.Done():
				c.end(errStopping)
			case <-c.dead:
			}
			s.connected.Store(false)
			if ctx.Err() != nil {
				// Let the append in progress finish and its
				// acknowledgements go out before DISCONNECT: paho writes
				// them in the order they were handed to it.
				stopWorker()
				client.Disconnect(500)
				s.log.Info().Str("source", s.cfg.Source).Msg("disconnected from source")
				return nil
			}
			client.Disconnect(250)
			if c.spooled.Load() || time.Since(began) > s.cfg.MaxRetryBackoff {
				backoff = s.cfg.RetryBackoff
			}
			s.log.Warn().Err(c.why).Str("source", s.cfg.Source).Dur("retry_in", backoff).Msg("source connection ended")
		} else if ctx.Err() == nil {
			s.log.Warn().Err(err).Str("source", s.cfg.Source).Dur("retry_in", backoff).Msg("cannot connect to source")
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, s.cfg.MaxRetryBackoff)
	}
}

// connect makes one connection with the persistent session and
// subscribes when subscribe is set (until a Run has subscribed once: the
// filters may have changed since the session was made) or the broker has
// no session for the client id. The connection is not retried here.
func (s *Subscriber) connect(ctx context.Context, c *conn, subscribe bool) (paho.Client, error) {
	cfg := s.cfg
	opts := paho.NewClientOptions().
		AddBroker(cfg.Source).
		SetClientID(cfg.ClientID).
		SetProtocolVersion(4). // MQTT 3.1.1
		SetCleanSession(false).
		SetAutoReconnect(false). // Run reconnects, with a fresh client and conn
		SetConnectRetry(false).
		SetAutoAckDisabled(true). // acknowledge once spooled
		SetOrderMatters(true).    // one handler call at a time, in arrival order
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetWriteTimeout(cfg.ConnectTimeout).
		SetDefaultPublishHandler(s.handler(c)).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			c.end(fmt.Errorf("connection lost: %w", err))
		})
	if cfg.Username != "" {
		opts.SetUsername(cfg.Username)
		opts.SetPassword(cfg.Password)
	}
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	client := paho.NewClient(opts)

	tok := client.Connect()
	if err := waitToken(ctx, tok); err != nil {
		c.end(err)
		client.Disconnect(0)
		return nil, fmt.Errorf("source: connect: %w", err)
	}
	present := tok.(*paho.ConnectToken).SessionPresent()
	if subscribe || !present {
		st := client.SubscribeMultiple(s.subs, nil)
		err := waitToken(ctx, st)
		if err == nil {
			for f, q := range st.(*paho.SubscribeToken).Result() {
				if q > 2 {
					err = fmt.Errorf("broker refused the subscription %q (return code 0x%02x)", f, q)
					break
				}
				if q < cfg.QoS {
					s.log.Warn().Str("filter", f).Uint8("qos", q).Uint8("want_qos", cfg.QoS).Msg("broker granted a lower QoS")
				}
			}
		}
		if err != nil {
			c.end(err)
			client.Disconnect(0)
			return nil, fmt.Errorf("source: subscribe: %w", err)
		}
	}
	s.log.Debug().Bool("session_present", present).Str("client", cfg.ClientID).Msg("connected to source")
	return client, nil
}

// waitToken waits for a paho token, bounded by ctx.
func waitToken(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handler returns paho's publish handler for connection c. paho calls it
// on the connection's router goroutine, one message at a time in arrival
// order (the same order as the broker sent them), for every subscription:
// it is the default handler, so redeliveries that arrive right after the
// CONNACK, before SUBSCRIBE, are handled too. It hands the message to the
// worker, waiting while the queue is full (the broker then holds back),
// and gives up once the connection has ended, so that paho can close it.
func (s *Subscriber) handler(c *conn) paho.MessageHandler {
	return func(_ paho.Client, m paho.Message) {
		s.received.Add(1)
		if m.Duplicate() {
			s.redelivered.Add(1)
		}
		select {
		case s.queue <- item{c: c, m: m, at: time.Now()}:
		case <-c.dead:
			s.discarded.Add(1)
		}
	}
}

// work appends queued messages to the sink until stop is closed: it takes
// what the queue holds, up to MaxBatch, appends it in one call and then
// acknowledges each message in arrival order.
func (s *Subscriber) work(stop <-chan struct{}) {
	batch := make([]item, 0, s.cfg.MaxBatch)
	msgs := make([]spool.Message, 0, s.cfg.MaxBatch)
	for {
		select {
		case <-stop:
			// What is left was not appended: unacknowledged, it comes
			// again on the next connection.
			for {
				select {
				case <-s.queue:
					s.discarded.Add(1)
				default:
					return
				}
			}
		case it := <-s.queue:
			batch = append(batch[:0], it)
		fill:
			for len(batch) < s.cfg.MaxBatch {
				select {
				case it := <-s.queue:
					batch = append(batch, it)
				default:
					break fill
				}
			}
			msgs = s.process(batch, msgs[:0])
		}
	}
}

// process appends one batch and acknowledges it. Messages of a connection
// that has ended are skipped: they cannot be acknowledged any more, and
// the broker delivers them again. When the sink refuses the batch, nothing
// of it is acknowledged and the connection is ended, so that the broker
// delivers the batch again, in order, on the next connection; the messages
// after it on the same connection are not appended before it.
func (s *Subscriber) process(batch []item, msgs []spool.Message) []spool.Message {
	live := batch[:0]
	for _, it := range batch {
		if it.c.ended() {
			s.discarded.Add(1)
			continue
		}
		live = append(live, it)
	}
	if len(live) == 0 {
		return msgs
	}
	var unrouted int64
	for _, it := range live {
		m := it.m
		// The publisher's client id is not known: the bridge's keys
		// messages whose topic has no device level, and no mqtt.client
		// header is written.
		msg, ok := s.router.Message(route.Publish{
			Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(),
			ClientID: s.cfg.ClientID, Relayed: true, Received: it.at,
		})
		if !ok {
			unrouted++
			s.plog.Warn().Str("mqtt_topic", m.Topic()).Uint8("qos", m.Qos()).Msg("message dropped: no route")
			continue
		}
		msgs = append(msgs, msg)
	}
	if len(msgs) > 0 {
		if err := s.sink.Append(msgs...); err != nil {
			n := int64(len(live))
			s.failed.Add(n)
			s.log.Warn().Err(err).Int64("messages", n).Str("source", s.cfg.Source).
				Msg("sink append failed: not acknowledging; reconnecting for redelivery")
			for _, it := range live {
				it.c.end(fmt.Errorf("%w: %w", errSinkFailed, err))
			}
			clear(msgs)
			return msgs
		}
		s.spooled.Add(int64(len(msgs)))
	}
	s.unrouted.Add(unrouted)
	for _, it := range live {
		it.c.spooled.Store(true)
		it.m.Ack()
	}
	clear(msgs) // do not keep payloads alive until the next batch
	return msgs
}

// Stats returns the subscriber's counters.
func (s *Subscriber) Stats() Stats {
	return Stats{
		Received:    s.received.Load(),
		Redelivered: s.redelivered.Load(),
		Spooled:     s.spooled.Load(),
		Unrouted:    s.unrouted.Load(),
		Failed:      s.failed.Load(),
		Discarded:   s.discarded.Load(),
		Reconnects:  max(s.connects.Load()-1, 0),
		Connected:   s.connected.Load(),
	}
}

// Connected reports whether the subscriber is connected and subscribed.
func (s *Subscriber) Connected() bool { return s.connected.Load() }

// Config returns the configuration in use, defaults filled in.
func (s *Subscriber) Config() Config { return s.cfg }

// Subscriptions returns the filters as subscribed: with the $share/
// prefix when a shared group is set.
func (s *Subscriber) Subscriptions() []string {
	out := make([]string, 0, len(s.cfg.Filters))
	for _, f := range s.cfg.Filters {
		out = append(out, s.cfg.subscription(f))
	}
	return out
}
