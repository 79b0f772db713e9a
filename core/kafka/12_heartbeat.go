package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Heartbeat v0-v4 (see groups.go).

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
