package kafka

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/broker"
	"github.com/fluxo-io/fluxo/core/commitlog"
)

// Fetch v4-v12 (v13+ names topics by id).
//
// Behavior:
//   - Each partition returns whole batches, as stored, from the one holding
//     the fetch offset, up to the partition's max bytes and the request's
//     max bytes; the first batch is returned whole even when larger, so a
//     consumer always progresses (KIP-74). Only records below the high
//     watermark are served.
//   - Long poll: while fewer than MinBytes are ready, the request waits
//     for any requested partition's high watermark to move, up to MaxWait
//     or until the server shuts down.
//   - OFFSET_OUT_OF_RANGE outside [log start, log end];
//     UNKNOWN_TOPIC_OR_PARTITION for unknown partitions; FENCED_LEADER_EPOCH
//     / UNKNOWN_LEADER_EPOCH when the consumer's leader epoch (v9+) is
//     older / newer than the partition's.
//   - A follower's fetch (replica id >= 0) reads up to the log end rather
//     than the high watermark, and tells the leader how far the follower
//     has come (broker.Partition.ReplicaFetch); it waits for appends. A
//     consumer's fetch, or a follower's, to a broker that does not lead
//     the partition gets NOT_LEADER_OR_FOLLOWER.
//   - No fetch sessions (KIP-227): the session id is always 0, which tells
//     clients to send full fetches.
//   - Isolation (KIP-98): every partition reports its last stable offset
//     (broker.Partition.LastStableOffset). read_uncommitted (0) reads up
//     to the high watermark; read_committed (1) only up to the last
//     stable offset (whole batches: the batches at or past it are left
//     out), with the aborted transactions of the range returned, so that
//     the client drops their records.
//   - Authorization (authz.go): READ on each topic, else
//     TOPIC_AUTHORIZATION_FAILED; a follower needs CLUSTER_ACTION on the
//     cluster, else every partition gets TOPIC_AUTHORIZATION_FAILED.
func (s *Server) handleFetch(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FetchRequest)
	wait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	timer := time.NewTimer(wait)
	defer timer.Stop()
	// The response carries views of the mapped segments, not copies; they
	// are released once the response is written.
	var views []commitlog.View
	denied := s.fetchDenied(cc, req)
	answer := func(resp *kmsg.FetchResponse) (kmsg.Response, error) {
		s.noteFetched(req, resp)
		cc.AfterResponse(func() {
			for i := range views {
				views[i].Release()
			}
		})
		return resp, nil
	}
	for {
		resp, n, chans, final := s.fetchOnce(req, denied, &views)
		if final || n >= int(req.MinBytes) || n > 0 && req.MinBytes <= 0 || len(chans) == 0 {
			return answer(resp)
		}
		for i := range views {
			views[i].Release()
		}
		views = views[:0]
		cases := make([]reflect.SelectCase, 0, len(chans)+3)
		cases = append(cases,
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)},
			// A shutting-down server answers parked fetches at once
			// rather than keep Shutdown waiting for MaxWait.
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(s.quit)})
		for _, c := range chans {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
		}
		switch i, _, _ := reflect.Select(cases); i {
		case 0, 1, 2:
			resp, _, _, _ = s.fetchOnce(req, denied, &views)
			return answer(resp)
		}
	}
}

