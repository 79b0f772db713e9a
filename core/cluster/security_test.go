package cluster

import (
	"errors"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
)

func cred(iter int) ScramCredential {
	return ScramCredential{Salt: []byte("salt"), StoredKey: []byte("stored"), ServerKey: []byte("server"), Iterations: iter}
}

func TestScramCommands(t *testing.T) {
	base := mustApply(t, NewState(),
		UpsertScramCredential{User: "alice", Mechanism: ScramSHA512, Credential: cred(8192)},
		UpsertScramCredential{User: "alice", Mechanism: ScramSHA256, Credential: cred(4096)},
		UpsertScramCredential{User: "bob", Mechanism: ScramSHA256, Credential: cred(4096)},
	)
	tests := []struct {
		name  string
		cmd   Command
		err   error
		check func(t *testing.T, s *State)
	}{
		{"add user", UpsertScramCredential{User: "carol", Mechanism: ScramSHA512, Credential: cred(16384)}, nil, func(t *testing.T, s *State) {
			if got, ok := s.ScramCredential("carol", ScramSHA512); !ok || !reflect.DeepEqual(got, cred(16384)) {
				t.Fatalf("got %+v, %v, want %+v, true", got, ok, cred(16384))
			}
		}},
		{"replace", UpsertScramCredential{User: "alice", Mechanism: ScramSHA512, Credential: cred(10000)}, nil, func(t *testing.T, s *State) {
			if got, _ := s.ScramCredential("alice", ScramSHA512); got.Iterations != 10000 {
				t.Fatalf("got %d iterations, want 10000", got.Iterations)
			}
			if _, ok := s.ScramCredential("alice", ScramSHA256); !ok {
				t.Fatalf("got no SCRAM-SHA-256 credential for alice, want it kept")
			}
		}},
		{"empty user", UpsertScramCredential{Mechanism: ScramSHA512, Credential: cred(8192)}, ErrInvalidCommand, nil},
		{"unknown mechanism", UpsertScramCredential{User: "a", Mechanism: "SCRAM-SHA-1", Credential: cred(8192)}, ErrUnsupportedMechanism, nil},
		{"too few iterations", UpsertScramCredential{User: "a", Mechanism: ScramSHA512, Credential: cred(4095)}, ErrInvalidCredential, nil},
		{"too many iterations", UpsertScramCredential{User: "a", Mechanism: ScramSHA512, Credential: cred(16385)}, ErrInvalidCredential, nil},
		{"no salt", UpsertScramCredential{User: "a", Mechanism: ScramSHA512, Credential: ScramCredential{StoredKey: []byte("k"), ServerKey: []byte("k"), Iterations: 4096}}, ErrInvalidCredential, nil},
		{"no keys", UpsertScramCredential{User: "a", Mechanism: ScramSHA512, Credential: ScramCredential{Salt: []byte("s"), Iterations: 4096}}, ErrInvalidCredential, nil},
		{"delete one mechanism", DeleteScramCredential{User: "alice", Mechanism: ScramSHA256}, nil, func(t *testing.T, s *State) {
			if _, ok := s.ScramCredential("alice", ScramSHA256); ok {
				t.Fatalf("got a SCRAM-SHA-256 credential for alice, want it deleted")
			}
			if _, ok := s.ScramCredential("alice", ScramSHA512); !ok {
				t.Fatalf("got no SCRAM-SHA-512 credential for alice, want it kept")
			}
		}},
		{"delete last mechanism", DeleteScramCredential{User: "bob", Mechanism: ScramSHA256}, nil, func(t *testing.T, s *State) {
			if _, ok := s.Users["bob"]; ok {
				t.Fatalf("got user bob %v, want him gone with his last credential", s.Users["bob"])
			}
		}},
		{"delete missing mechanism", DeleteScramCredential{User: "bob", Mechanism: ScramSHA512}, ErrUnknownCredential, nil},
		{"delete missing user", DeleteScramCredential{User: "zed", Mechanism: ScramSHA512}, ErrUnknownCredential, nil},
		{"delete bad mechanism", DeleteScramCredential{User: "bob", Mechanism: "PLAIN"}, ErrUnsupportedMechanism, nil},
		{"delete empty user", DeleteScramCredential{Mechanism: ScramSHA512}, ErrInvalidCommand, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cloneState(t, base)
			next, _, err := base.Apply(tt.cmd)
			if !errors.Is(err, tt.err) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if err != nil && next != base {
				t.Fatalf("got a new state on error, want the old one")
			}
			if tt.check != nil {
				tt.check(t, next)
			}
			if !reflect.DeepEqual(cloneState(t, base), before) {
				t.Fatalf("the old state changed")
			}
			if got := cloneState(t, next); !reflect.DeepEqual(got, next) {
				t.Fatalf("after snapshot and restore: got %+v, want %+v", got, next)
			}
		})
	}
	// Deleting every credential leaves no users at all.
	s := mustApply(t, base,
		DeleteScramCredential{User: "alice", Mechanism: ScramSHA256},
		DeleteScramCredential{User: "alice", Mechanism: ScramSHA512},
		DeleteScramCredential{User: "bob", Mechanism: ScramSHA256})
	if s.Users != nil {
		t.Fatalf("got users %v, want none", s.Users)
	}
}

