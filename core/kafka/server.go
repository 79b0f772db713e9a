package kafka

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/semaphore"

	"github.com/fluxo-io/fluxo/core/acl"
	"github.com/fluxo-io/fluxo/core/broker"
)

// ErrServerClosed is returned by Serve and Start once Shutdown has been
// called.
var ErrServerClosed = errors.New("kafka: server closed")

// minFrameBytes is the smallest request frame (without its length prefix)
// that can hold a request header: api key, api version and correlation id.
// Only ControlledShutdown v0 sends a header this short; every other request
// also carries a client id.
const minFrameBytes = 8

// Config configures a Server. Start from DefaultConfig and change what you
// need; New rejects a Config that fails Validate.
type Config struct {
	// Addr is the TCP address Start listens on, as host:port. Serve
	// ignores it and uses the listener it is given.
	Addr string

	// NodeID is this broker's node id, as Metadata reports it. Together
	// with ClusterID it lets ApiVersions v5+ tell a client that reached
	// the wrong broker to rebootstrap (KIP-1242).
	NodeID int32

	// ClusterID is the cluster id Metadata reports. Empty disables the
	// ApiVersions v5+ cluster/node check.
	ClusterID string

	// MaxRequestBytes is the largest request frame accepted, not counting
	// the 4-byte length prefix (Kafka's socket.request.max.bytes). A
	// larger length prefix closes the connection before any buffer is
	// allocated.
	MaxRequestBytes int

	// MaxInFlightBytes bounds the request bytes held in memory across all
	// connections at once (Kafka's queued.max.request.bytes). A
	// connection whose next frame does not fit waits, without reading it,
	// until other requests finish. Zero means no bound; otherwise it must
	// be at least MaxRequestBytes.
	MaxInFlightBytes int64

	// MaxConnections is the number of client connections served at once.
	// A connection beyond it is accepted and closed at once.
	MaxConnections int

	// IdleTimeout closes a connection that sends no request for this
	// long (Kafka's connections.max.idle.ms). It also bounds how long
	// reading one frame and writing one response may stall.
	IdleTimeout time.Duration

	// ACLs returns the cluster's ACL bindings as of now; it is called on
	// every check, so it must be cheap and safe for concurrent use. nil:
	// no bindings (only super users pass an Authorizer).
	ACLs func() []acl.Binding

	// Advertised is the host:port Metadata gives clients for this broker
	// on the listener Start and Serve open, named PLAINTEXT (Kafka's
	// advertised.listeners). Empty: the listener's address. Listeners
	// served with ServeListener carry their own.
	Advertised string

	// Listener security (TLS and SASL). Each listener's protocol and TLS
	// configuration are given to ServeListener; these are shared by all.

	// HandshakeTimeout bounds a connection's TLS handshake, done on the
	// connection's own goroutine. Zero: IdleTimeout.
	HandshakeTimeout time.Duration

	// SASLMechanisms are the SASL mechanisms SASL_PLAINTEXT and SASL_SSL
	// listeners offer (Kafka's sasl.enabled.mechanisms): PLAIN,
	// SCRAM-SHA-256, SCRAM-SHA-512. Empty: no SASL, and ServeListener
	// refuses SASL listeners.
	SASLMechanisms []string

	// Credentials looks users up for SASL; required when SASLMechanisms
	// is not empty. PLAIN checks passwords against the same SCRAM
	// credentials.
	Credentials Credentials

	// BrokerEndpoint, if set, gives another broker's host:port on the
	// listener named listener, for Metadata and FindCoordinator answers
	// to a client of that listener; ok false leaves the broker out (or,
	// for a coordinator, answers COORDINATOR_NOT_AVAILABLE). Nil: every
	// broker's cluster.BrokerInfo.KafkaAddr, whatever the listener.
	BrokerEndpoint func(id int32, listener string) (hostport string, ok bool)

	// Broker holds the topics and partitions the data APIs serve. Nil
	// leaves only ApiVersions registered.
	Broker *broker.Broker

	// ControllerID, if set, names the cluster's controller for Metadata
	// (false: none elected right now). Nil: this broker.
	ControllerID func() (int32, bool)

	// Groups finds the consumer group coordinators; nil leaves the group
	// APIs unregistered.
	Groups Groups

	// Txns finds the transaction coordinators; nil (or a nil Groups)
	// leaves the transaction APIs unregistered, and InitProducerID with a
	// transactional id answers COORDINATOR_NOT_AVAILABLE.
	Txns Txns

	// UnregisterBroker removes broker id from the cluster for good
	// (UnregisterBroker, API key 64). Nil leaves the API unregistered. It
	// returns an error wrapping ErrBrokerNotRegistered for an id the
	// cluster does not know and ErrUnregisterRefused for a removal that
	// cannot be done as asked.
	UnregisterBroker func(ctx context.Context, id int32) error

	// Metadata is the cluster metadata the security APIs (SCRAM users and
	// ACLs) read and change; nil leaves those APIs unregistered.
	Metadata Metadata

	// Authorizer: nil: authorization off (every request allowed).
	Authorizer *acl.Authorizer

	// Logger receives the server's logs. The zero value logs nothing.
	Logger zerolog.Logger

	// Registerer, if not nil, registers the server's metrics
	// (fluxo_kafka_*). Nil registers none.
	Registerer prometheus.Registerer
}

