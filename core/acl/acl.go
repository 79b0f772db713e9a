// Package acl decides whether a principal may perform an operation on a
// resource, with Apache Kafka's ACL semantics (its StandardAuthorizer), so
// that an operator's ACLs and tools carry over:
//
//   - A Binding allows or denies one operation on a resource pattern to a
//     principal from a host. Patterns are LITERAL (the name, or "*" for
//     every resource of the type) or PREFIXED (every name starting with
//     the pattern's name).
//   - Super users (Kafka's super.users) may do everything.
//   - Otherwise a matching DENY wins over any ALLOW; an ALLOW of the
//     operation, of ALL, or of an operation that implies it (READ, WRITE,
//     DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
//     DESCRIBE_CONFIGS) permits it; anything else is denied
//     (allow.everyone.if.no.acl.found=false).
//
// The bindings themselves live in the cluster metadata; this package only
// holds the rules, so that they can be tested as a table.
package acl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Wildcards, as Kafka writes them.
const (
	// WildcardResource is a LITERAL pattern name matching every resource of
	// its type.
	WildcardResource = "*"
	// WildcardPrincipal matches every principal of the type User.
	WildcardPrincipal = "User:*"
	// WildcardHost matches every host.
	WildcardHost = "*"
	// ClusterName is the name of the one Cluster resource.
	ClusterName = "kafka-cluster"
	// Anonymous is the principal of a connection that did not
	// authenticate (a PLAINTEXT listener, SSL without a client
	// certificate).
	Anonymous = "User:ANONYMOUS"
)

// Binding is one ACL: Permission to perform Operation on the resources
// matching (ResourceType, ResourceName, PatternType), for Principal
// connecting from Host.
type Binding struct {
	ResourceType kmsg.ACLResourceType        `json:"resource_type"`
	ResourceName string                      `json:"resource_name"`
	PatternType  kmsg.ACLResourcePatternType `json:"pattern_type"` // LITERAL or PREFIXED
	Principal    string                      `json:"principal"`    // "User:alice", or "User:*"
	Host         string                      `json:"host"`         // an IP address, or "*"
	Operation    kmsg.ACLOperation           `json:"operation"`
	Permission   kmsg.ACLPermissionType      `json:"permission"` // ALLOW or DENY
}

// ErrInvalid is returned by Validate for a binding that cannot be stored.
var ErrInvalid = errors.New("acl: invalid binding")

// Validate reports why b cannot be stored, as CreateAcls checks a
// creation: concrete resource type, pattern type, operation and
// permission; a principal of the form Type:name; a non-empty name and
// host.
func (b Binding) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch {
	case b.ResourceType < kmsg.ACLResourceTypeTopic || b.ResourceType > kmsg.ACLResourceTypeUser:
		return bad("resource type %s", b.ResourceType)
	case b.PatternType != kmsg.ACLResourcePatternTypeLiteral && b.PatternType != kmsg.ACLResourcePatternTypePrefixed:
		return bad("pattern type %s: want LITERAL or PREFIXED", b.PatternType)
	case b.ResourceName == "":
		return bad("empty resource name")
	case b.ResourceType == kmsg.ACLResourceTypeCluster && b.ResourceName != ClusterName:
		return bad("cluster resource %q: want %q", b.ResourceName, ClusterName)
	case b.Operation < kmsg.ACLOperationAll || b.Operation > kmsg.ACLOperationDescribeTokens:
		return bad("operation %s", b.Operation)
	case b.Permission != kmsg.ACLPermissionTypeAllow && b.Permission != kmsg.ACLPermissionTypeDeny:
		return bad("permission %s: want ALLOW or DENY", b.Permission)
	case b.Host == "":
		return bad("empty host")
	}
	if typ, name, ok := strings.Cut(b.Principal, ":"); !ok || typ == "" || name == "" {
		return bad("principal %q: want Type:name, as User:alice", b.Principal)
	}
	return nil
}

// String formats b as Kafka's tools print a binding.
func (b Binding) String() string {
	return fmt.Sprintf("(principal=%s, host=%s, operation=%s, permission=%s) on %s:%s:%s",
		b.Principal, b.Host, b.Operation, b.Permission, b.ResourceType, b.PatternType, b.ResourceName)
}

// Filter selects bindings, as DescribeAcls and DeleteAcls filters do. Nil
// names match anything; ANY in an enum field matches every value.
type Filter struct {
	ResourceType kmsg.ACLResourceType
	ResourceName *string
	// PatternType: ANY, LITERAL and PREFIXED match bindings of that
	// pattern type (ANY: any, with ResourceName compared as is); MATCH
	// matches every binding that would apply to the resource named
	// ResourceName: literal ones with that name or "*", prefixed ones
	// whose prefix it starts with.
	PatternType kmsg.ACLResourcePatternType
	Principal   *string
	Host        *string
	Operation   kmsg.ACLOperation
	Permission  kmsg.ACLPermissionType
}

