package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinGroup v0-v9: blocks until the rebalance completes (see groups.go).

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
