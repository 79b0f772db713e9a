package kafka

import (
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
)

// Authorization: with Config.Authorizer set, every request is checked
// against the cluster's ACL bindings (Config.ACLs) with Kafka's rules and
// error codes (KafkaApis), for the connection's principal (Conn.Principal,
// User:ANONYMOUS when none) from the client's IP address. A refusal is data
// in the response, never a closed connection; it is counted in
// fluxo_kafka_authorization_denied_total{api,resource_type,operation} and
// logged at debug level with the principal.
//
//	API                          needs                                    refused with
//	ApiVersions, SaslHandshake,  nothing (never authorized)               -
//	SaslAuthenticate
//	Produce                      WRITE on each topic                      TOPIC_AUTHORIZATION_FAILED per partition
//	                             with a transactional id: WRITE on it     TRANSACTIONAL_ID_AUTHORIZATION_FAILED, every partition
//	                             auto-creating a topic: CREATE on the     UNKNOWN_TOPIC_OR_PARTITION (not created)
//	                             cluster or the topic
//	Fetch (consumer)             READ on each topic                       TOPIC_AUTHORIZATION_FAILED per partition
//	Fetch (follower, replica≥0)  CLUSTER_ACTION on the cluster            TOPIC_AUTHORIZATION_FAILED on every partition
//	ListOffsets                  DESCRIBE on each topic                   TOPIC_AUTHORIZATION_FAILED per partition
//	                             replica id ≥ 0: CLUSTER_ACTION           CLUSTER_AUTHORIZATION_FAILED per partition
//	OffsetForLeaderEpoch         DESCRIBE on each topic                   TOPIC_AUTHORIZATION_FAILED per partition
//	                             replica id ≥ 0: CLUSTER_ACTION           CLUSTER_AUTHORIZATION_FAILED per partition
//	Metadata                     DESCRIBE on a topic to see it            all topics: the others are left out;
//	                                                                      named ones: TOPIC_AUTHORIZATION_FAILED
//	                             auto-creation: CREATE on the cluster     TOPIC_AUTHORIZATION_FAILED
//	                             or the topic
//	                             authorized operations (v8+, asked):      -
//	                             filled from the authorizer
//	CreateTopics                 CREATE on the cluster or the topic       TOPIC_AUTHORIZATION_FAILED
//	DeleteTopics                 DELETE on the topic                      TOPIC_AUTHORIZATION_FAILED
//	CreatePartitions             ALTER on the topic                       TOPIC_AUTHORIZATION_FAILED
//	DeleteRecords                DELETE on the topic                      TOPIC_AUTHORIZATION_FAILED per partition
//	DescribeConfigs              DESCRIBE_CONFIGS on the topic            TOPIC_AUTHORIZATION_FAILED
//	                             broker: DESCRIBE_CONFIGS on the cluster  CLUSTER_AUTHORIZATION_FAILED
//	IncrementalAlterConfigs      ALTER_CONFIGS on the topic               TOPIC_AUTHORIZATION_FAILED
//	                             broker: ALTER_CONFIGS on the cluster     CLUSTER_AUTHORIZATION_FAILED
//	AlterPartitionReassignments  ALTER on the cluster                     CLUSTER_AUTHORIZATION_FAILED (top level)
//	ListPartitionReassignments   DESCRIBE on the cluster                  CLUSTER_AUTHORIZATION_FAILED (top level)
//	InitProducerID               idempotent: IDEMPOTENT_WRITE on the      CLUSTER_AUTHORIZATION_FAILED
//	                             cluster or WRITE on any topic (KIP-679)
//	                             transactional: WRITE on the id           TRANSACTIONAL_ID_AUTHORIZATION_FAILED
//	AddPartitionsToTxn           WRITE on the transactional id            TRANSACTIONAL_ID_AUTHORIZATION_FAILED, every partition
//	                             and WRITE on each topic                  TOPIC_AUTHORIZATION_FAILED per partition, the
//	                                                                      others OPERATION_NOT_ATTEMPTED
//	AddOffsetsToTxn              WRITE on the transactional id            TRANSACTIONAL_ID_AUTHORIZATION_FAILED
//	                             and READ on the group                    GROUP_AUTHORIZATION_FAILED
//	EndTxn                       WRITE on the transactional id            TRANSACTIONAL_ID_AUTHORIZATION_FAILED
//	TxnOffsetCommit              WRITE on the transactional id            TRANSACTIONAL_ID_AUTHORIZATION_FAILED, every partition
//	                             and READ on the group                    GROUP_AUTHORIZATION_FAILED, every partition
//	                             and READ on each topic                   TOPIC_AUTHORIZATION_FAILED per partition
//	WriteTxnMarkers              CLUSTER_ACTION on the cluster            CLUSTER_AUTHORIZATION_FAILED per partition
//	DescribeTransactions         DESCRIBE on each transactional id        TRANSACTIONAL_ID_AUTHORIZATION_FAILED for that id
//	ListTransactions             DESCRIBE on each transactional id        the others are left out
//	FindCoordinator              group: DESCRIBE on the group             GROUP_AUTHORIZATION_FAILED (per key, v4+)
//	                             transaction: DESCRIBE on the id          TRANSACTIONAL_ID_AUTHORIZATION_FAILED
//	JoinGroup, SyncGroup,        READ on the group                        GROUP_AUTHORIZATION_FAILED
//	Heartbeat, LeaveGroup
//	OffsetCommit                 READ on the group                        GROUP_AUTHORIZATION_FAILED, every partition
//	                             and READ on each topic                   TOPIC_AUTHORIZATION_FAILED per partition
//	OffsetFetch                  DESCRIBE on the group                    GROUP_AUTHORIZATION_FAILED
//	                             and DESCRIBE on each topic               TOPIC_AUTHORIZATION_FAILED per partition;
//	                                                                      all topics: the others are left out
//	DescribeGroups               DESCRIBE on each group                   GROUP_AUTHORIZATION_FAILED for that group
//	ListGroups                   DESCRIBE on the cluster lists all;       -
//	                             else the groups with DESCRIBE
//	DeleteGroups                 DELETE on each group                     GROUP_AUTHORIZATION_FAILED for that group
//
// The security APIs check the cluster with authorizeCluster (no other
// resource is involved):
//
//	CreateAcls                   ALTER on the cluster                     CLUSTER_AUTHORIZATION_FAILED for every creation
//	DeleteAcls                   ALTER on the cluster                     CLUSTER_AUTHORIZATION_FAILED for every filter
//	DescribeAcls                 DESCRIBE on the cluster                  CLUSTER_AUTHORIZATION_FAILED (top level)
//	AlterUserScramCredentials    ALTER on the cluster                     CLUSTER_AUTHORIZATION_FAILED for every user
//	DescribeUserScramCredentials DESCRIBE on the cluster                  CLUSTER_AUTHORIZATION_FAILED (top level)
//	UnregisterBroker             ALTER on the cluster                     CLUSTER_AUTHORIZATION_FAILED (top level)
//
// Nothing is cached: every check reads Config.ACLs, so a binding created
// or deleted takes effect on the next request.

