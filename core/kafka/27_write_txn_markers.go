package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/txn"
)

// WriteTxnMarkers v0-v1, sent by transaction coordinators to partition
// leaders.
//
// Behavior: each marker is written to each of its partitions this broker
// leads (a control batch, waited for on the ISR); NOT_LEADER_OR_FOLLOWER
// for the others, INVALID_PRODUCER_EPOCH when a marker of a newer epoch is
// already there. A __consumer_offsets partition ends the transaction's
// offset commits in its group coordinator. Authorization: CLUSTER_ACTION
// on the cluster, else CLUSTER_AUTHORIZATION_FAILED for every partition.
func (s *Server) handleWriteTxnMarkers(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.WriteTxnMarkersRequest)
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	denied := !s.authorizeCluster(cc, kmsg.ACLOperationClusterAction)
	for _, m := range req.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		var codes map[txn.Partition]int16
		if !denied && s.cfg.Txns != nil {
			mk := txn.Markers{ProducerID: m.ProducerID, Epoch: m.ProducerEpoch, Commit: m.Committed, CoordinatorEpoch: m.CoordinatorEpoch}
			for _, t := range m.Topics {
				for _, p := range t.Partitions {
					mk.Partitions = append(mk.Partitions, txn.Partition{Topic: t.Topic, Partition: p})
				}
			}
			codes = s.cfg.Txns.WriteMarkersLocal(ctx, mk)
		}
		for _, t := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition = p
				switch {
				case denied:
					rp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
				case codes == nil:
					rp.ErrorCode = kerr.NotLeaderForPartition.Code
				default:
					rp.ErrorCode = codes[txn.Partition{Topic: t.Topic, Partition: p}]
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	return resp, nil
}