// fetchOnce builds a response from what is readable now. It returns the
// record bytes gathered, the channels that signal new data on the
// requested partitions (taken before reading, so no advance is missed),
// and final=true when an error must be reported at once.
func (s *Server) fetchOnce(req *kmsg.FetchRequest, denied map[string]bool, views *[]commitlog.View) (*kmsg.FetchResponse, int, []<-chan struct{}, bool) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	budget := int(req.MaxBytes)
	if req.Version < 3 || budget <= 0 {
		budget = 1 << 30
	}
	total := 0
	final := false
	var chans []<-chan struct{}
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewFetchResponseTopic()
		st.Topic = rt.Topic
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			// Empty, not null: Kafka always sends a (possibly empty)
			// records field, and librdkafka rejects the whole response
			// when it is null.
			sp.RecordBatches = []byte{}
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			if denied[rt.Topic] {
				// Not final: the authorized partitions may still wait.
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			replica := req.ReplicaID >= 0
			p, code := s.leaderPartition(rt.Topic, rp.Partition)
			if code == 0 && replica {
				epoch := rp.CurrentLeaderEpoch
				if req.Version < 9 {
					epoch = -1
				}
				code = p.ReplicaFetch(req.ReplicaID, rp.FetchOffset, epoch)
			}
			if code != 0 {
				sp.ErrorCode = code
				final = true
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			l := p.Log()
			if replica {
				chans = append(chans, p.Appended())
			} else {
				chans = append(chans, l.HighWatermarkChanged())
			}
			hw := l.HighWatermark()
			lso := p.LastStableOffset()
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = hw, lso, l.LogStartOffset()
			committed := !replica && req.IsolationLevel == 1
			if epoch := p.LeaderEpoch(); !replica && req.Version >= 9 && rp.CurrentLeaderEpoch >= 0 && rp.CurrentLeaderEpoch != epoch {
				sp.ErrorCode = kerr.FencedLeaderEpoch.Code
				if rp.CurrentLeaderEpoch > epoch {
					sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
				}
				final = true
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			max := min(int(rp.PartitionMaxBytes), budget-total)
			if max <= 0 && total > 0 {
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			read := l.Read
			if replica {
				// Followers copy the log up to its end; the high
				// watermark moves once they have.
				read = l.ReadUncommitted
			}
			v, err := read(rp.FetchOffset, max)
			switch {
			case errors.Is(err, commitlog.ErrOffsetOutOfRange):
				sp.ErrorCode = kerr.OffsetOutOfRange.Code
				final = true
			case err != nil:
				sp.ErrorCode = kerr.KafkaStorageError.Code
				final = true
				s.log.Error().Err(err).Str("topic", rt.Topic).Int32("partition", rp.Partition).Msg("fetch read failed")
			default:
				if committed && len(v.Data) > 0 {
					v.Data = s.readCommitted(p, &sp, v.Data, rp.FetchOffset, lso)
				}
				if len(v.Data) > 0 {
					// The segment's bytes as stored: the response
					// encoder copies them once, from the page cache.
					sp.RecordBatches = v.Data
					total += len(v.Data)
					*views = append(*views, v)
				} else {
					v.Release()
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, total, chans, final
}

// readCommitted cuts data (whole batches from fetchOffset) at the last
// stable offset and lists in sp the aborted transactions of what is left.
func (s *Server) readCommitted(p *broker.Partition, sp *kmsg.FetchResponseTopicPartition, data []byte, fetchOffset, lso int64) []byte {
	cut, end := 0, fetchOffset
	commitlog.Batches(data, func(b commitlog.Batch, _ []byte) bool {
		if b.BaseOffset >= lso {
			return false
		}
		cut += b.Size
		end = b.NextOffset()
		return true
	})
	data = data[:cut]
	if cut == 0 {
		return data
	}
	for _, a := range p.AbortedTxns(fetchOffset, end) {
		at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
		at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
		sp.AbortedTransactions = append(sp.AbortedTransactions, at)
	}
	return data
}

// fetchDenied returns the requested topics the connection may not read:
// for a consumer, those without READ; for a follower (replica id >= 0)
// without CLUSTER_ACTION on the cluster, every one, as Kafka answers
// TOPIC_AUTHORIZATION_FAILED on every partition then.
func (s *Server) fetchDenied(cc *Conn, req *kmsg.FetchRequest) map[string]bool {
	if s.cfg.Authorizer == nil {
		return nil
	}
	denied := map[string]bool{}
	if req.ReplicaID >= 0 {
		if !s.authorizeCluster(cc, kmsg.ACLOperationClusterAction) {
			for _, t := range req.Topics {
				denied[t.Topic] = true
			}
		}
		return denied
	}
	seen := map[string]bool{}
	for _, t := range req.Topics {
		if seen[t.Topic] {
			continue
		}
		seen[t.Topic] = true
		if !s.authorized(cc, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, t.Topic) {
			denied[t.Topic] = true
		}
	}
	return denied
}

// noteFetched counts the bytes and records a fetch response serves, and
// observes per partition the fetch delay of its newest record: now minus
// the largest batch max timestamp returned (one observation per partition
// per fetch, not per record).
func (s *Server) noteFetched(req *kmsg.FetchRequest, resp *kmsg.FetchResponse) {
	if req.ReplicaID >= 0 {
		return // replication, not consumption
	}
	now := time.Now().UnixMilli()
	for i := range resp.Topics {
		t := &resp.Topics[i]
		for j := range t.Partitions {
			sp := &t.Partitions[j]
			if len(sp.RecordBatches) == 0 {
				continue
			}
			p, ok := s.cfg.Broker.Partition(t.Topic, sp.Partition)
			if !ok {
				continue
			}
			var recs, maxTS int64
			commitlog.Batches(sp.RecordBatches, func(b commitlog.Batch, _ []byte) bool {
				recs += int64(b.NumRecords)
				maxTS = max(maxTS, b.MaxTimestamp)
				return true
			})
			p.NoteFetched(int64(len(sp.RecordBatches)), recs)
			if maxTS > 0 {
				s.metrics.fetchDelay.WithLabelValues(t.Topic).Observe(fetchDelay(now, maxTS).Seconds())
			}
		}
	}
}

// fetchDelay is the delay from a record timestamp (ms) to now (ms); a
// timestamp in the future (a producer's clock ahead of ours) counts as 0.
func fetchDelay(nowMs, tsMs int64) time.Duration {
	if tsMs >= nowMs {
		return 0
	}
	return time.Duration(nowMs-tsMs) * time.Millisecond
}
