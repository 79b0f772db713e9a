package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit v0-v9: commits offsets through the group's coordinator (see groups.go).

func (s *Server) handleOffsetCommit(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	// No top-level error code: every partition gets the group's error.
	if !s.authorized(cc, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		resp.Topics = offsetCommitErrors(req.Topics, kerr.GroupAuthorizationFailed.Code)
		return resp, nil
	}
	allowed, denied := splitTopics(req.Topics, func(t kmsg.OffsetCommitRequestTopic) bool {
		return s.authorized(cc, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, t.Topic)
	})
	resp.Topics = offsetCommitErrors(denied, kerr.TopicAuthorizationFailed.Code)
	if len(allowed) == 0 && len(denied) > 0 {
		return resp, nil
	}
	c := s.cfg.Groups.Coordinator(req.Group)
	if c == nil {
		resp.Topics = append(offsetCommitErrors(allowed, kerr.NotCoordinator.Code), resp.Topics...)
		return resp, nil
	}
	sub := *req
	sub.Topics = allowed
	r := c.OffsetCommit(ctx, &sub)
	r.Topics = append(r.Topics, resp.Topics...)
	return r, nil
}

// offsetCommitErrors answers every partition of topics with code.
func offsetCommitErrors(topics []kmsg.OffsetCommitRequestTopic, code int16) []kmsg.OffsetCommitResponseTopic {
	var out []kmsg.OffsetCommitResponseTopic
	for _, t := range topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = code
			rt.Partitions = append(rt.Partitions, rp)
		}
		out = append(out, rt)
	}
	return out
}
