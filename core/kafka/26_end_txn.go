package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// EndTxn v0-v4.
//
// Behavior: commits or aborts the producer's transaction in its
// coordinator (core/txn): the decision is stored in __transaction_state,
// then a marker is written to every partition of the transaction; the
// answer comes once the markers are written (or after the coordinator's
// EndWait, the markers then being written in the background). A retry of
// an ended transaction succeeds; ending a transaction the other way, or
// one that has not started, gets INVALID_TXN_STATE. PRODUCER_FENCED
// (INVALID_PRODUCER_EPOCH before v2) for an older producer.
// Authorization: WRITE on the transactional id.
func (s *Server) handleEndTxn(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.EndTxnRequest)
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	switch {
	case !s.authorized(cc, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID):
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
	case s.cfg.Txns == nil:
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	default:
		c := s.cfg.Txns.Coordinator(req.TransactionalID)
		if c == nil {
			resp.ErrorCode = kerr.NotCoordinator.Code
			break
		}
		resp.ErrorCode = fencedCode(c.EndTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit), req.Version, 2)
	}
	return resp, nil
}
