package group

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinReq is a JoinGroup request with its derived settings.
type joinReq struct {
	req        *kmsg.JoinGroupRequest
	instanceID *string
	session    time.Duration
	rebalance  time.Duration
	client     Client
	protocols  []kmsg.JoinGroupRequestProtocol // a copy of req.Protocols
}

// JoinGroup adds the caller to the group, or takes its rejoin, and blocks
// until the rebalance completes, the group is unloaded by Close, or ctx
// ends (the response then says REBALANCE_IN_PROGRESS, and the member stays
// in the rebalance as it would in Kafka if its connection dropped).
//
// A new member without a member id gets MEMBER_ID_REQUIRED and an id to
// join with (v4+, KIP-394), unless it is static: it has a group.instance.id
// (v5+, KIP-345). A static member that rejoins without its member id takes
// over its previous membership and, when the group is Stable and its
// protocol would not change, without a rebalance. The leader's response
// lists every member with its metadata for the selected protocol. Pass the
// client's id and address with WithClient.
func (c *Coordinator) JoinGroup(ctx context.Context, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	fail := func(memberID string, code int16) *kmsg.JoinGroupResponse {
		resp.MemberID = memberID
		resp.ErrorCode = code
		return resp
	}
	if req.Group == "" {
		return fail(req.MemberID, kerr.InvalidGroupID.Code)
	}
	if c.isClosed() {
		return fail(req.MemberID, kerr.CoordinatorNotAvailable.Code)
	}
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	if session < c.cfg.MinSessionTimeout || session > c.cfg.MaxSessionTimeout {
		return fail(req.MemberID, kerr.InvalidSessionTimeout.Code)
	}
	jr := joinReq{req: req, session: session, rebalance: session, client: clientFrom(ctx), protocols: cloneProtocols(req.Protocols)}
	if req.Version >= 1 && req.RebalanceTimeoutMillis >= 0 {
		jr.rebalance = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	if req.Version >= 5 && req.InstanceID != nil {
		id := *req.InstanceID
		jr.instanceID = &id
	}

	unknown := req.MemberID == ""
	var (
		g       *group
		created bool
	)
	if unknown {
		g, created = c.getOrCreate(req.Group)
	} else {
		g = c.lookup(req.Group)
	}
	if g == nil {
		if c.isClosed() {
			return fail(req.MemberID, kerr.CoordinatorNotAvailable.Code)
		}
		return fail(req.MemberID, kerr.UnknownMemberID.Code)
	}

	g.mu.Lock()
	if g.gone() {
		g.mu.Unlock()
		return fail(req.MemberID, kerr.CoordinatorNotAvailable.Code)
	}
	var (
		w     *joinWaiter
		store func()
	)
	if !g.acceptJoiningMember(req.MemberID) {
		if m := g.members[req.MemberID]; m != nil {
			g.removeMember(m, kerr.GroupMaxSizeReached.Code)
		}
		fail("", kerr.GroupMaxSizeReached.Code)
	} else if unknown {
		w, store = g.joinNew(jr, resp)
	} else {
		w = g.joinExisting(jr, resp)
	}
	if g.state == PreparingRebalance {
		g.tryCompleteJoin()
	}
	if created && g.state == Empty && len(g.members) == 0 && len(g.pending) == 0 && len(g.offsets) == 0 {
		// The join that made the group failed: do not keep it. A call
		// that found it meanwhile sees it Dead and retries.
		g.transition(Dead)
		g.drop()
	}
	g.mu.Unlock()

	if store != nil {
		store()
	}
	if w == nil {
		return resp
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
		return fail(req.MemberID, kerr.RebalanceInProgress.Code)
	}
}

// acceptJoiningMember reports whether the group has room for the member
// with id (Kafka's acceptJoiningMember): during PreparingRebalance, counted
// by the members that have rejoined, so that the last to rejoin are the
// ones left out when the group is over its size.
func (g *group) acceptJoiningMember(id string) bool {
	limit := g.c.cfg.MaxGroupSize
	switch g.state {
	case PreparingRebalance:
		if m := g.members[id]; m != nil && m.join != nil {
			return true
		}
		return g.awaitingJoin < limit
	case CompletingRebalance, Stable:
		return g.members[id] != nil || len(g.members) < limit
	}
	return true
}

// joinNew handles a JoinGroup without a member id. It returns the waiter
// to block on (nil: resp is the answer), and for a static member replacing
// itself in a Stable group, the store to run once mu is released.
func (g *group) joinNew(jr joinReq, resp *kmsg.JoinGroupResponse) (*joinWaiter, func()) {
	if !g.supportsProtocols(jr.req.ProtocolType, jr.protocols) {
		resp.ErrorCode = kerr.InconsistentGroupProtocol.Code
		return nil, nil
	}
	id := newMemberID(jr.client.ID, jr.instanceID)
	if jr.instanceID != nil {
		if old := g.members[g.static[*jr.instanceID]]; old != nil {
			return g.replaceStaticMember(old, id, jr)
		}
		return g.addMemberAndRebalance(id, jr), nil
	}
	if jr.req.Version >= 4 {
		g.addPending(id, jr.session)
		resp.MemberID = id
		resp.ErrorCode = kerr.MemberIDRequired.Code
		return nil, nil
	}
	return g.addMemberAndRebalance(id, jr), nil
}

// joinExisting handles a JoinGroup with a member id.
func (g *group) joinExisting(jr joinReq, resp *kmsg.JoinGroupResponse) *joinWaiter {
	id := jr.req.MemberID
	resp.MemberID = id
	if !g.supportsProtocols(jr.req.ProtocolType, jr.protocols) {
		resp.ErrorCode = kerr.InconsistentGroupProtocol.Code
		return nil
	}
	if _, ok := g.pending[id]; ok {
		if jr.instanceID != nil {
			// Pending ids are handed only to dynamic members.
			resp.ErrorCode = kerr.InvalidRequest.Code
			return nil
		}
		g.removePending(id)
		return g.addMemberAndRebalance(id, jr)
	}
	if jr.instanceID != nil {
		if cur, ok := g.static[*jr.instanceID]; ok && cur != id {
			resp.ErrorCode = kerr.FencedInstanceID.Code
			return nil
		}
	}
	m := g.members[id]
	if m == nil || (jr.instanceID != nil && g.static[*jr.instanceID] != id) {
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return nil
	}
	rejoin := func(reason string) *joinWaiter {
		w := newJoinWaiter(jr.req)
		g.updateMember(m, jr.protocols, jr.session, jr.rebalance, w)
		g.maybePrepareRebalance(reason)
		return w
	}
	switch g.state {
	case PreparingRebalance:
		return rejoin("member rejoined")
	case CompletingRebalance:
		if m.matches(jr.protocols) {
			// The member missed its JoinGroup response: resend it.
			g.fillJoin(resp, id, g.leader == id)
			return nil
		}
		return rejoin("member rejoined with new metadata")
	case Stable:
		if g.leader == id {
			// The leader rejoins to have the group reassigned, as
			// when the topics it watches change.
			return rejoin("leader rejoined")
		}
		if !m.matches(jr.protocols) {
			return rejoin("member rejoined with new metadata")
		}
		g.fillJoin(resp, id, false)
		return nil
	}
	resp.ErrorCode = kerr.UnknownMemberID.Code
	return nil
}

// addMemberAndRebalance adds a new member, parked in the rebalance it
// starts or joins.
func (g *group) addMemberAndRebalance(id string, jr joinReq) *joinWaiter {
	w := newJoinWaiter(jr.req)
	m := &member{
		id:               id,
		instanceID:       jr.instanceID,
		clientID:         jr.client.ID,
		clientHost:       jr.client.Host,
		protocolType:     jr.req.ProtocolType,
		protocols:        jr.protocols,
		sessionTimeout:   jr.session,
		rebalanceTimeout: jr.rebalance,
		isNew:            true,
		join:             w,
	}
	if g.state == PreparingRebalance && g.generation == 0 {
		g.newMemberAdded = true
	}
	g.add(m)
	g.scheduleSessionIn(m, newMemberJoinTimeout)
	g.lg.Info().Str("member", id).Str("client", jr.client.ID).Msg("member joined")
	g.maybePrepareRebalance("member joined")
	return w
}

// rekey gives m the member id newID, as the static member it is.
func (g *group) rekey(m *member, newID string) {
	delete(g.members, m.id)
	delete(g.pendingSync, m.id)
	if g.leader == m.id {
		g.leader = newID
	}
	m.id = newID
	g.members[newID] = m
	g.static[*m.instanceID] = newID
}

// replaceStaticMember hands the membership of old, a static member, to the
// same instance rejoining with the new member id id. The old id's parked
// calls answer FENCED_INSTANCE_ID. In a Stable group whose protocol would
// not change, the member keeps its assignment without a rebalance, once
// the new member id is stored: the returned func stores it and answers.
func (g *group) replaceStaticMember(m *member, id string, jr joinReq) (*joinWaiter, func()) {
	oldID := m.id
	oldProtocols, oldSession, oldRebalance := m.protocols, m.sessionTimeout, m.rebalanceTimeout
	oldLeader := g.leader
	g.failJoin(m, oldID, kerr.FencedInstanceID.Code)
	g.answerSync(m, kerr.FencedInstanceID.Code)
	g.rekey(m, id)
	g.scheduleSession(m)
	w := newJoinWaiter(jr.req)
	g.updateMember(m, jr.protocols, jr.session, jr.rebalance, w)
	g.lg.Info().Str("member", id).Str("previous", oldID).Str("instance", *m.instanceID).Msg("static member replaced")

	switch g.state {
	case Stable:
		if g.selectProtocol() != g.protocol {
			g.prepareRebalance("static member rejoined with a new protocol")
			return w, nil
		}
	case CompletingRebalance:
		// The leader may be assigning to the old member id.
		g.prepareRebalance("static member rejoined during sync")
		return w, nil
	default:
		return w, nil
	}

	gen := g.generation
	skip := jr.req.Version >= 9
	store := func() {
		g.write(g.c.ctx, func() ([]Record, func(error)) {
			if g.gone() || m.join != w || g.members[m.id] != m || g.state != Stable || g.generation != gen {
				// A rebalance or a removal answers w.
				return nil, nil
			}
			return []Record{g.metadataRecord(nil)}, func(err error) {
				if g.gone() || m.join != w {
					return
				}
				resp := w.req.ResponseKind().(*kmsg.JoinGroupResponse)
				if err != nil {
					g.lg.Warn().Err(err).Str("member", id).Msg("cannot store static member, reverting")
					resp.ErrorCode = storeErrorCode(err)
					resp.Generation = g.generation
					resp.ProtocolType = kmsg.StringPtr(g.protocolType)
					resp.Protocol = kmsg.StringPtr(g.protocol)
					resp.LeaderID = oldLeader
					m.join = nil
					g.awaitingJoin--
					w.answer(resp)
					if g.members[m.id] == m && g.state == Stable && g.generation == gen {
						g.updateMember(m, oldProtocols, oldSession, oldRebalance, nil)
						g.rekey(m, oldID)
						g.scheduleSession(m)
					}
					return
				}
				if skip {
					// v9+ (KIP-814): the leader learns it leads but
					// keeps the current assignment.
					isLeader := g.leader == m.id
					g.fillJoin(resp, m.id, isLeader)
					resp.SkipAssignment = isLeader
				} else {
					// Before v9 the old leader id is returned, so
					// that a returning leader does not assign.
					g.fillJoin(resp, m.id, false)
					resp.LeaderID = oldLeader
				}
				m.join = nil
				g.awaitingJoin--
				g.scheduleSession(m)
				w.answer(resp)
			}
		})
	}
	return w, store
}
