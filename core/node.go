// Package core assembles a core node: the broker (topics and partitions on
// the segment log), the Kafka protocol server in front of it, and the HTTP
// endpoints for health and metrics. cmd/fluxo runs it as `fluxo core`;
// tests and the demo run it in process.
package core

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/core/acl"
	"github.com/fluxo-io/fluxo/core/broker"
	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/core/group"
	"github.com/fluxo-io/fluxo/core/kafka"
	"github.com/fluxo-io/fluxo/core/txn"
	"github.com/fluxo-io/fluxo/internal/console"
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
	// Listeners are the Kafka listeners, each with its name and security
	// protocol (Kafka's listeners); KafkaAddr and KafkaAdvertise are the
	// shorthand for one PLAINTEXT listener, used when this is empty.
	Listeners []kafka.ListenerAddr
	// AdvertisedListeners are the host:port Metadata gives clients of
	// each listener, by name (Kafka's advertised.listeners); a listener
	// missing here is advertised as KafkaAdvertise is by default.
	AdvertisedListeners map[string]string
	// InterBrokerListener names the listener followers fetch from; its
	// address is the one the cluster registers for this broker. Empty:
	// the first PLAINTEXT or SSL listener. It is PLAINTEXT or SSL:
	// brokers prove who they are to each other with their certificates
	// (Broker.ReplicaTLS).
	InterBrokerListener string
	// KafkaTLS is the server TLS configuration of the SSL and SASL_SSL
	// listeners (kafka.ServerTLS builds it, reloadable).
	KafkaTLS *tls.Config
	// HTTPAddr serves /healthz, /readyz and /metrics; empty disables it.
	HTTPAddr string
	// ClusterID is reported by Metadata.
	ClusterID string
	// NodeID is this broker's id, unique in the cluster.
	NodeID int32
	// Cluster configures membership (Serf) and the metadata (Raft): the
	// addresses, the peers to join and the bootstrap size. New fills in
	// the fields it owns (node id, data dir, Kafka address, logger,
	// metrics). Empty addresses are replaced by loopback ports picked at
	// random (`fluxo core` defaults to 7946 and 7947).
	Cluster cluster.Config
	// OffsetsPartitions is the partition count of the __consumer_offsets
	// topic, created on the first FindCoordinator: groups are spread over
	// its partitions' leaders (offsets.topic.num.partitions).
	OffsetsPartitions int32
	// TxnPartitions is the partition count of the __transaction_state
	// topic, created on the first FindCoordinator for a transactional id:
	// transactional ids are spread over its partitions' leaders
	// (transaction.state.log.num.partitions).
	TxnPartitions int32
	// ReadyTimeout bounds how long Start waits for the metadata (a Raft
	// leader and this node's copy caught up) before it returns; the node
	// serves Kafka only once caught up, in the background if need be.
	ReadyTimeout time.Duration
	// Broker and Kafka carry the parts' own settings; New fills in the
	// fields it owns (data dir, logger, addresses).
	Broker broker.Config
	Kafka  kafka.Config
	Group  group.Config
	Txn    txn.Config
	// Logger receives every part's logs. Zero value: no logs.
	Logger zerolog.Logger
}

// DefaultConfig returns a node on 127.0.0.1 with Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:           "data",
		KafkaAddr:         "127.0.0.1:9092",
		HTTPAddr:          "127.0.0.1:8080",
		ClusterID:         "fluxo",
		NodeID:            1,
		Cluster:           cluster.Config{Timers: cluster.DefaultTimers()},
		ReadyTimeout:      30 * time.Second,
		OffsetsPartitions: 12,
		TxnPartitions:     12,
		Broker:            broker.DefaultConfig(),
		Kafka:             kafka.DefaultConfig(),
		Group:             group.DefaultConfig(),
		Txn:               txn.DefaultConfig(),
		Logger:            zerolog.Nop(),
	}
}

