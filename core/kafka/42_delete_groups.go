package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteGroups v0-v2: NOT_COORDINATOR per group this broker does not coordinate (see groups.go).

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
