package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Config configures a cluster member.
type Config struct {
	// NodeID is this broker's id, unique in the cluster, >= 0. It is the
	// Raft server id (as a decimal string) and the Serf node name's
	// suffix ("fluxo-<id>").
	NodeID int32
	// DataDir holds the Raft state: raft.db (log and stable store) and
	// snapshots/. A restart with the same DataDir rejoins as the same
	// server.
	DataDir string
	// SerfAddr and RaftAddr are the host:port to bind gossip (UDP and TCP)
	// and Raft (TCP, also serving the forwarding RPC) to. Port 0 picks a
	// free port.
	SerfAddr string
	RaftAddr string
	// SerfAdvertise and RaftAdvertise are the addresses other members
	// reach this one at; empty: the bound address (which must then not be
	// an unspecified address such as 0.0.0.0).
	SerfAdvertise string
	RaftAdvertise string
	// KafkaAddr is this broker's advertised Kafka address on the
	// inter-broker listener (followers fetch from it), carried in the
	// Serf tags and registered in the State.
	KafkaAddr string
	// KafkaListeners are the advertised addresses of every Kafka listener
	// by listener name (Kafka's advertised.listeners), so that Metadata
	// gives a client the addresses of the listener it connected on. Empty:
	// KafkaAddr alone, on every listener.
	KafkaListeners map[string]string
	// Join lists Serf addresses of other members. Open joins them in the
	// background, retrying with backoff until one answers or the Cluster
	// is closed. Empty: start alone and wait to be joined.
	Join []string
	// BootstrapExpect: 0 or 1 bootstraps a single-server Raft cluster at
	// once when DataDir holds no Raft state. K > 1 waits until Serf shows
	// K brokers (alive, with fluxo tags) and, if none of them has Raft
	// state, bootstraps with the K lowest ids: every member computes the
	// same configuration (Consul's bootstrap_expect). A node with Raft
	// state never bootstraps; a node that does not bootstrap is added as a
	// voter by the controller once it is alive in Serf.
	BootstrapExpect int
	// SerfKey is the gossip encryption key (16, 24 or 32 bytes, AES); nil
	// gossips in clear. Members with different keys cannot join. Once
	// the keyring has been changed (Keys), DataDir/serf.keyring holds it
	// and takes precedence over SerfKey at the next start.
	SerfKey []byte
	// TLS, if set, requires mutual TLS on the Raft port, for Raft streams
	// and forwarding RPCs alike: a peer must present a certificate signed
	// by TLS.CAs, and this node dials with TLS.Certificate. Nil: plaintext
	// (fit only for loopback or a trusted network: anyone who reaches the
	// port can change the metadata).
	TLS *TLS
	// Unclean tells the controller that this run follows a crash rather
	// than a clean shutdown: the logs may have lost an unsynced tail, so
	// the broker does not lead a partition that a replica with every
	// acknowledged record can lead (KIP-966; see PartitionState.ELR).
	Unclean bool
	// Timers are the failure detection and Raft timings.
	Timers Timers
	// Network, if set, carries the connections and gossip to other
	// members in place of the operating system's network: a fault
	// injection hook for tests. Nil: the operating system's.
	Network Network
	// Registerer receives the metrics (see the package doc); nil: none.
	Registerer prometheus.Registerer
	// Logger receives this package's logs and those of raft, serf and
	// memberlist (component field). Zero value: no logs.
	Logger zerolog.Logger
}

// Timers are the timings of failure detection and Raft. The package doc
// explains how they add up to a failover time.
type Timers struct {
	// RaftHeartbeat: a follower that hears nothing from the leader for
	// between one and two of these starts an election.
	RaftHeartbeat time.Duration
	// RaftElection: a candidate that wins no election within between one
	// and two of these tries again.
	RaftElection time.Duration
	// RaftLeaderLease: a leader that cannot reach a quorum for this long
	// steps down. At most RaftHeartbeat.
	RaftLeaderLease time.Duration
	// RaftCommit: how long the leader waits to batch log entries before
	// replicating when there is nothing else to send.
	RaftCommit time.Duration
	// SerfProbeInterval: each member probes one random member this often.
	SerfProbeInterval time.Duration
	// SerfProbeTimeout: how long a direct probe waits for its ack before
	// indirect probes through other members. Below SerfProbeInterval.
	SerfProbeTimeout time.Duration
	// SerfGossipInterval: how often gossip messages (state changes) go
	// out.
	SerfGossipInterval time.Duration
	// SerfSuspicionMult: a suspected member is declared failed after
	// SerfSuspicionMult × max(1, log10(members)) × SerfProbeInterval
	// unless it refutes (sooner when others confirm the suspicion).
	SerfSuspicionMult int
	// FailureConfirm: a member must stay failed this long before the
	// controller fences it.
	FailureConfirm time.Duration
	// ReconcileInterval: the controller compares Serf's members with the
	// registered brokers this often, besides on every Serf event.
	ReconcileInterval time.Duration
	// SerfReapInterval: how often Serf reaps members failed for longer
	// than SerfReconnectTimeout (and left ones after as long).
	SerfReapInterval time.Duration
	// SerfReconnectTimeout: how long Serf keeps a failed member and tries
	// to reconnect to it.
	SerfReconnectTimeout time.Duration
}

