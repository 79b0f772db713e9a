package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/bridge/downlink"
	"github.com/fluxo-io/fluxo/bridge/forward"
	"github.com/fluxo-io/fluxo/bridge/registry"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/bridge/uplink"
	"github.com/fluxo-io/fluxo/internal/console"
	"github.com/fluxo-io/fluxo/internal/opshttp"
)

// NodeConfig configures a whole edge node: the MQTT front door, the
// forwarder under it (spool, uplink to the core, downlink of commands),
// and HTTP.
type NodeConfig struct {
	Edge     Config
	SpoolDir string
	Spool    spool.Config
	// Uplink: Brokers, batching, cap. StateDir is the spool dir; an
	// empty ClientID is fluxo-edge-<edge id>.
	Uplink uplink.Config
	// Downlink consumes commands for devices when set; empty Brokers
	// take the uplink's, and so do TLS and SASL when it has neither; an
	// empty Group is fluxo-edge-<edge id>-downlink.
	Downlink *downlink.Config
	// Devices configures the device registry (bridge/registry): fed by
	// the MQTT server, consulted by the downlink, served at /api/devices.
	// An empty Path is SpoolDir/devices.db. Nil: no registry.
	Devices *registry.Config
	// CoreTimeout makes /readyz fail while a lane with records to send
	// has not reached the core for longer (see
	// forward.Config.CoreTimeout); zero: never for that reason.
	CoreTimeout time.Duration
	// HTTPAddr serves /healthz, /readyz, /metrics, the console, and
	// /api/devices with POST /api/devices/{id}/commands (see
	// CommandRequest); empty: off.
	HTTPAddr string
	Logger   zerolog.Logger
}

// DefaultCoreTimeout is how long a lane may hold records without reaching
// the core before /readyz fails.
const DefaultCoreTimeout = 2 * time.Minute

// DefaultNodeConfig returns an edge on 127.0.0.1:1883 forwarding to a core
// on 127.0.0.1:9092, with HTTP on 127.0.0.1:8081. The uplink's client id
// and the downlink's brokers and group are left empty: NewNode derives
// them from the edge id and the uplink.
func DefaultNodeConfig() NodeConfig {
	uc := uplink.DefaultConfig()
	uc.ClientID = ""
	dl := downlink.DefaultConfig()
	dl.Brokers, dl.Group = nil, ""
	dc := registry.DefaultConfig()
	return NodeConfig{
		Devices:     &dc,
		CoreTimeout: DefaultCoreTimeout,
		Edge:        DefaultConfig(),
		SpoolDir:    "spool",
		Spool:       spool.DefaultConfig(),
		Uplink:      uc,
		Downlink:    &dl,
		HTTPAddr:    "127.0.0.1:8081",
		Logger:      zerolog.Nop(),
	}
}

// Node is a running edge node.
type Node struct {
	cfg  NodeConfig
	log  zerolog.Logger
	reg  *prometheus.Registry
	fwd  *forward.Forwarder
	edge *Edge
	devs *registry.Registry // nil without one

	http *opshttp.Server

	mu      sync.Mutex // guards started, stopped
	started bool
	stopped bool
}

// NewNode opens the spool (recovering it) and builds the parts; Start
// runs them.
func NewNode(cfg NodeConfig) (*Node, error) {
	n := &Node{cfg: cfg, log: cfg.Logger, reg: prometheus.NewRegistry()}
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ec := cfg.Edge.withDefaults()
	if cfg.Devices != nil {
		dc := *cfg.Devices
		if dc.Path == "" {
			dc.Path = filepath.Join(cfg.SpoolDir, "devices.db")
		}
		dc.Logger = cfg.Logger.With().Str("part", "registry").Logger()
		devs, err := registry.Open(dc)
		if err != nil {
			return nil, fmt.Errorf("edge: %w", err)
		}
		n.devs = devs
		ec.Registry = devs
	}
	fwd, err := forward.New(forward.Config{
		Name:        "fluxo-edge-" + ec.EdgeID,
		SpoolDir:    cfg.SpoolDir,
		Spool:       cfg.Spool,
		Uplink:      cfg.Uplink,
		Downlink:    cfg.Downlink,
		Registry:    n.devs,
		CoreTimeout: cfg.CoreTimeout,
		Logger:      cfg.Logger,
	})
	if err != nil {
		n.closeDevices()
		return nil, err
	}
	n.fwd = fwd
	ec.Logger = cfg.Logger.With().Str("part", "mqtt").Logger()
	ec.Registerer = n.reg
	if n.edge, err = New(ec, fwd); err != nil {
		fwd.Stop(context.Background())
		n.closeDevices()
		return nil, err
	}
	n.reg.MustRegister(fwd.Collector())
	return n, nil
}

