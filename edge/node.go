package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/bridge/downlink"
	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/bridge/uplink"
	"github.com/fluxo-io/fluxo/internal/opshttp"
)

// NodeConfig configures a whole edge node: the MQTT front door, the spool
// under it, the uplink to the core, the downlink of commands, and HTTP.
type NodeConfig struct {
	Edge     Config
	SpoolDir string
	Spool    spool.Config
	Uplink   uplink.Config // Brokers, batching, cap; StateDir is the spool dir
	// Downlink consumes commands for devices when set; its Brokers
	// default to the uplink's, and so do its TLS and SASL when it has
	// neither.
	Downlink *downlink.Config
	// HTTPAddr serves /healthz, /readyz and /metrics; empty: off.
	HTTPAddr string
	Logger   zerolog.Logger
}

// DefaultNodeConfig returns an edge on 127.0.0.1:1883 forwarding to a core
// on 127.0.0.1:9092, with HTTP on 127.0.0.1:8081.
func DefaultNodeConfig() NodeConfig {
	dl := downlink.DefaultConfig()
	return NodeConfig{
		Edge:     DefaultConfig(),
		SpoolDir: "spool",
		Spool:    spool.DefaultConfig(),
		Uplink:   uplink.DefaultConfig(),
		Downlink: &dl,
		HTTPAddr: "127.0.0.1:8081",
		Logger:   zerolog.Nop(),
	}
}

// Node is a running edge node.
type Node struct {
	cfg    NodeConfig
	log    zerolog.Logger
	reg    *prometheus.Registry
	spool  *spool.Spool
	edge   *Edge
	uplink *uplink.Uplink
	down   *downlink.Downlink
	fleets *fleets

	http *opshttp.Server

	cancel context.CancelFunc
	wg     sync.WaitGroup // the uplink
	downWG sync.WaitGroup // the downlink

	mu      sync.Mutex // guards started, stopped
	started bool
	stopped bool
}

// NewNode opens the spool (recovering it) and builds the parts; Start
// runs them.
func NewNode(cfg NodeConfig) (*Node, error) {
	n := &Node{cfg: cfg, log: cfg.Logger, reg: prometheus.NewRegistry(), fleets: &fleets{m: map[string]string{}}}
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sc := cfg.Spool
	sc.Logger = cfg.Logger.With().Str("part", "spool").Logger()
	sp, err := spool.Open(cfg.SpoolDir, sc)
	if err != nil {
		return nil, err
	}
	n.spool = sp
	uc := cfg.Uplink
	uc.StateDir = cfg.SpoolDir
	uc.Logger = cfg.Logger.With().Str("part", "uplink").Logger()
	if uc.ClientID == "" || uc.ClientID == uplink.DefaultConfig().ClientID {
		uc.ClientID = "fluxo-edge-" + cfg.Edge.EdgeID
	}
	if n.uplink, err = uplink.New(uc, sp); err != nil {
		sp.Close()
		return nil, err
	}
	ec := cfg.Edge
	ec.Logger = cfg.Logger.With().Str("part", "mqtt").Logger()
	ec.Registerer = n.reg
	if n.edge, err = New(ec, learningSink{sp, n.fleets}); err != nil {
		n.uplink.Close()
		sp.Close()
		return nil, err
	}
	if cfg.Downlink != nil {
		dc := *cfg.Downlink
		if len(dc.Brokers) == 0 || (len(dc.Brokers) == 1 && dc.Brokers[0] == downlink.DefaultConfig().Brokers[0]) {
			dc.Brokers = uc.Brokers
		}
		if dc.TLS == nil && dc.SASL == nil {
			dc.TLS, dc.SASL = uc.TLS, uc.SASL
		}
		if dc.Group == downlink.DefaultConfig().Group {
			dc.Group = "fluxo-edge-" + cfg.Edge.EdgeID + "-downlink"
		}
		dc.Logger = cfg.Logger.With().Str("part", "downlink").Logger()
		if n.down, err = downlink.New(dc, n.edge, n.fleets.lookup); err != nil {
			n.edge.Close()
			n.uplink.Close()
			sp.Close()
			return nil, err
		}
	}
	n.reg.MustRegister(&nodeCollector{n: n})
	return n, nil
}