// Node is a running core node.
type Node struct {
	cfg       Config
	log       zerolog.Logger
	reg       *prometheus.Registry
	broker    *broker.Broker
	cluster   *cluster.Cluster
	kafka     *kafka.Server
	kafkaLns  []kafkaListener // in the configured order
	failed    chan error      // a listener's fatal error, once
	groups    *groupRouter
	txns      *txnRouter
	http      *opshttp.Server
	httpLn    net.Listener // http's listener
	ready     bool         // guarded by mu: caught up, Kafka served
	listenErr error        // guarded by mu: a Kafka or HTTP listener died
	mu        sync.Mutex
	shutdown  bool               // guarded by mu
	stopStart context.CancelFunc // ends Start's wait to catch up
	wg        sync.WaitGroup     // the catch-up and HTTP watch goroutines
}

// New opens the node's data (recovering every partition log), joins the
// cluster and builds its servers; Start serves them.
func New(cfg Config) (*Node, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The Kafka listeners come first: their addresses go into the
	// cluster membership, and port 0 is only known once bound.
	lns, inter, err := listen(cfg)
	if err != nil {
		return nil, err
	}
	advertised := lns[inter].l.Advertised
	unclean, err := startMarker(cfg.DataDir)
	if err != nil {
		listenerSet(lns).Close()
		return nil, err
	}
	cc := cfg.Cluster
	cc.NodeID = cfg.NodeID
	cc.DataDir = filepath.Join(cfg.DataDir, "cluster")
	cc.Unclean = unclean
	if unclean {
		cfg.Logger.Warn().Msg("starting after a crash: this broker's logs may have lost an unsynced tail")
	}
	cc.KafkaAddr = advertised
	cc.KafkaListeners = endpoints(cfg, lns)
	cc.Logger = cfg.Logger
	cc.Registerer = reg
	if cc.SerfAddr == "" {
		cc.SerfAddr = "127.0.0.1:0"
	}
	if cc.RaftAddr == "" {
		cc.RaftAddr = "127.0.0.1:0"
	}
	if cc.Timers == (cluster.Timers{}) {
		cc.Timers = cluster.DefaultTimers()
	}
	cl, err := cluster.Open(cc)
	if err != nil {
		listenerSet(lns).Close()
		return nil, err
	}
	gc := cfg.Group
	gc.Logger = cfg.Logger
	groups := newGroupRouter(gc, cfg.OffsetsPartitions, cfg.Logger)
	tc := cfg.Txn
	if tc.MaxTimeout == 0 { // a Config built by hand, before transactions
		tc = txn.DefaultConfig()
	}
	tc.Logger = cfg.Logger
	if err := tc.Validate(); err != nil {
		groups.close()
		cl.Close()
		listenerSet(lns).Close()
		return nil, err
	}
	tparts := cfg.TxnPartitions
	if tparts <= 0 {
		tparts = DefaultConfig().TxnPartitions
	}
	txns := newTxnRouter(tc, tparts, groups, cfg.Logger)
	bc := cfg.Broker
	bc.DataDir = cfg.DataDir
	bc.Logger = cfg.Logger
	bc.NodeID = cfg.NodeID
	bc.OnRole = func(p *broker.Partition, leader bool, epoch int32) {
		groups.onRole(p, leader, epoch)
		txns.onRole(p, leader, epoch)
	}
	bc.Quorum = cl
	b, err := broker.Open(bc, cl)
	if err != nil {
		txns.close()
		groups.close()
		cl.Close()
		listenerSet(lns).Close()
		return nil, err
	}
	undo := func() {
		txns.close()
		groups.close()
		b.Close()
		cl.Close()
		listenerSet(lns).Close()
	}
	groups.b = b
	txns.b = b
	kc := cfg.Kafka
	kc.Addr = cfg.KafkaAddr
	kc.Advertised = advertised
	kc.NodeID = cfg.NodeID
	kc.ClusterID = cfg.ClusterID
	kc.Broker = b
	kc.ControllerID = cl.ControllerID
	kc.Groups = groups
	kc.Txns = txns
	kc.UnregisterBroker = func(ctx context.Context, id int32) error { return unregisterBroker(ctx, cl, id) }
	kc.Metadata = cl
	kc.Credentials = scramStore{cl}
	kc.BrokerEndpoint = brokerEndpoint(cl)
	kc.ACLs = func() []acl.Binding { return cl.State().ACLs }
	kc.Logger = cfg.Logger
	kc.Registerer = reg
	ks, err := kafka.New(kc)
	if err != nil {
		undo()
		return nil, err
	}
	reg.MustRegister(newBrokerCollector(b, groups.Local))
	return &Node{cfg: cfg, log: cfg.Logger, reg: reg, broker: b, cluster: cl, kafka: ks, kafkaLns: lns, failed: make(chan error, 1), groups: groups, txns: txns}, nil
}

