package kafka

import (
	"context"
	"net"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
	"github.com/fluxo-io/fluxo/core/broker"
	"github.com/fluxo-io/fluxo/core/cluster"
)

// Metadata v0-v12 (v0 for clients such as kafka-python that probe a
// broker's version with it, as Kafka 4.0 keeps it for: KAFKA-18648).
//
// Behavior:
//   - Brokers: every registered broker the controller has not fenced, at
//     its address on the listener the client connected to (this broker
//     always, at the listener's Advertised or bound address; others as
//     Config.BrokerEndpoint gives them, left out when it has none, or at
//     their KafkaAddr without it); the controller is the Raft leader.
//   - Topics: all when the request names none (a null list; in v0, which
//     has no null, an empty one); otherwise the named ones, auto-created
//     when the request allows it (always before v4) and the broker
//     auto-creates topics.
//   - Each partition as the cluster metadata has it: leader, leader epoch,
//     replicas, ISR, and the fenced replicas as offline;
//     LEADER_NOT_AVAILABLE while no replica can lead. A broker that has
//     stepped down for lack of contact with the controller
//     (broker.Config.LeaderLease) reports the partitions it leads as
//     leaderless (leader -1, LEADER_NOT_AVAILABLE): the majority may
//     have moved them, so the client asks another broker.
//   - Authorization (authz.go): only the topics the principal may
//     DESCRIBE are listed; a named one it may not gets
//     TOPIC_AUTHORIZATION_FAILED, as does one to auto-create without
//     CREATE on the cluster or the topic. The authorized operations of
//     the cluster (v8-v10) and topics (v8+) are filled when asked.
func (s *Server) handleMetadata(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	b := s.cfg.Broker
	rb := kmsg.NewMetadataResponseBroker()
	rb.NodeID, rb.Host, rb.Port = b.NodeID(), cc.l.host, cc.l.port
	resp.Brokers = append(resp.Brokers, rb)
	st := b.State()
	fenced := map[int32]bool{}
	for _, id := range sortedBrokers(st) {
		bi := st.Brokers[id]
		if bi.Fenced {
			fenced[id] = true
			continue
		}
		if id == b.NodeID() {
			continue
		}
		addr := bi.KafkaAddr
		if s.cfg.BrokerEndpoint != nil {
			a, ok := s.cfg.BrokerEndpoint(id, cc.l.Name)
			if !ok {
				continue
			}
			addr = a
		}
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			continue
		}
		port, _ := strconv.Atoi(p)
		rb := kmsg.NewMetadataResponseBroker()
		rb.NodeID, rb.Host, rb.Port = id, h, int32(port)
		resp.Brokers = append(resp.Brokers, rb)
	}
	resp.ControllerID = b.NodeID()
	if s.cfg.ControllerID != nil {
		if id, ok := s.cfg.ControllerID(); ok {
			resp.ControllerID = id
		} else {
			resp.ControllerID = -1
		}
	}
	if s.cfg.ClusterID != "" {
		id := s.cfg.ClusterID
		resp.ClusterID = &id
	}
	if req.Version >= 8 && req.Version <= 10 && req.IncludeClusterAuthorizedOperations {
		resp.AuthorizedOperations = 0
		if s.authorizeCluster(cc, kmsg.ACLOperationDescribe) {
			resp.AuthorizedOperations = s.authorizedOperations(cc, kmsg.ACLResourceTypeCluster, acl.ClusterName)
		}
	}
	var topics []*broker.Topic
	if req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0) {
		for _, t := range b.Topics() {
			if s.allows(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, t.Meta.Name) {
				topics = append(topics, t)
			}
		}
	}
	for _, rt := range req.Topics {
		if rt.Topic == nil {
			continue
		}
		name := *rt.Topic
		refuse := func() {
			st := kmsg.NewMetadataResponseTopic()
			st.Topic = &name
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, st)
		}
		if !s.authorized(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, name) {
			refuse()
			continue
		}
		var t *broker.Topic
		var err error
		autoCreate := req.AllowAutoTopicCreation || req.Version < 4
		if tt, ok := b.Topic(name); ok {
			t = tt
		} else if autoCreate && b.AutoCreate() && !s.mayCreateTopic(cc, name) {
			refuse()
			continue
		} else if autoCreate {
			t, err = b.EnsureTopic(ctx, name)
		} else {
			err = broker.ErrUnknownTopic
		}
		if err != nil {
			st := kmsg.NewMetadataResponseTopic()
			st.Topic = &name
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
			if broker.ValidateTopicName(name) != nil {
				st.ErrorCode = kerr.InvalidTopicException.Code
			}
			resp.Topics = append(resp.Topics, st)
			continue
		}
		topics = append(topics, t)
	}
	stale := b.QuorumLost()
	for _, t := range topics {
		st := kmsg.NewMetadataResponseTopic()
		name := t.Meta.Name
		st.Topic = &name
		st.TopicID = t.Meta.ID
		st.IsInternal = broker.IsInternalTopic(name)
		if req.Version >= 8 && req.IncludeTopicAuthorizedOperations {
			st.AuthorizedOperations = s.authorizedOperations(cc, kmsg.ACLResourceTypeTopic, name)
		}
		for i, ps := range t.State.Partitions {
			sp := kmsg.NewMetadataResponseTopicPartition()
			sp.Partition = int32(i)
			sp.Leader = ps.Leader
			sp.LeaderEpoch = ps.LeaderEpoch
			sp.Replicas = ps.Replicas
			sp.ISR = ps.ISR
			for _, r := range ps.Replicas {
				if fenced[r] {
					sp.OfflineReplicas = append(sp.OfflineReplicas, r)
				}
			}
			if ps.Leader == b.NodeID() && stale {
				// Cut off from the controller: the majority may have
				// moved it; send the client to another broker.
				sp.Leader = cluster.NoLeader
			}
			if sp.Leader < 0 {
				sp.ErrorCode = kerr.LeaderNotAvailable.Code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// sortedBrokers returns the registered broker ids, ascending.
func sortedBrokers(st *cluster.State) []int32 {
	ids := make([]int32, 0, len(st.Brokers))
	for id := range st.Brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// leaderPartition returns the partition if this broker leads it, else the
// Kafka error code a client gets: UNKNOWN_TOPIC_OR_PARTITION when the
// metadata has no such partition, NOT_LEADER_OR_FOLLOWER when another
// broker leads it (or none does right now).
func (s *Server) leaderPartition(topic string, partition int32) (*broker.Partition, int16) {
	t, ok := s.cfg.Broker.Topic(topic)
	if !ok || partition < 0 || int(partition) >= len(t.Partitions) {
		return nil, kerr.UnknownTopicOrPartition.Code
	}
	p := t.Partitions[partition]
	if p == nil {
		return nil, kerr.NotLeaderForPartition.Code
	}
	if leads, _ := p.IsLeader(); !leads || s.cfg.Broker.QuorumLost() {
		return nil, kerr.NotLeaderForPartition.Code
	}
	return p, 0
}
