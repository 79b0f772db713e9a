package acl

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// AuthorizeAny answers whether r.Principal, from r.Host, may perform
// r.Operation on at least one resource of r.ResourceType; r.ResourceName
// is ignored. It is Kafka's authorizeByResourceType (KIP-679), which lets
// an idempotent producer in with WRITE on any topic instead of
// IDEMPOTENT_WRITE on the cluster: an ALLOW counts unless a DENY covers
// every name it allows: a DENY of the wildcard "*" covers all; a
// literal ALLOW is covered by a literal DENY of the same name or a
// prefixed DENY it starts with; a prefixed ALLOW by a prefixed DENY of a
// prefix of its own.
func (a *Authorizer) AuthorizeAny(bindings []Binding, r Request) bool {
	if a.super[r.Principal] {
		return true
	}
	var allows, denies []*Binding
	for i := range bindings {
		b := &bindings[i]
		if b.ResourceType != r.ResourceType || !b.appliesToPrincipal(r.Principal) ||
			(b.Host != WildcardHost && b.Host != r.Host) {
			continue
		}
		switch {
		case b.Permission == kmsg.ACLPermissionTypeDeny && (b.Operation == kmsg.ACLOperationAll || b.Operation == r.Operation):
			if b.PatternType == kmsg.ACLResourcePatternTypeLiteral && b.ResourceName == WildcardResource {
				return false
			}
			denies = append(denies, b)
		case b.Permission == kmsg.ACLPermissionTypeAllow && implies(b.Operation, r.Operation):
			allows = append(allows, b)
		}
	}
	for _, al := range allows {
		if al.PatternType == kmsg.ACLResourcePatternTypeLiteral && al.ResourceName == WildcardResource {
			return true
		}
	}
	for _, al := range allows {
		covered := false
		for _, d := range denies {
			switch d.PatternType {
			case kmsg.ACLResourcePatternTypeLiteral:
				covered = al.PatternType == kmsg.ACLResourcePatternTypeLiteral && d.ResourceName == al.ResourceName
			case kmsg.ACLResourcePatternTypePrefixed:
				covered = strings.HasPrefix(al.ResourceName, d.ResourceName)
			}
			if covered {
				break
			}
		}
		if !covered {
			return true
		}
	}
	return false
}

// appliesToPrincipal reports whether b names principal, itself or as
// the wildcard user.
func (b *Binding) appliesToPrincipal(principal string) bool {
	return b.Principal == principal || (b.Principal == WildcardPrincipal && strings.HasPrefix(principal, "User:"))
}
