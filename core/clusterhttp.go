package core

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"time"
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
//	POST /cluster/remove?node=N  removes broker N for good (it must be
//	                             stopped); 200 when done
func (n *Node) clusterRoutes() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /cluster/members": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(n.ClusterStatus())
		}),
		"POST /cluster/remove": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, err := strconv.ParseInt(r.URL.Query().Get("node"), 10, 32)
			if err != nil {
				http.Error(w, "node: want a broker id", http.StatusBadRequest)
				return
			}
			if !n.knows(int32(id)) {
				http.Error(w, "no broker "+strconv.Itoa(int(id))+" in this cluster", http.StatusNotFound)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
			defer cancel()
			if err := n.cluster.Remove(ctx, int32(id)); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Write([]byte("removed\n"))
		}),
	}
}

// knows reports whether the metadata or Serf knows broker id. Removal is
// idempotent in the cluster (a removal cut short can be repeated); here an
// id nobody knows is the operator's typo.
func (n *Node) knows(id int32) bool {
	if _, ok := n.cluster.State().Brokers[id]; ok {
		return true
	}
	for _, m := range n.cluster.Members() {
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
