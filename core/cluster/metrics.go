package cluster

import (
	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics is the Cluster's prometheus collector: gauges read at scrape
// time from raft, serf and the State, and the leader elections counter
// the FSM feeds. The names are listed in the package doc.
type metrics struct {
	c         *Cluster
	elections prometheus.Counter

	raftState    *prometheus.Desc
	isController *prometheus.Desc
	members      *prometheus.Desc
	brokers      *prometheus.Desc
}

func newMetrics(c *Cluster) *metrics {
	return &metrics{
		c: c,
		elections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fluxo_cluster_leader_elections_total",
			Help: "Partition leader changes applied by this node's state machine.",
		}),
		raftState: prometheus.NewDesc("fluxo_cluster_raft_state",
			"This node's Raft state: 1 for the current one.", []string{"state"}, nil),
		isController: prometheus.NewDesc("fluxo_cluster_is_controller",
			"1 if this node is the Raft leader (the controller).", nil, nil),
		members: prometheus.NewDesc("fluxo_cluster_members",
			"Members Serf knows, by status.", []string{"status"}, nil),
		brokers: prometheus.NewDesc("fluxo_cluster_brokers",
			"Registered brokers in this node's State, fenced or live.", []string{"state"}, nil),
	}
}

func (m *metrics) leaderChanges(n int) { m.elections.Add(float64(n)) }

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.elections.Describe(ch)
	m.c.rejected.Describe(ch)
	m.c.keyErrors.Describe(ch)
	ch <- m.raftState
	ch <- m.isController
	ch <- m.members
	ch <- m.brokers
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.elections.Collect(ch)
	m.c.rejected.Collect(ch)
	m.c.keyErrors.Collect(ch)
	state := m.c.raft.State()
	for _, s := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		ch <- prometheus.MustNewConstMetric(m.raftState, prometheus.GaugeValue, b2f(s == state), raftStateName(s))
	}
	ch <- prometheus.MustNewConstMetric(m.isController, prometheus.GaugeValue, b2f(state == raft.Leader))
	count := map[string]int{}
	for _, mem := range m.c.serf.Members() {
		if _, ok := parseMember(mem); ok {
			count[mem.Status.String()]++
		}
	}
	for _, s := range []serf.MemberStatus{serf.StatusAlive, serf.StatusLeaving, serf.StatusLeft, serf.StatusFailed} {
		ch <- prometheus.MustNewConstMetric(m.members, prometheus.GaugeValue, float64(count[s.String()]), s.String())
	}
	var fenced, live int
	for _, b := range m.c.State().Brokers {
		if b.Fenced {
			fenced++
		} else {
			live++
		}
	}
	ch <- prometheus.MustNewConstMetric(m.brokers, prometheus.GaugeValue, float64(fenced), "fenced")
	ch <- prometheus.MustNewConstMetric(m.brokers, prometheus.GaugeValue, float64(live), "live")
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
