package kafka

import (
	"context"
	"errors"
	"maps"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/broker"
)

// IncrementalAlterConfigs v0-v1.
//
// Behavior:
//   - Topics: SET and DELETE of the configs in broker.TopicConfigs,
//     applied to the topic's logs at once and kept across restarts;
//     APPEND and SUBTRACT (list configs) and unknown configs or values are
//     INVALID_CONFIG; UNKNOWN_TOPIC_OR_PARTITION for an unknown topic.
//   - ValidateOnly checks without changing anything.
//   - Broker configs are static: INVALID_REQUEST.
//   - Authorization (authz.go): ALTER_CONFIGS on the topic, else
//     TOPIC_AUTHORIZATION_FAILED; on the cluster for the broker, else
//     CLUSTER_AUTHORIZATION_FAILED.
func (s *Server) handleIncrementalAlterConfigs(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	b := s.cfg.Broker
	for i := range req.Resources {
		rr := &req.Resources[i]
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		fail := func(code int16, msg string) {
			sr.ErrorCode = code
			sr.ErrorMessage = &msg
		}
		switch {
		case rr.ResourceType == kmsg.ConfigResourceTypeTopic && !s.authorized(cc, kmsg.ACLOperationAlterConfigs, kmsg.ACLResourceTypeTopic, rr.ResourceName):
			fail(kerr.TopicAuthorizationFailed.Code, "not authorized to alter the configs of topic "+rr.ResourceName)
		case rr.ResourceType == kmsg.ConfigResourceTypeBroker && !s.authorizeCluster(cc, kmsg.ACLOperationAlterConfigs):
			fail(kerr.ClusterAuthorizationFailed.Code, "not authorized to alter broker configs")
		}
		if sr.ErrorCode != 0 {
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		if rr.ResourceType != kmsg.ConfigResourceTypeTopic {
			fail(kerr.InvalidRequest.Code, "only topic configs can be altered; broker configs are static")
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		t, ok := b.Topic(rr.ResourceName)
		if !ok {
			fail(kerr.UnknownTopicOrPartition.Code, "unknown topic "+rr.ResourceName)
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		configs := maps.Clone(t.Meta.Configs)
		if configs == nil {
			configs = map[string]string{}
		}
		bad := ""
		for _, c := range rr.Configs {
			switch c.Op {
			case kmsg.IncrementalAlterConfigOpSet:
				if c.Value == nil {
					bad = c.Name + ": SET without a value"
					break
				}
				configs[c.Name] = *c.Value
			case kmsg.IncrementalAlterConfigOpDelete:
				delete(configs, c.Name)
			default:
				bad = c.Name + ": only SET and DELETE are supported"
			}
		}
		switch {
		case bad != "":
			fail(kerr.InvalidConfig.Code, bad)
		case req.ValidateOnly:
			if err := b.ValidateTopicConfigs(configs); err != nil {
				fail(kerr.InvalidConfig.Code, err.Error())
			}
		default:
			err := b.SetTopicConfigs(ctx, rr.ResourceName, configs)
			switch {
			case err == nil:
			case errors.Is(err, broker.ErrInvalidConfig):
				fail(kerr.InvalidConfig.Code, err.Error())
			case errors.Is(err, broker.ErrUnknownTopic):
				fail(kerr.UnknownTopicOrPartition.Code, err.Error())
			default:
				fail(kerr.KafkaStorageError.Code, err.Error())
			}
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}
