package acl

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func allow(rt kmsg.ACLResourceType, name string, pt kmsg.ACLResourcePatternType, principal string, op kmsg.ACLOperation) Binding {
	return Binding{ResourceType: rt, ResourceName: name, PatternType: pt, Principal: principal, Host: WildcardHost, Operation: op, Permission: kmsg.ACLPermissionTypeAllow}
}

func deny(b Binding) Binding {
	b.Permission = kmsg.ACLPermissionTypeDeny
	return b
}

const (
	topic   = kmsg.ACLResourceTypeTopic
	group   = kmsg.ACLResourceTypeGroup
	cluster = kmsg.ACLResourceTypeCluster
	literal = kmsg.ACLResourcePatternTypeLiteral
	prefix  = kmsg.ACLResourcePatternTypePrefixed
)

func TestAuthorize(t *testing.T) {
	a := NewAuthorizer([]string{"User:admin"})
	readOrders := allow(topic, "orders", literal, "User:alice", kmsg.ACLOperationRead)
	writeSensors := allow(topic, "sensors-", prefix, "User:edge", kmsg.ACLOperationWrite)
	allTopicsBob := allow(topic, "*", literal, "User:bob", kmsg.ACLOperationAll)
	denyBobSecret := deny(allow(topic, "secret", literal, "User:bob", kmsg.ACLOperationRead))
	everyoneDescribe := allow(topic, "public", literal, WildcardPrincipal, kmsg.ACLOperationDescribe)
	alterConfigs := allow(topic, "cfg", literal, "User:ops", kmsg.ACLOperationAlterConfigs)
	fromHost := allow(group, "g", literal, "User:carol", kmsg.ACLOperationRead)
	fromHost.Host = "10.0.0.1"
	clusterAction := allow(cluster, ClusterName, literal, "User:CN=broker-1", kmsg.ACLOperationClusterAction)
	denyDescribeOnly := deny(allow(topic, "orders", literal, "User:dave", kmsg.ACLOperationDescribe))
	daveRead := allow(topic, "orders", literal, "User:dave", kmsg.ACLOperationRead)
	all := []Binding{readOrders, writeSensors, allTopicsBob, denyBobSecret, everyoneDescribe, alterConfigs, fromHost, clusterAction, denyDescribeOnly, daveRead}

	for _, tc := range []struct {
		name string
		r    Request
		want bool
	}{
		{"super user, no binding", Request{"User:admin", "1.2.3.4", kmsg.ACLOperationDelete, topic, "anything"}, true},
		{"literal read", Request{"User:alice", "1.2.3.4", kmsg.ACLOperationRead, topic, "orders"}, true},
		{"read implies describe", Request{"User:alice", "1.2.3.4", kmsg.ACLOperationDescribe, topic, "orders"}, true},
		{"read does not imply write", Request{"User:alice", "1.2.3.4", kmsg.ACLOperationWrite, topic, "orders"}, false},
		{"literal is not a prefix", Request{"User:alice", "1.2.3.4", kmsg.ACLOperationRead, topic, "orders-eu"}, false},
		{"other resource type", Request{"User:alice", "1.2.3.4", kmsg.ACLOperationRead, group, "orders"}, false},
		{"prefixed write", Request{"User:edge", "1.2.3.4", kmsg.ACLOperationWrite, topic, "sensors-eu"}, true},
		{"prefix itself", Request{"User:edge", "1.2.3.4", kmsg.ACLOperationWrite, topic, "sensors-"}, true},
		{"outside the prefix", Request{"User:edge", "1.2.3.4", kmsg.ACLOperationWrite, topic, "sensor"}, false},
		{"wildcard resource, ALL", Request{"User:bob", "1.2.3.4", kmsg.ACLOperationCreate, topic, "new"}, true},
		{"deny wins over ALL", Request{"User:bob", "1.2.3.4", kmsg.ACLOperationRead, topic, "secret"}, false},
		{"deny of read leaves describe", Request{"User:bob", "1.2.3.4", kmsg.ACLOperationDescribe, topic, "secret"}, true},
		{"wildcard principal", Request{"User:zoe", "1.2.3.4", kmsg.ACLOperationDescribe, topic, "public"}, true},
		{"anonymous is a user too", Request{Anonymous, "1.2.3.4", kmsg.ACLOperationDescribe, topic, "public"}, true},
		{"alter configs implies describe configs", Request{"User:ops", "1.2.3.4", kmsg.ACLOperationDescribeConfigs, topic, "cfg"}, true},
		{"alter configs does not imply describe", Request{"User:ops", "1.2.3.4", kmsg.ACLOperationDescribe, topic, "cfg"}, false},
		{"host matches", Request{"User:carol", "10.0.0.1", kmsg.ACLOperationRead, group, "g"}, true},
		{"host differs", Request{"User:carol", "10.0.0.2", kmsg.ACLOperationRead, group, "g"}, false},
		{"cluster action", Request{"User:CN=broker-1", "1.2.3.4", kmsg.ACLOperationClusterAction, cluster, ClusterName}, true},
		{"deny describe, allow read: read", Request{"User:dave", "1.2.3.4", kmsg.ACLOperationRead, topic, "orders"}, true},
		{"deny describe, allow read: describe", Request{"User:dave", "1.2.3.4", kmsg.ACLOperationDescribe, topic, "orders"}, false},
		{"nobody: deny by default", Request{"User:nobody", "1.2.3.4", kmsg.ACLOperationRead, topic, "orders"}, false},
	} {
		if got := a.Authorize(all, tc.r); got != tc.want {
			t.Errorf("%s: Authorize(%+v) = %v, want %v", tc.name, tc.r, got, tc.want)
		}
	}
}

