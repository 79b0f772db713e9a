package kafka

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
	"github.com/fluxo-io/fluxo/core/group"
)

// The consumer group APIs hand their requests to the group coordinator
// (core/group) that owns the group, which implements Kafka's classic
// group protocol; see its package doc for the behavior. The versions
// served are:
//
//	JoinGroup v0-v9      SyncGroup v0-v5     Heartbeat v0-v4
//	LeaveGroup v0-v5     OffsetCommit v0-v9  OffsetFetch v0-v9
//	DescribeGroups v0-v5 ListGroups v0-v5    DeleteGroups v0-v2
//
// (OffsetCommit and OffsetFetch v10 name topics by id.) JoinGroup and
// SyncGroup block until the rebalance completes; the connection serves
// nothing else meanwhile, as with Kafka.
//
// Groups are spread over brokers as Kafka spreads them: each belongs to a
// partition of the replicated __consumer_offsets topic, and that
// partition's leader coordinates it (Config.Groups decides). A request for
// a group this broker does not coordinate gets NOT_COORDINATOR, so the
// client looks the coordinator up again; requests naming several groups
// (OffsetFetch v8+, DescribeGroups, DeleteGroups) get it per group, and
// ListGroups lists the groups of this broker's coordinators, as Kafka's
// does.
//
// Authorization (authz.go): READ on the group to join, sync, heartbeat,
// leave and commit (GROUP_AUTHORIZATION_FAILED), and READ on each topic
// committed (TOPIC_AUTHORIZATION_FAILED for its partitions); DESCRIBE on
// the group and each topic to fetch offsets (offsets of all topics leave
// out those not describable); DESCRIBE on a group to describe it and
// DELETE to delete it; ListGroups lists every group with DESCRIBE on the
// cluster, else those the principal may DESCRIBE.

// Groups finds the coordinator of each consumer group.
type Groups interface {
	// Coordinator returns this broker's coordinator for group, or nil
	// when another broker (or, right now, none) coordinates it.
	Coordinator(group string) *group.Coordinator
	// Local returns every coordinator this broker runs.
	Local() []*group.Coordinator
	// Find names the broker coordinating key and its Kafka address, or
	// returns a Kafka error code (COORDINATOR_NOT_AVAILABLE while it has
	// none).
	Find(ctx context.Context, key string) (node int32, addr string, code int16)
}

func (s *Server) groupCtx(ctx context.Context, cc *Conn) context.Context {
	return group.WithClient(ctx, group.Client{ID: cc.Header().ClientID, Host: "/" + cc.RemoteAddr().String()})
}

// notCoordinator answers req NOT_COORDINATOR at its top level.
func notCoordinator(req kmsg.Request) kmsg.Response {
	return errorResponse(req, kerr.NotCoordinator.Code, "this broker does not coordinate the group")
}

func (s *Server) handleJoinGroup(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.JoinGroupRequest)
	if !s.authorized(cc, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.Default()
		resp.MemberID = req.MemberID
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	c := s.cfg.Groups.Coordinator(req.Group)
	if c == nil {
		return notCoordinator(req), nil
	}
	return c.JoinGroup(s.groupCtx(ctx, cc), req), nil
}

func (s *Server) handleSyncGroup(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.SyncGroupRequest)
	if !s.authorized(cc, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		return groupDenied(req), nil
	}
	c := s.cfg.Groups.Coordinator(req.Group)
	if c == nil {
		return notCoordinator(req), nil
	}
	return c.SyncGroup(s.groupCtx(ctx, cc), req), nil
}

func (s *Server) handleHeartbeat(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.HeartbeatRequest)
	if !s.authorized(cc, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		return groupDenied(req), nil
	}
	c := s.cfg.Groups.Coordinator(req.Group)
	if c == nil {
		return notCoordinator(req), nil
	}
	return c.Heartbeat(ctx, req), nil
}

func (s *Server) handleLeaveGroup(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.LeaveGroupRequest)
	if !s.authorized(cc, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		return groupDenied(req), nil
	}
	c := s.cfg.Groups.Coordinator(req.Group)
	if c == nil {
		return notCoordinator(req), nil
	}
	return c.LeaveGroup(ctx, req), nil
}

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

// splitTopics splits topics into those ok accepts and the others, keeping
// the order. A nil list stays nil on the allowed side (it means "all").
func splitTopics[T any](topics []T, ok func(T) bool) (allowed, denied []T) {
	if topics == nil {
		return nil, nil
	}
	allowed = make([]T, 0, len(topics))
	for _, t := range topics {
		if ok(t) {
			allowed = append(allowed, t)
		} else {
			denied = append(denied, t)
		}
	}
	return allowed, denied
}

// groupDenied answers req GROUP_AUTHORIZATION_FAILED at its top level.
func groupDenied(req kmsg.Request) kmsg.Response {
	return errorResponse(req, kerr.GroupAuthorizationFailed.Code, "not authorized to access the group")
}

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

func (s *Server) handleDescribeGroups(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, g := range req.Groups {
		if !s.authorized(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g) {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		c := s.cfg.Groups.Coordinator(g)
		if c == nil {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, kerr.NotCoordinator.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		sub := *req
		sub.Groups = []string{g}
		for _, rg := range c.DescribeGroups(ctx, &sub).Groups {
			if req.Version >= 3 && req.IncludeAuthorizedOperations && rg.ErrorCode == 0 {
				rg.AuthorizedOperations = s.authorizedOperations(cc, kmsg.ACLResourceTypeGroup, rg.Group)
			}
			resp.Groups = append(resp.Groups, rg)
		}
	}
	return resp, nil
}

func (s *Server) handleListGroups(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	all := s.allows(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeCluster, acl.ClusterName)
	for _, c := range s.cfg.Groups.Local() {
		r := c.ListGroups(ctx, req)
		if r.ErrorCode != 0 && resp.ErrorCode == 0 {
			resp.ErrorCode = r.ErrorCode
		}
		for _, g := range r.Groups {
			if all || s.allows(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g.Group) {
				resp.Groups = append(resp.Groups, g)
			}
		}
	}
	return resp, nil
}

func (s *Server) handleDeleteGroups(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, g := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = g
		if !s.authorized(cc, kmsg.ACLOperationDelete, kmsg.ACLResourceTypeGroup, g) {
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		c := s.cfg.Groups.Coordinator(g)
		if c == nil {
			rg.ErrorCode = kerr.NotCoordinator.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		sub := *req
		sub.Groups = []string{g}
		resp.Groups = append(resp.Groups, c.DeleteGroups(ctx, &sub).Groups...)
	}
	return resp, nil
}
