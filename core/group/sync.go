package group

import (
	"bytes"
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup delivers the leader's assignments. In CompletingRebalance a
// follower blocks until the leader's SyncGroup arrives and its assignments
// are stored; the leader's call stores them and answers everyone. A
// member the leader left out gets an empty assignment. In Stable the
// member's current assignment is returned at once. If ctx ends first the
// response says REBALANCE_IN_PROGRESS.
func (c *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	fail := func(code int16) *kmsg.SyncGroupResponse {
		resp.ErrorCode = code
		return resp
	}
	if req.Group == "" {
		return fail(kerr.InvalidGroupID.Code)
	}
	if c.isClosed() {
		return fail(kerr.CoordinatorNotAvailable.Code)
	}
	g := c.lookup(req.Group)
	if g == nil {
		if c.isClosed() {
			return fail(kerr.CoordinatorNotAvailable.Code)
		}
		return fail(kerr.UnknownMemberID.Code)
	}
	var instanceID *string
	if req.Version >= 3 {
		instanceID = req.InstanceID
	}

	g.mu.Lock()
	if g.gone() {
		g.mu.Unlock()
		return fail(kerr.CoordinatorNotAvailable.Code)
	}
	code := g.validateMember(req.MemberID, instanceID)
	switch {
	case code != 0:
	case req.Generation != g.generation:
		code = kerr.IllegalGeneration.Code
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
		req.Protocol != nil && *req.Protocol != g.protocol:
		code = kerr.InconsistentGroupProtocol.Code
	case g.state == Empty:
		code = kerr.UnknownMemberID.Code
	case g.state == PreparingRebalance:
		code = kerr.RebalanceInProgress.Code
	}
	if code != 0 {
		g.mu.Unlock()
		return fail(code)
	}
	m := g.members[req.MemberID]
	if g.state == Stable {
		g.removePendingSync(m.id)
		resp.ProtocolType = kmsg.StringPtr(g.protocolType)
		resp.Protocol = kmsg.StringPtr(g.protocol)
		resp.MemberAssignment = m.assignment
		g.scheduleSession(m)
		g.mu.Unlock()
		return resp
	}

	// CompletingRebalance.
	w := newSyncWaiter(req)
	if old := m.sync; old != nil {
		r := old.req.ResponseKind().(*kmsg.SyncGroupResponse)
		r.ErrorCode = kerr.RebalanceInProgress.Code
		old.answer(r)
	}
	m.sync = w
	g.removePendingSync(m.id)
	isLeader := g.leader == m.id
	var assign map[string][]byte
	if isLeader {
		assign = make(map[string][]byte, len(g.members))
		for _, a := range req.GroupAssignment {
			if g.members[a.MemberID] != nil {
				assign[a.MemberID] = bytes.Clone(a.MemberAssignment)
			}
		}
		for id := range g.members {
			if assign[id] == nil {
				g.lg.Warn().Str("member", id).Int32("generation", g.generation).Msg("leader left member without assignment")
				assign[id] = []byte{}
			}
		}
		g.lg.Info().Str("member", m.id).Int32("generation", g.generation).Int("members", len(g.members)).Msg("assignment received from leader")
	}
	gen := g.generation
	g.mu.Unlock()

	if isLeader {
		g.write(c.ctx, func() ([]Record, func(error)) {
			if g.gone() || g.state != CompletingRebalance || g.generation != gen {
				return nil, nil
			}
			return []Record{g.metadataRecord(assign)}, func(err error) {
				if g.gone() || g.state != CompletingRebalance || g.generation != gen {
					return
				}
				if err != nil {
					g.lg.Warn().Err(err).Int32("generation", gen).Msg("cannot store group assignment")
					g.resetAndPropagateAssignmentError(storeErrorCode(err))
					g.maybePrepareRebalance("cannot store group assignment")
					return
				}
				g.setAndPropagateAssignment(assign)
				g.transition(Stable)
				g.lg.Info().Int32("generation", gen).Msg("group stable")
			}
		})
	}

	select {
	case r := <-w.ch:
		return r
	case <-ctx.Done():
		select {
		case r := <-w.ch: // answered as ctx ended
			return r
		default:
		}
		return fail(kerr.RebalanceInProgress.Code)
	}
}

// validateMember checks that memberID is a member and, for a static member
// (instanceID set), that it is the instance's current member id.
func (g *group) validateMember(memberID string, instanceID *string) int16 {
	if instanceID != nil {
		cur, ok := g.static[*instanceID]
		switch {
		case !ok:
			return kerr.UnknownMemberID.Code
		case cur != memberID:
			return kerr.FencedInstanceID.Code
		}
		return 0
	}
	if g.members[memberID] == nil {
		return kerr.UnknownMemberID.Code
	}
	return 0
}
