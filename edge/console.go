package edge

import (
	_ "embed"
	"math"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"github.com/fluxo-io/fluxo/bridge/uplink"
	"github.com/fluxo-io/fluxo/internal/console"
)

// The edge's console: the page at / and the JSON under it.
//
//	GET /api/edge   ConsoleEdge: lanes (spool, uplink, latency), the spool's budget, MQTT clients
//
// The page also reads the device registry (/api/devices and
// /api/devices/{id}) and posts commands to /api/devices/{id}/commands
// when the node serves them; it shows an empty device table while they
// answer 404.

//go:embed console.html
var consolePage []byte

//go:embed console.js
var consoleScript []byte

// ConsoleEdge is the body of GET /api/edge. Counters are totals since
// start: a rate is the difference of two polls.
type ConsoleEdge struct {
	EdgeID        string        `json:"edge_id"`
	Time          time.Time     `json:"time"`
	Clients       int64         `json:"clients"` // MQTT clients connected
	Core          []string      `json:"core"`    // the brokers the uplink sends to
	SpoolBytes    int64         `json:"spool_bytes"`
	SpoolMaxBytes int64         `json:"spool_max_bytes"` // the budget; 0: none
	Lanes         []ConsoleLane `json:"lanes"`
	UplinkParked  bool          `json:"uplink_parked"` // some lane is parked
	Ready         bool          `json:"ready"`
	ReadyReason   string        `json:"ready_reason,omitempty"`
}

// ConsoleLane is one lane (alarm, telemetry) in GET /api/edge.
type ConsoleLane struct {
	Lane string `json:"lane"`
	// Spool: records accepted, delivered (acknowledged by the core),
	// evicted and expired since start; spooled now and their bytes.
	Accepted     int64 `json:"accepted_total"`
	Delivered    int64 `json:"delivered_total"`
	Evicted      int64 `json:"evicted_total"`
	Expired      int64 `json:"expired_total"`
	SpoolRecords int64 `json:"spool_records"`
	SpoolBytes   int64 `json:"spool_bytes"`
	// Uplink.
	Connected        bool      `json:"connected"`
	Batches          int64     `json:"batches_total"`
	Records          int64     `json:"records_total"`
	RawBytes         int64     `json:"raw_bytes_total"`
	SentBytes        int64     `json:"sent_bytes_total"`
	BatchRecords     float64   `json:"batch_records"` // mean records per batch
	CompressionRatio float64   `json:"compression_ratio"`
	Retries          int64     `json:"retries_total"`
	Backlog          int64     `json:"backlog"` // records not yet acknowledged by the core
	LastAck          time.Time `json:"last_ack,omitzero"`
	Parked           bool      `json:"parked"`
	ParkReason       string    `json:"park_reason,omitempty"`
	ParkError        string    `json:"park_error,omitempty"`
	ParkedSince      time.Time `json:"parked_since,omitzero"`
	// Latency, from the edge receiving a record to the core
	// acknowledging it: percentiles in seconds (upper bounds of the
	// histogram's buckets; -1 before any record), and the mean.
	LatencyP50  float64 `json:"latency_p50_seconds"`
	LatencyP95  float64 `json:"latency_p95_seconds"`
	LatencyP99  float64 `json:"latency_p99_seconds"`
	LatencyMean float64 `json:"latency_mean_seconds"`
}

// consoleRoutes are the console's routes.
func (n *Node) consoleRoutes() map[string]http.Handler {
	return console.Merge(console.Routes(consolePage, consoleScript), map[string]http.Handler{
		"GET /api/edge": console.Handler(func(*http.Request) ConsoleEdge { return n.ConsoleEdge() }),
	})
}

// ConsoleEdge reports the node's state as the console shows it.
func (n *Node) ConsoleEdge() ConsoleEdge {
	fc := n.fwd.Config()
	out := ConsoleEdge{
		EdgeID:        n.edge.cfg.EdgeID,
		Time:          time.Now().UTC(),
		Clients:       atomic.LoadInt64(&n.edge.srv.Info.ClientsConnected),
		Core:          fc.Uplink.Brokers,
		SpoolMaxBytes: n.fwd.Spool().MaxBytes(),
		Lanes:         []ConsoleLane{},
	}
	out.Ready, out.ReadyReason = n.fwd.Ready()
	idx := map[string]int{}
	lane := func(name string) *ConsoleLane {
		i, ok := idx[name]
		if !ok {
			i = len(out.Lanes)
			idx[name] = i
			out.Lanes = append(out.Lanes, ConsoleLane{Lane: name, LatencyP50: -1, LatencyP95: -1, LatencyP99: -1, LatencyMean: -1})
		}
		return &out.Lanes[i] // valid until the next append
	}
	for _, s := range n.fwd.Spool().Stats() {
		l := lane(s.Lane.String())
		l.Accepted, l.Delivered, l.Evicted, l.Expired = s.Accepted, s.Delivered, s.Evicted, s.Expired
		l.SpoolRecords, l.SpoolBytes = s.Spool, s.Bytes
		out.SpoolBytes += s.Bytes
	}
	for _, s := range n.fwd.Uplink().Stats() {
		l := lane(s.Lane.String())
		l.Connected, l.Batches, l.Records = s.Connected, s.Batches, s.Records
		l.RawBytes, l.SentBytes, l.Retries, l.Backlog = s.RawBytes, s.SentBytes, s.Retries, s.Backlog
		l.CompressionRatio = s.CompressionRatio()
		if s.Batches > 0 {
			l.BatchRecords = float64(s.Records) / float64(s.Batches)
		}
		l.LastAck = s.LastAck
		l.Parked, l.ParkReason, l.ParkError, l.ParkedSince = s.Parked, s.ParkReason, s.ParkError, s.ParkedSince
		out.UplinkParked = out.UplinkParked || s.Parked
		l.LatencyP50 = quantile(s.Latency, 0.50)
		l.LatencyP95 = quantile(s.Latency, 0.95)
		l.LatencyP99 = quantile(s.Latency, 0.99)
		if s.Latency.Count > 0 {
			l.LatencyMean = s.Latency.Sum / float64(s.Latency.Count)
		}
	}
	return out
}

// quantile estimates the q-quantile of a latency histogram as the upper
// bound of the bucket that holds it; -1 when it is empty, +Inf (reported
// as the last bound) beyond the buckets.
func quantile(h uplink.Latency, q float64) float64 {
	if h.Count == 0 {
		return -1
	}
	bounds := make([]float64, 0, len(h.Buckets))
	for b := range h.Buckets {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	rank := uint64(math.Ceil(q * float64(h.Count)))
	for _, b := range bounds {
		if h.Buckets[b] >= rank {
			return b
		}
	}
	if len(bounds) == 0 {
		return -1
	}
	return bounds[len(bounds)-1]
}
