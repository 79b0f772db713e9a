package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeGroups v0-v5: NOT_COORDINATOR per group this broker does not coordinate (see groups.go).

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