// learningSink spools messages and learns each device's fleet from the
// topic scheme {fleet}/{device}/..., for the downlink.
type learningSink struct {
	sp *spool.Spool
	f  *fleets
}

func (s learningSink) Append(msgs ...spool.Message) error {
	for _, m := range msgs {
		s.learn(m)
	}
	return s.sp.Append(msgs...)
}

func (s learningSink) Submit(m spool.Message, done func(error)) error {
	s.learn(m)
	return s.sp.Submit(m, done)
}

func (s learningSink) learn(m spool.Message) {
	for _, h := range m.Headers {
		if h.Key == route.HeaderTopic {
			// {fleet}/{device}/...: no allocation unless it is new.
			t := h.Value
			i := bytes.IndexByte(t, '/')
			if i <= 0 {
				return
			}
			j := bytes.IndexByte(t[i+1:], '/')
			if j <= 0 {
				return
			}
			s.f.learn(t[i+1:i+1+j], t[:i])
			return
		}
	}
}

// fleets maps device ids to fleets, as learned from traffic.
type fleets struct {
	mu sync.RWMutex
	m  map[string]string
}

func (f *fleets) learn(device, fleet []byte) {
	f.mu.RLock()
	cur, ok := f.m[string(device)]
	f.mu.RUnlock()
	if !ok || cur != string(fleet) {
		f.mu.Lock()
		f.m[string(device)] = string(fleet)
		f.mu.Unlock()
	}
}

func (f *fleets) lookup(device string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.m[device]
	return v, ok
}

// Start opens the MQTT and HTTP listeners and starts forwarding.
func (n *Node) Start() error {
	if err := n.edge.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.uplink.Run(ctx)
	}()
	if n.down != nil {
		n.downWG.Add(1)
		go func() {
			defer n.downWG.Done()
			n.down.Run(ctx)
		}()
	}
	if n.cfg.HTTPAddr != "" {
		hs, err := opshttp.Start(n.cfg.HTTPAddr, n.reg, n.readyz)
		if err != nil {
			n.Shutdown(context.Background())
			return fmt.Errorf("edge: %w", err)
		}
		n.http = hs
	}
	n.mu.Lock()
	n.started = true
	n.mu.Unlock()
	n.log.Info().Str("mqtt", n.edge.Addr()).Str("http", n.HTTPAddr()).Strs("core", n.cfg.Uplink.Brokers).
		Str("spool", n.cfg.SpoolDir).Str("sync", n.cfg.Spool.Sync.String()).Msg("edge node started")
	return nil
}

// readyz: ready once the spool is open and MQTT is served, and while no
// uplink lane is parked on a permanent error (an ACL, a missing topic, a
// credential: the edge would spool forever without someone acting). A
// core that is merely away is reported but does not make the edge
// unready: it keeps accepting and catches up.
func (n *Node) readyz(w http.ResponseWriter) bool {
	n.mu.Lock()
	ready := n.started && !n.stopped
	n.mu.Unlock()
	if !ready {
		fmt.Fprintln(w, "not ready")
		return false
	}
	stats := n.uplink.Stats()
	var parked []string
	for _, s := range stats {
		if s.Parked {
			parked = append(parked, fmt.Sprintf("%s (%s)", s.Lane, s.ParkReason))
		}
	}
	if len(parked) > 0 {
		fmt.Fprintf(w, "not ready: uplink parked: %s\n", strings.Join(parked, ", "))
	} else {
		fmt.Fprintln(w, "ready")
	}
	for _, s := range stats {
		state := "down"
		switch {
		case s.Parked:
			state = fmt.Sprintf("parked since %s on %s: %s", s.ParkedSince.UTC().Format(time.RFC3339), s.ParkReason, s.ParkError)
		case s.Connected:
			state = "up"
		}
		fmt.Fprintf(w, "uplink %s: %s, backlog %d\n", s.Lane, state, s.Backlog)
	}
	return len(parked) == 0
}

