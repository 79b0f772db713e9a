// Package core assembles a core node: the broker (topics and partitions on
// the segment log), the Kafka protocol server in front of it, and the HTTP
// endpoints for health and metrics. cmd/fluxo runs it as `fluxo core`;
// tests and the demo run it in process.
package core

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/core/broker"
	"github.com/fluxo-io/fluxo/core/group"
	"github.com/fluxo-io/fluxo/core/kafka"
	"github.com/fluxo-io/fluxo/internal/opshttp"
)

// Config configures a node.
type Config struct {
	// DataDir holds the node's topics and metadata.
	DataDir string
	// KafkaAddr is where the Kafka protocol is served (host:port; port 0
	// picks one).
	KafkaAddr string
	// KafkaAdvertise is the address Metadata gives clients; empty: the
	// listen address, or this host's name when listening on all addresses.
	KafkaAdvertise string
	// HTTPAddr serves /healthz, /readyz and /metrics; empty disables it.
	HTTPAddr string
	// ClusterID is reported by Metadata.
	ClusterID string
	// Broker and Kafka carry the parts' own settings; New fills in the
	// fields it owns (data dir, logger, addresses).
	Broker broker.Config
	Kafka  kafka.Config
	Group  group.Config
	// Logger receives every part's logs. Zero value: no logs.
	Logger zerolog.Logger
}

// DefaultConfig returns a node on 127.0.0.1 with Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:   "data",
		KafkaAddr: "127.0.0.1:9092",
		HTTPAddr:  "127.0.0.1:8080",
		ClusterID: "fluxo",
		Broker:    broker.DefaultConfig(),
		Kafka:     kafka.DefaultConfig(),
		Group:     group.DefaultConfig(),
		Logger:    zerolog.Nop(),
	}
}

// Node is a running core node.
type Node struct {
	cfg      Config
	log      zerolog.Logger
	reg      *prometheus.Registry
	broker   *broker.Broker
	kafka    *kafka.Server
	groups   *group.Coordinator
	offsets  *broker.InternalLog
	http     *opshttp.Server
	ready    bool
	mu       sync.Mutex
	shutdown bool
}

// New opens the node's data (recovering every partition log) and builds
// its servers; Start opens the listeners.
func New(cfg Config) (*Node, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bc := cfg.Broker
	bc.DataDir = cfg.DataDir
	bc.Logger = cfg.Logger
	bc.NodeID = cfg.Kafka.NodeID
	b, err := broker.Open(bc)
	if err != nil {
		return nil, err
	}
	olog, err := b.OpenInternalLog("__consumer_offsets-0")
	if err != nil {
		b.Close()
		return nil, err
	}
	gc := cfg.Group
	gc.Logger = cfg.Logger
	groups, err := group.New(gc, groupLog{olog})
	if err != nil {
		olog.Close()
		b.Close()
		return nil, err
	}
	kc := cfg.Kafka
	kc.Addr = cfg.KafkaAddr
	kc.Advertised = cfg.KafkaAdvertise
	kc.ClusterID = cfg.ClusterID
	kc.Broker = b
	kc.Groups = groups
	kc.Logger = cfg.Logger
	kc.Registerer = reg
	ks, err := kafka.New(kc)
	if err != nil {
		groups.Close()
		olog.Close()
		b.Close()
		return nil, err
	}
	reg.MustRegister(newBrokerCollector(b, groups))
	return &Node{cfg: cfg, log: cfg.Logger, reg: reg, broker: b, kafka: ks, groups: groups, offsets: olog}, nil
}

// Start opens the Kafka and HTTP listeners and serves them in the
// background.
func (n *Node) Start() error {
	if err := n.kafka.Start(); err != nil {
		return err
	}
	if n.cfg.HTTPAddr != "" {
		hs, err := opshttp.Start(n.cfg.HTTPAddr, n.reg, n.readyz)
		if err != nil {
			n.kafka.Shutdown(context.Background())
			return fmt.Errorf("core: %w", err)
		}
		n.http = hs
	}
	n.mu.Lock()
	n.ready = true
	n.mu.Unlock()
	n.log.Info().Str("kafka", n.KafkaAddr()).Str("http", n.HTTPAddr()).Str("data_dir", n.cfg.DataDir).Msg("core node started")
	return nil
}

func (n *Node) readyz(w http.ResponseWriter) bool {
	n.mu.Lock()
	ready := n.ready && !n.shutdown
	n.mu.Unlock()
	if !ready {
		fmt.Fprintln(w, "not ready")
		return false
	}
	fmt.Fprintln(w, "ready")
	return true
}

// KafkaAddr is the address the Kafka listener is bound to.
func (n *Node) KafkaAddr() string {
	if a := n.kafka.Addr(); a != nil {
		return a.String()
	}
	return ""
}

// HTTPAddr is the address the HTTP listener is bound to ("" if none).
func (n *Node) HTTPAddr() string {
	if n.http == nil {
		return ""
	}
	return n.http.Addr()
}

// Broker is the node's broker.
func (n *Node) Broker() *broker.Broker { return n.broker }

// Shutdown stops accepting, lets in-flight requests finish (bounded by
// ctx), then flushes and closes every log. A restart serves every record
// that was acknowledged.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	if n.shutdown {
		n.mu.Unlock()
		return nil
	}
	n.shutdown = true
	n.mu.Unlock()
	// Groups first: a JoinGroup parked for a rebalance would otherwise keep
	// the Kafka server's Shutdown waiting; it is answered NOT_COORDINATOR
	// and the client finds the coordinator again after the restart.
	n.groups.Close()
	kerr := n.kafka.Shutdown(ctx)
	if n.http != nil {
		n.http.Shutdown(ctx)
	}
	oerr := n.offsets.Close()
	berr := n.broker.Close()
	if berr == nil {
		berr = oerr
	}
	if kerr != nil && !errors.Is(kerr, kafka.ErrServerClosed) {
		return kerr
	}
	n.log.Info().Msg("core node stopped")
	return berr
}

// groupLog adapts the broker's internal log to the group coordinator's Log.
type groupLog struct{ l *broker.InternalLog }

func (g groupLog) Append(_ context.Context, recs []group.Record) error {
	out := make([]broker.InternalRecord, len(recs))
	for i, r := range recs {
		out[i] = broker.InternalRecord{Key: r.Key, Value: r.Value}
	}
	return g.l.Append(out)
}

func (g groupLog) Replay(fn func(key, value []byte) error) error { return g.l.Replay(fn) }
