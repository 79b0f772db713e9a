package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Heartbeat keeps a member's session alive. It answers
// REBALANCE_IN_PROGRESS while the group prepares a rebalance, telling the
// member to rejoin; ILLEGAL_GENERATION for a generation other than the
// group's; UNKNOWN_MEMBER_ID for a member the group does not have.
func (c *Coordinator) Heartbeat(_ context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = c.heartbeat(req)
	return resp
}

func (c *Coordinator) heartbeat(req *kmsg.HeartbeatRequest) int16 {
	if req.Group == "" {
		return kerr.InvalidGroupID.Code
	}
	g := c.lookup(req.Group)
	if g == nil {
		if c.isClosed() {
			return kerr.CoordinatorNotAvailable.Code
		}
		return kerr.UnknownMemberID.Code
	}
	var instanceID *string
	if req.Version >= 3 {
		instanceID = req.InstanceID
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone() {
		return kerr.CoordinatorNotAvailable.Code
	}
	if code := g.validateMember(req.MemberID, instanceID); code != 0 {
		return code
	}
	if req.Generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	m := g.members[req.MemberID]
	switch g.state {
	case PreparingRebalance:
		g.scheduleSession(m)
		return kerr.RebalanceInProgress.Code
	case CompletingRebalance, Stable:
		g.scheduleSession(m)
		return 0
	}
	return kerr.UnknownMemberID.Code
}

// LeaveGroup removes members and rebalances the group without them. Before
// v3 the request names one member; from v3 it names a batch, each by
// member id or, for static members, by group instance id with an empty
// member id (an administrative removal). Each member gets its own error
// code; before v3 the one member's code is the response's.
func (c *Coordinator) LeaveGroup(_ context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	g := c.lookup(req.Group)
	if g == nil && c.isClosed() {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	codes := make([]int16, len(leaving))
	if g == nil {
		for i := range codes {
			codes[i] = kerr.UnknownMemberID.Code
		}
	} else {
		g.mu.Lock()
		if g.gone() {
			g.mu.Unlock()
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return resp
		}
		for i, lm := range leaving {
			codes[i] = g.leave(lm)
		}
		g.mu.Unlock()
	}
	for i, lm := range leaving {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID = lm.MemberID
		rm.InstanceID = lm.InstanceID
		rm.ErrorCode = codes[i]
		resp.Members = append(resp.Members, rm)
	}
	if req.Version < 3 {
		resp.ErrorCode = codes[0]
		resp.Members = nil
	}
	return resp
}

// leave removes one leaving member and returns its error code.
func (g *group) leave(lm kmsg.LeaveGroupRequestMember) int16 {
	reason := "member left"
	if lm.Reason != nil {
		reason = "member left: " + *lm.Reason
	}
	if lm.MemberID == "" {
		if lm.InstanceID == nil {
			return kerr.UnknownMemberID.Code
		}
		m := g.members[g.static[*lm.InstanceID]]
		if m == nil {
			return kerr.UnknownMemberID.Code
		}
		g.lg.Info().Str("member", m.id).Str("instance", *lm.InstanceID).Msg("static member removed")
		g.removeMemberAndUpdate(m, reason)
		return 0
	}
	if _, ok := g.pending[lm.MemberID]; ok {
		g.removePending(lm.MemberID)
		if g.state == PreparingRebalance {
			g.tryCompleteJoin()
		}
		return 0
	}
	if code := g.validateMember(lm.MemberID, lm.InstanceID); code != 0 {
		return code
	}
	m := g.members[lm.MemberID]
	g.lg.Info().Str("member", m.id).Msg("member left")
	g.removeMemberAndUpdate(m, reason)
	return 0
}
