package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
)

// InitProducerID v0-v4.
//
// Behavior:
//   - Without a transactional id (idempotent producers), without a
//     producer id: a new id at epoch 0, never reused across restarts; with
//     one (v3+, KIP-360, a producer recovering from an unknown sequence):
//     the same id at the next epoch; when the epoch would overflow, a new
//     id.
//   - With a transactional id: the transaction coordinator of the id
//     (core/txn) hands out its producer id at a bumped epoch, fencing the
//     previous producer, after aborting its ongoing transaction;
//     NOT_COORDINATOR on another broker; INVALID_TRANSACTION_TIMEOUT over
//     the coordinator's maximum; CONCURRENT_TRANSACTIONS while the
//     previous transaction's markers are still being written.
//   - Authorization (authz.go): IDEMPOTENT_WRITE on the cluster or WRITE
//     on any topic (KIP-679), else CLUSTER_AUTHORIZATION_FAILED; a
//     transactional id without WRITE on it gets
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
func (s *Server) handleInitProducerID(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		id := *req.TransactionalID
		switch {
		case !s.authorized(cc, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, id):
			resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		case id == "":
			resp.ErrorCode = kerr.InvalidRequest.Code
		case s.cfg.Txns == nil:
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		default:
			c := s.cfg.Txns.Coordinator(id)
			if c == nil {
				resp.ErrorCode = kerr.NotCoordinator.Code
				return resp, nil
			}
			pid, epoch := int64(-1), int16(-1)
			if req.Version >= 3 {
				pid, epoch = req.ProducerID, req.ProducerEpoch
			}
			var code int16
			resp.ProducerID, resp.ProducerEpoch, code = c.InitProducerID(ctx, id, time.Duration(req.TransactionTimeoutMillis)*time.Millisecond, pid, epoch)
			resp.ErrorCode = fencedCode(code, req.Version, 4)
		}
		return resp, nil
	}
	if !s.allows(cc, kmsg.ACLOperationIdempotentWrite, kmsg.ACLResourceTypeCluster, acl.ClusterName) &&
		!s.authorizedOnAny(cc, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	if req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < 32766 {
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
		return resp, nil
	}
	id, epoch, err := s.cfg.Broker.InitProducerID(ctx)
	if err != nil {
		resp.ErrorCode = kerr.KafkaStorageError.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, epoch
	return resp, nil
}
