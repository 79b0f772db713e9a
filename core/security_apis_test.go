package core

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/xdg-go/scram"

	"github.com/fluxo-io/fluxo/core/acl"
	"github.com/fluxo-io/fluxo/core/cluster"
)

// startSecureNode starts a node with the authorizer on; the anonymous
// principal of a plaintext connection is a super user.
func startSecureNode(t *testing.T, dir string) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Kafka.Authorizer = acl.NewAuthorizer([]string{acl.Anonymous})
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	return n
}

// scramLogin runs a whole SCRAM exchange of xdg-go/scram's client, with
// password, against its server holding the credential the cluster stored
// for user, and reports whether the server accepted it.
func scramLogin(t *testing.T, s *cluster.State, user, mechanism, password string) bool {
	t.Helper()
	gen := scram.SHA512
	if mechanism == cluster.ScramSHA256 {
		gen = scram.SHA256
	}
	srv, err := gen.NewServer(func(name string) (scram.StoredCredentials, error) {
		c, ok := s.ScramCredential(name, mechanism)
		if !ok {
			return scram.StoredCredentials{}, errors.New("no such user")
		}
		return scram.StoredCredentials{
			KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
			StoredKey:  c.StoredKey,
			ServerKey:  c.ServerKey,
		}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := gen.NewClient(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	cc, sc := cl.NewConversation(), srv.NewConversation()
	msg, err := cc.Step("")
	for err == nil && !cc.Done() {
		var reply string
		if reply, err = sc.Step(msg); err != nil {
			break
		}
		msg, err = cc.Step(reply)
	}
	return err == nil && cc.Valid() && sc.Valid()
}

// TestScramUsers manages SCRAM users with kadm: they are described with
// mechanisms and iterations only, the stored credential verifies the
// password with an independent SCRAM server, Kafka's per-user errors
// come back, and the users survive a restart.
func TestScramUsers(t *testing.T) {
	dir := t.TempDir()
	node := startSecureNode(t, dir)
	cl := client(t, node)
	adm := kadm.NewClient(cl)
	ctx := ctxT(t)

	ups := []kadm.UpsertSCRAM{
		{User: "alice", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "alice-secret"},
		{User: "bob", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "bob-secret"},
	}
	res, err := adm.AlterUserSCRAMs(ctx, nil, ups)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Error(); err != nil {
		t.Fatalf("alter: got %v, want no error", err)
	}
	// A second mechanism for alice, in another request.
	res, err = adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "alice", Mechanism: kadm.ScramSha256, Iterations: 5000, Password: "alice-256"}})
	if err != nil || res.Error() != nil {
		t.Fatalf("alter: got %v, %v, want no error", err, res.Error())
	}

	described, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]kadm.CredInfo{}
	for u, d := range described {
		if d.Err != nil {
			t.Fatalf("describe %s: got %v, want no error", u, d.Err)
		}
		got[u] = d.CredInfos
	}
	want := map[string][]kadm.CredInfo{
		"alice": {{Mechanism: kadm.ScramSha256, Iterations: 5000}, {Mechanism: kadm.ScramSha512, Iterations: 8192}},
		"bob":   {{Mechanism: kadm.ScramSha256, Iterations: 4096}},
	}
	if !equalCreds(got, want) {
		t.Fatalf("got users %v, want %v", got, want)
	}
	one, err := adm.DescribeUserSCRAMs(ctx, "nobody", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(one["nobody"].Err, kerr.ResourceNotFound) || one["bob"].Err != nil {
		t.Fatalf("describe nobody, bob: got %v, %v, want RESOURCE_NOT_FOUND, nil", one["nobody"].Err, one["bob"].Err)
	}

	// The stored credential is RFC 5802's: it verifies the password (and
	// only it), and the salted password is not kept.
	st := node.cluster.State()
	if !scramLogin(t, st, "alice", cluster.ScramSHA512, "alice-secret") {
		t.Fatalf("alice with her password: got refused, want accepted")
	}
	if scramLogin(t, st, "alice", cluster.ScramSHA512, "wrong") {
		t.Fatalf("alice with a wrong password: got accepted, want refused")
	}
	if !scramLogin(t, st, "bob", cluster.ScramSHA256, "bob-secret") {
		t.Fatalf("bob with his password: got refused, want accepted")
	}
	c, _ := st.ScramCredential("alice", cluster.ScramSHA512)
	for _, b := range [][]byte{c.Salt, c.StoredKey, c.ServerKey} {
		if bytes.Equal(b, ups[0].SaltedPassword) {
			t.Fatalf("got the salted password stored, want only the derived keys")
		}
	}

	// Kafka's per-user errors.
	res, err = adm.AlterUserSCRAMs(ctx,
		[]kadm.DeleteSCRAM{{User: "carol", Mechanism: kadm.ScramSha512}, {User: "bob", Mechanism: kadm.ScramSha512}},
		[]kadm.UpsertSCRAM{{User: "dave", Mechanism: kadm.ScramSha512, Iterations: 100, Salt: []byte("salt"), SaltedPassword: []byte("salted")}})
	if err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]error{"carol": kerr.ResourceNotFound, "bob": kerr.ResourceNotFound, "dave": kerr.UnacceptableCredential} {
		if got := res[user].Err; !errors.Is(got, want) {
			t.Fatalf("%s: got %v, want %v", user, got, want)
		}
	}
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	for _, u := range []struct {
		name string
		mech int8
	}{{"erin", 2}, {"erin", 1}, {"frank", 3}} {
		up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		up.Name, up.Mechanism, up.Iterations, up.Salt, up.SaltedPassword = u.name, u.mech, 4096, []byte("s"), []byte("p")
		req.Upsertions = append(req.Upsertions, up)
	}
	raw, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]int16{}
	for _, r := range raw.Results {
		codes[r.User] = r.ErrorCode
	}
	if wantCodes := map[string]int16{"erin": kerr.DuplicateResource.Code, "frank": kerr.UnsupportedSaslMechanism.Code}; !equalMaps(codes, wantCodes) {
		t.Fatalf("got codes %v, want %v", codes, wantCodes)
	}
	if _, ok := node.cluster.State().Users["erin"]; ok {
		t.Fatalf("got user erin stored, want nothing stored for a duplicate")
	}

	// Delete, then restart: what is left survives.
	res, err = adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "alice", Mechanism: kadm.ScramSha256}}, nil)
	if err != nil || res.Error() != nil {
		t.Fatalf("delete: got %v, %v, want no error", err, res.Error())
	}
	if err := node.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	node = startSecureNode(t, dir)
	adm = kadm.NewClient(client(t, node))
	described, err = adm.DescribeUserSCRAMs(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	got = map[string][]kadm.CredInfo{}
	for u, d := range described {
		got[u] = d.CredInfos
	}
	want = map[string][]kadm.CredInfo{
		"alice": {{Mechanism: kadm.ScramSha512, Iterations: 8192}},
		"bob":   {{Mechanism: kadm.ScramSha256, Iterations: 4096}},
	}
	if !equalCreds(got, want) {
		t.Fatalf("after restart: got users %v, want %v", got, want)
	}
	if !scramLogin(t, node.cluster.State(), "alice", cluster.ScramSHA512, "alice-secret") {
		t.Fatalf("after restart, alice with her password: got refused, want accepted")
	}
}

