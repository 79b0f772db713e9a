package core

import (
	_ "embed"
	"net/http"
	"sort"

	"github.com/fluxo-io/fluxo/internal/console"
)

// The core's console: the page at / and the JSON under it.
//
//	GET /api/cluster   ConsoleCluster: this broker, the controller, every broker (as /cluster/members)
//	GET /api/topics    []ConsoleTopic: partitions with leader, replicas, ISR, under-replication, offsets and disk
//	GET /api/groups    []ConsoleGroup: the groups this broker coordinates, with lag per partition
//	GET /api/requests  map of Kafka API name to requests served since start (rates are the difference of two polls)
//
// Offsets, disk and lag come from this broker's own logs: a partition this
// broker does not host reports -1 for them.

//go:embed console.html
var consolePage []byte

//go:embed console.js
var consoleScript []byte

// ConsoleCluster is the body of GET /api/cluster.
type ConsoleCluster struct {
	Node int32 `json:"node"` // the broker answering
	ClusterStatus
}

// ConsolePartition is one partition in GET /api/topics.
type ConsolePartition struct {
	Partition       int32   `json:"partition"`
	Leader          int32   `json:"leader"` // -1: none
	LeaderEpoch     int32   `json:"leader_epoch"`
	Replicas        []int32 `json:"replicas"`
	ISR             []int32 `json:"isr"`
	UnderReplicated bool    `json:"under_replicated"` // fewer in sync than replicas, or no leader
	Local           bool    `json:"local"`            // this broker hosts a replica
	LogStartOffset  int64   `json:"log_start_offset"` // -1 unless local
	HighWatermark   int64   `json:"high_watermark"`   // -1 unless local
	DiskBytes       int64   `json:"disk_bytes"`       // -1 unless local
	BytesInTotal    int64   `json:"bytes_in_total"`   // appended on this broker, -1 unless local
	RecordsOutTotal int64   `json:"records_out_total"`
}

// ConsoleTopic is one topic in GET /api/topics.
type ConsoleTopic struct {
	Name            string             `json:"name"`
	Partitions      []ConsolePartition `json:"partitions"`
	UnderReplicated int                `json:"under_replicated"` // partitions
}

// ConsoleGroupPartition is a group's position in one partition.
type ConsoleGroupPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"`
	End       int64  `json:"end"` // the high watermark, -1 if this broker does not host the partition
	Lag       int64  `json:"lag"` // end - committed, -1 if unknown
}

// ConsoleGroup is one consumer group in GET /api/groups.
type ConsoleGroup struct {
	Group      string                  `json:"group"`
	Lag        int64                   `json:"lag"` // the sum of the known lags
	Partitions []ConsoleGroupPartition `json:"partitions"`
}

// consoleRoutes are the console's routes.
func (n *Node) consoleRoutes() map[string]http.Handler {
	return console.Merge(console.Routes(consolePage, consoleScript), map[string]http.Handler{
		"GET /api/cluster": console.Handler(func(*http.Request) ConsoleCluster {
			return ConsoleCluster{Node: n.cfg.NodeID, ClusterStatus: n.ClusterStatus()}
		}),
		"GET /api/topics":   console.Handler(func(*http.Request) []ConsoleTopic { return n.ConsoleTopics() }),
		"GET /api/groups":   console.Handler(func(*http.Request) []ConsoleGroup { return n.ConsoleGroups() }),
		"GET /api/requests": console.Handler(func(*http.Request) map[string]float64 { return n.requestTotals() }),
	})
}

// ConsoleTopics reports every topic of the metadata, internal ones
// included, sorted by name.
func (n *Node) ConsoleTopics() []ConsoleTopic {
	st := n.cluster.State()
	out := make([]ConsoleTopic, 0, len(st.Topics))
	for name, t := range st.Topics {
		ct := ConsoleTopic{Name: name, Partitions: make([]ConsolePartition, 0, len(t.Partitions))}
		for i, ps := range t.Partitions {
			cp := ConsolePartition{
				Partition: int32(i), Leader: ps.Leader, LeaderEpoch: ps.LeaderEpoch,
				Replicas: ps.Replicas, ISR: ps.ISR,
				UnderReplicated: len(ps.ISR) < len(ps.Replicas) || ps.Leader < 0,
				LogStartOffset:  -1, HighWatermark: -1, DiskBytes: -1, BytesInTotal: -1, RecordsOutTotal: -1,
			}
			if cp.Replicas == nil {
				cp.Replicas = []int32{}
			}
			if cp.ISR == nil {
				cp.ISR = []int32{}
			}
			if p, ok := n.broker.Partition(name, int32(i)); ok {
				l := p.Log()
				c := p.Counters()
				cp.Local = true
				cp.LogStartOffset, cp.HighWatermark, cp.DiskBytes = l.LogStartOffset(), l.HighWatermark(), l.Size()
				cp.BytesInTotal, cp.RecordsOutTotal = c.BytesIn, c.RecordsOut
			}
			if cp.UnderReplicated {
				ct.UnderReplicated++
			}
			ct.Partitions = append(ct.Partitions, cp)
		}
		out = append(out, ct)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ConsoleGroups reports the groups this broker coordinates with their
// committed offsets and lag, sorted by group.
func (n *Node) ConsoleGroups() []ConsoleGroup {
	out := []ConsoleGroup{}
	for _, c := range n.groups.Local() {
		for _, g := range c.Groups() {
			cg := ConsoleGroup{Group: g, Partitions: []ConsoleGroupPartition{}}
			for topic, ps := range c.Committed(g) {
				for p, off := range ps {
					gp := ConsoleGroupPartition{Topic: topic, Partition: p, Committed: off, End: -1, Lag: -1}
					if part, ok := n.broker.Partition(topic, p); ok {
						gp.End = part.HighWatermark()
						gp.Lag = max(0, gp.End-off)
						cg.Lag += gp.Lag
					}
					cg.Partitions = append(cg.Partitions, gp)
				}
			}
			sort.Slice(cg.Partitions, func(i, j int) bool {
				a, b := cg.Partitions[i], cg.Partitions[j]
				return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
			})
			out = append(out, cg)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}

// requestTotals reads fluxo_kafka_requests_total by API from the node's
// registry.
func (n *Node) requestTotals() map[string]float64 {
	out := map[string]float64{}
	mfs, err := n.reg.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != "fluxo_kafka_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "api" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}
