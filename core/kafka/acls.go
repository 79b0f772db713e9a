package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
)

// aclItem is what CreateAcls creates (acl.Binding) and DeleteAcls
// deletes by (acl.Filter).
type aclItem interface {
	acl.Binding | acl.Filter
	Validate() error
}

// aclChanges runs the checks each of the n items of a CreateAcls or
// DeleteAcls request passes before the valid ones are applied together:
// an authorizer configured (else SECURITY_DISABLED), ALTER on the cluster
// (CLUSTER_AUTHORIZATION_FAILED), a valid item (INVALID_REQUEST); v0
// items are LITERAL. fail records an item's error; the valid items come
// back with their indexes.
func aclChanges[T aclItem](s *Server, cc *Conn, version int16, n int, item func(i int) T, fail func(i int, code int16, msg string)) (valid []int, items []T) {
	allowed := s.cfg.Authorizer == nil || s.authorizeCluster(cc, kmsg.ACLOperationAlter)
	for i := range n {
		if s.cfg.Authorizer == nil {
			fail(i, kerr.SecurityDisabled.Code, "no authorizer is configured")
			continue
		}
		if !allowed {
			fail(i, kerr.ClusterAuthorizationFailed.Code, "ALTER on the cluster is required")
			continue
		}
		it := item(i)
		if version == 0 {
			switch v := any(&it).(type) {
			case *acl.Binding:
				v.PatternType = kmsg.ACLResourcePatternTypeLiteral
			case *acl.Filter:
				v.PatternType = kmsg.ACLResourcePatternTypeLiteral
			}
		}
		if err := it.Validate(); err != nil {
			fail(i, kerr.InvalidRequest.Code, err.Error())
			continue
		}
		valid = append(valid, i)
		items = append(items, it)
	}
	return valid, items
}
