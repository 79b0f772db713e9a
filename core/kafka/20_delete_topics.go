package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/broker"
)

// DeleteTopics v1-v5 (topics by name).
//
// Behavior: deletes each topic and its data; UNKNOWN_TOPIC_OR_PARTITION
// for a topic that does not exist; TOPIC_AUTHORIZATION_FAILED without
// DELETE on the topic (authz.go).
func (s *Server) handleDeleteTopics(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	names := req.TopicNames
	if len(names) == 0 {
		// Clients that build v6 requests fill Topics; the v1-v5 encoding
		// carries TopicNames, but a handler given the struct directly may
		// see either.
		for _, t := range req.Topics {
			if t.Topic != nil {
				names = append(names, *t.Topic)
			}
		}
	}
	for _, name := range names {
		st := kmsg.NewDeleteTopicsResponseTopic()
		n := name
		st.Topic = &n
		if !s.authorized(cc, kmsg.ACLOperationDelete, kmsg.ACLResourceTypeTopic, name) {
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, st)
			continue
		}
		switch err := s.cfg.Broker.DeleteTopic(ctx, name); {
		case errors.Is(err, broker.ErrUnknownTopic):
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case err != nil:
			st.ErrorCode = kerr.KafkaStorageError.Code
			msg := err.Error()
			st.ErrorMessage = &msg
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
