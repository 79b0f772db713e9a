package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup v0-v5: blocks until the leader's assignment arrives (see groups.go).

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
