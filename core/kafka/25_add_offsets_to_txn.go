package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/broker"
	"github.com/fluxo-io/fluxo/core/txn"
)

// AddOffsetsToTxn v0-v4.
//
// Behavior: adds the group's __consumer_offsets partition to the
// producer's transaction, so that the transaction's end reaches the
// group's coordinator (which then stores or drops the offsets
// TxnOffsetCommit gave it). Codes as for AddPartitionsToTxn.
// Authorization: WRITE on the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), READ on the group
// (GROUP_AUTHORIZATION_FAILED).
func (s *Server) handleAddOffsetsToTxn(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AddOffsetsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	switch {
	case !s.authorized(cc, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID):
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
	case !s.authorized(cc, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group):
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
	case s.cfg.Txns == nil:
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	default:
		c := s.cfg.Txns.Coordinator(req.TransactionalID)
		if c == nil {
			resp.ErrorCode = kerr.NotCoordinator.Code
			break
		}
		tp := txn.Partition{Topic: broker.OffsetsTopic, Partition: s.cfg.Txns.OffsetsPartition(req.Group)}
		resp.ErrorCode = fencedCode(c.AddPartitions(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, []txn.Partition{tp}), req.Version, 2)
	}
	return resp, nil
}
