package kafka

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListTransactions v0-v1, for operators (kadm.ListTransactions).
//
// Behavior: the transactional ids of this broker's coordinators, as
// Kafka lists those of its own, filtered by state names, producer ids and
// (v1) transactions running for longer than DurationFilterMillis; an
// unknown state name is reported in UnknownStateFilters. Authorization:
// only the ids with DESCRIBE on them are listed.
func (s *Server) handleListTransactions(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	known := kmsg.TransactionStateStrings()
	for _, f := range req.StateFilters {
		if !slices.Contains(known, f) {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, f)
		}
	}
	now := time.Now()
	for _, c := range s.cfg.Txns.Local() {
		for _, in := range c.List() {
			switch {
			case len(req.StateFilters) > 0 && !slices.Contains(req.StateFilters, in.State.String()):
				continue
			case len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, in.ProducerID):
				continue
			case req.Version >= 1 && req.DurationFilterMillis >= 0 &&
				(in.Started.IsZero() || now.Sub(in.Started).Milliseconds() < req.DurationFilterMillis):
				continue
			case !s.authorized(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, in.ID):
				continue
			}
			ts := kmsg.NewListTransactionsResponseTransactionState()
			ts.TransactionalID, ts.ProducerID, ts.TransactionState = in.ID, in.ProducerID, in.State.String()
			resp.TransactionStates = append(resp.TransactionStates, ts)
		}
	}
	return resp, nil
}
