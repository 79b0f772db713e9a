package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
	"github.com/fluxo-io/fluxo/core/broker"
)

// CreateTopics v2-v7.
//
// Behavior:
//   - Partitions -1: the broker default. Replication factor -1: the
//     broker default (min(3, live brokers) unless set); more than the
//     live brokers is INVALID_REPLICATION_FACTOR. The controller places
//     the replicas; manual replica assignments are INVALID_REQUEST.
//   - Configs: the topic configs in broker.TopicConfigs; anything else,
//     or a bad value, is INVALID_CONFIG.
//   - TOPIC_ALREADY_EXISTS, INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS
//     (also above the broker's MaxPartitionsPerTopic), POLICY_VIOLATION
//     when a broker would host more than MaxPartitionsPerBroker replicas.
//   - ValidateOnly makes every check without creating.
//   - Authorization (authz.go): CREATE on the cluster or on the topic,
//     else TOPIC_AUTHORIZATION_FAILED, validate-only requests included.
func (s *Server) handleCreateTopics(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	b := s.cfg.Broker
	clusterCreate := s.allows(cc, kmsg.ACLOperationCreate, kmsg.ACLResourceTypeCluster, acl.ClusterName)
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		fail := func(code int16, msg string) {
			st.ErrorCode = code
			st.ErrorMessage = &msg
		}
		configs := map[string]string{}
		for _, c := range rt.Configs {
			if c.Value != nil {
				configs[c.Name] = *c.Value
			}
		}
		switch {
		case !clusterCreate && !s.authorized(cc, kmsg.ACLOperationCreate, kmsg.ACLResourceTypeTopic, rt.Topic):
			fail(kerr.TopicAuthorizationFailed.Code, "not authorized to create topic "+rt.Topic)
		case broker.ValidateTopicName(rt.Topic) != nil:
			fail(kerr.InvalidTopicException.Code, broker.ValidateTopicName(rt.Topic).Error())
		case rt.NumPartitions == 0 || rt.NumPartitions < -1:
			fail(kerr.InvalidPartitions.Code, "partitions must be positive or -1")
		case rt.ReplicationFactor == 0 || rt.ReplicationFactor < -1:
			fail(kerr.InvalidReplicationFactor.Code, "replication factor must be positive or -1")
		case len(rt.ReplicaAssignment) > 0:
			fail(kerr.InvalidRequest.Code, "manual replica assignment is not supported")
		default:
			if _, ok := b.Topic(rt.Topic); ok {
				fail(kerr.TopicAlreadyExists.Code, "topic "+rt.Topic+" already exists")
				break
			}
			if req.ValidateOnly {
				if err := b.ValidateNewTopic(rt.Topic, rt.NumPartitions, rt.ReplicationFactor, configs); err != nil {
					fail(topicChangeError(err), err.Error())
				}
				break
			}
			t, err := b.CreateTopic(ctx, rt.Topic, rt.NumPartitions, rt.ReplicationFactor, configs)
			switch {
			case errors.Is(err, broker.ErrTopicExists):
				fail(kerr.TopicAlreadyExists.Code, "topic "+rt.Topic+" already exists")
			case err != nil:
				fail(topicChangeError(err), err.Error())
			default:
				st.TopicID = t.Meta.ID
				st.NumPartitions = t.Meta.Partitions
				st.ReplicationFactor = int16(len(t.State.Partitions[0].Replicas))
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// topicChangeError is the Kafka error code for an error of the broker's
// topic creation and growth.
func topicChangeError(err error) int16 {
	switch {
	case errors.Is(err, broker.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, broker.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, broker.ErrInvalidPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, broker.ErrInvalidReplication):
		return kerr.InvalidReplicationFactor.Code
	case errors.Is(err, broker.ErrInvalidConfig):
		return kerr.InvalidConfig.Code
	case errors.Is(err, broker.ErrPolicyViolation):
		return kerr.PolicyViolation.Code
	}
	return kerr.KafkaStorageError.Code
}
