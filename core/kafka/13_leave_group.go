package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveGroup v0-v5 (see groups.go).

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