// MQTTAddr is the bound MQTT TCP address.
func (n *Node) MQTTAddr() string { return n.edge.Addr() }

// HTTPAddr is the bound HTTP address ("" if none).
func (n *Node) HTTPAddr() string {
	if n.http == nil {
		return ""
	}
	return n.http.Addr()
}

// Edge is the node's MQTT server.
func (n *Node) Edge() *Edge { return n.edge }

// Spool is the node's spool.
func (n *Node) Spool() *spool.Spool { return n.spool }

// Uplink is the node's uplink.
func (n *Node) Uplink() *uplink.Uplink { return n.uplink }

// Shutdown stops accepting MQTT, stops forwarding (what is not yet
// acknowledged stays spooled for the next start), closes the spool and
// logs the accounting of every accepted message.
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
	if n.cancel != nil {
		n.cancel()
	}
	// The uplink stops at once (a send in flight is abandoned; its plan is
	// saved and resent at the next start). The spool is closed only after.
	n.wg.Wait()
	// The downlink leaves its group; the wait for that is bounded by ctx,
	// as the group coordinator may hold it for a rebalance.
	done := make(chan struct{})
	go func() { n.downWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n.log.Warn().Msg("downlink did not stop in time; leaving it behind")
		errs = append(errs, fmt.Errorf("edge: downlink: %w", ctx.Err()))
	}
	n.uplink.Close()
	if n.http != nil {
		n.http.Shutdown(ctx)
	}
	for _, s := range n.spool.Stats() {
		n.log.Info().Str("lane", s.Lane.String()).Int64("accepted", s.Accepted).Int64("delivered", s.Delivered).
			Int64("evicted", s.Evicted).Int64("expired", s.Expired).Int64("spooled", s.Spool).Msg("spool accounting")
	}
	errs = append(errs, n.spool.Close())
	return errors.Join(errs...)
}

// nodeCollector exports spool, uplink and downlink state at scrape time.
type nodeCollector struct{ n *Node }

