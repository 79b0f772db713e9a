package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

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
	c := s.cfg.Groups.Coordinator(req.Group)
	if c == nil {
		return notCoordinator(req), nil
	}
	return c.JoinGroup(s.groupCtx(ctx, cc), req), nil
}

func (s *Server) handleSyncGroup(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.SyncGroupRequest)
	c := s.cfg.Groups.Coordinator(req.Group)
	if c == nil {
		return notCoordinator(req), nil
	}
	return c.SyncGroup(s.groupCtx(ctx, cc), req), nil
}

func (s *Server) handleHeartbeat(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.HeartbeatRequest)
	c := s.cfg.Groups.Coordinator(req.Group)
	if c == nil {
		return notCoordinator(req), nil
	}
	return c.Heartbeat(ctx, req), nil
}

func (s *Server) handleLeaveGroup(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.LeaveGroupRequest)
	c := s.cfg.Groups.Coordinator(req.Group)
	if c == nil {
		return notCoordinator(req), nil
	}
	return c.LeaveGroup(ctx, req), nil
}

func (s *Server) handleOffsetCommit(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetCommitRequest)
	if c := s.cfg.Groups.Coordinator(req.Group); c != nil {
		return c.OffsetCommit(ctx, req), nil
	}
	// No top-level error code: every partition gets it.
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = kerr.NotCoordinator.Code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

func (s *Server) handleOffsetFetch(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetFetchRequest)
	if req.Version < 8 {
		c := s.cfg.Groups.Coordinator(req.Group)
		if c != nil {
			return c.OffsetFetch(ctx, req), nil
		}
		if resp := notCoordinator(req); resp != nil {
			return resp, nil
		}
		// v0-v1 have no top-level code: every partition asked gets it.
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
				rp.ErrorCode = kerr.NotCoordinator.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	// v8+: one answer per group, each from its own coordinator.
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	resp.Groups = perGroup(s, req.Groups,
		func(g kmsg.OffsetFetchRequestGroup) string { return g.Group },
		func(c *group.Coordinator, g kmsg.OffsetFetchRequestGroup) []kmsg.OffsetFetchResponseGroup {
			sub := *req
			sub.Groups = []kmsg.OffsetFetchRequestGroup{g}
			return c.OffsetFetch(ctx, &sub).Groups
		},
		func(g string) kmsg.OffsetFetchResponseGroup {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g, kerr.NotCoordinator.Code
			return rg
		})
	return resp, nil
}

// perGroup answers the groups of a request that names several, each from
// its own coordinator (ask, given the group alone), or with refuse's
// NOT_COORDINATOR entry when this broker does not coordinate it.
func perGroup[R, G any](s *Server, groups []R, name func(R) string, ask func(*group.Coordinator, R) []G, refuse func(string) G) []G {
	var out []G
	for _, g := range groups {
		if c := s.cfg.Groups.Coordinator(name(g)); c != nil {
			out = append(out, ask(c, g)...)
		} else {
			out = append(out, refuse(name(g)))
		}
	}
	return out
}

func groupName(g string) string { return g }

func (s *Server) handleDescribeGroups(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	resp.Groups = perGroup(s, req.Groups, groupName,
		func(c *group.Coordinator, g string) []kmsg.DescribeGroupsResponseGroup {
			sub := *req
			sub.Groups = []string{g}
			return c.DescribeGroups(ctx, &sub).Groups
		},
		func(g string) kmsg.DescribeGroupsResponseGroup {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, kerr.NotCoordinator.Code
			return rg
		})
	return resp, nil
}

func (s *Server) handleListGroups(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	for _, c := range s.cfg.Groups.Local() {
		r := c.ListGroups(ctx, req)
		if r.ErrorCode != 0 && resp.ErrorCode == 0 {
			resp.ErrorCode = r.ErrorCode
		}
		resp.Groups = append(resp.Groups, r.Groups...)
	}
	return resp, nil
}

func (s *Server) handleDeleteGroups(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	resp.Groups = perGroup(s, req.Groups, groupName,
		func(c *group.Coordinator, g string) []kmsg.DeleteGroupsResponseGroup {
			sub := *req
			sub.Groups = []string{g}
			return c.DeleteGroups(ctx, &sub).Groups
		},
		func(g string) kmsg.DeleteGroupsResponseGroup {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, kerr.NotCoordinator.Code
			return rg
		})
	return resp, nil
}