// Operations Kafka reports as authorized operations for each resource type
// (its AclEntry.supportedOperations), in bit order.
var (
	topicOps = []kmsg.ACLOperation{
		kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationCreate,
		kmsg.ACLOperationDelete, kmsg.ACLOperationAlter, kmsg.ACLOperationDescribe,
		kmsg.ACLOperationDescribeConfigs, kmsg.ACLOperationAlterConfigs,
	}
	clusterOps = []kmsg.ACLOperation{
		kmsg.ACLOperationCreate, kmsg.ACLOperationAlter, kmsg.ACLOperationDescribe,
		kmsg.ACLOperationClusterAction, kmsg.ACLOperationDescribeConfigs,
		kmsg.ACLOperationAlterConfigs, kmsg.ACLOperationIdempotentWrite,
	}
	groupOps = []kmsg.ACLOperation{
		kmsg.ACLOperationRead, kmsg.ACLOperationDelete, kmsg.ACLOperationDescribe,
	}
)

// principal is the connection's principal, User:ANONYMOUS when it has
// none.
func principal(cc *Conn) string {
	if p := cc.Principal(); p != "" {
		return p
	}
	return acl.Anonymous
}

// clientHost is the client's IP address, as ACL bindings name hosts.
func clientHost(cc *Conn) string {
	addr := cc.RemoteAddr()
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}

// bindings returns the cluster's ACL bindings now.
func (s *Server) bindings() []acl.Binding {
	if s.cfg.ACLs == nil {
		return nil
	}
	return s.cfg.ACLs()
}

func (s *Server) request(cc *Conn, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) acl.Request {
	return acl.Request{Principal: principal(cc), Host: clientHost(cc), Operation: op, ResourceType: rt, ResourceName: name}
}

