package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/bridge/forward"
	"github.com/fluxo-io/fluxo/bridge/source"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/bridge/uplink"
	"github.com/fluxo-io/fluxo/internal/opshttp"
)

// DefaultHTTPAddr is next to the core's 8080 and the edge's 8081.
const DefaultHTTPAddr = "127.0.0.1:8082"

// Config configures a bridge node.
type Config struct {
	// Source is the broker to subscribe to, the filters and the routes.
	Source source.Config
	// SpoolDir is the spool's directory; it also keeps the uplink's
	// producer state.
	SpoolDir string
	Spool    spool.Config
	// Uplink: brokers, batching, cap, TLS and SASL. An empty ClientID is
	// fluxo-bridge-<bridge id>.
	Uplink uplink.Config
	// HTTPAddr serves /healthz, /readyz and /metrics; empty: off.
	HTTPAddr string
	// Logger receives the node's logs; the zero value discards them.
	Logger zerolog.Logger
}

// DefaultConfig returns a bridge of every topic of a broker on
// 127.0.0.1:1883 to a core on 127.0.0.1:9092, spooling in ./spool, with
// HTTP on DefaultHTTPAddr.
func DefaultConfig() Config {
	uc := uplink.DefaultConfig()
	uc.ClientID = ""
	return Config{
		Source:   source.DefaultConfig(),
		SpoolDir: "spool",
		Spool:    spool.DefaultConfig(),
		Uplink:   uc,
		HTTPAddr: DefaultHTTPAddr,
	}
}

// Node is a bridge node: a Subscriber feeding a Forwarder.
type Node struct {
	log  zerolog.Logger
	addr string // configured HTTP address
	sub  *source.Subscriber
	fwd  *forward.Forwarder
	reg  *prometheus.Registry
	http *opshttp.Server

	cancel context.CancelFunc
	srcWG  sync.WaitGroup // the subscriber

	mu      sync.Mutex // guards started, stopped
	started bool
	stopped bool
}

// appendFunc is a source.Sink.
type appendFunc func(msgs ...spool.Message) error

func (f appendFunc) Append(msgs ...spool.Message) error { return f(msgs...) }

// NewNode checks the source's configuration, then opens the spool
// (recovering it) and builds the uplink; Start runs them. A source
// configuration that cannot work fails before the spool directory is
// made.
func NewNode(cfg Config) (*Node, error) {
	n := &Node{log: cfg.Logger, addr: cfg.HTTPAddr, reg: prometheus.NewRegistry()}
	sc := cfg.Source
	sc.Logger = cfg.Logger.With().Str("part", "source").Logger()
	// The subscriber appends only once running, after n.fwd is set.
	sub, err := source.New(sc, appendFunc(func(msgs ...spool.Message) error { return n.fwd.Append(msgs...) }))
	if err != nil {
		return nil, err
	}
	n.sub = sub
	n.fwd, err = forward.New(forward.Config{
		Name:     "fluxo-bridge-" + sub.Config().BridgeID,
		SpoolDir: cfg.SpoolDir,
		Spool:    cfg.Spool,
		Uplink:   cfg.Uplink,
		Logger:   cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		n.fwd.Collector(), sub.Collector())
	return n, nil
}

// Start starts forwarding, serves HTTP and subscribes to the source.
func (n *Node) Start() error {
	if err := n.fwd.Start(nil); err != nil {
		n.fwd.Stop(context.Background())
		return fmt.Errorf("bridge: %w", err)
	}
	if n.addr != "" {
		hs, err := opshttp.Start(n.addr, n.reg, n.readyz)
		if err != nil {
			n.Shutdown(context.Background())
			return fmt.Errorf("bridge: %w", err)
		}
		n.http = hs
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.srcWG.Add(1)
	go func() {
		defer n.srcWG.Done()
		n.sub.Run(ctx)
	}()
	n.mu.Lock()
	n.started = true
	n.mu.Unlock()
	sc, fc := n.sub.Config(), n.fwd.Config()
	n.log.Info().Str("source", sc.Source).Strs("filters", n.sub.Subscriptions()).Str("client", sc.ClientID).Str("http", n.HTTPAddr()).
		Strs("core", fc.Uplink.Brokers).Str("spool", fc.SpoolDir).Str("sync", fc.Spool.Sync.String()).Msg("bridge started")
	return nil
}

// readyz: ready while subscribed to the source and no uplink lane is
// parked on a permanent error (see forward.Forwarder.Ready). A core that
// is merely away is reported but does not make the bridge unready: it
// keeps spooling.
func (n *Node) readyz(w http.ResponseWriter) bool {
	n.mu.Lock()
	stopped := n.stopped
	n.mu.Unlock()
	src := n.sub.Config().Source
	if stopped || !n.sub.Connected() {
		return n.fwd.Readyz(w, "not subscribed to "+src)
	}
	return n.fwd.Readyz(w, "", "source "+src+": up")
}

// Failed delivers the error of the HTTP listener if it dies: the node
// no longer answers probes and must be shut down. Never, without HTTP.
func (n *Node) Failed() <-chan error {
	if n.http == nil {
		return nil
	}
	return n.http.Failed()
}

// HTTPAddr is the bound HTTP address ("" if none).
func (n *Node) HTTPAddr() string {
	if n.http == nil {
		return ""
	}
	return n.http.Addr()
}

// Subscriber is the node's input.
func (n *Node) Subscriber() *source.Subscriber { return n.sub }

// Forwarder is the node's spool and uplink.
func (n *Node) Forwarder() *forward.Forwarder { return n.fwd }

// Shutdown disconnects from the source first (what was spooled is
// acknowledged to the broker before it disconnects), then stops the
// forwarder (what the core has not acknowledged stays spooled for the
// next start), each bounded by ctx, and logs the accounting of the
// source and of the spool.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil
	}
	n.stopped = true
	n.mu.Unlock()
	var errs []error
	if n.cancel != nil {
		n.cancel()
		done := make(chan struct{})
		go func() { n.srcWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, errors.New("bridge: the source did not stop in time"))
		}
	}
	st := n.sub.Stats()
	n.log.Info().Int64("received", st.Received).Int64("redelivered", st.Redelivered).Int64("spooled", st.Spooled).
		Int64("unrouted", st.Unrouted).Int64("failed", st.Failed).Int64("discarded", st.Discarded).
		Int64("reconnects", st.Reconnects).Msg("source accounting")
	errs = append(errs, n.fwd.Stop(ctx))
	if n.http != nil {
		n.http.Shutdown(ctx)
	}
	return errors.Join(errs...)
}
