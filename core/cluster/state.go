package cluster

import (
	"errors"
	"slices"
	"strconv"

	"github.com/fluxo-io/fluxo/core/acl"
)

// State is the cluster metadata as of one Raft index: the brokers, the
// topics with their partitions' replicas, leader, leader epoch and ISR, and
// the producer id allocator. Every node applies the same commands in the
// same order, so every node's State at an index is the same.
//
// A State handed out by Cluster.State is never modified afterwards: treat
// it as read-only and do not keep pointers into it across a change you
// make yourself.
type State struct {
	// Index is the Raft index of the last command applied that changed
	// the state (a command refused by its rules changes nothing, Index
	// included).
	Index uint64 `json:"index"`
	// Brokers are the registered brokers by node id. A failed broker stays
	// registered (fenced) until `fluxo cluster remove` removes it.
	Brokers map[int32]BrokerInfo `json:"brokers"`
	// Topics by name.
	Topics map[string]*TopicState `json:"topics"`
	// NextProducerID is the first producer id not handed out yet.
	NextProducerID int64 `json:"next_producer_id"`
	// Users are the SCRAM users: user name → mechanism ("SCRAM-SHA-256",
	// "SCRAM-SHA-512") → credential. Managed with Kafka's
	// AlterUserScramCredentials; PLAIN checks passwords against them too.
	Users map[string]map[string]ScramCredential `json:"users,omitempty"`
	// ACLs are the cluster's access control bindings (Kafka's CreateAcls),
	// checked by the authorizer on every request when it is on.
	ACLs []acl.Binding `json:"acls,omitempty"`
}

// ScramCredential is one user's credential for one SCRAM mechanism, as
// RFC 5802 has a server keep it: never the password itself.
type ScramCredential struct {
	Salt       []byte `json:"salt"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
	Iterations int    `json:"iterations"`
}

// BrokerInfo is a registered broker.
type BrokerInfo struct {
	ID        int32  `json:"id"`
	KafkaAddr string `json:"kafka_addr"` // advertised host:port on the inter-broker listener
	// Listeners are the advertised host:port of each Kafka listener by
	// name; empty for a broker with one listener (KafkaAddr serves all).
	Listeners map[string]string `json:"listeners,omitempty"`
	RaftAddr  string            `json:"raft_addr"`
	SerfAddr  string            `json:"serf_addr"`
	// Fenced is true while the controller considers the broker failed or
	// gone: it leads nothing and is out of every ISR (except where it was
	// the last member).
	Fenced bool `json:"fenced"`
	// Unclean is true when the broker's current run followed a crash
	// rather than a clean shutdown: its logs may have lost an unsynced
	// tail, so it must not lead a partition another replica can lead with
	// every acknowledged record (KIP-966).
	Unclean bool `json:"unclean,omitempty"`
}

// TopicState is a topic and its partitions.
type TopicState struct {
	Name       string            `json:"name"`
	ID         [16]byte          `json:"id"`
	Configs    map[string]string `json:"configs,omitempty"`
	Partitions []PartitionState  `json:"partitions"`
}

// PartitionState is one partition's replica assignment and leadership.
type PartitionState struct {
	// Replicas in preference order: the first is the preferred leader.
	Replicas []int32 `json:"replicas"`
	// ISR, the in-sync replicas: the leader and the followers caught up
	// with it. A record is committed once every ISR member has it.
	ISR []int32 `json:"isr"`
	// Leader is the leading replica, or NoLeader.
	Leader int32 `json:"leader"`
	// LeaderEpoch goes up by one at every leader change.
	LeaderEpoch int32 `json:"leader_epoch"`
	// PartitionEpoch goes up by one at every change of this partition's
	// state (leader, ISR or replicas); AlterPartition compares it so a
	// stale ISR change is refused.
	PartitionEpoch int32 `json:"partition_epoch"`
	// ELR, the eligible leader replicas (KIP-966): replicas fenced out of
	// an ISR that was then below min.insync.replicas. They had every
	// record below the high watermark, and acks=all commits nothing more
	// until the ISR is whole again, so they may lead when no ISR member
	// can. Empty whenever the ISR reaches min.insync.replicas.
	ELR []int32 `json:"elr,omitempty"`
}

// MinInsync is the topic's min.insync.replicas: its config, else 2 when
// its partitions have three replicas or more, else 1.
func MinInsync(ts *TopicState) int {
	if v, ok := ts.Configs["min.insync.replicas"]; ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	if len(ts.Partitions) > 0 && len(ts.Partitions[0].Replicas) >= 3 {
		return 2
	}
	return 1
}

// NoLeader is PartitionState.Leader when no replica can lead.
const NoLeader int32 = -1

// Partition returns partition p of topic, if both exist.
func (s *State) Partition(topic string, p int32) (PartitionState, bool) {
	t := s.Topics[topic]
	if t == nil || p < 0 || int(p) >= len(t.Partitions) {
		return PartitionState{}, false
	}
	return t.Partitions[p], true
}

// Live returns the ids of the unfenced brokers, ascending.
func (s *State) Live() []int32 {
	var ids []int32
	for id, b := range s.Brokers {
		if !b.Fenced {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// ScramCredential returns user's credential for mechanism
// ("SCRAM-SHA-256" or "SCRAM-SHA-512"), if it has one.
func (s *State) ScramCredential(user, mechanism string) (ScramCredential, bool) {
	c, ok := s.Users[user][mechanism]
	return c, ok
}

// InISR reports whether id is in the partition's ISR.
func (p PartitionState) InISR(id int32) bool { return slices.Contains(p.ISR, id) }

// Errors of commands, as Apply returns them (also across a forward to the
// controller).
var (
	ErrTopicExists       = errors.New("cluster: topic exists")
	ErrUnknownTopic      = errors.New("cluster: unknown topic or partition")
	ErrReplicationFactor = errors.New("cluster: invalid replication factor")
	ErrInvalidPartitions = errors.New("cluster: invalid partition count")
	ErrFencedLeaderEpoch = errors.New("cluster: stale leader epoch")
	ErrInvalidUpdate     = errors.New("cluster: stale partition epoch or invalid ISR")
	ErrNotLeader         = errors.New("cluster: requester does not lead the partition")
	ErrUnknownBroker     = errors.New("cluster: unknown broker")
	ErrNoController      = errors.New("cluster: no controller")
	ErrUnknownOutcome    = errors.New("cluster: outcome unknown (leadership lost while applying)")
	// ErrUnknownCredential: the user has no credential for the mechanism.
	ErrUnknownCredential = errors.New("cluster: unknown scram credential")
	// ErrUnsupportedMechanism: not SCRAM-SHA-256 or SCRAM-SHA-512.
	ErrUnsupportedMechanism = errors.New("cluster: unsupported scram mechanism")
	// ErrInvalidCredential: iterations out of bounds, or an empty salt or
	// key.
	ErrInvalidCredential = errors.New("cluster: unacceptable scram credential")
)

// Endpoint returns the address clients on listener reach broker b at: its
// address on that listener, or KafkaAddr when b registered no listener
// names (a broker with a single listener).
func (b BrokerInfo) Endpoint(listener string) (string, bool) {
	if len(b.Listeners) == 0 {
		return b.KafkaAddr, b.KafkaAddr != ""
	}
	addr, ok := b.Listeners[listener]
	return addr, ok
}
