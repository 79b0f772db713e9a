package kafka

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
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
//     (broker.Partition.Append; the partitions of a large request side by
//     side, each partition's in request order): CORRUPT_MESSAGE for a bad batch,
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
	var appends []produceAppend
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
				appends = append(appends, produceAppend{p: topic.Partitions[rp.Partition], records: rp.Records, i: i, j: j})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	s.appendAll(appends, req.Acks)
	var waits []produceAppend
	for _, a := range appends {
		sp := &resp.Topics[a.i].Partitions[a.j]
		res := a.res
		sp.ErrorCode = res.Code
		sp.BaseOffset = res.BaseOffset
		sp.LogStartOffset = res.LogStartOffset
		if res.Err != nil {
			msg := res.Err.Error()
			sp.ErrorMessage = &msg
			s.log.Debug().Err(res.Err).Str("topic", a.p.Topic).Int32("partition", a.p.Index).Msg("produce refused")
		} else if req.Acks == -1 {
			waits = append(waits, a)
		}
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

// produceAppend is one partition's records in a Produce request, and the
// outcome of appending them.
type produceAppend struct {
	p       *broker.Partition
	records []byte
	i, j    int // the response topic and partition
	res     broker.AppendResult
}

// parallelAppendBytes is the smallest Produce request (in record bytes)
// whose partitions are appended by several goroutines at once.
const parallelAppendBytes = 256 << 10

// parallelAppends turns on appending a large request's partitions side by
// side; the benchmark turns it off for its baseline.
var parallelAppends = true

// appendAll appends each partition's records (Partition.Append). A request
// that carries enough bytes for several partitions is spread over up to
// GOMAXPROCS goroutines, the connection's own among them: the partitions
// are independent logs, so their appends (CRC checks, copies into the
// page cache) can run side by side, as Kafka's request handlers do for
// different connections. A partition named twice in one request keeps its
// appends in request order: the request is then appended serially.
func (s *Server) appendAll(appends []produceAppend, acks int16) {
	n := 0
	for _, a := range appends {
		n += len(a.records)
	}
	workers := min(runtime.GOMAXPROCS(0), len(appends))
	if !parallelAppends || workers < 2 || n < parallelAppendBytes || repeatsPartition(appends) {
		for k := range appends {
			appends[k].res = appends[k].p.Append(appends[k].records, acks)
		}
		return
	}
	var next atomic.Int64
	work := func() {
		for {
			k := int(next.Add(1)) - 1
			if k >= len(appends) {
				return
			}
			appends[k].res = appends[k].p.Append(appends[k].records, acks)
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}

// repeatsPartition reports whether a partition appears more than once.
func repeatsPartition(appends []produceAppend) bool {
	seen := make(map[*broker.Partition]struct{}, len(appends))
	for _, a := range appends {
		if _, dup := seen[a.p]; dup {
			return true
		}
		seen[a.p] = struct{}{}
	}
	return false
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
