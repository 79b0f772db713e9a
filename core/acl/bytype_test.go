package acl

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestAuthorizeAny(t *testing.T) {
	a := NewAuthorizer([]string{"User:admin"})
	write := kmsg.ACLOperationWrite
	for _, tc := range []struct {
		name      string
		bindings  []Binding
		principal string
		want      bool
	}{
		{"no binding", nil, "User:alice", false},
		{"super user", nil, "User:admin", true},
		{"literal allow", []Binding{allow(topic, "t", literal, "User:alice", write)}, "User:alice", true},
		{"other principal", []Binding{allow(topic, "t", literal, "User:bob", write)}, "User:alice", false},
		{"wildcard principal", []Binding{allow(topic, "t", literal, WildcardPrincipal, write)}, "User:alice", true},
		{"other resource type", []Binding{allow(group, "t", literal, "User:alice", write)}, "User:alice", false},
		{"read is not write", []Binding{allow(topic, "t", literal, "User:alice", kmsg.ACLOperationRead)}, "User:alice", false},
		{"all implies write", []Binding{allow(topic, "t", literal, "User:alice", kmsg.ACLOperationAll)}, "User:alice", true},
		{"literal allow, same literal deny", []Binding{
			allow(topic, "t", literal, "User:alice", write), deny(allow(topic, "t", literal, "User:alice", write))}, "User:alice", false},
		{"literal allow, other literal deny", []Binding{
			allow(topic, "t", literal, "User:alice", write), deny(allow(topic, "u", literal, "User:alice", write))}, "User:alice", true},
		{"literal allow, covering prefix deny", []Binding{
			allow(topic, "tele", literal, "User:alice", write), deny(allow(topic, "te", prefix, "User:alice", write))}, "User:alice", false},
		{"prefixed allow, literal deny of the same name", []Binding{
			allow(topic, "te", prefix, "User:alice", write), deny(allow(topic, "te", literal, "User:alice", write))}, "User:alice", true},
		{"prefixed allow, shorter prefix deny", []Binding{
			allow(topic, "tele", prefix, "User:alice", write), deny(allow(topic, "t", prefix, "User:alice", kmsg.ACLOperationAll))}, "User:alice", false},
		{"prefixed allow, longer prefix deny", []Binding{
			allow(topic, "t", prefix, "User:alice", write), deny(allow(topic, "tele", prefix, "User:alice", write))}, "User:alice", true},
		{"wildcard deny wins", []Binding{
			allow(topic, "*", literal, "User:alice", write), deny(allow(topic, "*", literal, "User:alice", write))}, "User:alice", false},
		{"deny of read leaves write", []Binding{
			allow(topic, "t", literal, "User:alice", write), deny(allow(topic, "t", literal, "User:alice", kmsg.ACLOperationRead))}, "User:alice", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Request{Principal: tc.principal, Host: "10.0.0.1", Operation: write, ResourceType: topic}
			if got := a.AuthorizeAny(tc.bindings, r); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
