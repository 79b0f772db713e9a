package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator v0-v6.
//
// Behavior: this broker coordinates every consumer group (v4+: every key
// of the batch). Transaction coordinators are not offered:
// COORDINATOR_NOT_AVAILABLE, as transactions are not supported.
func (s *Server) handleFindCoordinator(_ context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	host, port := s.advertised()
	node := s.cfg.Broker.NodeID()
	code := int16(0)
	if req.CoordinatorType != 0 {
		code = kerr.CoordinatorNotAvailable.Code
	}
	if req.Version < 4 {
		resp.ErrorCode = code
		if code == 0 {
			resp.NodeID, resp.Host, resp.Port = node, host, port
		}
		return resp, nil
	}
	for _, key := range req.CoordinatorKeys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		c.ErrorCode = code
		c.NodeID, c.Host, c.Port = -1, "", -1
		if code == 0 {
			c.NodeID, c.Host, c.Port = node, host, port
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	return resp, nil
}
