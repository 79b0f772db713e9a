package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// DeleteRecords v0-v2.
//
// Behavior: moves each partition's log start to the offset given (-1: the
// high watermark) and deletes the whole segments below it; the response
// carries the new low watermark. OFFSET_OUT_OF_RANGE past the high
// watermark; UNKNOWN_TOPIC_OR_PARTITION for unknown partitions;
// TOPIC_AUTHORIZATION_FAILED without DELETE on the topic (authz.go).
func (s *Server) handleDeleteRecords(_ context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		denied := !s.authorized(cc, kmsg.ACLOperationDelete, kmsg.ACLResourceTypeTopic, rt.Topic)
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			p, code := s.leaderPartition(rt.Topic, rp.Partition)
			if denied {
				code = kerr.TopicAuthorizationFailed.Code
			}
			if code != 0 {
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			off := rp.Offset
			if off == -1 {
				off = p.HighWatermark()
			}
			low, err := p.Log().DeleteBefore(off)
			switch {
			case errors.Is(err, commitlog.ErrOffsetOutOfRange) || off < 0:
				sp.ErrorCode = kerr.OffsetOutOfRange.Code
			case err != nil:
				sp.ErrorCode = kerr.KafkaStorageError.Code
			default:
				sp.LowWatermark = low
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
