package edge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/time/rate"

	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/internal/logadapt"
)

// Sink takes the messages the edge accepts. It is the seam between the
// MQTT front door and what keeps the messages (the spool).
//
// Append is called on the publishing client's read goroutine, before the
// publish is acknowledged, from many goroutines at once. It returns nil
// only once the messages are stored (the edge then acknowledges), or an
// error if none of them is: spool.ErrFull and spool.ErrTooLarge are told
// apart in the refusal (see the package documentation), any other error
// is refused as unspecified. While Append runs, that client's next
// packets wait, which is MQTT's back-pressure. Append may keep the
// messages and their slices but must not modify them: the payload is also
// delivered to local subscribers.
type Sink interface {
	Append(msgs ...spool.Message) error
}

// AsyncSink is a Sink that can also take a message without waiting for
// the disk (spool.Spool.Submit is one). With an AsyncSink the edge goes
// on reading a connection while its publishes are being stored, and holds
// each acknowledgement back until Submit's done reports the message
// stored: an fsync then covers every connection's messages in flight, not
// one per connection (see ackconn.go).
//
// Submit either fails at once (the same errors as Append; done is not
// called) or calls done exactly once, from any goroutine, without
// blocking the caller of Submit. Messages submitted one after the other
// are stored in that order within their lane. Submit copies what it keeps
// of the message.
type AsyncSink interface {
	Sink
	Submit(msg spool.Message, done func(error)) error
}

// ErrClosed is returned by Publish before Start and after Close.
var ErrClosed = errors.New("edge: closed")

// Listener ids, as mochi knows them (Client.Net.Listener).
const (
	listenerTCP = "mqtt"
	listenerTLS = "mqtt-tls"
	listenerWS  = "mqtt-ws"
)

// Edge is the MQTT front door: an embedded mochi-mqtt server whose
// accepted publishes go to a Sink.
type Edge struct {
	cfg      Config
	sink     Sink
	async    AsyncSink   // sink, when it is one; nil otherwise
	qos0Done func(error) // qos0Failed, allocated once
	log      zerolog.Logger
	plog     zerolog.Logger // sampled, for events that may come per message
	srv      *mqtt.Server
	router   *route.Router
	users    atomic.Pointer[Users] // nil without a users file
	metrics  *metrics
	store    *store // nil without StateDir
	// commander is the inline client PublishMessage publishes commands
	// through (mochi's own inline client is not exported).
	commander *mqtt.Client
	tlsConf   *tls.Config

	connects *rate.Limiter // Config.MaxConnectRate; nil: no limit
	// poller parks the readers of idle plain TCP connections (poller.go);
	// set by Start, nil if the system has none.
	poller *poller

	closing atomic.Bool  // set first thing in Close
	gate    connGate     // closed before mochi's Close
	failed  chan error   // the first listener that stopped accepting, once
	stopErr atomic.Value // error: that listener's, for readiness

	mu        sync.RWMutex // guards the fields below; Publish holds it shared
	started   bool
	closed    bool
	listeners []listeners.Listener
}