// Validate reports why f cannot be used (an UNKNOWN enum value).
func (f Filter) Validate() error {
	switch {
	case f.ResourceType == kmsg.ACLResourceTypeUnknown || f.ResourceType > kmsg.ACLResourceTypeUser:
		return fmt.Errorf("%w: filter resource type %s", ErrInvalid, f.ResourceType)
	case f.PatternType == kmsg.ACLResourcePatternTypeUnknown || f.PatternType > kmsg.ACLResourcePatternTypePrefixed:
		return fmt.Errorf("%w: filter pattern type %s", ErrInvalid, f.PatternType)
	case f.Operation == kmsg.ACLOperationUnknown || f.Operation > kmsg.ACLOperationDescribeTokens:
		return fmt.Errorf("%w: filter operation %s", ErrInvalid, f.Operation)
	case f.Permission == kmsg.ACLPermissionTypeUnknown || f.Permission > kmsg.ACLPermissionTypeAllow:
		return fmt.Errorf("%w: filter permission %s", ErrInvalid, f.Permission)
	}
	return nil
}

// Matches reports whether f selects b.
func (f Filter) Matches(b Binding) bool {
	if f.ResourceType != kmsg.ACLResourceTypeAny && f.ResourceType != b.ResourceType {
		return false
	}
	switch f.PatternType {
	case kmsg.ACLResourcePatternTypeAny:
		if f.ResourceName != nil && *f.ResourceName != b.ResourceName {
			return false
		}
	case kmsg.ACLResourcePatternTypeMatch:
		if f.ResourceName != nil && !b.appliesTo(*f.ResourceName) {
			return false
		}
	default:
		if f.PatternType != b.PatternType || f.ResourceName != nil && *f.ResourceName != b.ResourceName {
			return false
		}
	}
	if f.Principal != nil && *f.Principal != b.Principal {
		return false
	}
	if f.Host != nil && *f.Host != b.Host {
		return false
	}
	if f.Operation != kmsg.ACLOperationAny && f.Operation != b.Operation {
		return false
	}
	if f.Permission != kmsg.ACLPermissionTypeAny && f.Permission != b.Permission {
		return false
	}
	return true
}

// appliesTo reports whether b's resource pattern covers the resource
// named name (of b's type).
func (b Binding) appliesTo(name string) bool {
	switch b.PatternType {
	case kmsg.ACLResourcePatternTypeLiteral:
		return b.ResourceName == name || b.ResourceName == WildcardResource
	case kmsg.ACLResourcePatternTypePrefixed:
		return strings.HasPrefix(name, b.ResourceName)
	}
	return false
}

// Request is one authorization question: may Principal, connected from
// Host, perform Operation on the resource (ResourceType, ResourceName)?
type Request struct {
	Principal    string
	Host         string // the client's IP address
	Operation    kmsg.ACLOperation
	ResourceType kmsg.ACLResourceType
	ResourceName string
}

// Authorizer answers Requests against a set of bindings. It is immutable
// and safe for concurrent use.
type Authorizer struct {
	super map[string]bool
}

// NewAuthorizer returns an Authorizer for which the given principals
// (Kafka's super.users, e.g. "User:admin") may do everything.
func NewAuthorizer(superUsers []string) *Authorizer {
	a := &Authorizer{super: make(map[string]bool, len(superUsers))}
	for _, p := range superUsers {
		a.super[p] = true
	}
	return a
}

// IsSuperUser reports whether principal is one of the super users.
func (a *Authorizer) IsSuperUser(principal string) bool { return a.super[principal] }

// Authorize answers r against bindings (all the cluster's bindings, or
// any superset of those for r's resource type).
func (a *Authorizer) Authorize(bindings []Binding, r Request) bool {
	if a.super[r.Principal] {
		return true
	}
	allowed := false
	for i := range bindings {
		b := &bindings[i]
		if b.ResourceType != r.ResourceType || !b.appliesTo(r.ResourceName) ||
			(b.Principal != r.Principal && !(b.Principal == WildcardPrincipal && strings.HasPrefix(r.Principal, "User:"))) ||
			(b.Host != WildcardHost && b.Host != r.Host) {
			continue
		}
		switch b.Permission {
		case kmsg.ACLPermissionTypeDeny:
			// A DENY of ALL or of the operation itself wins; a DENY of
			// READ does not deny DESCRIBE (Kafka: implication only
			// widens ALLOWs).
			if b.Operation == kmsg.ACLOperationAll || b.Operation == r.Operation {
				return false
			}
		case kmsg.ACLPermissionTypeAllow:
			if implies(b.Operation, r.Operation) {
				allowed = true
			}
		}
	}
	return allowed
}

// implies reports whether an ALLOW of granted permits op.
func implies(granted, op kmsg.ACLOperation) bool {
	if granted == op || granted == kmsg.ACLOperationAll {
		return true
	}
	switch op {
	case kmsg.ACLOperationDescribe:
		switch granted {
		case kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationDelete, kmsg.ACLOperationAlter:
			return true
		}
	case kmsg.ACLOperationDescribeConfigs:
		return granted == kmsg.ACLOperationAlterConfigs
	}
	return false
}

// ParseSuperUsers parses Kafka's super.users form, principals separated
// by semicolons: "User:admin;User:ANONYMOUS". Blank entries are skipped.
func ParseSuperUsers(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ";") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if typ, name, ok := strings.Cut(p, ":"); !ok || typ == "" || name == "" {
			return nil, fmt.Errorf("acl: super user %q: want Type:name, as User:admin", p)
		}
		out = append(out, p)
	}
	return out, nil
}