var (
	descSpoolBytes   = prometheus.NewDesc("fluxo_edge_spool_bytes", "Bytes on disk in the spool, per lane.", []string{"lane"}, nil)
	descSpoolMax     = prometheus.NewDesc("fluxo_edge_spool_max_bytes", "The spool's disk budget (--spool-max-bytes).", nil, nil)
	descSpoolRecords = prometheus.NewDesc("fluxo_edge_spool_records", "Records spooled and not yet delivered, per lane.", []string{"lane"}, nil)
	descMessages     = prometheus.NewDesc("fluxo_edge_messages_total", "Accepted messages by outcome: accepted, delivered, evicted (budget), expired (max age).", []string{"lane", "outcome"}, nil)
	descUpBatches    = prometheus.NewDesc("fluxo_edge_uplink_batches_total", "Batches acknowledged by the core.", []string{"lane"}, nil)
	descUpRecords    = prometheus.NewDesc("fluxo_edge_uplink_records_total", "Records acknowledged by the core.", []string{"lane"}, nil)
	descUpRaw        = prometheus.NewDesc("fluxo_edge_uplink_raw_bytes_total", "Record bytes sent, before compression.", []string{"lane"}, nil)
	descUpSent       = prometheus.NewDesc("fluxo_edge_uplink_sent_bytes_total", "Batch bytes sent, after compression.", []string{"lane"}, nil)
	descUpRatio      = prometheus.NewDesc("fluxo_edge_uplink_compression_ratio", "Raw bytes per byte sent since start.", []string{"lane"}, nil)
	descUpUp         = prometheus.NewDesc("fluxo_edge_uplink_connected", "1 when the lane's last send to the core succeeded.", []string{"lane"}, nil)
	descUpLag        = prometheus.NewDesc("fluxo_edge_uplink_lag_records", "Records accepted and not yet acknowledged by the core.", []string{"lane"}, nil)
	descUpRetries    = prometheus.NewDesc("fluxo_edge_uplink_retries_total", "Failed sends, retried.", []string{"lane"}, nil)
	descUpParked     = prometheus.NewDesc("fluxo_edge_uplink_parked", "1 while the lane is parked on a permanent error (reason: the Kafka error code), probing until it is fixed; 0 with reason none otherwise.", []string{"lane", "reason"}, nil)
	descUpLastAck    = prometheus.NewDesc("fluxo_edge_uplink_last_ack_timestamp_seconds", "When the core last acknowledged a batch.", []string{"lane"}, nil)
	descUpLatency    = prometheus.NewDesc("fluxo_edge_uplink_latency_seconds", "Per record, from the edge receiving it to the core acknowledging it (alarms: the device-to-core latency but for the device's own hop).", []string{"lane"}, nil)
	descDown         = prometheus.NewDesc("fluxo_edge_downlink_commands_total", "Commands from the core by outcome: delivered, undeliverable.", []string{"outcome"}, nil)
)

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSpoolBytes, descSpoolMax, descSpoolRecords, descMessages, descUpBatches, descUpRecords,
		descUpRaw, descUpSent, descUpRatio, descUpUp, descUpLag, descUpRetries, descUpParked, descUpLastAck, descUpLatency, descDown} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(descSpoolMax, gauge, float64(c.n.spool.MaxBytes()))
	for _, s := range c.n.spool.Stats() {
		l := s.Lane.String()
		ch <- prometheus.MustNewConstMetric(descSpoolBytes, gauge, float64(s.Bytes), l)
		ch <- prometheus.MustNewConstMetric(descSpoolRecords, gauge, float64(s.Spool), l)
		for _, o := range []struct {
			name string
			v    int64
		}{{"accepted", s.Accepted}, {"delivered", s.Delivered}, {"evicted", s.Evicted}, {"expired", s.Expired}} {
			ch <- prometheus.MustNewConstMetric(descMessages, counter, float64(o.v), l, o.name)
		}
	}
	for _, s := range c.n.uplink.Stats() {
		l := s.Lane.String()
		up := 0.0
		if s.Connected {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUpBatches, counter, float64(s.Batches), l)
		ch <- prometheus.MustNewConstMetric(descUpRecords, counter, float64(s.Records), l)
		ch <- prometheus.MustNewConstMetric(descUpRaw, counter, float64(s.RawBytes), l)
		ch <- prometheus.MustNewConstMetric(descUpSent, counter, float64(s.SentBytes), l)
		ch <- prometheus.MustNewConstMetric(descUpRatio, gauge, s.CompressionRatio(), l)
		ch <- prometheus.MustNewConstMetric(descUpUp, gauge, up, l)
		ch <- prometheus.MustNewConstMetric(descUpLag, gauge, float64(s.Backlog), l)
		ch <- prometheus.MustNewConstMetric(descUpRetries, counter, float64(s.Retries), l)
		if s.Parked {
			ch <- prometheus.MustNewConstMetric(descUpParked, gauge, 1, l, s.ParkReason)
		} else {
			ch <- prometheus.MustNewConstMetric(descUpParked, gauge, 0, l, "none")
		}
		if !s.LastAck.IsZero() {
			ch <- prometheus.MustNewConstMetric(descUpLastAck, gauge, float64(s.LastAck.UnixMilli())/1000, l)
		}
		ch <- prometheus.MustNewConstHistogram(descUpLatency, s.Latency.Count, s.Latency.Sum, s.Latency.Buckets, l)
	}
	if c.n.down != nil {
		d := c.n.down.Stats()
		ch <- prometheus.MustNewConstMetric(descDown, counter, float64(d.Delivered), "delivered")
		ch <- prometheus.MustNewConstMetric(descDown, counter, float64(d.Undeliverable), "undeliverable")
	}
}
