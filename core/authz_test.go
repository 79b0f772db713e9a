package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/fluxo-io/fluxo/core/acl"
	"github.com/fluxo-io/fluxo/core/kafka"
)

// authzNode is a core node with authorization on: a PLAINTEXT listener
// whose anonymous clients are the super user (how a site bootstraps its
// first users and ACLs), and a SASL_PLAINTEXT one where each client
// authenticates with SCRAM as the principal a test names. Bindings are
// set through CreateAcls and DeleteAcls.
type authzNode struct {
	*Node
	admin *kgo.Client // anonymous, on the PLAINTEXT listener: a super user

	mu    sync.Mutex
	users map[string]bool // SCRAM users created so far
}

// admin is the super user: anonymous on the PLAINTEXT listener.
const admin = acl.Anonymous

func startAuthzNode(t *testing.T) *authzNode {
	t.Helper()
	a := &authzNode{users: map[string]bool{}}
	a.Node = startNodeWith(t, func(c *Config) {
		c.Listeners = []kafka.ListenerAddr{
			{Name: "PLAINTEXT", Protocol: kafka.Plaintext, Addr: "127.0.0.1:0"},
			{Name: "SASL_PLAINTEXT", Protocol: kafka.SASLPlaintext, Addr: "127.0.0.1:0"},
		}
		c.Kafka.SASLMechanisms = []string{kafka.MechanismScramSHA256}
		c.Kafka.Authorizer = acl.NewAuthorizer([]string{admin})
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(a.KafkaListenerAddr("PLAINTEXT")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	a.admin = cl
	return a
}

// set replaces the cluster's bindings with bs.
func (a *authzNode) set(bs ...acl.Binding) {
	ctx := context.Background()
	del := kmsg.NewPtrDeleteACLsRequest()
	f := kmsg.NewDeleteACLsRequestFilter()
	f.ResourceType, f.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	f.Operation, f.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	del.Filters = append(del.Filters, f)
	if resp, err := del.RequestWith(ctx, a.admin); err != nil || resp.Results[0].ErrorCode != 0 {
		panic(fmt.Sprintf("delete every ACL: %v %v", err, resp))
	}
	for _, b := range bs {
		req := kmsg.NewPtrCreateACLsRequest()
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = b.ResourceType, b.ResourceName, b.PatternType
		c.Principal, c.Host, c.Operation, c.PermissionType = b.Principal, b.Host, b.Operation, b.Permission
		req.Creations = append(req.Creations, c)
		resp, err := req.RequestWith(ctx, a.admin)
		if err == nil && resp.Results[0].ErrorCode != 0 {
			err = kerr.ErrorForCode(resp.Results[0].ErrorCode)
		}
		if err != nil {
			panic(fmt.Sprintf("create ACL %v: %v", b, err))
		}
	}
}

// client returns a client authenticated as principal: the super user on
// the PLAINTEXT listener, any other User:name with SCRAM (the user is
// created on first use, its password its name).
func (a *authzNode) client(t *testing.T, principal string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{kgo.SeedBrokers(a.KafkaListenerAddr("PLAINTEXT"))}
	if principal != admin {
		name := strings.TrimPrefix(principal, "User:")
		a.mu.Lock()
		if !a.users[name] {
			_, err := kadm.NewClient(a.admin).AlterUserSCRAMs(ctxT(t), nil,
				[]kadm.UpsertSCRAM{{User: name, Mechanism: kadm.ScramSha256, Iterations: 4096, Password: name}})
			if err != nil {
				a.mu.Unlock()
				t.Fatalf("add user %s: got error %v, want nil", name, err)
			}
			a.users[name] = true
		}
		a.mu.Unlock()
		base = []kgo.Opt{kgo.SeedBrokers(a.KafkaListenerAddr("SASL_PLAINTEXT")),
			kgo.SASL(scram.Auth{User: name, Pass: name}.AsSha256Mechanism())}
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: got error %v, want nil", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopics creates topics as the super user.
func (a *authzNode) createTopics(t *testing.T, topics ...string) {
	t.Helper()
	rs, err := kadm.NewClient(a.client(t, admin)).CreateTopics(ctxT(t), 1, 1, nil, topics...)
	if err == nil {
		err = rs.Error()
	}
	if err != nil {
		t.Fatalf("create %v as admin: got error %v, want nil", topics, err)
	}
}

// denied returns fluxo_kafka_authorization_denied_total for the labels.
func (a *authzNode) denied(t *testing.T, api, resourceType, operation string) float64 {
	t.Helper()
	mfs, err := a.reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: got error %v, want nil", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fluxo_kafka_authorization_denied_total" {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			want := map[string]string{"api": api, "resource_type": resourceType, "operation": operation}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func binding(rt kmsg.ACLResourceType, name string, pt kmsg.ACLResourcePatternType, principal string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) acl.Binding {
	return acl.Binding{ResourceType: rt, ResourceName: name, PatternType: pt, Principal: principal, Host: acl.WildcardHost, Operation: op, Permission: perm}
}

func allowTopic(name, principal string, op kmsg.ACLOperation) acl.Binding {
	return binding(kmsg.ACLResourceTypeTopic, name, kmsg.ACLResourcePatternTypeLiteral, principal, op, kmsg.ACLPermissionTypeAllow)
}

const alice = "User:alice"

// produceOne sends one record and returns its error.
func produceOne(t *testing.T, cl *kgo.Client, topic string) error {
	t.Helper()
	return cl.ProduceSync(ctxT(t), &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
}

// fetch sends one Fetch for partition 0 of topic from offset 0 and
// returns the partition's error code.
func fetch(t *testing.T, cl *kgo.Client, topic string, replica int32) int16 {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = replica
	req.MaxBytes = 1 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatalf("Fetch %s: got error %v, want a response", topic, err)
	}
	if len(kresp.Topics) != 1 || len(kresp.Topics[0].Partitions) != 1 {
		t.Fatalf("Fetch %s: got %d topics, want 1 with 1 partition", topic, len(kresp.Topics))
	}
	return kresp.Topics[0].Partitions[0].ErrorCode
}

// TestAuthzProduceWithoutWrite: a producer that may describe a topic but
// not write it gets TOPIC_AUTHORIZATION_FAILED, counted and not written;
// an idempotent producer needs IDEMPOTENT_WRITE or WRITE on some topic;
// a binding added later takes effect at once.
func TestAuthzProduceWithoutWrite(t *testing.T) {
	a := startAuthzNode(t)
	a.createTopics(t, "t")
	a.set(allowTopic("t", alice, kmsg.ACLOperationDescribe))

	plain := a.client(t, alice, kgo.DisableIdempotentWrite())
	if err := produceOne(t, plain, "t"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce without WRITE: got %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if got := a.denied(t, "Produce", "TOPIC", "WRITE"); got < 1 {
		t.Errorf("denied Produce TOPIC WRITE: got %v, want at least 1", got)
	}
	idem := a.client(t, alice)
	if err := produceOne(t, idem, "t"); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("idempotent produce without WRITE anywhere: got %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
	if p, _ := a.Broker().Partition("t", 0); p.Log().LogEndOffset() != 0 {
		t.Fatalf("log end offset after refused produces: got %d, want 0", p.Log().LogEndOffset())
	}

	a.set(allowTopic("t", alice, kmsg.ACLOperationWrite))
	if err := produceOne(t, plain, "t"); err != nil {
		t.Fatalf("produce with WRITE: got %v, want nil", err)
	}
	// KIP-679: WRITE on a topic is enough for an idempotent producer.
	if err := produceOne(t, a.client(t, alice), "t"); err != nil {
		t.Fatalf("idempotent produce with WRITE on the topic: got %v, want nil", err)
	}
}

// TestAuthzGroupWithoutRead: a member that may describe a group but not
// read it cannot join it or commit to it (GROUP_AUTHORIZATION_FAILED); one
// that may not describe it cannot even find its coordinator.
func TestAuthzGroupWithoutRead(t *testing.T) {
	a := startAuthzNode(t)
	a.createTopics(t, "t")
	a.set(
		allowTopic("t", alice, kmsg.ACLOperationRead),
		binding(kmsg.ACLResourceTypeGroup, "g", kmsg.ACLResourcePatternTypeLiteral, alice, kmsg.ACLOperationDescribe, kmsg.ACLPermissionTypeAllow),
	)
	cl := a.client(t, alice)
	ctx := ctxT(t)

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey = "other"
	fc.CoordinatorKeys = []string{"other"}
	fresp, err := fc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("FindCoordinator: got error %v, want a response", err)
	}
	code := fresp.ErrorCode
	if len(fresp.Coordinators) > 0 {
		code = fresp.Coordinators[0].ErrorCode
	}
	if code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("FindCoordinator without DESCRIBE: got %v, want GROUP_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}

	join := kmsg.NewPtrJoinGroupRequest()
	join.Group = "g"
	join.SessionTimeoutMillis = 10000
	join.RebalanceTimeoutMillis = 10000
	join.ProtocolType = "consumer"
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name = "range"
	p.Metadata = (&kmsg.ConsumerMemberMetadata{Topics: []string{"t"}}).AppendTo(nil)
	join.Protocols = append(join.Protocols, p)
	jresp, err := join.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("JoinGroup: got error %v, want a response", err)
	}
	if jresp.ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("JoinGroup without READ: got %v, want GROUP_AUTHORIZATION_FAILED", kerr.ErrorForCode(jresp.ErrorCode))
	}

	cresp, err := kadm.NewClient(cl).CommitOffsets(ctx, "g", kadm.OffsetsFromRecords(kgo.Record{Topic: "t", Partition: 0, Offset: 0}))
	if err == nil {
		err = cresp.Error()
	}
	if !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Fatalf("OffsetCommit without READ on the group: got %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
	if got := a.denied(t, "JoinGroup", "GROUP", "READ"); got != 1 {
		t.Errorf("denied JoinGroup GROUP READ: got %v, want 1", got)
	}
}

// TestAuthzCreateTopicsWithoutCreate: creating a topic needs CREATE on
// the cluster or the topic, validate-only too; Metadata does not
// auto-create one without it.
func TestAuthzCreateTopicsWithoutCreate(t *testing.T) {
	a := startAuthzNode(t)
	a.set(allowTopic("*", alice, kmsg.ACLOperationDescribe))
	cl := a.client(t, alice)
	adm := kadm.NewClient(cl)
	ctx := ctxT(t)
	for _, validate := range []bool{true, false} {
		create := adm.CreateTopics
		if validate {
			create = adm.ValidateCreateTopics
		}
		rs, err := create(ctx, 1, 1, nil, "new")
		if err == nil {
			err = rs.Error()
		}
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("CreateTopics (validate only %v) without CREATE: got %v, want TOPIC_AUTHORIZATION_FAILED", validate, err)
		}
	}
	md := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("auto")
	md.Topics = append(md.Topics, mt)
	md.AllowAutoTopicCreation = true
	mresp, err := md.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("Metadata: got error %v, want a response", err)
	}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("auto-creating Metadata without CREATE: got %+v, want TOPIC_AUTHORIZATION_FAILED", mresp.Topics)
	}
	for _, name := range []string{"new", "auto"} {
		if _, ok := a.Broker().Topic(name); ok {
			t.Fatalf("topic %s: got created, want refused", name)
		}
	}

	a.set(allowTopic("*", alice, kmsg.ACLOperationDescribe),
		binding(kmsg.ACLResourceTypeCluster, acl.ClusterName, kmsg.ACLResourcePatternTypeLiteral, alice, kmsg.ACLOperationCreate, kmsg.ACLPermissionTypeAllow))
	rs, err := adm.CreateTopics(ctx, 1, 1, nil, "new")
	if err == nil {
		err = rs.Error()
	}
	if err != nil {
		t.Fatalf("CreateTopics with CREATE on the cluster: got %v, want nil", err)
	}
}

// TestAuthzMetadataHidesTopics: listing all topics shows only the
// describable ones; naming another gets TOPIC_AUTHORIZATION_FAILED; the
// authorized operations asked for are the principal's.
func TestAuthzMetadataHidesTopics(t *testing.T) {
	a := startAuthzNode(t)
	a.createTopics(t, "visible", "hidden")
	a.set(allowTopic("visible", alice, kmsg.ACLOperationRead))
	cl := a.client(t, alice)
	adm := kadm.NewClient(cl)
	ctx := ctxT(t)

	all, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("ListTopics: got error %v, want nil", err)
	}
	if names := all.Names(); len(names) != 1 || names[0] != "visible" {
		t.Fatalf("all topics: got %v, want [visible]", names)
	}
	named, err := adm.ListTopics(ctx, "hidden")
	if err == nil {
		err = named["hidden"].Err
	}
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("hidden: got %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}

	md := kmsg.NewPtrMetadataRequest()
	md.IncludeTopicAuthorizedOperations = true
	mresp, err := md.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("Metadata: got error %v, want a response", err)
	}
	if mresp.Version < 8 {
		t.Fatalf("Metadata version: got %d, want 8 or more", mresp.Version)
	}
	want := int32(1<<kmsg.ACLOperationRead | 1<<kmsg.ACLOperationDescribe)
	if len(mresp.Topics) != 1 || mresp.Topics[0].AuthorizedOperations != want {
		t.Fatalf("topics and authorized operations: got %+v, want visible with %b", mresp.Topics, want)
	}
}

// TestAuthzSuperUser: a super user needs no binding, for topics, data,
// groups and the cluster; the same requests from another principal fail.
func TestAuthzSuperUser(t *testing.T) {
	a := startAuthzNode(t)
	a.createTopics(t, "t")
	ctx := ctxT(t)
	cl := a.client(t, admin, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err := produceOne(t, cl, "t"); err != nil {
		t.Fatalf("admin produce: got %v, want nil", err)
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err(); err != nil || fs.NumRecords() != 1 {
		t.Fatalf("admin group consume: got %d records, error %v, want 1, nil", fs.NumRecords(), err)
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("admin commit: got %v, want nil", err)
	}
	adm := kadm.NewClient(a.client(t, admin))
	if _, err := adm.ListPartitionReassignments(ctx, nil); err != nil {
		t.Fatalf("admin ListPartitionReassignments: got %v, want nil", err)
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil || len(groups.Groups()) != 1 {
		t.Fatalf("admin ListGroups: got %v, %v, want the group g", groups.Groups(), err)
	}

	other := kadm.NewClient(a.client(t, alice))
	lr, err := kmsg.NewPtrListPartitionReassignmentsRequest().RequestWith(ctx, a.client(t, alice))
	if err != nil {
		t.Fatalf("alice ListPartitionReassignments: got error %v, want a response", err)
	}
	if lr.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("alice ListPartitionReassignments: got %v, want CLUSTER_AUTHORIZATION_FAILED", kerr.ErrorForCode(lr.ErrorCode))
	}
	if groups, err := other.ListGroups(ctx); err != nil || len(groups.Groups()) != 0 {
		t.Fatalf("alice ListGroups: got %v, %v, want none", groups.Groups(), err)
	}
}

// TestAuthzPrefixedAllow: a PREFIXED binding covers every topic whose
// name starts with its prefix, and no other.
func TestAuthzPrefixedAllow(t *testing.T) {
	a := startAuthzNode(t)
	a.createTopics(t, "sensors-a", "sensors-b", "sensor")
	a.set(binding(kmsg.ACLResourceTypeTopic, "sensors-", kmsg.ACLResourcePatternTypePrefixed, alice, kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow))
	cl := a.client(t, alice)
	for _, topic := range []string{"sensors-a", "sensors-b"} {
		if err := produceOne(t, cl, topic); err != nil {
			t.Fatalf("produce to %s: got %v, want nil", topic, err)
		}
	}
	if err := produceOne(t, cl, "sensor"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce to sensor: got %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
}

// TestAuthzDenyWins: a DENY of READ on one topic wins over an ALLOW of
// ALL on every topic, and leaves the other operations and topics alone.
func TestAuthzDenyWins(t *testing.T) {
	a := startAuthzNode(t)
	a.createTopics(t, "secret", "open")
	a.set(
		allowTopic("*", alice, kmsg.ACLOperationAll),
		binding(kmsg.ACLResourceTypeTopic, "secret", kmsg.ACLResourcePatternTypeLiteral, alice, kmsg.ACLOperationRead, kmsg.ACLPermissionTypeDeny),
	)
	cl := a.client(t, alice)
	for _, topic := range []string{"secret", "open"} {
		if err := produceOne(t, cl, topic); err != nil {
			t.Fatalf("produce to %s: got %v, want nil", topic, err)
		}
	}
	if code := fetch(t, cl, "secret", -1); code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("fetch secret: got %v, want TOPIC_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}
	if code := fetch(t, cl, "open", -1); code != 0 {
		t.Fatalf("fetch open: got %v, want no error", kerr.ErrorForCode(code))
	}
}

// TestAuthzFollowerFetchWithoutClusterAction: a fetch with a replica id
// needs CLUSTER_ACTION on the cluster, whatever the topic bindings say;
// without it every partition gets TOPIC_AUTHORIZATION_FAILED.
func TestAuthzFollowerFetchWithoutClusterAction(t *testing.T) {
	a := startAuthzNode(t)
	a.createTopics(t, "t")
	a.set(allowTopic("t", alice, kmsg.ACLOperationAll))
	cl := a.client(t, alice)
	if code := fetch(t, cl, "t", 2); code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("follower fetch without CLUSTER_ACTION: got %v, want TOPIC_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}
	if got := a.denied(t, "Fetch", "CLUSTER", "CLUSTER_ACTION"); got != 1 {
		t.Errorf("denied Fetch CLUSTER CLUSTER_ACTION: got %v, want 1", got)
	}
	a.set(binding(kmsg.ACLResourceTypeCluster, acl.ClusterName, kmsg.ACLResourcePatternTypeLiteral, alice, kmsg.ACLOperationClusterAction, kmsg.ACLPermissionTypeAllow))
	if code := fetch(t, cl, "t", 2); code == kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("follower fetch with CLUSTER_ACTION: got %v, want past authorization", kerr.ErrorForCode(code))
	}
}
