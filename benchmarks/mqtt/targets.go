package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/benchmarks/internal/harness"
	"github.com/fluxo-io/fluxo/benchmarks/internal/proc"
	"github.com/fluxo-io/fluxo/benchmarks/internal/scrape"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/edge"
)

// target is an MQTT server under test.
type target interface {
	// MQTTAddr is the MQTT TCP address devices connect to.
	MQTTAddr() string
	// Published returns how many PUBLISH packets the server has received
	// from clients, and when that count was read.
	Published(ctx context.Context) (int64, time.Time, error)
	// PID is the server's process, 0 when it runs in this one.
	PID() int
	// Stop shuts the server down and waits for it, bounded by ctx.
	Stop(ctx context.Context) error
}

// Target names, as given to -targets.
const (
	targetEdgeNever  = "edge-never"
	targetEdgeAlways = "edge-always"
	targetMochi      = "mochi"
	targetMosquitto  = "mosquitto"
)

// coreTopics are the core topics an edge with the default routes writes
// to or reads from; the harness creates them (one partition each) so
// that nothing depends on auto-creation.
var coreTopics = []string{"telemetry", "alarms", "command-acks", "commands"}

// coreProc is a `fluxo core` process.
type coreProc struct {
	*proc.Proc
	kafkaAddr string
}

func startCore(ctx context.Context, bin, dataDir string) (*coreProc, error) {
	addrs, err := harness.FreeAddrs(4)
	if err != nil {
		return nil, err
	}
	p, err := proc.Start("fluxo core", 15*time.Second, bin, "core",
		"--data-dir", dataDir,
		"--kafka-addr", addrs[0],
		"--http-addr", addrs[1],
		"--serf-addr", addrs[2],
		"--raft-addr", addrs[3],
		"--auto-create-topics=false",
		"--shutdown-timeout", "10s",
		"--log-level", "warn",
	)
	if err != nil {
		return nil, err
	}
	c := &coreProc{Proc: p, kafkaAddr: addrs[0]}
	if err := proc.WaitHTTP(ctx, p, "http://"+addrs[1]+"/readyz"); err != nil {
		p.Stop(context.Background())
		return nil, err
	}
	if err := createTopics(ctx, c.kafkaAddr, coreTopics); err != nil {
		p.Stop(context.Background())
		return nil, err
	}
	return c, nil
}

func createTopics(ctx context.Context, addr string, topics []string) error {
	return createTopicsN(ctx, addr, 1, topics)
}

