package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Errors a Config.UnregisterBroker hook returns (wrapped) to choose the
// Kafka error code; any other error answers REQUEST_TIMED_OUT, which
// clients retry.
var (
	// ErrBrokerNotRegistered: no broker has that id (BROKER_ID_NOT_REGISTERED).
	ErrBrokerNotRegistered = errors.New("kafka: broker not registered")
	// ErrUnregisterRefused: the removal cannot be done as asked, such as a
	// broker removing itself (INVALID_REQUEST, with the error's text).
	ErrUnregisterRefused = errors.New("kafka: unregister refused")
)

// UnregisterBroker v0 (KIP-631): removes a broker from the cluster for
// good (`fluxo cluster remove`), through Config.UnregisterBroker.
//
// Behavior: requires Alter on the Cluster resource
// (CLUSTER_AUTHORIZATION_FAILED otherwise); BROKER_ID_NOT_REGISTERED for
// an id the cluster does not know; INVALID_REQUEST when refused (this
// broker itself); REQUEST_TIMED_OUT, retriable, for any other failure
// (no controller, a timeout). Idempotent for a broker the cluster still
// knows of.
func (s *Server) handleUnregisterBroker(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.UnregisterBrokerRequest)
	resp := req.ResponseKind().(*kmsg.UnregisterBrokerResponse)
	if !s.authorizeCluster(cc, kmsg.ACLOperationAlter) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	err := s.cfg.UnregisterBroker(ctx, req.BrokerID)
	if err == nil {
		log := cc.Logger()
		log.Info().Int32("broker", req.BrokerID).Msg("broker unregistered")
		return resp, nil
	}
	switch {
	case errors.Is(err, ErrBrokerNotRegistered):
		resp.ErrorCode = kerr.BrokerIDNotRegistered.Code
	case errors.Is(err, ErrUnregisterRefused):
		resp.ErrorCode = kerr.InvalidRequest.Code
	default:
		resp.ErrorCode = kerr.RequestTimedOut.Code
	}
	msg := err.Error()
	resp.ErrorMessage = &msg
	return resp, nil
}
