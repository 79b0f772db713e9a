package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/broker"
)

// CreatePartitions v0-v3.
//
// Behavior: grows each topic to the count asked for; INVALID_PARTITIONS
// when that is not more than it has; UNKNOWN_TOPIC_OR_PARTITION for an
// unknown topic; manual assignments are INVALID_REQUEST on a single node.
// ValidateOnly checks without creating.
func (s *Server) handleCreatePartitions(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		var err error
		if len(rt.Assignment) > 0 {
			st.ErrorCode = kerr.InvalidRequest.Code
			msg := "manual partition assignment is not supported"
			st.ErrorMessage = &msg
			resp.Topics = append(resp.Topics, st)
			continue
		}
		err = s.cfg.Broker.CreatePartitions(ctx, rt.Topic, rt.Count, req.ValidateOnly)
		switch {
		case err == nil:
		case errors.Is(err, broker.ErrUnknownTopic):
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case errors.Is(err, broker.ErrInvalidPartitions):
			st.ErrorCode = kerr.InvalidPartitions.Code
		default:
			st.ErrorCode = kerr.KafkaStorageError.Code
		}
		if err != nil {
			msg := err.Error()
			st.ErrorMessage = &msg
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
