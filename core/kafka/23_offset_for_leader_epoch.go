package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetForLeaderEpoch v0-v4 (KIP-101, KIP-320): the end offset of the
// largest leader epoch at or below the one asked for, so a consumer or a
// follower can detect and cut a diverged log.
//
// Behavior: the current epoch ends at the log end; an epoch older than any
// the log holds answers epoch -1 and offset -1; FENCED_LEADER_EPOCH /
// UNKNOWN_LEADER_EPOCH when the caller's current leader epoch (v2+) is
// older / newer than the partition's. Authorization (authz.go): DESCRIBE
// on each topic, else TOPIC_AUTHORIZATION_FAILED; a follower (replica id
// >= 0) needs CLUSTER_ACTION, else CLUSTER_AUTHORIZATION_FAILED.
func (s *Server) handleOffsetForLeaderEpoch(_ context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	deny := s.offsetsAuthz(cc, req.ReplicaID)
	for i := range req.Topics {
		rt := &req.Topics[i]
		denied := deny(rt.Topic)
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			p, code := s.leaderPartition(rt.Topic, rp.Partition)
			if denied != 0 {
				code = denied
			}
			if code != 0 {
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			cur := p.LeaderEpoch()
			switch {
			case req.Version >= 2 && rp.CurrentLeaderEpoch >= 0 && rp.CurrentLeaderEpoch < cur:
				sp.ErrorCode = kerr.FencedLeaderEpoch.Code
			case req.Version >= 2 && rp.CurrentLeaderEpoch > cur:
				sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
			case rp.LeaderEpoch >= cur:
				sp.LeaderEpoch, sp.EndOffset = cur, p.Log().LogEndOffset()
			default:
				sp.LeaderEpoch, sp.EndOffset = p.Log().EndOffsetForEpoch(rp.LeaderEpoch)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