// Start opens the MQTT and HTTP listeners and starts forwarding.
func (n *Node) Start() error {
	if err := n.edge.Start(); err != nil {
		return err
	}
	if err := n.fwd.Start(n.edge); err != nil {
		n.Shutdown(context.Background())
		return fmt.Errorf("edge: %w", err)
	}
	if n.cfg.HTTPAddr != "" {
		routes := n.consoleRoutes()
		if n.devs != nil {
			h := n.devs.Handler()
			routes = console.Merge(routes, map[string]http.Handler{"/api/devices": h, "/api/devices/": h,
				"POST /api/devices/{id}/commands": http.HandlerFunc(n.handleCommand)})
		}
		hs, err := opshttp.StartWith(n.cfg.HTTPAddr, n.reg, n.readyz, routes)
		if err != nil {
			n.Shutdown(context.Background())
			return fmt.Errorf("edge: %w", err)
		}
		n.http = hs
	}
	n.mu.Lock()
	n.started = true
	n.mu.Unlock()
	fc := n.fwd.Config()
	n.log.Info().Str("mqtt", n.edge.Addr()).Str("http", n.HTTPAddr()).Strs("core", fc.Uplink.Brokers).
		Str("spool", fc.SpoolDir).Str("sync", fc.Spool.Sync.String()).Msg("edge node started")
	return nil
}

// readyz: ready once the spool is open and MQTT is served, and while no
// uplink lane is parked on a permanent error (see forward.Forwarder.Ready).
func (n *Node) readyz(w http.ResponseWriter) bool {
	n.mu.Lock()
	down := ""
	if !n.started || n.stopped {
		down = "mqtt not served"
	} else if err := n.edge.ListenerError(); err != nil {
		down = err.Error()
	}
	n.mu.Unlock()
	return n.fwd.Readyz(w, down)
}

// MQTTAddr is the bound MQTT TCP address.
func (n *Node) MQTTAddr() string { return n.edge.Addr() }

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

// Edge is the node's MQTT server.
func (n *Node) Edge() *Edge { return n.edge }

// Forwarder is the node's spool, uplink and downlink.
func (n *Node) Forwarder() *forward.Forwarder { return n.fwd }

// Spool is the node's spool.
func (n *Node) Spool() *spool.Spool { return n.fwd.Spool() }

// Uplink is the node's uplink.
func (n *Node) Uplink() *uplink.Uplink { return n.fwd.Uplink() }

// Shutdown stops accepting MQTT, then stops forwarding (what is not yet
// acknowledged stays spooled for the next start; see
// forward.Forwarder.Stop, bounded by ctx), which logs the accounting of
// every accepted message and closes the spool.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil
	}
	n.stopped = true
	n.mu.Unlock()
	var errs []error
	errs = append(errs, n.edge.Close())
	errs = append(errs, n.fwd.Stop(ctx))
	if n.http != nil {
		n.http.Shutdown(ctx)
	}
	errs = append(errs, n.closeDevices())
	return errors.Join(errs...)
}

// closeDevices writes and closes the device registry.
func (n *Node) closeDevices() error {
	if n.devs == nil {
		return nil
	}
	return n.devs.Close()
}

// Devices is the node's device registry; nil without one.
func (n *Node) Devices() *registry.Registry { return n.devs }
