package group

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupType is what ListGroups v5+ calls the groups of this coordinator.
const groupType = "classic"

// DescribeGroups describes each requested group: state, protocol type, and
// members. A Stable group also gives its protocol and each member's
// metadata and assignment, as Kafka does. A group the coordinator does not
// have is described as Dead; from v6 it also gets GROUP_ID_NOT_FOUND.
// AuthorizedOperations is left for the protocol server to fill.
func (c *Coordinator) DescribeGroups(_ context.Context, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		resp.Groups = append(resp.Groups, c.describe(req.Version, id))
	}
	return resp
}

func (c *Coordinator) describe(version int16, id string) kmsg.DescribeGroupsResponseGroup {
	rg := kmsg.NewDescribeGroupsResponseGroup()
	rg.Group = id
	if c.isClosed() {
		rg.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return rg
	}
	notFound := func() kmsg.DescribeGroupsResponseGroup {
		rg.State = Dead.String()
		if version >= 6 {
			rg.ErrorCode = kerr.GroupIDNotFound.Code
			rg.ErrorMessage = kmsg.StringPtr("group " + id + " not found")
		}
		return rg
	}
	g := c.lookup(id)
	if g == nil {
		return notFound()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone() {
		return notFound()
	}
	rg.State = g.state.String()
	rg.ProtocolType = g.protocolType
	stable := g.state == Stable
	if stable {
		rg.Protocol = g.protocol
	}
	for _, m := range g.sortedMembers() {
		rm := kmsg.NewDescribeGroupsResponseGroupMember()
		rm.MemberID = m.id
		rm.InstanceID = m.instanceID
		rm.ClientID = m.clientID
		rm.ClientHost = m.clientHost
		rm.ProtocolMetadata = []byte{}
		rm.MemberAssignment = []byte{}
		if stable {
			if md := m.metadata(g.protocol); md != nil {
				rm.ProtocolMetadata = md
			}
			if m.assignment != nil {
				rm.MemberAssignment = m.assignment
			}
		}
		rg.Members = append(rg.Members, rm)
	}
	return rg
}

// ListGroups lists the groups, sorted by id, filtered by state (v4+) and
// type (v5+); filters match case-insensitively, as in Kafka.
func (c *Coordinator) ListGroups(_ context.Context, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	if c.isClosed() {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	match := func(filter []string, v string) bool {
		return len(filter) == 0 || slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, v) })
	}
	if !match(req.TypesFilter, groupType) {
		return resp
	}
	for _, g := range c.snapshot() {
		g.mu.Lock()
		state, protocolType, gone := g.state, g.protocolType, g.gone()
		g.mu.Unlock()
		if gone || !match(req.StatesFilter, state.String()) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group = g.id
		lg.ProtocolType = protocolType
		lg.GroupState = state.String()
		lg.GroupType = groupType
		resp.Groups = append(resp.Groups, lg)
	}
	return resp
}

// DeleteGroups deletes Empty groups with their committed offsets; a group
// with members gets NON_EMPTY_GROUP, one the coordinator does not have
// GROUP_ID_NOT_FOUND. A group is gone once its tombstones are durable.
func (c *Coordinator) DeleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	seen := make(map[string]bool, len(req.Groups))
	for _, id := range req.Groups {
		if seen[id] {
			continue
		}
		seen[id] = true
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = id
		rg.ErrorCode = c.deleteGroup(ctx, id)
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func (c *Coordinator) deleteGroup(ctx context.Context, id string) int16 {
	if c.isClosed() {
		return kerr.CoordinatorNotAvailable.Code
	}
	g := c.lookup(id)
	if g == nil {
		return kerr.GroupIDNotFound.Code
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	var code int16
	g.write(wctx, func() ([]Record, func(error)) {
		switch {
		case g.unloaded:
			code = kerr.CoordinatorNotAvailable.Code
			return nil, nil
		case g.state == Dead:
			code = kerr.GroupIDNotFound.Code
			return nil, nil
		case g.state != Empty:
			code = kerr.NonEmptyGroup.Code
			return nil, nil
		}
		all := make(map[string][]int32, len(g.offsets))
		for t, ps := range g.offsets {
			for p := range ps {
				all[t] = append(all[t], p)
			}
		}
		// Pending member ids do not keep a deleted group alive.
		for pid := range g.pending {
			g.removePending(pid)
		}
		recs, dead := g.planRemoval(all)
		if !dead {
			panic("group: empty group not removable (broken invariant)")
		}
		return recs, func(err error) {
			if err != nil {
				code = commitErrorCode(err)
			}
			g.finishRemoval(all, dead, err)
		}
	})
	return code
}
