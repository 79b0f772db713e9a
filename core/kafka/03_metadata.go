package kafka

import (
	"context"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/broker"
)

// Metadata v0-v12 (v0 for clients such as kafka-python that probe a
// broker's version with it, as Kafka 4.0 keeps it for: KAFKA-18648).
//
// Behavior:
//   - Lists this broker, at Config.Advertised (or its listener address),
//     as the only broker and the controller.
//   - Topics: all when the request names none (a null list; in v0, which
//     has no null, an empty one); otherwise the
//     named ones, auto-created when the request allows it (always before
//     v4) and the broker auto-creates topics.
//   - Every partition is led by this broker with itself as the only
//     replica and in-sync replica, at the partition's leader epoch.
//   - Authorized operations are not computed (left at "not requested").
func (s *Server) handleMetadata(_ context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	b := s.cfg.Broker
	host, port := s.advertised()
	rb := kmsg.NewMetadataResponseBroker()
	rb.NodeID, rb.Host, rb.Port = b.NodeID(), host, port
	resp.Brokers = append(resp.Brokers, rb)
	resp.ControllerID = b.NodeID()
	if s.cfg.ClusterID != "" {
		id := s.cfg.ClusterID
		resp.ClusterID = &id
	}
	var topics []*broker.Topic
	if req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0) {
		topics = b.Topics()
	}
	for _, rt := range req.Topics {
		if rt.Topic == nil {
			continue
		}
		name := *rt.Topic
		var t *broker.Topic
		var err error
		if req.AllowAutoTopicCreation || req.Version < 4 {
			t, err = b.EnsureTopic(name)
		} else if tt, ok := b.Topic(name); ok {
			t = tt
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
	for _, t := range topics {
		st := kmsg.NewMetadataResponseTopic()
		name := t.Meta.Name
		st.Topic = &name
		st.TopicID = t.Meta.ID
		for _, p := range t.Partitions {
			sp := kmsg.NewMetadataResponseTopicPartition()
			sp.Partition = p.Index
			sp.Leader = b.NodeID()
			sp.LeaderEpoch = p.LeaderEpoch()
			sp.Replicas = []int32{b.NodeID()}
			sp.ISR = []int32{b.NodeID()}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// advertised is the host and port clients are told to connect to.
func (s *Server) advertised() (string, int32) {
	addr := s.cfg.Advertised
	if addr == "" {
		if a := s.Addr(); a != nil {
			addr = a.String()
		}
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 9092
	}
	port, _ := strconv.Atoi(portStr)
	return host, int32(port)
}