// New builds an edge: it opens the state database and registers the
// metrics. Start opens the listeners.
func New(cfg Config, sink Sink) (*Edge, error) {
	if sink == nil {
		return nil, errors.New("edge: nil sink")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Edge{
		cfg:    cfg,
		sink:   sink,
		failed: make(chan error, 1),
		log:    cfg.Logger.With().Str("component", "edge").Logger(),
		router: route.NewRouter(cfg.Routes, cfg.EdgeID),
	}
	e.plog = e.log.Sample(&zerolog.BurstSampler{Burst: 20, Period: time.Second})
	e.async, _ = sink.(AsyncSink)
	e.qos0Done = e.qos0Failed

	if cfg.Users != nil {
		if cfg.Users.Len() == 0 && !cfg.AllowAnonymous {
			e.log.Warn().Msg("users list no user: no device can connect")
		}
		e.users.Store(cfg.Users)
	}
	if cfg.TLS != nil {
		e.tlsConf = cfg.TLS.Clone()
		if e.tlsConf.MinVersion < tls.VersionTLS12 {
			e.tlsConf.MinVersion = tls.VersionTLS12
		}
	}

	if cfg.MaxConnectRate > 0 {
		burst := cfg.MaxConnectBurst
		if burst == 0 {
			burst = max(1, int(math.Ceil(cfg.MaxConnectRate)))
		}
		e.connects = rate.NewLimiter(rate.Limit(cfg.MaxConnectRate), burst)
	}

	caps := mqtt.NewDefaultServerCapabilities()
	// The edge refuses clients beyond Config.MaxClients itself (admit),
	// so that the refusals are counted; mochi's check comes first.
	caps.MaximumClients = math.MaxInt64
	caps.MaximumPacketSize = cfg.MaxPacketSize
	caps.MaximumSessionExpiryInterval = uint32(cfg.MaxSessionExpiry / time.Second)
	caps.MaximumMessageExpiryInterval = int64(cfg.MaxMessageExpiry / time.Second)
	caps.MaximumInflight = cfg.MaxInflight
	// mochi's default outbound queue is 8192 packets per client, 64 KiB
	// of channel buffer each: 640 MiB for 10000 clients on a Pi.
	caps.MaximumClientWritesPending = int32(cfg.MaxWritesPending)
	caps.ReceiveMaximum = cfg.ReceiveMaximum
	// mochi checks ACLs on the topic name before resolving a topic alias
	// (server.go lines 867 and 905), and its CONNACK announces no Topic
	// Alias Maximum, which means 0: refuse aliases outright.
	caps.TopicAliasMaximum = 0
	e.srv = mqtt.New(&mqtt.Options{
		Capabilities:            caps,
		ClientNetReadBufferSize: mochiReadBufferSize, // see idleconn.go
		InlineClient:            true,
		Logger:                  logadapt.Mochi(cfg.Logger),
		SysTopicResendInterval:  60,
		ParkFn:                  e.park,
	})

	m, err := newMetrics(cfg.Registerer,
		func() float64 { return float64(atomic.LoadInt64(&e.srv.Info.ClientsConnected)) },
		func() float64 { return float64(atomic.LoadInt64(&e.srv.Info.BytesReceived)) })
	if err != nil {
		return nil, fmt.Errorf("edge: cannot register metrics: %w", err)
	}
	e.metrics = m

	if err := e.srv.AddHook(&hook{e: e}, nil); err != nil {
		m.unregister()
		return nil, fmt.Errorf("edge: %w", err)
	}
	if cfg.Registry != nil {
		if err := e.srv.AddHook(&devicesHook{e: e, reg: cfg.Registry}, nil); err != nil {
			m.unregister()
			return nil, fmt.Errorf("edge: %w", err)
		}
	}
	e.commander = e.srv.NewClient(nil, mqtt.LocalListener, "fluxo-downlink", true)
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			m.unregister()
			return nil, fmt.Errorf("edge: cannot create state directory: %w", err)
		}
		path := filepath.Join(cfg.StateDir, "mqtt.db")
		s := newStore()
		err := e.srv.AddHook(s, &bolt.Options{
			Path:    path,
			Options: &bbolt.Options{Timeout: time.Second},
		})
		if err != nil {
			m.unregister()
			if errors.Is(err, bolterrors.ErrTimeout) {
				return nil, fmt.Errorf("edge: cannot open %s: locked by another process: %w", path, err)
			}
			return nil, fmt.Errorf("edge: cannot open %s: %w", path, err)
		}
		e.store = s
	}
	return e, nil
}

// Start opens the listeners and loads the stored sessions; the edge then
// serves until Close.
func (e *Edge) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if e.started {
		return errors.New("edge: already started")
	}
	type spec struct {
		addr string
		l    listeners.Listener
	}
	var specs []spec
	if e.cfg.MQTTAddr != "" {
		specs = append(specs, spec{e.cfg.MQTTAddr, listeners.NewTCP(listeners.Config{ID: listenerTCP, Address: e.cfg.MQTTAddr})})
		p, err := newPoller(e.resume)
		if err != nil {
			e.log.Warn().Err(err).Msg("idle connections keep a reader goroutine each")
		}
		e.poller = p
	}
	if e.cfg.TLSAddr != "" {
		specs = append(specs, spec{e.cfg.TLSAddr, listeners.NewTCP(listeners.Config{ID: listenerTLS, Address: e.cfg.TLSAddr, TLSConfig: e.tlsConf})})
	}
	if e.cfg.WSAddr != "" {
		specs = append(specs, spec{e.cfg.WSAddr, newWSListener(listenerWS, e.cfg.WSAddr)})
	}
	for _, s := range specs {
		l := &guarded{Listener: s.l, onPanic: e.connPanic, gate: &e.gate, onStop: e.listenerStopped,
			closeClients: e.closeListenerClients}
		if s.l.ID() == listenerTCP {
			l.poller = e.poller
		}
		if e.async != nil {
			l.wrap = func(c net.Conn) net.Conn { return newAckConn(c, e) }
		}
		if err := e.srv.AddListener(l); err != nil {
			e.closeListeners()
			return fmt.Errorf("edge: cannot listen on %s: %w", s.addr, err)
		}
		e.listeners = append(e.listeners, l)
	}
	if err := e.srv.Serve(); err != nil {
		e.closeListeners()
		return fmt.Errorf("edge: cannot start mqtt server: %w", err)
	}
	e.started = true
	ev := e.log.Info().Str("edge", e.cfg.EdgeID).Int("routes", len(e.cfg.Routes)).Bool("persistent", e.store != nil)
	for _, l := range e.listeners {
		ev = ev.Str(l.ID(), l.Address())
	}
	ev.Msg("edge started")
	return nil
}

