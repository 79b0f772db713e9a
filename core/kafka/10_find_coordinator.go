package kafka

import (
	"context"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator v0-v6.
//
// Behavior: a consumer group's coordinator is the broker Config.Groups
// names: the leader of the group's __consumer_offsets partition (v4+:
// for every key of the batch); COORDINATOR_NOT_AVAILABLE while that
// partition has no leader. A transactional id's (key type 1) is the
// broker Config.Txns names: the leader of the id's __transaction_state
// partition; COORDINATOR_NOT_AVAILABLE without Config.Txns. The
// coordinator's address is the one on the client's listener, as in
// Metadata; COORDINATOR_NOT_AVAILABLE when it has none there.
// Authorization (authz.go): DESCRIBE on the group, else
// GROUP_AUTHORIZATION_FAILED; on the transactional id, else
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
func (s *Server) handleFindCoordinator(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	find := func(key string) (int32, string, int32, int16) {
		switch req.CoordinatorType {
		case 0:
			if !s.authorized(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, key) {
				return -1, "", -1, kerr.GroupAuthorizationFailed.Code
			}
		case 1:
			if !s.authorized(cc, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, key) {
				return -1, "", -1, kerr.TransactionalIDAuthorizationFailed.Code
			}
		}
		var node int32
		var addr string
		var code int16
		switch {
		case req.CoordinatorType == 0:
			node, addr, code = s.cfg.Groups.Find(ctx, key)
		case req.CoordinatorType == 1 && s.cfg.Txns != nil:
			node, addr, code = s.cfg.Txns.Find(ctx, key)
		default:
			return -1, "", -1, kerr.CoordinatorNotAvailable.Code
		}
		if code != 0 {
			return -1, "", -1, code
		}
		self := s.cfg.NodeID
		if s.cfg.Broker != nil {
			self = s.cfg.Broker.NodeID()
		}
		switch {
		case node == self:
			return node, cc.l.host, cc.l.port, 0
		case s.cfg.BrokerEndpoint != nil:
			a, ok := s.cfg.BrokerEndpoint(node, cc.l.Name)
			if !ok {
				return -1, "", -1, kerr.CoordinatorNotAvailable.Code
			}
			addr = a
		}
		host, port := splitHostPort(addr)
		return node, host, port, 0
	}
	if req.Version < 4 {
		resp.NodeID, resp.Host, resp.Port, resp.ErrorCode = find(req.CoordinatorKey)
		return resp, nil
	}
	for _, key := range req.CoordinatorKeys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		c.NodeID, c.Host, c.Port, c.ErrorCode = find(key)
		resp.Coordinators = append(resp.Coordinators, c)
	}
	return resp, nil
}

func splitHostPort(addr string) (string, int32) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 9092
	}
	port, _ := strconv.Atoi(p)
	return host, int32(port)
}