// DefaultConfig returns a Config with Kafka's defaults: port 9092, 100 MiB
// requests, 10 minutes idle timeout.
func DefaultConfig() Config {
	return Config{
		Addr:             ":9092",
		NodeID:           0,
		MaxRequestBytes:  100 << 20,
		MaxInFlightBytes: 512 << 20,
		MaxConnections:   10000,
		IdleTimeout:      10 * time.Minute,
		HandshakeTimeout: 10 * time.Second,
		Logger:           zerolog.Nop(),
	}
}

// Validate reports the first field of c that cannot work.
func (c Config) Validate() error {
	switch {
	case c.NodeID < 0:
		return fmt.Errorf("kafka: node id %d is negative", c.NodeID)
	case c.MaxRequestBytes < minFrameBytes || c.MaxRequestBytes > math.MaxInt32:
		return fmt.Errorf("kafka: max request bytes %d is outside [%d, %d]", c.MaxRequestBytes, minFrameBytes, math.MaxInt32)
	case c.MaxInFlightBytes < 0:
		return fmt.Errorf("kafka: max in-flight bytes %d is negative", c.MaxInFlightBytes)
	case c.MaxInFlightBytes > 0 && c.MaxInFlightBytes < int64(c.MaxRequestBytes):
		return fmt.Errorf("kafka: max in-flight bytes %d is below max request bytes %d", c.MaxInFlightBytes, c.MaxRequestBytes)
	case c.MaxConnections <= 0:
		return fmt.Errorf("kafka: max connections %d is not positive", c.MaxConnections)
	case c.IdleTimeout <= 0:
		return fmt.Errorf("kafka: idle timeout %s is not positive", c.IdleTimeout)
	case c.HandshakeTimeout < 0:
		return fmt.Errorf("kafka: tls handshake timeout %s is negative", c.HandshakeTimeout)
	}
	return validateSASL(c.SASLMechanisms, c.Credentials)
}

// Server serves the Kafka wire protocol. Create it with New, run it with
// Start or Serve, stop it with Shutdown. A Server is not restartable.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	metrics *metrics
	budget  *semaphore.Weighted // bounds in-flight request bytes; nil when unbounded

	// handlers and apiKeys are written before the first Serve and only
	// read afterwards (see handle and freeze).
	handlers map[int16]handler
	apiKeys  []kmsg.ApiVersionsResponseApiKey // what ApiVersions advertises, sorted by key

	// ctx is the parent of every connection's context. It is cancelled
	// when Shutdown stops waiting for in-flight requests.
	ctx    context.Context
	cancel context.CancelFunc

	// wg counts accept loops and connection goroutines. Add is only
	// called with mu held and closing false, so no Add races Shutdown's
	// Wait.
	wg sync.WaitGroup

	quit chan struct{} // closed when Shutdown is first called

	mu        sync.Mutex     // guards the fields below and Conn.busy
	frozen    bool           // handlers may no longer be registered
	closing   bool           // Shutdown has been called; quit is closed
	listeners []net.Listener // open listeners, in the order Serve got them
	conns     map[*Conn]struct{}
}

// New returns a Server for cfg with its protocol handlers registered. It
// does not listen yet.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		handlers: make(map[int16]handler),
		conns:    make(map[*Conn]struct{}),
		quit:     make(chan struct{}),
	}
	if cfg.MaxInFlightBytes > 0 {
		s.budget = semaphore.NewWeighted(cfg.MaxInFlightBytes)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.ctx, s.cancel = context.WithCancel(context.Background())

	s.registerHandlers()
	return s, nil
}

// Start listens on Config.Addr and serves it in the background as a
// PLAINTEXT listener named PLAINTEXT until Shutdown. It returns once the
// listener is open; Addr then reports it.
func (s *Server) Start() error {
	_, err := s.StartListener(s.cfg.Addr, s.plaintextListener())
	return err
}