// DefaultTimers returns the production timings: a killed broker is fenced
// about 2.5 to 3 s after it dies, so that the partitions it led take writes
// again within 5 s (the arithmetic is in the package doc).
func DefaultTimers() Timers {
	return Timers{
		RaftHeartbeat:        time.Second,
		RaftElection:         time.Second,
		RaftLeaderLease:      500 * time.Millisecond,
		RaftCommit:           50 * time.Millisecond,
		SerfProbeInterval:    500 * time.Millisecond,
		SerfProbeTimeout:     250 * time.Millisecond,
		SerfGossipInterval:   100 * time.Millisecond,
		SerfSuspicionMult:    3,
		FailureConfirm:       500 * time.Millisecond,
		ReconcileInterval:    time.Second,
		SerfReapInterval:     15 * time.Second,
		SerfReconnectTimeout: 24 * time.Hour,
	}
}

// FastTimers returns timings 5 times shorter than DefaultTimers, for
// several members in one test process: a killed member is fenced within
// about 0.6 s (1 s when it was the controller), yet stays stable (no
// false failures, no leader churn) with -race on a 2-core machine whose
// cores are both busy with other work.
func FastTimers() Timers {
	return Timers{
		RaftHeartbeat:        200 * time.Millisecond,
		RaftElection:         200 * time.Millisecond,
		RaftLeaderLease:      100 * time.Millisecond,
		RaftCommit:           5 * time.Millisecond,
		SerfProbeInterval:    100 * time.Millisecond,
		SerfProbeTimeout:     50 * time.Millisecond,
		SerfGossipInterval:   20 * time.Millisecond,
		SerfSuspicionMult:    3,
		FailureConfirm:       100 * time.Millisecond,
		ReconcileInterval:    200 * time.Millisecond,
		SerfReapInterval:     time.Second,
		SerfReconnectTimeout: time.Minute,
	}
}

// DefaultConfig returns a member with id 1 on the loopback address with
// DefaultTimers, bootstrapping alone.
func DefaultConfig() Config {
	return Config{
		NodeID:    1,
		DataDir:   "data/cluster",
		SerfAddr:  "127.0.0.1:7946",
		RaftAddr:  "127.0.0.1:7947",
		KafkaAddr: "127.0.0.1:9092",
		Timers:    DefaultTimers(),
		Logger:    zerolog.Nop(),
	}
}