// admit decides whether a new connection may go on, before it is
// authenticated: it returns the refusal's reason code and the metric's
// reason when the edge already serves Config.MaxClients clients (server
// busy, mochi's answer) or when connections come faster than
// Config.MaxConnectRate (quota exceeded). MQTT 3.1.1 clients get server
// unavailable for both (refuseConnect).
func (e *Edge) admit() (packets.Code, string) {
	if atomic.LoadInt64(&e.srv.Info.ClientsConnected) >= int64(e.cfg.MaxClients) {
		return packets.ErrServerBusy, refuseMaxClients
	}
	if e.connects != nil && !e.connects.Allow() {
		return packets.ErrQuotaExceeded, refuseRate
	}
	return packets.CodeSuccess, ""
}

// closeListeners closes listeners opened by a Start that failed.
func (e *Edge) closeListeners() {
	for _, l := range e.listeners {
		l.Close(func(string) {})
		e.srv.Listeners.Delete(l.ID())
	}
	e.listeners = nil
	if e.poller != nil {
		e.poller.close()
		e.poller = nil
	}
}

// Close stops the listeners, disconnects the clients and closes the state
// database. The wills of the clients it disconnects still reach local
// subscribers, as MQTT wants, but are not spooled: the devices did not go
// away, the edge did. Each connection ends in order, its acknowledgements
// written before the end of the stream (firstRead.Close). Close may be
// called more than once.
func (e *Edge) Close() error {
	e.closing.Store(true)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	e.gate.close()
	if e.started {
		e.quiesce()
	}
	err := e.srv.Close() // returns once every connection has ended
	e.gate.lingering.Wait()
	if e.poller != nil {
		e.poller.close()
	}
	e.metrics.unregister()
	if e.started {
		e.log.Info().Msg("edge stopped")
	}
	return err
}