func TestFilterMatches(t *testing.T) {
	name := func(s string) *string { return &s }
	b := allow(topic, "sensors-", prefix, "User:edge", kmsg.ACLOperationWrite)
	anyF := Filter{ResourceType: kmsg.ACLResourceTypeAny, PatternType: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}
	for _, tc := range []struct {
		name string
		edit func(*Filter)
		want bool
	}{
		{"any", func(*Filter) {}, true},
		{"type", func(f *Filter) { f.ResourceType = group }, false},
		{"exact name any pattern", func(f *Filter) { f.ResourceName = name("sensors-") }, true},
		{"other name", func(f *Filter) { f.ResourceName = name("sensors-eu") }, false},
		{"match covers", func(f *Filter) { f.PatternType = kmsg.ACLResourcePatternTypeMatch; f.ResourceName = name("sensors-eu") }, true},
		{"match misses", func(f *Filter) { f.PatternType = kmsg.ACLResourcePatternTypeMatch; f.ResourceName = name("orders") }, false},
		{"literal pattern", func(f *Filter) { f.PatternType = literal }, false},
		{"prefixed pattern", func(f *Filter) { f.PatternType = prefix }, true},
		{"principal", func(f *Filter) { f.Principal = name("User:edge") }, true},
		{"other principal", func(f *Filter) { f.Principal = name("User:x") }, false},
		{"host", func(f *Filter) { f.Host = name("*") }, true},
		{"operation", func(f *Filter) { f.Operation = kmsg.ACLOperationRead }, false},
		{"permission", func(f *Filter) { f.Permission = kmsg.ACLPermissionTypeDeny }, false},
	} {
		f := anyF
		tc.edit(&f)
		if got := f.Matches(b); got != tc.want {
			t.Errorf("%s: Matches = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	good := allow(topic, "orders", literal, "User:alice", kmsg.ACLOperationRead)
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(%v) = %v, want nil", good, err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Binding)
	}{
		{"any type", func(b *Binding) { b.ResourceType = kmsg.ACLResourceTypeAny }},
		{"match pattern", func(b *Binding) { b.PatternType = kmsg.ACLResourcePatternTypeMatch }},
		{"empty name", func(b *Binding) { b.ResourceName = "" }},
		{"cluster name", func(b *Binding) { b.ResourceType = cluster }},
		{"any operation", func(b *Binding) { b.Operation = kmsg.ACLOperationAny }},
		{"any permission", func(b *Binding) { b.Permission = kmsg.ACLPermissionTypeAny }},
		{"principal without type", func(b *Binding) { b.Principal = "alice" }},
		{"empty host", func(b *Binding) { b.Host = "" }},
	} {
		b := good
		tc.edit(&b)
		if err := b.Validate(); err == nil {
			t.Errorf("%s: Validate(%v) = nil, want an error", tc.name, b)
		}
	}
}

func TestParseSuperUsers(t *testing.T) {
	got, err := ParseSuperUsers(" User:admin; ;User:ANONYMOUS")
	if err != nil || len(got) != 2 || got[0] != "User:admin" || got[1] != Anonymous {
		t.Fatalf("ParseSuperUsers = %v, %v; want [User:admin User:ANONYMOUS]", got, err)
	}
	if _, err := ParseSuperUsers("admin"); err == nil {
		t.Fatal("ParseSuperUsers(admin) = nil error, want one")
	}
}