// Validate reports the first thing wrong with the configuration.
func (c *Config) Validate() error {
	t := c.Timers
	switch {
	case c.NodeID < 0:
		return fmt.Errorf("cluster: node id %d: want >= 0", c.NodeID)
	case c.DataDir == "":
		return errors.New("cluster: no data dir")
	case c.SerfAddr == "" || c.RaftAddr == "":
		return errors.New("cluster: serf and raft addresses are required")
	case c.BootstrapExpect < 0:
		return fmt.Errorf("cluster: bootstrap expect %d: want >= 0", c.BootstrapExpect)
	case c.SerfKey != nil && len(c.SerfKey) != 16 && len(c.SerfKey) != 24 && len(c.SerfKey) != 32:
		return fmt.Errorf("cluster: serf key of %d bytes: want 16, 24 or 32", len(c.SerfKey))
	case c.TLS != nil && c.TLS.validate() != nil:
		return c.TLS.validate()
	case t.RaftHeartbeat <= 0 || t.RaftElection < t.RaftHeartbeat || t.RaftLeaderLease <= 0 ||
		t.RaftLeaderLease > t.RaftHeartbeat || t.RaftCommit <= 0:
		return errors.New("cluster: raft timers: want heartbeat > 0, election >= heartbeat, 0 < lease <= heartbeat, commit > 0")
	case t.SerfProbeInterval <= 0 || t.SerfProbeTimeout <= 0 || t.SerfProbeTimeout >= t.SerfProbeInterval ||
		t.SerfGossipInterval <= 0 || t.SerfSuspicionMult < 1:
		return errors.New("cluster: serf timers: want 0 < probe timeout < probe interval, gossip interval > 0, suspicion mult >= 1")
	case t.FailureConfirm < 0 || t.ReconcileInterval <= 0 || t.SerfReapInterval <= 0 || t.SerfReconnectTimeout <= 0:
		return errors.New("cluster: timers: want failure confirm >= 0, reconcile, reap interval and reconnect timeout > 0")
	}
	for _, addr := range []string{c.SerfAddr, c.RaftAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("cluster: address %q: %w", addr, err)
		}
	}
	return validateTags(c.tags(c.RaftAdvertise))
}

// Member is one member as Serf sees it.
type Member struct {
	ID        int32
	Name      string // Serf node name, "fluxo-<id>"
	SerfAddr  string
	KafkaAddr string
	RaftAddr  string
	// Status is Serf's view: alive, leaving, left or failed.
	Status string
	// RaftRole is leader, voter, nonvoter or none (not in the Raft
	// configuration).
	RaftRole string
}

// ErrClosed is returned by calls on a closed Cluster.
var ErrClosed = errors.New("cluster: closed")

var (
	errRetry         = errors.New("cluster: not the controller")
	errRemoveSelf    = errors.New("cluster: cannot remove this node (use Leave, then remove it from another node)")
	errUnknownServer = errors.New("cluster: unknown raft server")
)

// Cluster is this node's membership in the cluster: Serf gossip for
// failure detection, Raft for the replicated State, and, while this node
// is the Raft leader, the controller that registers and fences brokers.
//
// All methods are safe for concurrent use. Close (or a failed Open)
// stops every goroutine the Cluster started.
type Cluster struct {
	cfg  Config
	log  zerolog.Logger
	fsm  *FSM
	name string // serf node name

	raftAddr string // advertised
	serfAddr string // advertised, after binding

	tls   *tlsState // nil: plaintext Raft port
	mux   *mux
	layer *raftLayer
	trans *raft.NetworkTransport
	store *boltStore
	raft  *raft.Raft
	serf  *serf.Serf
	obs   *raft.Observer

	serfEvents chan serf.Event
	reconcile  chan struct{} // 1-buffered "reconcile needed" signal
	leaderKick chan raft.Observation

	metrics   *metrics               // registered collector; nil without Config.Registerer
	rejected  *prometheus.CounterVec // Raft port connections refused, by reason
	keyErrors prometheus.Counter     // memberlist lines reporting a gossip key mismatch

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	quit   <-chan struct{} // ctx.Done()
	wg     sync.WaitGroup  // goroutines started by Open

	tagsMu  sync.Mutex    // guards serf tag changes, leaving and cutOff
	leaving bool          // Leave started: the leaving tag stays
	cutOff  bool          // ReportCutOff(true) last: the cutoff tag is wanted
	tagKick chan struct{} // 1-buffered: cutOff changed, tagLoop sets the tags

	born    time.Time    // Open's time: contact is counted from it
	contact atomic.Int64 // last contact with the Raft leader, as nanoseconds since born

	closeOnce sync.Once
	closeErr  error
}

