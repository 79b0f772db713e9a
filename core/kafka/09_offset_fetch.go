package kafka

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetFetch v0-v9 (v8+ for several groups, each from its own coordinator; see groups.go).

func (s *Server) handleOffsetFetch(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetFetchRequest)
	if req.Version >= 8 {
		return s.offsetFetchGroups(ctx, cc, req), nil
	}
	describable := func(topic string) bool {
		return s.allows(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, topic)
	}
	// partErrors answers every partition asked with code (v0-v1 have no
	// top-level error code).
	partErrors := func(topics []kmsg.OffsetFetchRequestTopic, code int16) []kmsg.OffsetFetchResponseTopic {
		var out []kmsg.OffsetFetchResponseTopic
		for _, t := range topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
				rp.ErrorCode = code
				rt.Partitions = append(rt.Partitions, rp)
			}
			out = append(out, rt)
		}
		return out
	}
	refuse := func(code int16, msg string) kmsg.Response {
		if resp := errorResponse(req, code, msg); resp != nil {
			return resp
		}
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.Topics = partErrors(req.Topics, code)
		return resp
	}
	if !s.authorized(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, req.Group) {
		return refuse(kerr.GroupAuthorizationFailed.Code, "not authorized to access the group"), nil
	}
	allowed, denied := splitTopics(req.Topics, func(t kmsg.OffsetFetchRequestTopic) bool {
		return s.authorized(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, t.Topic)
	})
	if len(allowed) == 0 && len(denied) > 0 {
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.Topics = partErrors(denied, kerr.TopicAuthorizationFailed.Code)
		return resp, nil
	}
	c := s.cfg.Groups.Coordinator(req.Group)
	if c == nil {
		return refuse(kerr.NotCoordinator.Code, "this broker does not coordinate the group"), nil
	}
	sub := *req
	sub.Topics = allowed
	resp := c.OffsetFetch(ctx, &sub)
	if req.Topics == nil && s.cfg.Authorizer != nil {
		resp.Topics = slices.DeleteFunc(resp.Topics, func(t kmsg.OffsetFetchResponseTopic) bool { return !describable(t.Topic) })
	}
	resp.Topics = append(resp.Topics, partErrors(denied, kerr.TopicAuthorizationFailed.Code)...)
	return resp, nil
}

// offsetFetchGroups answers OffsetFetch v8+: one answer per group, each
// from its own coordinator, each group and topic authorized as in v0-v7.
func (s *Server) offsetFetchGroups(ctx context.Context, cc *Conn, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	groupError := func(g string, code int16) kmsg.OffsetFetchResponseGroup {
		rg := kmsg.NewOffsetFetchResponseGroup()
		rg.Group, rg.ErrorCode = g, code
		return rg
	}
	topicErrors := func(topics []kmsg.OffsetFetchRequestGroupTopic) []kmsg.OffsetFetchResponseGroupTopic {
		var out []kmsg.OffsetFetchResponseGroupTopic
		for _, t := range topics {
			rt := kmsg.NewOffsetFetchResponseGroupTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			out = append(out, rt)
		}
		return out
	}
	for _, g := range req.Groups {
		if !s.authorized(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g.Group) {
			resp.Groups = append(resp.Groups, groupError(g.Group, kerr.GroupAuthorizationFailed.Code))
			continue
		}
		allowed, denied := splitTopics(g.Topics, func(t kmsg.OffsetFetchRequestGroupTopic) bool {
			return s.authorized(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, t.Topic)
		})
		if len(allowed) == 0 && len(denied) > 0 {
			rg := groupError(g.Group, 0)
			rg.Topics = topicErrors(denied)
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		c := s.cfg.Groups.Coordinator(g.Group)
		if c == nil {
			resp.Groups = append(resp.Groups, groupError(g.Group, kerr.NotCoordinator.Code))
			continue
		}
		sub := *req
		sg := g
		sg.Topics = allowed
		sub.Groups = []kmsg.OffsetFetchRequestGroup{sg}
		for _, rg := range c.OffsetFetch(ctx, &sub).Groups {
			if g.Topics == nil && s.cfg.Authorizer != nil {
				rg.Topics = slices.DeleteFunc(rg.Topics, func(t kmsg.OffsetFetchResponseGroupTopic) bool {
					return !s.allows(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, t.Topic)
				})
			}
			rg.Topics = append(rg.Topics, topicErrors(denied)...)
			resp.Groups = append(resp.Groups, rg)
		}
	}
	return resp
}
