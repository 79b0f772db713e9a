package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeTransactions v0, for operators (kadm.DescribeTransactions,
// kafka-transactions.sh describe).
//
// Behavior: each transactional id's state from its coordinator: producer
// id and epoch, state, timeout, start of the ongoing transaction and its
// partitions; NOT_COORDINATOR for an id another broker coordinates,
// TRANSACTIONAL_ID_NOT_FOUND for one the coordinator does not know.
// Authorization: DESCRIBE on each id, else
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED for it.
func (s *Server) handleDescribeTransactions(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		st.ProducerID, st.ProducerEpoch, st.StartTimestamp = -1, -1, -1
		if !s.authorized(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, id) {
			st.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		c := s.cfg.Txns.Coordinator(id)
		if c == nil {
			st.ErrorCode = kerr.NotCoordinator.Code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		in, ok := c.Describe(id)
		if !ok {
			st.ErrorCode = kerr.TransactionalIDNotFound.Code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		st.State = in.State.String()
		st.TimeoutMillis = int32(in.Timeout.Milliseconds())
		if !in.Started.IsZero() {
			st.StartTimestamp = in.Started.UnixMilli()
		}
		st.ProducerID, st.ProducerEpoch = in.ProducerID, in.Epoch
		for i := 0; i < len(in.Partitions); {
			t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
			t.Topic = in.Partitions[i].Topic
			for ; i < len(in.Partitions) && in.Partitions[i].Topic == t.Topic; i++ {
				t.Partitions = append(t.Partitions, in.Partitions[i].Partition)
			}
			st.Topics = append(st.Topics, t)
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp, nil
}