// Open starts this node's membership: it binds the Raft port, opens the
// Raft state in DataDir (bootstrapping per BootstrapExpect), starts Serf
// and joins cfg.Join in the background. It returns before the cluster has
// a controller; WaitReady waits for one.
func Open(cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cluster{
		cfg:        cfg,
		born:       time.Now(),
		log:        cfg.Logger.With().Int32("node", cfg.NodeID).Logger(),
		fsm:        NewFSM(),
		name:       fmt.Sprintf("fluxo-%d", cfg.NodeID),
		serfEvents: make(chan serf.Event, 256),
		reconcile:  make(chan struct{}, 1),
		leaderKick: make(chan raft.Observation, 1),
		tagKick:    make(chan struct{}, 1),
		ctx:        ctx,
		cancel:     cancel,
		quit:       ctx.Done(),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxo_cluster_rpc_rejected_total",
			Help: "Connections to the Raft port refused before any frame was read, by reason.",
		}, []string{"reason"}),
		keyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fluxo_cluster_serf_key_errors_total",
			Help: "Gossip messages or syncs refused because a member uses another Serf key, or none.",
		}),
	}
	for _, r := range []string{rejectNotTLS, rejectNoCertificate, rejectBadCert, rejectHandshake, rejectUnknownType} {
		c.rejected.WithLabelValues(r)
	}
	if cfg.TLS != nil {
		c.tls = newTLSState(cfg.TLS)
	}
	if cfg.Registerer != nil {
		c.metrics = newMetrics(c)
		c.fsm.onLeaderChanges = c.metrics.leaderChanges
	}
	if err := c.open(); err != nil {
		c.Close()
		return nil, err
	}
	if c.metrics != nil {
		if err := cfg.Registerer.Register(c.metrics); err != nil {
			c.metrics = nil
			c.Close()
			return nil, fmt.Errorf("cluster: cannot register metrics: %w", err)
		}
	}
	return c, nil
}

func (c *Cluster) open() error {
	ln, err := net.Listen("tcp", c.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("cluster: raft: %w", err)
	}
	c.raftAddr, err = advertise(c.cfg.RaftAdvertise, ln.Addr().String())
	if err != nil {
		ln.Close()
		return err
	}
	c.mux = newMux(ln, c.serveRPC, c.tls, func(reason string) { c.rejected.WithLabelValues(reason).Inc() }, c.log)
	c.layer = &raftLayer{m: c.mux, nw: c.cfg.Network, addr: advertisedAddr(c.raftAddr), closed: make(chan struct{})}
	hasState, err := c.openRaft()
	if err != nil {
		return err
	}
	if err := c.openSerf(); err != nil {
		return err
	}
	c.start(func() { c.drainSerfEvents() })
	c.start(func() { c.controllerLoop() })
	c.start(func() { c.trackContact() })
	c.start(func() { c.tagLoop() })
	if len(c.joinAddrs()) > 0 {
		c.start(func() { c.joinLoop() })
	}
	if !hasState && c.cfg.BootstrapExpect > 1 {
		c.start(func() { c.bootstrapLoop() })
	}
	c.log.Info().Str("raft", c.raftAddr).Str("serf", c.serfAddr).Bool("existing_state", hasState).Msg("cluster member started")
	return nil
}

