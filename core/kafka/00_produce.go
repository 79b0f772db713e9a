package kafka

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/broker"
	"github.com/fluxo-io/fluxo/core/commitlog"
)

// Produce v3-v12 (RecordBatch v2 only; v13 names topics by id).
//
// Behavior:
//   - Unknown topics are created when the broker auto-creates topics,
//     otherwise UNKNOWN_TOPIC_OR_PARTITION; unknown partitions likewise.
//     A partition this broker does not lead gets NOT_LEADER_OR_FOLLOWER,
//     so the client refreshes its metadata and finds the leader; so do
//     all of them while this broker has stepped down for lack of contact
//     with the controller (broker.Config.LeaderLease), acks=all produces
//     already waiting included.
//   - Each partition's records are validated and appended as they came
//     (broker.Partition.Append): CORRUPT_MESSAGE for a bad batch,
//     MESSAGE_TOO_LARGE over max.message.bytes, KAFKA_STORAGE_ERROR for a
//     write failure such as a full disk, the idempotence errors for
//     sequence problems; a retried idempotent batch gets its original
//     offset.
//   - acks 0 and 1 answer after the leader's append (and its fsync, if
//     the flush policy asks for one); acks=0 sends no response. acks -1
//     (all) refuses with NOT_ENOUGH_REPLICAS while the ISR is below
//     min.insync.replicas, then waits until every in-sync replica has the
//     records (the high watermark passes them), up to the request's
//     timeout (REQUEST_TIMED_OUT); NOT_LEADER_OR_FOLLOWER if leadership
//     moves meanwhile.
//   - Transactions (KIP-98): a transactional producer's batches (attribute
//     bit 4) are appended like idempotent ones, and the partition counts
//     them in its ongoing transactions until the coordinator's marker
//     ends them. A request with a transactional id must carry
//     transactional batches, and the others none (INVALID_RECORD);
//     control batches come only from coordinators (INVALID_RECORD).
//     Whether the partition was added to the transaction is not checked
//     (KIP-890's verification is not implemented).
//   - Authorization (authz.go): WRITE on each topic, else
//     TOPIC_AUTHORIZATION_FAILED; a transactional id needs WRITE on it,
//     else TRANSACTIONAL_ID_AUTHORIZATION_FAILED everywhere.
func (s *Server) handleProduce(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	type pending struct {
		p    *broker.Partition
		res  broker.AppendResult
		i, j int // the response topic and partition
	}
	var waits []pending
	txnDenied := req.TransactionID != nil &&
		!s.authorized(cc, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, *req.TransactionID)
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		var topic *broker.Topic
		var terr int16
		switch {
		case txnDenied:
			terr = kerr.TransactionalIDAuthorizationFailed.Code
		case !s.authorized(cc, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, rt.Topic):
			terr = kerr.TopicAuthorizationFailed.Code
		default:
			topic, terr = s.produceTopic(ctx, cc, rt.Topic)
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset = -1
			sp.LogAppendTime = -1
			sp.LogStartOffset = -1
			switch {
			case terr != 0:
				sp.ErrorCode = terr
			case !txnBatchesMatch(rp.Records, req.TransactionID != nil):
				sp.ErrorCode = kerr.InvalidRecord.Code
			case rp.Partition < 0 || int(rp.Partition) >= len(topic.Partitions):
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case topic.Partitions[rp.Partition] == nil:
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
			default:
				p := topic.Partitions[rp.Partition]
				res := p.Append(rp.Records, req.Acks)
				sp.ErrorCode = res.Code
				sp.BaseOffset = res.BaseOffset
				sp.LogStartOffset = res.LogStartOffset
				if res.Err != nil {
					msg := res.Err.Error()
					sp.ErrorMessage = &msg
					s.log.Debug().Err(res.Err).Str("topic", rt.Topic).Int32("partition", rp.Partition).Msg("produce refused")
				} else if req.Acks == -1 {
					waits = append(waits, pending{p: p, res: res, i: i, j: j})
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if req.Acks == 0 {
		return nil, nil
	}
	if len(waits) > 0 {
		wctx, cancel := context.WithTimeout(ctx, time.Duration(max(req.TimeoutMillis, 0))*time.Millisecond)
		defer cancel()
		for _, w := range waits {
			if code := w.p.WaitCommitted(wctx, w.res); code != 0 {
				sp := &resp.Topics[w.i].Partitions[w.j]
				sp.ErrorCode = code
				sp.BaseOffset = -1
			}
		}
	}
	return resp, nil
}

// produceTopic finds or auto-creates a topic, returning a Kafka error code
// when neither works. Auto-creation needs CREATE on the cluster or the
// topic; without it the topic is unknown.
func (s *Server) produceTopic(ctx context.Context, cc *Conn, name string) (*broker.Topic, int16) {
	if _, ok := s.cfg.Broker.Topic(name); !ok && s.cfg.Broker.AutoCreate() && !s.mayCreateTopic(cc, name) {
		return nil, kerr.UnknownTopicOrPartition.Code
	}
	t, err := s.cfg.Broker.EnsureTopic(ctx, name)
	switch {
	case err == nil:
		return t, 0
	case errors.Is(err, broker.ErrUnknownTopic):
		return nil, kerr.UnknownTopicOrPartition.Code
	default:
		if broker.ValidateTopicName(name) != nil {
			return nil, kerr.InvalidTopicException.Code
		}
		return nil, kerr.KafkaStorageError.Code
	}
}

// txnBatchesMatch reports whether every batch of records is transactional
// exactly when the request carries a transactional id. Batches that do not
// parse are left to the partition's validation.
func txnBatchesMatch(records []byte, transactional bool) bool {
	ok := true
	commitlog.Batches(records, func(b commitlog.Batch, _ []byte) bool {
		ok = b.IsTransactional() == transactional
		return ok
	})
	return ok
}
