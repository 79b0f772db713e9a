package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TxnOffsetCommit v0-v4, sent to the group's coordinator.
//
// Behavior: the group coordinator (core/group) keeps the offsets aside
// for the producer until its transaction ends: stored as the group's
// commits when it commits, dropped when it aborts. From v3 the member and
// generation are checked as for OffsetCommit. NOT_COORDINATOR on a broker
// that does not coordinate the group; UNKNOWN_TOPIC_OR_PARTITION for an
// unknown partition. Authorization: WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED everywhere), READ on the group
// (GROUP_AUTHORIZATION_FAILED everywhere), READ on each topic
// (TOPIC_AUTHORIZATION_FAILED for its partitions).
func (s *Server) handleTxnOffsetCommit(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.TxnOffsetCommitRequest)
	var top int16
	switch {
	case !s.authorized(cc, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID):
		top = kerr.TransactionalIDAuthorizationFailed.Code
	case !s.authorized(cc, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group):
		top = kerr.GroupAuthorizationFailed.Code
	}
	c := s.cfg.Groups.Coordinator(req.Group)
	if top == 0 && c == nil {
		top = kerr.NotCoordinator.Code
	}
	// Partitions refused here are taken out of the request and answered
	// with their code; the rest go to the coordinator.
	refused := map[string]map[int32]int16{}
	allowed := *req
	allowed.Topics = nil
	for _, t := range req.Topics {
		code := top
		if code == 0 && !s.authorized(cc, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, t.Topic) {
			code = kerr.TopicAuthorizationFailed.Code
		}
		topic, ok := s.cfg.Broker.Topic(t.Topic)
		keep := t
		keep.Partitions = nil
		for _, p := range t.Partitions {
			pc := code
			if pc == 0 && (!ok || p.Partition < 0 || p.Partition >= topic.Meta.Partitions) {
				pc = kerr.UnknownTopicOrPartition.Code
			}
			if pc != 0 {
				if refused[t.Topic] == nil {
					refused[t.Topic] = map[int32]int16{}
				}
				refused[t.Topic][p.Partition] = pc
				continue
			}
			keep.Partitions = append(keep.Partitions, p)
		}
		if len(keep.Partitions) > 0 {
			allowed.Topics = append(allowed.Topics, keep)
		}
	}
	var got *kmsg.TxnOffsetCommitResponse
	if len(allowed.Topics) > 0 {
		got = c.TxnOffsetCommit(ctx, &allowed)
	}
	codes := map[string]map[int32]int16{}
	if got != nil {
		for _, t := range got.Topics {
			if codes[t.Topic] == nil {
				codes[t.Topic] = map[int32]int16{}
			}
			for _, p := range t.Partitions {
				codes[t.Topic][p.Partition] = p.ErrorCode
			}
		}
	}
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			if c, ok := refused[t.Topic][p.Partition]; ok {
				rp.ErrorCode = c
			} else {
				rp.ErrorCode = codes[t.Topic][p.Partition]
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