// start runs f on a goroutine the Cluster waits for in Close.
func (c *Cluster) start(f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// advertise returns adv, or bound when adv is empty and bound's host is
// a specific address.
func advertise(adv, bound string) (string, error) {
	if adv != "" {
		return adv, nil
	}
	host, _, err := net.SplitHostPort(bound)
	if err != nil {
		return "", fmt.Errorf("cluster: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		return "", fmt.Errorf("cluster: bound to %s: set an advertise address", bound)
	}
	return bound, nil
}

// NodeID returns this node's id.
func (c *Cluster) NodeID() int32 { return c.cfg.NodeID }

// RaftAddr returns the advertised Raft address (with the port picked when
// the configured one was 0).
func (c *Cluster) RaftAddr() string { return c.raftAddr }

// SerfAddr returns the advertised Serf address (with the port picked when
// the configured one was 0).
func (c *Cluster) SerfAddr() string { return c.serfAddr }

// State returns the latest State applied on this node. It may lag the
// controller's; it is never modified afterwards.
func (c *Cluster) State() *State { return c.fsm.State() }

// Watch returns the latest applied State and a channel closed when a
// newer one is applied. The usual loop:
//
//	for {
//		s, changed := c.Watch()
//		use(s)
//		select {
//		case <-changed:
//		case <-ctx.Done():
//			return
//		}
//	}
func (c *Cluster) Watch() (*State, <-chan struct{}) { return c.fsm.Watch() }

// Apply proposes cmd and returns its result once the controller applied
// it. It runs on the Raft leader directly and is forwarded to it from any
// other node. While there is no leader it retries until ctx ends, then
// returns ErrNoController (wrapping ctx.Err()). If leadership is lost
// while the command is in flight it returns ErrUnknownOutcome: the command
// may or may not have been applied. A command's own refusal comes back as
// its sentinel error (ErrTopicExists...), also across a forward.
//
// A CreateTopic with a zero ID gets a random one here, before proposing.
// The State this node returns may lag the controller's for a moment after
// Apply returns; wait on Watch for Index to pass what you need.
func (c *Cluster) Apply(ctx context.Context, cmd Command) (Result, error) {
	if ct, ok := cmd.(CreateTopic); ok && ct.ID == ([16]byte{}) {
		rand.Read(ct.ID[:])
		cmd = ct
	}
	data, err := encodeCommand(cmd)
	if err != nil {
		return Result{}, err
	}
	var res Result
	err = c.retry(ctx, func() error {
		res, err = c.applyOnce(ctx, data)
		return err
	})
	return res, err
}

// retry runs f until it returns something else than errRetry, waiting a
// little between attempts; ctx ending turns errRetry into
// ErrNoController.
func (c *Cluster) retry(ctx context.Context, f func() error) error {
	wait := 10 * time.Millisecond
	for {
		select {
		case <-c.quit:
			return ErrClosed
		default:
		}
		err := f()
		if !errors.Is(err, errRetry) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", ErrNoController, ctx.Err())
		case <-c.quit:
			t.Stop()
			return ErrClosed
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

func (c *Cluster) applyOnce(ctx context.Context, data []byte) (Result, error) {
	if c.raft.State() == raft.Leader {
		return c.applyLocal(ctx, data)
	}
	addr, _ := c.raft.LeaderWithID()
	if addr == "" {
		return Result{}, errRetry
	}
	resp, err := c.call(ctx, string(addr), rpcRequest{Op: opApply, Type: data[0], Body: data[1:]})
	if err != nil {
		if errors.Is(err, errNotSent) {
			c.log.Debug().Err(err).Str("controller", string(addr)).Msg("cannot reach controller")
			return Result{}, errRetry
		}
		return Result{}, fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	}
	return resp.Result, errorOf(resp.Code, resp.Error)
}

// applyLocal applies data through this node's raft, which must lead.
func (c *Cluster) applyLocal(ctx context.Context, data []byte) (Result, error) {
	var timeout time.Duration // 0: wait as long as it takes to enqueue
	if d, ok := ctx.Deadline(); ok {
		if timeout = time.Until(d); timeout <= 0 {
			return Result{}, errRetry
		}
	}
	f := c.raft.Apply(data, timeout)
	err := f.Error()
	switch {
	case err == nil:
		resp, _ := f.Response().(applyResponse)
		return resp.res, resp.err
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout):
		// Not appended: safe to try again (ErrEnqueueTimeout means ctx is
		// about to end, which retry turns into ErrNoController).
		return Result{}, errRetry
	case errors.Is(err, raft.ErrLeadershipLost):
		return Result{}, ErrUnknownOutcome
	case errors.Is(err, raft.ErrRaftShutdown):
		return Result{}, ErrClosed
	}
	return Result{}, fmt.Errorf("cluster: raft apply: %w", err)
}

// ControllerID returns the node id of the Raft leader, if there is one
// this node knows of.
func (c *Cluster) ControllerID() (int32, bool) {
	_, id := c.raft.LeaderWithID()
	if id == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(string(id), 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(n), true
}

// IsController reports whether this node is the Raft leader.
func (c *Cluster) IsController() bool { return c.raft.State() == raft.Leader }

// RaftState returns this node's Raft state: follower, candidate, leader or
// shutdown.
func (c *Cluster) RaftState() string { return raftStateName(c.raft.State()) }

func raftStateName(s raft.RaftState) string {
	switch s {
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	case raft.Leader:
		return "leader"
	}
	return "shutdown"
}

// WaitReady waits until the cluster has a controller, this node's State
// has caught up with the controller's as of the call (a barrier when this
// node leads), and this node is registered, unfenced, with its current
// addresses. It returns ctx's error, saying what was missing, if ctx ends
// first.
func (c *Cluster) WaitReady(ctx context.Context) error {
	caughtUp := false
	missing := "controller"
	for {
		s, changed := c.Watch()
		if !caughtUp {
			caughtUp = c.catchUp(ctx)
		}
		if caughtUp {
			missing = "registration"
			if b, ok := s.Brokers[c.cfg.NodeID]; ok && !b.Fenced && b.KafkaAddr == c.cfg.KafkaAddr && maps.Equal(b.Listeners, c.cfg.KafkaListeners) && b.RaftAddr == c.raftAddr && b.SerfAddr == c.serfAddr {
				return nil
			}
		}
		t := time.NewTimer(25 * time.Millisecond)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("cluster: not ready (waiting for %s): %w", missing, ctx.Err())
		case <-c.quit:
			t.Stop()
			return ErrClosed
		}
		t.Stop()
	}
}

// catchUp reports whether this node has applied everything the controller
// had applied when asked.
func (c *Cluster) catchUp(ctx context.Context) bool {
	if c.raft.State() == raft.Leader {
		return c.raft.Barrier(time.Until(deadlineOr(ctx, time.Second))).Error() == nil
	}
	addr, _ := c.raft.LeaderWithID()
	if addr == "" {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := c.call(cctx, string(addr), rpcRequest{Op: opStatus})
	if err != nil || resp.Status == nil || !resp.Status.Leader {
		return false
	}
	want := resp.Status.AppliedIndex
	for c.raft.AppliedIndex() < want {
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		case <-c.quit:
			t.Stop()
			return false
		}
	}
	return true
}

func deadlineOr(ctx context.Context, d time.Duration) time.Time {
	limit := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(limit) {
		return dl
	}
	return limit
}

// Members returns the fluxo members Serf knows, sorted by id, with their
// Raft role.
func (c *Cluster) Members() []Member {
	roles := map[string]string{}
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				roles[string(s.ID)] = "voter"
			} else {
				roles[string(s.ID)] = "nonvoter"
			}
		}
	}
	if _, id := c.raft.LeaderWithID(); id != "" {
		roles[string(id)] = "leader"
	}
	var out []Member
	for _, m := range c.serf.Members() {
		info, ok := parseMember(m)
		if !ok {
			continue
		}
		role := roles[strconv.Itoa(int(info.ID))]
		if role == "" {
			role = "none"
		}
		out = append(out, Member{
			ID: info.ID, Name: m.Name, SerfAddr: info.SerfAddr, KafkaAddr: info.KafkaAddr, RaftAddr: info.RaftAddr,
			Status: m.Status.String(), RaftRole: role,
		})
	}
	slices.SortFunc(out, func(a, b Member) int { return int(a.ID) - int(b.ID) })
	return out
}

