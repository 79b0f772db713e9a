package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreatePartitions v0-v3.
//
// Behavior: grows each topic to the count asked for; INVALID_PARTITIONS
// when that is not more than it has or above the broker's
// MaxPartitionsPerTopic; POLICY_VIOLATION when a broker would host more
// than MaxPartitionsPerBroker replicas; UNKNOWN_TOPIC_OR_PARTITION for an
// unknown topic; manual assignments are INVALID_REQUEST on a single node.
// ValidateOnly makes every check without creating. Authorization
// (authz.go): ALTER on the topic, else TOPIC_AUTHORIZATION_FAILED.
func (s *Server) handleCreatePartitions(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		var err error
		if !s.authorized(cc, kmsg.ACLOperationAlter, kmsg.ACLResourceTypeTopic, rt.Topic) {
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, st)
			continue
		}
		if len(rt.Assignment) > 0 {
			st.ErrorCode = kerr.InvalidRequest.Code
			msg := "manual partition assignment is not supported"
			st.ErrorMessage = &msg
			resp.Topics = append(resp.Topics, st)
			continue
		}
		err = s.cfg.Broker.CreatePartitions(ctx, rt.Topic, rt.Count, req.ValidateOnly)
		if err != nil {
			st.ErrorCode = topicChangeError(err)
			msg := err.Error()
			st.ErrorMessage = &msg
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
