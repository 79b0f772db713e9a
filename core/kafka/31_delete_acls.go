package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
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
	var valid []int
	var filters []acl.Filter
	allowed := s.cfg.Authorizer == nil || s.authorizeCluster(cc, kmsg.ACLOperationAlter)
	for i, rf := range req.Filters {
		results[i] = kmsg.NewDeleteACLsResponseResult()
		if s.cfg.Authorizer == nil {
			fail(i, kerr.SecurityDisabled.Code, "no authorizer is configured")
			continue
		}
		if !allowed {
			fail(i, kerr.ClusterAuthorizationFailed.Code, "ALTER on the cluster is required")
			continue
		}
		f := acl.Filter{
			ResourceType: rf.ResourceType,
			ResourceName: rf.ResourceName,
			PatternType:  rf.ResourcePatternType,
			Principal:    rf.Principal,
			Host:         rf.Host,
			Operation:    rf.Operation,
			Permission:   rf.PermissionType,
		}
		if req.Version == 0 {
			f.PatternType = kmsg.ACLResourcePatternTypeLiteral
		}
		if err := f.Validate(); err != nil {
			fail(i, kerr.InvalidRequest.Code, err.Error())
			continue
		}
		valid = append(valid, i)
		filters = append(filters, f)
	}
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
