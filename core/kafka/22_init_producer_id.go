package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
)

// InitProducerID v0-v4, for idempotent producers.
//
// Behavior:
//   - Without a producer id: a new id at epoch 0, never reused across
//     restarts.
//   - With one (v3+, KIP-360, a producer recovering from an unknown
//     sequence): the same id at the next epoch; when the epoch would
//     overflow, a new id.
//   - A transactional id gets INVALID_REQUEST: transactions are not
//     supported.
//   - Authorization (authz.go): IDEMPOTENT_WRITE on the cluster or WRITE
//     on any topic (KIP-679), else CLUSTER_AUTHORIZATION_FAILED; a
//     transactional id without WRITE on it gets
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
func (s *Server) handleInitProducerID(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.InvalidRequest.Code
		if !s.authorized(cc, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, *req.TransactionalID) {
			resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
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
