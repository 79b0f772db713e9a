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

	// RequireAuthentication lets only ApiVersions, SaslHandshake and
	// SaslAuthenticate through on a connection until a handler marks it
	// authenticated with Conn.SetAuthenticated; any other request closes
	// the connection, as Kafka does during the SASL exchange. No SASL
	// mechanism is served yet, so turning it on today leaves clients
	// nothing but ApiVersions.
	RequireAuthentication bool

	// Authorizer decides, with ACLs, whether a connection's principal
	// may perform each request (see authz.go for the rules). nil:
	// authorization off, every request allowed.
	Authorizer *acl.Authorizer

	// ACLs returns the cluster's ACL bindings as of now; it is called on
	// every check, so it must be cheap and safe for concurrent use. nil:
	// no bindings (only super users pass an Authorizer).
	ACLs func() []acl.Binding

	// Principal is how a listener without authentication names its
	// clients: called once per connection as it opens, its answer (for
	// example "User:CN=edge-1,O=acme") is the connection's principal
	// until authentication replaces it. nil: User:ANONYMOUS. It runs on
	// the accept loop: it must return promptly.
	Principal func(net.Conn) string

	// Advertised is the host:port Metadata gives clients for this broker
	// (Kafka's advertised.listeners). Empty: the listener's address.
	Advertised string

	// Broker holds the topics and partitions the data APIs serve. Nil
	// leaves only ApiVersions registered.
	Broker *broker.Broker

	// ControllerID, if set, names the cluster's controller for Metadata
	// (false: none elected right now). Nil: this broker.
	ControllerID func() (int32, bool)

	// Groups finds the consumer group coordinators; nil leaves the group
	// APIs unregistered.
	Groups Groups

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
	}
	return nil
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

// Start listens on Config.Addr and serves it in the background until
// Shutdown. It returns once the listener is open; Addr then reports it.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("kafka: cannot listen: %w", err)
	}
	if err := s.track(ln); err != nil {
		ln.Close()
		return err
	}
	go func() {
		defer s.wg.Done()
		if err := s.acceptLoop(ln); err != nil && !errors.Is(err, ErrServerClosed) {
			s.log.Error().Err(err).Str("addr", ln.Addr().String()).Msg("listener failed")
		}
	}()
	return nil
}

// Serve accepts connections on ln and serves each in its own goroutine
// until Shutdown or a permanent accept error. It closes ln before
// returning, and returns ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.track(ln); err != nil {
		ln.Close()
		return err
	}
	defer s.wg.Done()
	return s.acceptLoop(ln)
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

func (s *Server) acceptLoop(ln net.Listener) error {
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
		s.admit(nc)
	}
}

// admit starts serving nc, or closes it when the server is full or
// shutting down.
func (s *Server) admit(nc net.Conn) {
	var principal string
	if s.cfg.Principal != nil {
		principal = s.cfg.Principal(nc)
	}
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
	c := newConn(s, nc)
	c.principal = principal
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
