package core

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/core/kafka"
)

// MemberStatus is one broker as `GET /cluster/members` reports it.
type MemberStatus struct {
	ID            int32  `json:"id"`
	Status        string `json:"status"`    // Serf: alive, leaving, left, failed; "unknown" if Serf does not know it
	RaftRole      string `json:"raft_role"` // leader, voter, nonvoter, none
	Fenced        bool   `json:"fenced"`    // the controller's view
	KafkaAddr     string `json:"kafka_addr"`
	SerfAddr      string `json:"serf_addr"`
	RaftAddr      string `json:"raft_addr"`
	PartitionsLed int    `json:"partitions_led"`
}

// ClusterStatus is the body of `GET /cluster/members`.
type ClusterStatus struct {
	Controller int32          `json:"controller"` // -1: none elected
	Members    []MemberStatus `json:"members"`
}

// clusterRoutes are the cluster's HTTP endpoints on the ops listener:
//
//	GET  /cluster/members        ClusterStatus as JSON
//
// Removing a broker is a Kafka request (UnregisterBroker, see
// unregisterBroker), so that it goes through the Kafka listener's
// authentication and ACLs.
func (n *Node) clusterRoutes() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /cluster/members": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(n.ClusterStatus())
		}),
	}
}

// unregisterRemoveTimeout bounds one removal.
const unregisterRemoveTimeout = 30 * time.Second

// unregisterBroker serves UnregisterBroker: it removes broker id for good
// (Cluster.Remove), if the cluster knows it; an id nobody knows is the
// operator's typo (kafka.ErrBrokerNotRegistered), and this broker cannot
// remove itself (kafka.ErrUnregisterRefused).
func unregisterBroker(ctx context.Context, cl *cluster.Cluster, id int32) error {
	if !knows(cl, id) {
		return fmt.Errorf("core: broker %d: %w", id, kafka.ErrBrokerNotRegistered)
	}
	if id == cl.NodeID() {
		return fmt.Errorf("core: broker %d is this broker: stop it and send the request to another one: %w", id, kafka.ErrUnregisterRefused)
	}
	ctx, cancel := context.WithTimeout(ctx, unregisterRemoveTimeout)
	defer cancel()
	return cl.Remove(ctx, id)
}

// knows reports whether the metadata or Serf knows broker id. Removal is
// idempotent in the cluster (a removal cut short can be repeated); here an
// id nobody knows is the operator's typo.
func knows(cl *cluster.Cluster, id int32) bool {
	if _, ok := cl.State().Brokers[id]; ok {
		return true
	}
	for _, m := range cl.Members() {
		if m.ID == id {
			return true
		}
	}
	return false
}

// ClusterStatus reports every broker: Serf's status, Raft role, the
// controller's fencing and the partitions it leads.
func (n *Node) ClusterStatus() ClusterStatus {
	st := n.cluster.State()
	out := ClusterStatus{Controller: -1}
	if id, ok := n.cluster.ControllerID(); ok {
		out.Controller = id
	}
	byID := map[int32]*MemberStatus{}
	for id, b := range st.Brokers {
		byID[id] = &MemberStatus{ID: id, Status: "unknown", RaftRole: "none", Fenced: b.Fenced, KafkaAddr: b.KafkaAddr, SerfAddr: b.SerfAddr, RaftAddr: b.RaftAddr}
	}
	for _, m := range n.cluster.Members() {
		ms := byID[m.ID]
		if ms == nil {
			ms = &MemberStatus{ID: m.ID, Fenced: true, KafkaAddr: m.KafkaAddr, SerfAddr: m.SerfAddr, RaftAddr: m.RaftAddr}
			byID[m.ID] = ms
		}
		ms.Status, ms.RaftRole = m.Status, m.RaftRole
	}
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			if ms := byID[p.Leader]; ms != nil {
				ms.PartitionsLed++
			}
		}
	}
	for _, ms := range byID {
		out.Members = append(out.Members, *ms)
	}
	sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].ID < out.Members[j].ID })
	return out
}
