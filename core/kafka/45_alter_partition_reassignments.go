package kafka

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/broker"
)

// AlterPartitionReassignments v0-v1 (KIP-455).
//
// Behavior:
//   - Each partition with a replica list is reassigned to it without
//     stopping writes (broker.Broker.Reassign): the new replicas are added
//     and copy the log, then the others are dropped once every new one is
//     in sync. The answer comes after the first step.
//   - A null replica list (cancel) gets NO_REASSIGNMENT_IN_PROGRESS: a
//     reassignment cannot be cancelled here.
//   - UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT (empty,
//     duplicates, unknown brokers); v1's AllowReplicationFactorChange
//     false refuses a list of another length with INVALID_REPLICATION_FACTOR.
//   - Authorization (authz.go): ALTER on the cluster, else
//     CLUSTER_AUTHORIZATION_FAILED for the whole request.
func (s *Server) handleAlterPartitionReassignments(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AlterPartitionAssignmentsRequest)
	if !s.authorizeCluster(cc, kmsg.ACLOperationAlter) {
		return errorResponse(req, kerr.ClusterAuthorizationFailed.Code, "not authorized to reassign partitions"), nil
	}
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	b := s.cfg.Broker
	for _, t := range req.Topics {
		rt := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			rp.Partition = p.Partition
			fail := func(code int16, msg string) {
				rp.ErrorCode = code
				rp.ErrorMessage = &msg
			}
			cur, ok := b.State().Partition(t.Topic, p.Partition)
			switch {
			case !ok:
				fail(kerr.UnknownTopicOrPartition.Code, "no such partition")
			case p.Replicas == nil:
				fail(kerr.NoReassignmentInProgress.Code, "reassignments cannot be cancelled")
			case req.Version >= 1 && !req.AllowReplicationFactorChange && len(p.Replicas) != len(cur.Replicas):
				fail(kerr.InvalidReplicationFactor.Code, "the replica count would change")
			default:
				err := b.Reassign(ctx, t.Topic, p.Partition, p.Replicas)
				switch {
				case err == nil:
				case errors.Is(err, broker.ErrUnknownTopic):
					fail(kerr.UnknownTopicOrPartition.Code, err.Error())
				case errors.Is(err, broker.ErrInvalidAssignment):
					fail(kerr.InvalidReplicaAssignment.Code, err.Error())
				default:
					fail(kerr.RequestTimedOut.Code, err.Error())
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// ListPartitionReassignments v0 (KIP-455): the reassignments this broker
// drives (the controller, where admin clients send them), with the
// replicas being added and removed. Authorization (authz.go): DESCRIBE on
// the cluster, else CLUSTER_AUTHORIZATION_FAILED.
func (s *Server) handleListPartitionReassignments(_ context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListPartitionReassignmentsRequest)
	if !s.authorizeCluster(cc, kmsg.ACLOperationDescribe) {
		return errorResponse(req, kerr.ClusterAuthorizationFailed.Code, "not authorized to describe the cluster"), nil
	}
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	b := s.cfg.Broker
	want := func(topic string, p int32) bool {
		if req.Topics == nil {
			return true
		}
		for _, t := range req.Topics {
			if t.Topic == topic && slices.Contains(t.Partitions, p) {
				return true
			}
		}
		return false
	}
	byTopic := map[string]*kmsg.ListPartitionReassignmentsResponseTopic{}
	var names []string
	for key, target := range b.Reassigning() {
		i := strings.LastIndexByte(key, '/')
		topic := key[:i]
		n, _ := strconv.Atoi(key[i+1:])
		p := int32(n)
		cur, ok := b.State().Partition(topic, p)
		if !ok || !want(topic, p) {
			continue
		}
		rp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		rp.Partition = p
		rp.Replicas = cur.Replicas
		for _, id := range target {
			if !slices.Contains(cur.ISR, id) {
				rp.AddingReplicas = append(rp.AddingReplicas, id)
			}
		}
		for _, id := range cur.Replicas {
			if !slices.Contains(target, id) {
				rp.RemovingReplicas = append(rp.RemovingReplicas, id)
			}
		}
		rt := byTopic[topic]
		if rt == nil {
			t := kmsg.NewListPartitionReassignmentsResponseTopic()
			t.Topic = topic
			rt = &t
			byTopic[topic] = rt
			names = append(names, topic)
		}
		rt.Partitions = append(rt.Partitions, rp)
	}
	sort.Strings(names)
	for _, n := range names {
		resp.Topics = append(resp.Topics, *byTopic[n])
	}
	return resp, nil
}
