package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListOffsets v1-v8.
//
// Behavior:
//   - Timestamp -2: the log start offset; -1: the high watermark, or for
//     read_committed (isolation level 1) the last stable offset; any other timestamp: the
//     first offset whose record timestamp is at or after it, or offset -1
//     when every record is older.
//   - -3 (the offset of the largest timestamp, v7+) is answered with
//     UNSUPPORTED_VERSION for that partition.
//   - UNKNOWN_TOPIC_OR_PARTITION for unknown partitions.
//   - Authorization (authz.go): DESCRIBE on each topic, else
//     TOPIC_AUTHORIZATION_FAILED; a replica id >= 0 needs CLUSTER_ACTION,
//     else CLUSTER_AUTHORIZATION_FAILED.
func (s *Server) handleListOffsets(_ context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	deny := s.offsetsAuthz(cc, req.ReplicaID)
	for i := range req.Topics {
		rt := &req.Topics[i]
		denied := deny(rt.Topic)
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Offset, sp.Timestamp = -1, -1
			p, code := s.leaderPartition(rt.Topic, rp.Partition)
			if denied != 0 {
				code = denied
			}
			if code != 0 {
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			sp.LeaderEpoch = p.LeaderEpoch()
			l := p.Log()
			switch rp.Timestamp {
			case -2:
				sp.Offset = l.LogStartOffset()
			case -1:
				sp.Offset = l.HighWatermark()
				if req.IsolationLevel == 1 {
					sp.Offset = p.LastStableOffset()
				}
			case -3:
				sp.ErrorCode = kerr.UnsupportedVersion.Code
			default:
				off, ts, found, err := l.OffsetForTimestamp(rp.Timestamp)
				switch {
				case err != nil:
					sp.ErrorCode = kerr.KafkaStorageError.Code
				case found:
					sp.Offset, sp.Timestamp = off, ts
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