// advertise returns the Kafka address clients are given: the configured
// one, else the listener's, with this host's name in place of an
// unspecified IP.
func advertise(configured, bound string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return "", fmt.Errorf("core: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("core: %w", err)
		}
	}
	return net.JoinHostPort(host, port), nil
}

// Start serves the HTTP endpoints, then waits until this node has caught
// up with the cluster metadata and serves Kafka. A node never serves Kafka
// before that, as a Kafka broker does not: until then its copy of the
// metadata may still name it leader of partitions it has lost, and it
// would answer produce and fetch as a stale leader. If it has not caught
// up within ReadyTimeout, Start returns nil all the same and the node goes
// on waiting in the background (until Shutdown), its /readyz not ready,
// clients waiting in the listen backlog.
func (n *Node) Start() error {
	// HTTP first: /healthz and /metrics answer while the node waits for
	// the cluster, and /readyz says it is not ready.
	if n.cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("core: cannot listen for HTTP: %w", err)
		}
		hs := opshttp.Serve(ln, n.reg, n.readyz, console.Merge(n.clusterRoutes(), n.consoleRoutes()))
		n.http, n.httpLn = hs, ln
		n.wg.Add(1)
		go n.watchHTTP(hs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.stopStart = cancel
	served := make(chan struct{})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(served)
		if n.catchUp(ctx) {
			n.serve()
		}
	}()
	t := time.NewTimer(n.cfg.ReadyTimeout)
	defer t.Stop()
	select {
	case <-served:
	case <-t.C:
		n.log.Warn().Dur("waited", n.cfg.ReadyTimeout).Msg("not caught up with the cluster metadata yet: Kafka is served once it has")
	}
	return nil
}

// catchUp waits until this node's copy of the metadata has caught up
// with the Raft log and its broker has put its replicas in the roles of
// that state: a restarted broker's replayed metadata may still name it
// leader at an old epoch. It reports false when ctx ends first.
func (n *Node) catchUp(ctx context.Context) bool {
	if err := n.cluster.WaitReady(ctx); err != nil {
		return false
	}
	if err := n.broker.WaitApplied(ctx, n.cluster.State().Index); err != nil {
		return false
	}
	if err := broker.ImportLegacyMetadata(ctx, n.cfg.DataDir, n.cluster); err != nil {
		n.log.Error().Err(err).Msg("cannot import the single-node metadata")
	}
	return true
}

// serve starts serving every Kafka listener, unless shutdown has begun.
func (n *Node) serve() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.shutdown {
		return
	}
	for _, kl := range n.kafkaLns {
		go n.serveKafka(kl)
	}
	n.ready = true
	n.log.Info().Str("kafka", n.KafkaAddr()).Str("http", n.HTTPAddr()).Str("data_dir", n.cfg.DataDir).Msg("core node started")
}

