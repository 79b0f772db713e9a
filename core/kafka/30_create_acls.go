package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
	"github.com/fluxo-io/fluxo/core/cluster"
)

// CreateAcls v0-v3.
//
// Behavior, as Kafka's StandardAuthorizer answers, one result per
// creation in order:
//   - No Config.Authorizer: SECURITY_DISABLED for every creation.
//   - A creation that is not a storable binding (acl.Binding.Validate: an
//     ANY or UNKNOWN enum, a MATCH pattern, an empty name, a cluster
//     resource not named kafka-cluster, a principal without a type):
//     INVALID_REQUEST. v0 creations are LITERAL.
//   - The valid creations are stored together, in one metadata command;
//     one equal to a stored binding is not stored twice and succeeds.
func (s *Server) handleCreateACLs(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreateACLsRequest)
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	results := make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	fail := func(i int, code int16, msg string) {
		results[i].ErrorCode = code
		results[i].ErrorMessage = &msg
	}
	for i := range results {
		results[i] = kmsg.NewCreateACLsResponseResult()
	}
	valid, bindings := aclChanges(s, cc, req.Version, len(req.Creations), func(i int) acl.Binding {
		c := &req.Creations[i]
		return acl.Binding{ResourceType: c.ResourceType, ResourceName: c.ResourceName, PatternType: c.ResourcePatternType,
			Principal: c.Principal, Host: c.Host, Operation: c.Operation, Permission: c.PermissionType}
	}, fail)
	if len(bindings) > 0 {
		if _, err := s.applyMetadata(ctx, cluster.CreateACLs{Bindings: bindings}); err != nil {
			for _, i := range valid {
				fail(i, metadataErrorCode(err), err.Error())
			}
		}
	}
	resp.Results = results
	return resp, nil
}