// Remove removes broker id from the cluster for good (`fluxo cluster
// remove`): RemoveBroker through the controller, then its Raft server, then
// Serf's record of it (force-leave, pruned). The broker should be dead:
// were it alive, the controller would register it again. Remove of this
// node is refused: Leave, stop it, and remove it from another node.
func (c *Cluster) Remove(ctx context.Context, id int32) error {
	if id == c.cfg.NodeID {
		return errRemoveSelf
	}
	// RemoveBroker is idempotent (a second one finds no broker), so an
	// apply whose outcome a leadership change hid is simply applied again.
	for {
		_, err := c.Apply(ctx, RemoveBroker{ID: id})
		if errors.Is(err, ErrUnknownOutcome) && ctx.Err() == nil {
			continue
		}
		if err != nil && !errors.Is(err, ErrUnknownBroker) {
			return err
		}
		break
	}
	err := c.retry(ctx, func() error {
		if c.raft.State() == raft.Leader {
			return c.removeServerLocal(ctx, id)
		}
		addr, _ := c.raft.LeaderWithID()
		if addr == "" {
			return errRetry
		}
		resp, err := c.call(ctx, string(addr), rpcRequest{Op: opRemoveServer, ID: id})
		if err != nil {
			// Removing a server is idempotent: try again.
			return errRetry
		}
		return errorOf(resp.Code, resp.Error)
	})
	if err != nil && !errors.Is(err, errUnknownServer) {
		return err
	}
	for _, m := range c.serf.Members() {
		if info, ok := parseMember(m); ok && info.ID == id {
			if err := c.serf.RemoveFailedNodePrune(m.Name); err != nil {
				return fmt.Errorf("cluster: serf force-leave %s: %w", m.Name, err)
			}
		}
	}
	c.log.Info().Int32("broker", id).Msg("broker removed")
	return nil
}