// readyz: ready once started, with a controller elected and this broker
// registered and not fenced, until shutdown begins.
func (n *Node) readyz(w http.ResponseWriter) bool {
	n.mu.Lock()
	ready := n.ready && !n.shutdown
	lerr := n.listenErr
	n.mu.Unlock()
	if lerr != nil {
		fmt.Fprintln(w, "not ready:", lerr)
		return false
	}
	if !ready {
		fmt.Fprintln(w, "not ready")
		return false
	}
	if _, ok := n.cluster.ControllerID(); !ok {
		fmt.Fprintln(w, "not ready: no controller")
		return false
	}
	if b, ok := n.cluster.State().Brokers[n.cfg.NodeID]; !ok || b.Fenced {
		fmt.Fprintln(w, "not ready: not registered with the controller")
		return false
	}
	fmt.Fprintln(w, "ready")
	return true
}

// KafkaAddr is the address the Kafka listener is bound to.
func (n *Node) KafkaAddr() string {
	return n.kafkaLns[0].ln.Addr().String()
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
	if n.stopStart != nil {
		n.stopStart()
	}
	// Groups first: a JoinGroup parked for a rebalance would otherwise keep
	// the Kafka server's Shutdown waiting; it is answered NOT_COORDINATOR
	// and the client finds the coordinator again after the restart. The
	// transaction coordinators before them: their marker writers end
	// transactional offset commits in the group coordinators.
	n.txns.close()
	n.groups.close()
	// Leave first, while this broker still serves: the controller moves
	// leadership off it, clients follow, and its peers do not wait for a
	// failure to be detected.
	// It gets half the time left, so the Kafka server has the rest.
	lctx := ctx
	if dl, ok := ctx.Deadline(); ok {
		var lcancel context.CancelFunc
		lctx, lcancel = context.WithTimeout(ctx, time.Until(dl)/2)
		defer lcancel()
	}
	if err := n.cluster.Leave(lctx); err != nil {
		n.log.Warn().Err(err).Msg("cannot leave the cluster gracefully")
	}
	kerr := n.kafka.Shutdown(ctx)
	// Listeners that were never served (the node had not caught up) are
	// not the Kafka server's to close.
	listenerSet(n.kafkaLns).Close()
	if n.http != nil {
		n.http.Shutdown(ctx)
	}
	n.wg.Wait()
	berr := n.broker.Close()
	cerr := n.cluster.Close()
	if berr == nil {
		berr = cerr
	}
	if kerr != nil && !errors.Is(kerr, kafka.ErrServerClosed) {
		return kerr
	}
	if berr == nil {
		// Every log is flushed and closed: the next start is clean.
		berr = writeMarker(n.cfg.DataDir)
	}
	n.log.Info().Msg("core node stopped")
	return berr
}

// cleanMarker is the file a clean shutdown leaves in the data directory,
// after every log is flushed; a start without it (and with data) follows
// a crash.
const cleanMarker = "clean-shutdown"

// startMarker reports whether this start follows a crash, and removes the
// marker so that the next start finds none unless this run ends cleanly.
func startMarker(dataDir string) (unclean bool, err error) {
	path := filepath.Join(dataDir, cleanMarker)
	if _, err := os.Stat(path); err == nil {
		if err := os.Remove(path); err != nil {
			return false, fmt.Errorf("core: %w", err)
		}
		return false, nil
	}
	// A fresh data directory has nothing to lose.
	if _, err := os.Stat(filepath.Join(dataDir, "cluster")); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return true, nil
}

func writeMarker(dataDir string) error {
	f, err := os.Create(filepath.Join(dataDir, cleanMarker))
	if err == nil {
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(dataDir); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("core: cannot mark the shutdown clean: %w", err)
	}
	return nil
}

// crash stops the node the way a killed process stops: no leave, no
// flush beyond what the logs already did; tests use it in process.
func (n *Node) crash() {
	n.mu.Lock()
	n.shutdown = true
	n.mu.Unlock()
	if n.stopStart != nil {
		n.stopStart()
	}
	n.cluster.Close()
	n.txns.close()
	n.groups.close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.kafka.Shutdown(ctx)
	listenerSet(n.kafkaLns).Close()
	if n.http != nil {
		n.http.Shutdown(ctx)
	}
	n.wg.Wait()
	n.broker.Close()
}