// StartListener listens on addr (host:port) and serves l there in the
// background until Shutdown. It returns the bound address once the
// listener is open. A listener that fails later is logged at error level.
func (s *Server) StartListener(addr string, l Listener) (net.Addr, error) {
	bl, err := s.bind(l)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("kafka: listener %s: cannot listen: %w", l.Name, err)
	}
	bl.setBound(ln.Addr())
	if err := s.track(ln); err != nil {
		ln.Close()
		return nil, err
	}
	go func() {
		defer s.wg.Done()
		if err := s.acceptLoop(ln, bl); err != nil && !errors.Is(err, ErrServerClosed) {
			s.log.Error().Err(err).Str("listener", l.Name).Str("addr", ln.Addr().String()).Msg("listener failed")
		}
	}()
	return ln.Addr(), nil
}

// Serve accepts connections on ln as a PLAINTEXT listener named
// PLAINTEXT, advertised at Config.Advertised, and serves each in its own
// goroutine until Shutdown or a permanent accept error. It closes ln
// before returning, and returns ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return s.ServeListener(ln, s.plaintextListener())
}

// ServeListener is Serve for listener l: connections on ln are secured
// as l.Protocol says, and Metadata tells their clients l's addresses. A
// TLS handshake runs on the connection's goroutine, bounded by
// Config.HandshakeTimeout. It returns an error at once if l cannot be
// served (no TLS configuration for SSL, no SASL mechanism for SASL).
func (s *Server) ServeListener(ln net.Listener, l Listener) error {
	bl, err := s.bind(l)
	if err != nil {
		ln.Close()
		return err
	}
	bl.setBound(ln.Addr())
	if err := s.track(ln); err != nil {
		ln.Close()
		return err
	}
	defer s.wg.Done()
	return s.acceptLoop(ln, bl)
}

// plaintextListener is the listener Start and Serve serve.
func (s *Server) plaintextListener() Listener {
	return Listener{Name: "PLAINTEXT", Protocol: Plaintext, Advertised: s.cfg.Advertised}
}

// bind checks that l can be served by s.
func (s *Server) bind(l Listener) (*boundListener, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	if l.Protocol.SASL() && len(s.cfg.SASLMechanisms) == 0 {
		return nil, fmt.Errorf("kafka: listener %s: %s needs SASL mechanisms in the config", l.Name, l.Protocol)
	}
	return &boundListener{Listener: l}, nil
}

// boundListener is a Listener being served, with the address Metadata
// gives for this broker on it.
type boundListener struct {
	Listener
	host string // written by setBound before the accept loop starts
	port int32
}

func (bl *boundListener) setBound(addr net.Addr) {
	a := bl.Advertised
	if a == "" {
		a = addr.String()
	}
	bl.host, bl.port = splitHostPort(a)
}

// track registers ln so that Shutdown closes it and freezes the handler
// registry. On success the caller owns one wg count for its accept loop.
func (s *Server) track(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return ErrServerClosed
	}
	if !s.frozen {
		s.freeze()
	}
	s.listeners = append(s.listeners, ln)
	s.wg.Add(1)
	return nil
}

// Addr returns the address of the oldest listener still open, or nil if
// none is.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) == 0 {
		return nil
	}
	return s.listeners[0].Addr()
}

func (s *Server) acceptLoop(ln net.Listener, bl *boundListener) error {
	defer func() {
		s.mu.Lock()
		s.listeners = slices.DeleteFunc(s.listeners, func(l net.Listener) bool { return l == ln })
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors or a transient failure:
				// back off as net/http does instead of spinning.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn().Err(err).Dur("retry_in", backoff).Msg("accept failed")
				select {
				case <-time.After(backoff):
				case <-s.quit:
					return ErrServerClosed
				}
				continue
			}
			return fmt.Errorf("kafka: accept: %w", err)
		}
		backoff = 0
		s.admit(nc, bl)
	}
}

// admit starts serving nc, or closes it when the server is full or
// shutting down.
func (s *Server) admit(nc net.Conn, bl *boundListener) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if len(s.conns) >= s.cfg.MaxConnections {
		s.mu.Unlock()
		s.metrics.connectionsRejected.Inc()
		s.log.Warn().Str("client", nc.RemoteAddr().String()).Int("max_connections", s.cfg.MaxConnections).Msg("connection limit reached, closing new connection")
		nc.Close()
		return
	}
	c := newConn(s, nc, bl)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()

	s.metrics.connections.Inc()
	go c.serve()
}

// forget removes c from the open connections; called by c's goroutine as it
// exits.
func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.metrics.connections.Dec()
}

// Shutdown stops accepting connections, closes idle ones, waits for
// requests in flight to be answered and then closes their connections.
// If ctx ends first, it cancels the handlers' contexts, closes every
// connection, waits for the connection goroutines to exit and returns
// ctx.Err(). Shutdown returns once every goroutine the server started has
// exited; calling it again waits the same way.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.quit)
	}
	for _, ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		if !c.busy {
			c.close()
		}
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
	}

	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}