// removeServerLocal removes raft server id; this node must lead.
func (c *Cluster) removeServerLocal(ctx context.Context, id int32) error {
	if c.raft.State() != raft.Leader {
		return errRetry
	}
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	sid := raft.ServerID(strconv.Itoa(int(id)))
	if !slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == sid }) {
		return errUnknownServer
	}
	err := c.raft.RemoveServer(sid, 0, time.Until(deadlineOr(ctx, 10*time.Second))).Error()
	switch {
	case err == nil:
		c.log.Info().Int32("broker", id).Msg("raft server removed")
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout):
		return errRetry
	}
	return fmt.Errorf("cluster: remove raft server %d: %w", id, err)
}

// Leave leaves the cluster gracefully before a planned stop: it tags this
// member as leaving (so no controller registers it again), fences this
// broker through the controller so that its partitions get other leaders
// first (skipped when there is no controller), hands Raft leadership to
// another server if this node leads, and leaves Serf. It is not a
// removal: this node stays a Raft voter and a registered (fenced) broker,
// and a restart with the same DataDir comes back. Call Close afterwards.
func (c *Cluster) Leave(ctx context.Context) error {
	var errs []error
	c.tagsMu.Lock()
	c.leaving = true
	if err := c.serf.SetTags(c.tagsLocked()); err != nil {
		errs = append(errs, fmt.Errorf("cluster: set leaving tag: %w", err))
	}
	c.tagsMu.Unlock()
	if _, ok := c.ControllerID(); ok {
		if _, err := c.Apply(ctx, FenceBroker{ID: c.cfg.NodeID}); err != nil && !errors.Is(err, ErrUnknownBroker) {
			errs = append(errs, fmt.Errorf("cluster: fence self: %w", err))
		} else {
			c.log.Info().Msg("fenced before leaving")
		}
	}
	if c.raft.State() == raft.Leader && c.hasPeers() {
		if err := c.raft.LeadershipTransfer().Error(); err != nil {
			errs = append(errs, fmt.Errorf("cluster: transfer raft leadership: %w", err))
		} else {
			c.log.Info().Msg("raft leadership transferred")
		}
	}
	if err := c.serf.Leave(); err != nil {
		errs = append(errs, fmt.Errorf("cluster: serf leave: %w", err))
	}
	c.log.Info().Msg("left the cluster")
	return errors.Join(errs...)
}

// Close stops this node at once, without leaving: to the other members it
// looks like a crash (Serf marks it failed, the controller fences it). It
// waits for every goroutine Open started. Later calls return the first
// call's result.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		var errs []error
		if c.metrics != nil {
			c.cfg.Registerer.Unregister(c.metrics)
		}
		if c.serf != nil {
			if err := c.serf.Shutdown(); err != nil {
				errs = append(errs, fmt.Errorf("cluster: serf shutdown: %w", err))
			}
		}
		if c.raft != nil {
			if c.obs != nil {
				c.raft.DeregisterObserver(c.obs)
			}
			if err := c.shutdownRaft(); err != nil {
				errs = append(errs, fmt.Errorf("cluster: raft shutdown: %w", err))
			}
		}
		if c.trans != nil {
			c.trans.Close()
		}
		if c.mux != nil {
			c.mux.Close()
		}
		c.wg.Wait()
		if c.store != nil {
			if err := c.store.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		c.closeErr = errors.Join(errs...)
		c.log.Info().Msg("cluster member stopped")
	})
	return c.closeErr
}

// raftShutdownWait bounds how long Close waits for Raft's goroutines.
const raftShutdownWait = 10 * time.Second

// shutdownRaft shuts Raft down and waits for its goroutines, for at most
// raftShutdownWait. hashicorp/raft's pipelined replication can deadlock
// when a leader steps down while its pipeline is full (the response
// decoder blocks handing a response to a consumer that has gone, the
// sender blocks handing it a request): its shutdown would then wait
// forever. The transport is configured without pipelining (openRaft), so
// this bound is a safety net: past it the stuck goroutines are left
// behind, logged, and the rest of Close goes on.
func (c *Cluster) shutdownRaft() error {
	f := c.raft.Shutdown()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-time.After(raftShutdownWait):
		c.log.Error().Dur("waited", raftShutdownWait).Msg("raft did not stop in time; closing without it")
		return nil
	}
}

// hasPeers reports whether the Raft configuration has a server besides
// this one: alone, there is no one to hand leadership to.
func (c *Cluster) hasPeers() bool {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return true
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID != raft.ServerID(strconv.Itoa(int(c.cfg.NodeID))) {
			return true
		}
	}
	return false
}
