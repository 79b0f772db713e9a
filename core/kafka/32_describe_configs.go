package kafka

import (
	"context"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeConfigs v0-v4.
//
// Behavior:
//   - Topics: every topic config the broker understands
//     (broker.TopicConfigs), with the topic's value (source
//     DYNAMIC_TOPIC_CONFIG) or the broker default (DEFAULT_CONFIG);
//     ConfigNames narrows the list. UNKNOWN_TOPIC_OR_PARTITION for an
//     unknown topic.
//   - The broker (resource name = its node id, or empty): its main settings,
//     read-only (STATIC_BROKER_CONFIG).
//   - Other resource types: INVALID_REQUEST.
//   - No synonyms or documentation.
//   - Authorization (authz.go): DESCRIBE_CONFIGS on the topic, else
//     TOPIC_AUTHORIZATION_FAILED; on the cluster for the broker, else
//     CLUSTER_AUTHORIZATION_FAILED.
func (s *Server) handleDescribeConfigs(_ context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	b := s.cfg.Broker
	for i := range req.Resources {
		rr := &req.Resources[i]
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		want := func(name string) bool { return rr.ConfigNames == nil || slices.Contains(rr.ConfigNames, name) }
		add := func(name, value string, set, readOnly bool, src kmsg.ConfigSource, typ kmsg.ConfigType) {
			if !want(name) {
				return
			}
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			v := value
			c.Name, c.Value, c.ReadOnly, c.IsDefault, c.Source, c.ConfigType = name, &v, readOnly, !set, src, typ
			sr.Configs = append(sr.Configs, c)
		}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			if !s.authorized(cc, kmsg.ACLOperationDescribeConfigs, kmsg.ACLResourceTypeTopic, rr.ResourceName) {
				sr.ErrorCode = kerr.TopicAuthorizationFailed.Code
				break
			}
			vals, err := b.DescribeTopicConfigs(rr.ResourceName)
			if err != nil {
				sr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			for _, v := range vals {
				src := kmsg.ConfigSourceDefaultConfig
				if v.Set {
					src = kmsg.ConfigSourceDynamicTopicConfig
				}
				typ := kmsg.ConfigTypeLong
				switch v.Name {
				case "cleanup.policy":
					typ = kmsg.ConfigTypeList
				case "max.message.bytes":
					typ = kmsg.ConfigTypeInt
				case "min.cleanable.dirty.ratio":
					typ = kmsg.ConfigTypeDouble
				case "message.timestamp.type":
					typ = kmsg.ConfigTypeString
				}
				add(v.Name, v.Value, v.Set, false, src, typ)
			}
		case kmsg.ConfigResourceTypeBroker:
			if !s.authorizeCluster(cc, kmsg.ACLOperationDescribeConfigs) {
				sr.ErrorCode = kerr.ClusterAuthorizationFailed.Code
				break
			}
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(b.NodeID())) {
				sr.ErrorCode = kerr.InvalidRequest.Code
				break
			}
			for _, kv := range b.BrokerConfigs() {
				add(kv[0], kv[1], true, true, kmsg.ConfigSourceStaticBrokerConfig, kmsg.ConfigTypeString)
			}
		default:
			sr.ErrorCode = kerr.InvalidRequest.Code
		}
		if sr.ErrorCode != 0 {
			msg := kerr.ErrorForCode(sr.ErrorCode).Error()
			sr.ErrorMessage = &msg
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}