// quiesce lets every connection finish the packet it is handling before
// mochi stops the clients: a publish stored just before Close must get its
// acknowledgement out, or the device sends it again to the next edge and
// it is stored twice. Each connection's reader parks at its next read
// (firstRead; a read deadline in the past wakes the ones waiting for
// bytes), so the packet in hand finishes, its acknowledgement written or
// held, and no other is read; mochi's Close then says DISCONNECT to MQTT 5
// clients and closes the connections, flushing held acknowledgements
// (ackConn.Close). A publish mochi had already buffered is refused unstored
// (hook.OnPublish). quiesce waits for every open client's reader to park
// for at most closeFlushTimeout and a second.
func (e *Edge) quiesce() {
	e.gate.quiescing.Store(true)
	now := time.Now()
	for _, cl := range e.srv.Clients.GetAll() {
		if !cl.Net.Inline && cl.Net.Conn != nil && !cl.Closed() {
			_ = cl.Net.Conn.SetReadDeadline(now)
		}
	}
	deadline := now.Add(closeFlushTimeout + time.Second)
	for time.Now().Before(deadline) {
		open := int64(0)
		for _, cl := range e.srv.Clients.GetAll() {
			if !cl.Net.Inline && !cl.Closed() {
				open++
			}
		}
		parked := e.gate.parked.Load()
		if e.poller != nil {
			parked += e.poller.parked.Load()
		}
		if parked >= open {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// park is mochi's ParkFn: it takes the reader of a plain TCP connection
// with nothing buffered, unless the edge is closing (see poller.go).
func (e *Edge) park(cl *mqtt.Client) bool {
	if e.gate.quiescing.Load() {
		return false // the reader parks in firstRead instead
	}
	for c := cl.Net.Conn; c != nil; {
		if bc, ok := c.(*bufConn); ok {
			return bc.park(cl)
		}
		u, ok := c.(unwrapper)
		if !ok {
			return false
		}
		c = u.Unwrap()
	}
	return false
}

// resume continues a parked client's read loop on a new goroutine, which
// recovers from a panic as the listener's connection goroutines do
// (guarded).
func (e *Edge) resume(cl *mqtt.Client) {
	go func() {
		defer func() {
			if v := recover(); v != nil {
				e.connPanic(cl.Net.Listener, cl.Net.Conn, v)
			}
		}()
		if err := e.srv.ResumeClient(cl); err != nil {
			e.srv.Log.Warn("", "error", err)
		}
	}()
}

// Publish sends a message to the devices subscribed to topic, through
// mochi's inline client: commands and other downlink traffic. A
// subscriber's QoS is the lower of qos and its subscription's; a
// persistent session that is offline gets QoS 1/2 messages when it
// reconnects (queued up to Config.MaxInflight per client, for at most
// Config.MaxMessageExpiry). The message does not go to the Sink.
func (e *Edge) Publish(topic string, payload []byte, qos byte, retain bool) error {
	if err := e.checkPublish(topic, qos); err != nil {
		return err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if !e.started || e.closed {
		return ErrClosed
	}
	return e.srv.Publish(topic, payload, retain, qos)
}

// checkPublish checks the topic and QoS of a message the edge publishes.
func (e *Edge) checkPublish(topic string, qos byte) error {
	if !validTopicName(topic) || strings.HasPrefix(topic, "$") {
		return fmt.Errorf("edge: cannot publish on %q: not a valid topic name", topic)
	}
	if qos > 2 {
		return fmt.Errorf("edge: invalid qos %d", qos)
	}
	return nil
}

// SetUsers replaces the users (Config.Users), for a users file read
// again. Connected clients keep their connection; their next publish or
// subscription is checked against the new users. u must not be nil: an
// edge started with users keeps checking against some.
func (e *Edge) SetUsers(u *Users) error {
	if u == nil {
		return errors.New("edge: nil users")
	}
	e.users.Store(u)
	e.log.Info().Int("users", u.Len()).Msg("users replaced")
	return nil
}

// Addr returns the bound address of the MQTT TCP listener, "" if it is
// not configured or the edge is not started.
func (e *Edge) Addr() string { return e.addr(listenerTCP) }

// TLSAddr returns the bound address of the MQTT TLS listener.
func (e *Edge) TLSAddr() string { return e.addr(listenerTLS) }

// WSAddr returns the bound address of the WebSocket listener.
func (e *Edge) WSAddr() string { return e.addr(listenerWS) }

func (e *Edge) addr(id string) string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, l := range e.listeners {
		if l.ID() == id {
			return l.Address()
		}
	}
	return ""
}

// closeListenerClients disconnects a closing listener's clients as
// mochi's own does, but without Clients.GetByListener, which takes the
// clients' read lock twice: a connection ending at that moment (its
// Delete waiting for the write lock between the two) deadlocks Close.
func (e *Edge) closeListenerClients(listener string) {
	for _, cl := range e.srv.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			_ = e.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// listenerStopped reports a listener whose accept loop ended while the
// edge runs.
func (e *Edge) listenerStopped(listener string) {
	err := fmt.Errorf("edge: mqtt listener %s stopped accepting connections", listener)
	e.log.Error().Str("listener", listener).Msg("mqtt listener stopped accepting connections")
	e.stopErr.CompareAndSwap(nil, err)
	select {
	case e.failed <- err:
	default: // another one already reported
	}
}

// Failed delivers the first MQTT listener that stopped accepting while
// the edge runs: devices can no longer connect, and the edge must stop
// rather than look healthy.
func (e *Edge) Failed() <-chan error { return e.failed }

// ListenerError is the error of the first MQTT listener that stopped
// accepting, or nil.
func (e *Edge) ListenerError() error {
	err, _ := e.stopErr.Load().(error)
	return err
}

// connPanic cleans up after a connection whose goroutine panicked (see
// guarded). mochi's deferred calls have closed the connection and fixed
// its counters; what attachClient does after the read loop is done here:
// the session's end, as for a connection that ended with an error. The
// client's will is not published (mochi's sendLWT is not exported).
func (e *Edge) connPanic(listener string, c net.Conn, v any) {
	e.log.Error().Str("listener", listener).Str("remote", c.RemoteAddr().String()).
		Str("panic", fmt.Sprint(v)).Str("stack", string(debug.Stack())).
		Msg("mqtt connection panicked: closed")
	_ = c.Close()
	for _, cl := range e.srv.Clients.GetAll() { // GetByListener skips closed clients
		if cl.Net.Listener != listener || cl.Net.Conn != c {
			continue
		}
		cl.Stop(packets.ErrMalformedPacket)
		expire := (cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.SessionExpiryInterval == 0) ||
			(cl.Properties.ProtocolVersion < 5 && cl.Properties.Clean)
		if e.store != nil {
			e.store.OnDisconnect(cl, packets.ErrMalformedPacket, expire)
		}
		if expire && !cl.IsTakenOver() {
			cl.ClearInflights()
			e.srv.UnsubscribeClient(cl)
			if cur, ok := e.srv.Clients.Get(cl.ID); ok && cur == cl {
				e.srv.Clients.Delete(cl.ID)
			}
		}
	}
}
