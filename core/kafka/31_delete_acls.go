package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
	"github.com/fluxo-io/fluxo/core/cluster"
)

// DeleteAcls v0-v3.
//
// Behavior, as Kafka's StandardAuthorizer answers, one result per filter
// in order:
//   - No Config.Authorizer: SECURITY_DISABLED for every filter.
//   - A filter with an UNKNOWN resource type, pattern type, operation or
//     permission: INVALID_REQUEST. v0 filters are LITERAL (v0 knows no
//     other pattern).
//   - Each result lists the bindings its filter matched (as DescribeAcls
//     selects them), all removed in one metadata command; a binding
//     matched by several filters is listed under each.
func (s *Server) handleDeleteACLs(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteACLsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	results := make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
	fail := func(i int, code int16, msg string) {
		results[i].ErrorCode = code
		results[i].ErrorMessage = &msg
	}
	for i := range results {
		results[i] = kmsg.NewDeleteACLsResponseResult()
	}
	valid, filters := aclChanges(s, cc, req.Version, len(req.Filters), func(i int) acl.Filter {
		rf := &req.Filters[i]
		return acl.Filter{ResourceType: rf.ResourceType, ResourceName: rf.ResourceName, PatternType: rf.ResourcePatternType,
			Principal: rf.Principal, Host: rf.Host, Operation: rf.Operation, Permission: rf.PermissionType}
	}, fail)
	if len(filters) > 0 {
		res, err := s.applyMetadata(ctx, cluster.DeleteACLs{Filters: filters})
		for j, i := range valid {
			if err != nil {
				fail(i, metadataErrorCode(err), err.Error())
				continue
			}
			if j >= len(res.Deleted) {
				continue
			}
			for _, b := range res.Deleted[j] {
				m := kmsg.NewDeleteACLsResponseResultMatchingACL()
				m.ResourceType, m.ResourceName, m.ResourcePatternType = b.ResourceType, b.ResourceName, b.PatternType
				m.Principal, m.Host, m.Operation, m.PermissionType = b.Principal, b.Host, b.Operation, b.Permission
				results[i].MatchingACLs = append(results[i].MatchingACLs, m)
			}
		}
	}
	resp.Results = results
	return resp, nil
}
