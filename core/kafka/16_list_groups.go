package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
)

// ListGroups v0-v5: the groups of this broker's coordinators, as Kafka's (see groups.go).

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