// allows answers whether cc may perform op on the resource, without
// counting or logging a refusal: for checks whose refusal is not an error
// (one of two alternatives, or filtering a listing), as Kafka's
// logIfDenied=false.
func (s *Server) allows(cc *Conn, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	if s.cfg.Authorizer == nil {
		return true
	}
	return s.cfg.Authorizer.Authorize(s.bindings(), s.request(cc, op, rt, name))
}

// authorized answers whether cc may perform op on the resource, counting
// and logging a refusal.
func (s *Server) authorized(cc *Conn, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	if s.allows(cc, op, rt, name) {
		return true
	}
	s.noteDenied(cc, op, rt, name)
	return false
}

// authorizeCluster answers whether cc may perform op on the cluster.
func (s *Server) authorizeCluster(cc *Conn, op kmsg.ACLOperation) bool {
	return s.authorized(cc, op, kmsg.ACLResourceTypeCluster, acl.ClusterName)
}

// authorizedOnAny answers whether cc may perform op on at least one
// resource of type rt (KIP-679), counting and logging a refusal.
func (s *Server) authorizedOnAny(cc *Conn, op kmsg.ACLOperation, rt kmsg.ACLResourceType) bool {
	if s.cfg.Authorizer == nil || s.cfg.Authorizer.AuthorizeAny(s.bindings(), s.request(cc, op, rt, "")) {
		return true
	}
	s.noteDenied(cc, op, rt, "")
	return false
}

// mayCreateTopic answers whether cc may create the topic: CREATE on the
// cluster, or on the topic itself.
func (s *Server) mayCreateTopic(cc *Conn, name string) bool {
	return s.allows(cc, kmsg.ACLOperationCreate, kmsg.ACLResourceTypeCluster, acl.ClusterName) ||
		s.authorized(cc, kmsg.ACLOperationCreate, kmsg.ACLResourceTypeTopic, name)
}

// authorizedOperations is the bit field of the operations cc may perform
// on the resource among those Kafka reports for its type: bit i set for
// kmsg.ACLOperation(i), as Metadata and DescribeGroups carry it.
func (s *Server) authorizedOperations(cc *Conn, rt kmsg.ACLResourceType, name string) int32 {
	var ops []kmsg.ACLOperation
	switch rt {
	case kmsg.ACLResourceTypeTopic:
		ops = topicOps
	case kmsg.ACLResourceTypeCluster:
		ops = clusterOps
	case kmsg.ACLResourceTypeGroup:
		ops = groupOps
	}
	var bits int32
	for _, op := range ops {
		if s.allows(cc, op, rt, name) {
			bits |= 1 << int32(op)
		}
	}
	return bits
}

// noteDenied counts and logs one refused check.
func (s *Server) noteDenied(cc *Conn, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) {
	api := kmsg.NameForKey(cc.Header().Key)
	s.metrics.authzDenied.WithLabelValues(api, rt.String(), op.String()).Inc()
	cc.log.Debug().Str("api", api).Str("principal", principal(cc)).Str("host", clientHost(cc)).
		Stringer("operation", op).Stringer("resource_type", rt).Str("resource", name).
		Msg("authorization denied")
}

// offsetsAuthz returns the check of ListOffsets and OffsetForLeaderEpoch:
// the error code for a topic's partitions (0: allowed). A replica (id >=
// 0) needs CLUSTER_ACTION on the cluster (CLUSTER_AUTHORIZATION_FAILED);
// a client needs DESCRIBE on the topic (TOPIC_AUTHORIZATION_FAILED), or
// CLUSTER_ACTION, as Kafka lets brokers through either way. Each topic is
// checked once per request.
func (s *Server) offsetsAuthz(cc *Conn, replicaID int32) func(topic string) int16 {
	if s.cfg.Authorizer == nil {
		return func(string) int16 { return 0 }
	}
	if replicaID >= 0 {
		var code int16
		if !s.authorizeCluster(cc, kmsg.ACLOperationClusterAction) {
			code = kerr.ClusterAuthorizationFailed.Code
		}
		return func(string) int16 { return code }
	}
	if s.allows(cc, kmsg.ACLOperationClusterAction, kmsg.ACLResourceTypeCluster, acl.ClusterName) {
		return func(string) int16 { return 0 }
	}
	memo := map[string]int16{}
	return func(topic string) int16 {
		code, ok := memo[topic]
		if !ok {
			if !s.authorized(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, topic) {
				code = kerr.TopicAuthorizationFailed.Code
			}
			memo[topic] = code
		}
		return code
	}
}
