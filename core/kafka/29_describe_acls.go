package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
)

// DescribeAcls v0-v3.
//
// Behavior, as Kafka's StandardAuthorizer answers:
//   - No Config.Authorizer: SECURITY_DISABLED.
//   - The filter selects bindings as acl.Filter.Matches does: ANY,
//     LITERAL, PREFIXED, or MATCH (every binding that applies to the
//     named resource: the literal name, the "*" wildcard, prefixes of
//     it). v0 knows only literal patterns: its filter is LITERAL.
//   - A filter with an UNKNOWN resource type, pattern type, operation or
//     permission: INVALID_REQUEST.
//   - The bindings come back grouped by resource pattern, in the order
//     they were created.
func (s *Server) handleDescribeACLs(_ context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeACLsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	fail := func(code int16, msg string) (kmsg.Response, error) {
		resp.ErrorCode = code
		resp.ErrorMessage = &msg
		return resp, nil
	}
	if s.cfg.Authorizer == nil {
		return fail(kerr.SecurityDisabled.Code, "no authorizer is configured")
	}
	if !s.authorizeCluster(cc, kmsg.ACLOperationDescribe) {
		return fail(kerr.ClusterAuthorizationFailed.Code, "DESCRIBE on the cluster is required")
	}
	pattern := req.ResourcePatternType
	if req.Version == 0 {
		pattern = kmsg.ACLResourcePatternTypeLiteral
	}
	f := acl.Filter{
		ResourceType: req.ResourceType,
		ResourceName: req.ResourceName,
		PatternType:  pattern,
		Principal:    req.Principal,
		Host:         req.Host,
		Operation:    req.Operation,
		Permission:   req.PermissionType,
	}
	if err := f.Validate(); err != nil {
		return fail(kerr.InvalidRequest.Code, err.Error())
	}
	type key struct {
		typ     kmsg.ACLResourceType
		name    string
		pattern kmsg.ACLResourcePatternType
	}
	index := map[key]int{}
	for _, b := range s.cfg.Metadata.State().ACLs {
		if !f.Matches(b) {
			continue
		}
		k := key{b.ResourceType, b.ResourceName, b.PatternType}
		i, ok := index[k]
		if !ok {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType, r.ResourceName, r.ResourcePatternType = k.typ, k.name, k.pattern
			i = len(resp.Resources)
			index[k] = i
			resp.Resources = append(resp.Resources, r)
		}
		e := kmsg.NewDescribeACLsResponseResourceACL()
		e.Principal, e.Host, e.Operation, e.PermissionType = b.Principal, b.Host, b.Operation, b.Permission
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, e)
	}
	return resp, nil
}