func equalCreds(a, b map[string][]kadm.CredInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		v = slices.Clone(v)
		slices.SortFunc(v, func(x, y kadm.CredInfo) int { return int(x.Mechanism) - int(y.Mechanism) })
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func equalMaps[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// aclKey is a described or deleted ACL, comparable.
type aclKey struct {
	typ        kmsg.ACLResourceType
	name       string
	pattern    kadm.ACLPattern
	principal  string
	host       string
	op         kadm.ACLOperation
	permission kmsg.ACLPermissionType
}

func describedKeys(t *testing.T, rs kadm.DescribeACLsResults) []aclKey {
	t.Helper()
	var out []aclKey
	for _, r := range rs {
		if r.Err != nil {
			t.Fatalf("describe: got %v (%s), want no error", r.Err, r.ErrMessage)
		}
		for _, d := range r.Described {
			out = append(out, aclKey{d.Type, d.Name, d.Pattern, d.Principal, d.Host, d.Operation, d.Permission})
		}
	}
	sortKeys(out)
	return out
}

func sortKeys(ks []aclKey) {
	slices.SortFunc(ks, func(a, b aclKey) int {
		switch {
		case a.typ != b.typ:
			return int(a.typ) - int(b.typ)
		case a.name != b.name:
			if a.name < b.name {
				return -1
			}
			return 1
		case a.pattern != b.pattern:
			return int(a.pattern) - int(b.pattern)
		case a.principal != b.principal:
			if a.principal < b.principal {
				return -1
			}
			return 1
		case a.op != b.op:
			return int(a.op) - int(b.op)
		}
		return int(a.permission) - int(b.permission)
	})
}

// TestACLs creates, describes (MATCH, PREFIXED, ANY filters) and deletes
// ACLs with kadm; they survive a restart. Without an authorizer the ACL
// APIs answer SECURITY_DISABLED.
func TestACLs(t *testing.T) {
	dir := t.TempDir()
	node := startSecureNode(t, dir)
	adm := kadm.NewClient(client(t, node))
	ctx := ctxT(t)

	create := func(b *kadm.ACLBuilder) {
		t.Helper()
		rs, err := adm.CreateACLs(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Err != nil {
				t.Fatalf("create %+v: got %v, want no error", r, r.Err)
			}
		}
	}
	create(kadm.NewACLs().Allow("User:alice").AllowHosts().Topics("orders").Operations(kadm.OpRead, kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	create(kadm.NewACLs().Allow("User:alice").AllowHosts().Topics("orders-").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternPrefixed))
	create(kadm.NewACLs().Deny("User:bob").DenyHosts("10.0.0.1").Topics("*").Operations(kadm.OpAll).ResourcePatternType(kadm.ACLPatternLiteral))
	create(kadm.NewACLs().Allow("User:alice").AllowHosts().Groups("billing").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	// Again: not stored twice.
	create(kadm.NewACLs().Allow("User:alice").AllowHosts().Groups("billing").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))

	var (
		readOrders  = aclKey{kmsg.ACLResourceTypeTopic, "orders", kadm.ACLPatternLiteral, "User:alice", "*", kadm.OpRead, kmsg.ACLPermissionTypeAllow}
		writeOrders = aclKey{kmsg.ACLResourceTypeTopic, "orders", kadm.ACLPatternLiteral, "User:alice", "*", kadm.OpWrite, kmsg.ACLPermissionTypeAllow}
		readPrefix  = aclKey{kmsg.ACLResourceTypeTopic, "orders-", kadm.ACLPatternPrefixed, "User:alice", "*", kadm.OpRead, kmsg.ACLPermissionTypeAllow}
		denyBob     = aclKey{kmsg.ACLResourceTypeTopic, "*", kadm.ACLPatternLiteral, "User:bob", "10.0.0.1", kadm.OpAll, kmsg.ACLPermissionTypeDeny}
		readGroup   = aclKey{kmsg.ACLResourceTypeGroup, "billing", kadm.ACLPatternLiteral, "User:alice", "*", kadm.OpRead, kmsg.ACLPermissionTypeAllow}
	)
	describe := func(b *kadm.ACLBuilder) []aclKey {
		t.Helper()
		rs, err := adm.DescribeACLs(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		return describedKeys(t, rs)
	}
	// anyone matches every principal and host, allowed or denied.
	anyone := func(b *kadm.ACLBuilder) *kadm.ACLBuilder {
		return b.Allow().AllowHosts().Deny().DenyHosts()
	}
	all := func() *kadm.ACLBuilder {
		return anyone(kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations())
	}
	sorted := func(ks ...aclKey) []aclKey { sortKeys(ks); return ks }
	tests := []struct {
		name   string
		filter *kadm.ACLBuilder
		want   []aclKey
	}{
		{"any", all(), sorted(readOrders, writeOrders, readPrefix, denyBob, readGroup)},
		{"match orders-eu", anyone(kadm.NewACLs().Topics("orders-eu").ResourcePatternType(kadm.ACLPatternMatch).Operations()), sorted(readPrefix, denyBob)},
		{"match orders", anyone(kadm.NewACLs().Topics("orders").ResourcePatternType(kadm.ACLPatternMatch).Operations()), sorted(readOrders, writeOrders, denyBob)},
		{"prefixed", anyone(kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternPrefixed).Operations()), sorted(readPrefix)},
		{"literal topic orders", anyone(kadm.NewACLs().Topics("orders").ResourcePatternType(kadm.ACLPatternLiteral).Operations()), sorted(readOrders, writeOrders)},
		{"principal bob", kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations().Deny("User:bob").DenyHosts(), sorted(denyBob)},
		{"allowed, host 10.0.0.1", kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations().Allow().AllowHosts("10.0.0.1"), nil},
		{"write", anyone(kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpWrite)), sorted(writeOrders)},
		{"groups", anyone(kadm.NewACLs().Groups().ResourcePatternType(kadm.ACLPatternAny).Operations()), sorted(readGroup)},
	}
	for _, tt := range tests {
		if got := describe(tt.filter); !slices.Equal(got, tt.want) {
			t.Fatalf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}

	// Delete reports what it removed.
	drs, err := adm.DeleteACLs(ctx, anyone(kadm.NewACLs().Topics("orders").ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpWrite)))
	if err != nil {
		t.Fatal(err)
	}
	var deleted []aclKey
	for _, r := range drs {
		if r.Err != nil {
			t.Fatalf("delete: got %v, want no error", r.Err)
		}
		for _, d := range r.Deleted {
			deleted = append(deleted, aclKey{d.Type, d.Name, d.Pattern, d.Principal, d.Host, d.Operation, d.Permission})
		}
	}
	if want := []aclKey{writeOrders}; !slices.Equal(deleted, want) {
		t.Fatalf("deleted: got %v, want %v", deleted, want)
	}
	want := sorted(readOrders, readPrefix, denyBob, readGroup)
	if got := describe(all()); !slices.Equal(got, want) {
		t.Fatalf("after delete: got %v, want %v", got, want)
	}

	// Restart: the ACLs are in the metadata.
	if err := node.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	node = startSecureNode(t, dir)
	adm = kadm.NewClient(client(t, node))
	ctx = ctxT(t)
	if got := describe(all()); !slices.Equal(got, want) {
		t.Fatalf("after restart: got %v, want %v", got, want)
	}

	// v0 knows only literal patterns: a v0 filter sees the literal ACLs.
	old := client(t, node, kgo.MaxVersions(kversion.V1_0_0()))
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType, req.Operation, req.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	v0, err := req.RequestWith(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	var gotV0 []aclKey
	for _, r := range v0.Resources {
		for _, a := range r.ACLs {
			gotV0 = append(gotV0, aclKey{r.ResourceType, r.ResourceName, r.ResourcePatternType, a.Principal, a.Host, a.Operation, a.PermissionType})
		}
	}
	sortKeys(gotV0)
	if want := sorted(readOrders, denyBob, readGroup); v0.Version != 0 || v0.ErrorCode != 0 || !slices.Equal(gotV0, want) {
		t.Fatalf("describe v%d: got %v (error %d), want v0 and %v", v0.Version, gotV0, v0.ErrorCode, want)
	}

	// Without an authorizer, Kafka answers SECURITY_DISABLED.
	plain := kadm.NewClient(client(t, startNode(t, t.TempDir())))
	rs, err := plain.DescribeACLs(ctx, all())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || !errors.Is(rs[0].Err, kerr.SecurityDisabled) {
		t.Fatalf("describe without authorizer: got %+v, want SECURITY_DISABLED", rs)
	}
	crs, err := plain.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts().Topics("t").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil {
		t.Fatal(err)
	}
	if len(crs) != 1 || !errors.Is(crs[0].Err, kerr.SecurityDisabled) {
		t.Fatalf("create without authorizer: got %+v, want SECURITY_DISABLED", crs)
	}
}
