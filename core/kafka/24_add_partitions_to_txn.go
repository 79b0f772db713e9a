package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/txn"
)

// AddPartitionsToTxn v0-v3.
//
// Behavior: adds the partitions to the producer's transaction in its
// coordinator (core/txn), starting the transaction if need be; every
// partition gets the same code. A topic the principal may not write gets
// TOPIC_AUTHORIZATION_FAILED, an unknown partition
// UNKNOWN_TOPIC_OR_PARTITION, and then the other partitions
// OPERATION_NOT_ATTEMPTED, nothing being added. PRODUCER_FENCED for a
// producer of an older epoch (INVALID_PRODUCER_EPOCH before v2),
// INVALID_PRODUCER_ID_MAPPING for an id the coordinator does not know with
// that producer, CONCURRENT_TRANSACTIONS while the previous transaction
// ends, NOT_COORDINATOR on another broker. Authorization: see txns.go.
func (s *Server) handleAddPartitionsToTxn(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AddPartitionsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	codes := map[txn.Partition]int16{}
	var parts []txn.Partition
	failed := false
	txnDenied := !s.authorized(cc, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID)
	for _, t := range req.Topics {
		var code int16
		switch {
		case txnDenied:
			code = kerr.TransactionalIDAuthorizationFailed.Code
		case !s.authorized(cc, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, t.Topic):
			code = kerr.TopicAuthorizationFailed.Code
		}
		topic, ok := s.cfg.Broker.Topic(t.Topic)
		for _, p := range t.Partitions {
			tp := txn.Partition{Topic: t.Topic, Partition: p}
			parts = append(parts, tp)
			c := code
			if c == 0 && (!ok || p < 0 || p >= topic.Meta.Partitions) {
				c = kerr.UnknownTopicOrPartition.Code
			}
			codes[tp] = c
			failed = failed || c != 0
		}
	}
	code := int16(0)
	switch {
	case failed:
		for tp, c := range codes {
			if c == 0 {
				codes[tp] = kerr.OperationNotAttempted.Code
			}
		}
	case s.cfg.Txns == nil:
		code = kerr.CoordinatorNotAvailable.Code
	default:
		if c := s.cfg.Txns.Coordinator(req.TransactionalID); c == nil {
			code = kerr.NotCoordinator.Code
		} else {
			code = fencedCode(c.AddPartitions(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, parts), req.Version, 2)
		}
	}
	for _, t := range req.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition = p
			rp.ErrorCode = code
			if failed {
				rp.ErrorCode = codes[txn.Partition{Topic: t.Topic, Partition: p}]
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