func str(s string) *string { return &s }

func binding(typ kmsg.ACLResourceType, name string, pattern kmsg.ACLResourcePatternType, principal string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) acl.Binding {
	return acl.Binding{ResourceType: typ, ResourceName: name, PatternType: pattern, Principal: principal, Host: "*", Operation: op, Permission: perm}
}

func TestACLCommands(t *testing.T) {
	var (
		readT   = binding(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow)
		writeP  = binding(kmsg.ACLResourceTypeTopic, "orders-", kmsg.ACLResourcePatternTypePrefixed, "User:alice", kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow)
		denyAll = binding(kmsg.ACLResourceTypeTopic, "*", kmsg.ACLResourcePatternTypeLiteral, "User:bob", kmsg.ACLOperationAll, kmsg.ACLPermissionTypeDeny)
		group   = binding(kmsg.ACLResourceTypeGroup, "g", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow)
		invalid = binding(kmsg.ACLResourceTypeAny, "t", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow)
	)
	base := mustApply(t, NewState(), CreateACLs{Bindings: []acl.Binding{readT, writeP, denyAll, group}})
	any := acl.Filter{ResourceType: kmsg.ACLResourceTypeAny, PatternType: kmsg.ACLResourcePatternTypeAny, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}
	with := func(edit func(f *acl.Filter)) acl.Filter {
		f := any
		edit(&f)
		return f
	}
	tests := []struct {
		name    string
		cmd     Command
		err     error
		acls    []acl.Binding   // the bindings after the command
		deleted [][]acl.Binding // Result.Deleted
	}{
		{"create duplicate", CreateACLs{Bindings: []acl.Binding{readT, group, group}}, nil, []acl.Binding{readT, writeP, denyAll, group}, nil},
		{"create new twice", CreateACLs{Bindings: []acl.Binding{invalid, invalid}}, acl.ErrInvalid, []acl.Binding{readT, writeP, denyAll, group}, nil},
		{"delete all", DeleteACLs{Filters: []acl.Filter{any}}, nil, nil, [][]acl.Binding{{readT, writeP, denyAll, group}}},
		{"delete match", DeleteACLs{Filters: []acl.Filter{with(func(f *acl.Filter) {
			f.ResourceType, f.PatternType, f.ResourceName = kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeMatch, str("orders-eu")
		})}}, nil, []acl.Binding{readT, group}, [][]acl.Binding{{writeP, denyAll}}},
		{"delete literal", DeleteACLs{Filters: []acl.Filter{with(func(f *acl.Filter) {
			f.PatternType, f.ResourceName = kmsg.ACLResourcePatternTypeLiteral, str("t")
		})}}, nil, []acl.Binding{writeP, denyAll, group}, [][]acl.Binding{{readT}}},
		{"delete overlapping filters", DeleteACLs{Filters: []acl.Filter{
			with(func(f *acl.Filter) { f.Principal = str("User:alice") }),
			with(func(f *acl.Filter) { f.ResourceType = kmsg.ACLResourceTypeGroup }),
			with(func(f *acl.Filter) { f.Principal = str("User:nobody") }),
		}}, nil, []acl.Binding{denyAll}, [][]acl.Binding{{readT, writeP, group}, {group}, nil}},
		{"delete invalid filter", DeleteACLs{Filters: []acl.Filter{any, {}}}, acl.ErrInvalid, []acl.Binding{readT, writeP, denyAll, group}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cloneState(t, base)
			next, res, err := base.Apply(tt.cmd)
			if !errors.Is(err, tt.err) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if !reflect.DeepEqual(next.ACLs, tt.acls) {
				t.Fatalf("got ACLs %v, want %v", next.ACLs, tt.acls)
			}
			if !reflect.DeepEqual(res.Deleted, tt.deleted) {
				t.Fatalf("got deleted %v, want %v", res.Deleted, tt.deleted)
			}
			if !reflect.DeepEqual(cloneState(t, base), before) {
				t.Fatalf("the old state changed")
			}
			if got := cloneState(t, next); !reflect.DeepEqual(got, next) {
				t.Fatalf("after snapshot and restore: got %+v, want %+v", got, next)
			}
		})
	}
}