// createTopicsN creates topics with partitions partitions each.
func createTopicsN(ctx context.Context, addr string, partitions int32, topics []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, partitions, 1, nil, topics...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// edgeTarget is a fluxo edge node, as a `fluxo edge` process or in this
// process; both serve /scrape.Metrics, which is where the counts come from.
type edgeTarget struct {
	mqttAddr string
	httpAddr string
	p        *proc.Proc // the process, or
	node     *edge.Node // the node in process
}

// startEdgeWith starts an edge node with anonymous devices, the default
// routes, its spool in spoolDir with the given --spool-sync policy, and
// its uplink (and downlink) to the core at coreAddr; everything else is
// `fluxo edge`'s default, or the extra flags.
// Extra flags need a process: in process, they are refused.
func startEdgeWith(ctx context.Context, bin string, inProcess bool, coreAddr, spoolDir, sync string, extra ...string) (*edgeTarget, error) {
	if inProcess && len(extra) > 0 {
		return nil, fmt.Errorf("edge flags %q need an edge process", extra)
	}
	addrs, err := harness.FreeAddrs(2)
	if err != nil {
		return nil, err
	}
	if !inProcess {
		return startEdgeAt(ctx, bin, coreAddr, spoolDir, sync, addrs, extra...)
	}
	t := &edgeTarget{mqttAddr: addrs[0], httpAddr: addrs[1]}
	// As `fluxo edge --allow-anonymous` builds it (cmd/fluxo/edge.go).
	cfg := edge.DefaultNodeConfig()
	cfg.Edge.MQTTAddr = addrs[0]
	cfg.Edge.AllowAnonymous = true
	cfg.Edge.EdgeID = "bench"
	cfg.Edge.StateDir = filepath.Join(spoolDir, "mqtt")
	cfg.SpoolDir = spoolDir
	if cfg.Spool.Sync, err = spool.ParseSyncPolicy(sync); err != nil {
		return nil, err
	}
	cfg.Uplink.Brokers = []string{coreAddr}
	cfg.HTTPAddr = addrs[1]
	cfg.Logger = zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	if err := os.MkdirAll(cfg.Edge.StateDir, 0o755); err != nil {
		return nil, err
	}
	n, err := edge.NewNode(cfg)
	if err != nil {
		return nil, err
	}
	if err := n.Start(); err != nil {
		return nil, err
	}
	t.node = n
	return t, nil
}

// startEdgeAt starts a `fluxo edge` process as startEdgeWith does, on the
// given MQTT and HTTP addresses (addrs[0], addrs[1]).
func startEdgeAt(ctx context.Context, bin, coreAddr, spoolDir, sync string, addrs []string, extra ...string) (*edgeTarget, error) {
	t := &edgeTarget{mqttAddr: addrs[0], httpAddr: addrs[1]}
	args := append([]string{"edge",
		"--allow-anonymous",
		"--mqtt-addr", addrs[0],
		"--http-addr", addrs[1],
		"--core", coreAddr,
		"--spool-dir", spoolDir,
		"--spool-sync", sync,
		"--edge-id", "bench",
		"--shutdown-timeout", "10s",
		"--log-level", "warn",
	}, extra...)
	p, err := proc.Start("fluxo edge", 15*time.Second, bin, args...)
	if err != nil {
		return nil, err
	}
	t.p = p
	if err := proc.WaitHTTP(ctx, p, "http://"+addrs[1]+"/readyz"); err != nil {
		p.Stop(context.Background())
		return nil, err
	}
	return t, nil
}

func (t *edgeTarget) MQTTAddr() string { return t.mqttAddr }

func (t *edgeTarget) PID() int {
	if t.p == nil {
		return 0
	}
	return t.p.PID()
}

func (t *edgeTarget) Published(ctx context.Context) (int64, time.Time, error) {
	m, err := scrape.Scrape(ctx, "http://"+t.httpAddr+"/metrics")
	if err != nil {
		return 0, time.Time{}, err
	}
	return int64(m.Sum("fluxo_edge_publishes_total", "")), time.Now(), nil
}

// Metrics scrapes the edge's /metrics.
func (t *edgeTarget) Metrics(ctx context.Context) (scrape.Metrics, error) {
	return scrape.Scrape(ctx, "http://"+t.httpAddr+"/metrics")
}

func (t *edgeTarget) Stop(ctx context.Context) error {
	if t.node != nil {
		return t.node.Shutdown(ctx)
	}
	return t.p.Stop(ctx)
}

// mochiTarget is a bare mochi-mqtt server: this program started again as
// `bare-mochi` (see bareMochi).
type mochiTarget struct {
	*proc.Proc
	mqttAddr  string
	statsAddr string
}

func startMochi(ctx context.Context) (*mochiTarget, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startMochiBin(ctx, "bare mochi", self, bareMochiCommand)
}

// startMochiBin starts bin with args followed by -addr and -stats-addr,
// as bare-mochi takes them, and waits for its /readyz.
func startMochiBin(ctx context.Context, name, bin string, args ...string) (*mochiTarget, error) {
	addrs, err := harness.FreeAddrs(2)
	if err != nil {
		return nil, err
	}
	args = append(args, "-addr", addrs[0], "-stats-addr", addrs[1])
	p, err := proc.Start(name, 10*time.Second, bin, args...)
	if err != nil {
		return nil, err
	}
	if err := proc.WaitHTTP(ctx, p, "http://"+addrs[1]+"/readyz"); err != nil {
		p.Stop(context.Background())
		return nil, err
	}
	return &mochiTarget{Proc: p, mqttAddr: addrs[0], statsAddr: addrs[1]}, nil
}

func (t *mochiTarget) MQTTAddr() string { return t.mqttAddr }

func (t *mochiTarget) Published(ctx context.Context) (int64, time.Time, error) {
	body, err := scrape.Get(ctx, "http://"+t.statsAddr+"/stats")
	if err != nil {
		return 0, time.Time{}, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(body), 10, 64)
	return n, time.Now(), err
}

// mosquittoTarget is a Mosquitto process with a generated configuration:
// one listener on a free loopback port, anonymous clients, no
// persistence, $SYS topics every second. Its count of PUBLISH packets
// received comes from $SYS/broker/publish/messages/received, read by a
// subscriber of this process.
type mosquittoTarget struct {
	*proc.Proc
	mqttAddr string
	sys      paho.Client

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every $SYS sample
	value   int64
	at      time.Time
}

const mosquittoSysTopic = "$SYS/broker/publish/messages/received"

func startMosquitto(ctx context.Context, bin, dir string) (*mosquittoTarget, error) {
	addrs, err := harness.FreeAddrs(1)
	if err != nil {
		return nil, err
	}
	_, port, _ := strings.Cut(addrs[0], ":")
	conf := filepath.Join(dir, "mosquitto.conf")
	// Mosquitto started as root switches to the "mosquitto" user after
	// reading its configuration; it writes no file here.
	err = os.WriteFile(conf, []byte(strings.Join([]string{
		"listener " + port + " 127.0.0.1",
		"allow_anonymous true",
		"persistence false",
		"sys_interval 1",
		"max_connections -1",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"",
	}, "\n")), 0o644)
	if err != nil {
		return nil, err
	}
	p, err := proc.Start("mosquitto", 10*time.Second, bin, "-c", conf)
	if err != nil {
		return nil, err
	}
	t := &mosquittoTarget{Proc: p, mqttAddr: addrs[0], changed: make(chan struct{})}
	if err := proc.WaitTCP(ctx, p, addrs[0]); err != nil {
		p.Stop(context.Background())
		return nil, err
	}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addrs[0]).SetClientID("bench-sys").
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	t.sys = paho.NewClient(opts)
	if err := waitToken(t.sys.Connect(), 10*time.Second); err != nil {
		p.Stop(context.Background())
		return nil, fmt.Errorf("mosquitto $SYS subscriber: %w", err)
	}
	tok := t.sys.Subscribe(mosquittoSysTopic, 0, func(_ paho.Client, m paho.Message) {
		v, err := strconv.ParseInt(strings.TrimSpace(string(m.Payload())), 10, 64)
		if err != nil {
			return
		}
		t.mu.Lock()
		t.value, t.at = v, time.Now()
		close(t.changed)
		t.changed = make(chan struct{})
		t.mu.Unlock()
	})
	if err := waitToken(tok, 10*time.Second); err != nil {
		t.sys.Disconnect(0)
		p.Stop(context.Background())
		return nil, fmt.Errorf("mosquitto $SYS subscriber: %w", err)
	}
	return t, nil
}

func (t *mosquittoTarget) MQTTAddr() string { return t.mqttAddr }

// Published waits for the next $SYS sample (Mosquitto sends one every
// second, when the count has changed) and returns it with the time it
// arrived.
func (t *mosquittoTarget) Published(ctx context.Context) (int64, time.Time, error) {
	t.mu.Lock()
	ch := t.changed
	t.mu.Unlock()
	timer := time.NewTimer(3 * time.Second)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		// No PUBLISH since the last sample: the count has not moved.
	case <-ctx.Done():
		return 0, time.Time{}, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.at.IsZero() {
		return 0, time.Now(), nil
	}
	return t.value, t.at, nil
}

func (t *mosquittoTarget) Stop(ctx context.Context) error {
	t.sys.Disconnect(0)
	return t.Proc.Stop(ctx)
}

// waitToken waits for a paho token, at most d.
func waitToken(tok paho.Token, d time.Duration) error {
	if !tok.WaitTimeout(d) {
		return fmt.Errorf("no answer after %v", d)
	}
	return tok.Error()
}
