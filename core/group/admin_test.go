package group

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

func TestListAndDescribeGroups(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	a, b := newMember(t, c, "stable", "a"), newMember(t, c, "stable", "b")
	stableGroup(t, a, b)
	p := newMember(t, c, "preparing", "p")
	p.join()
	var wg sync.WaitGroup
	q := newMember(t, c, "preparing", "q")
	wg.Go(func() { q.join() }) // waits for p to rejoin
	defer func() { p.join(); wg.Wait() }()
	testutil.EventuallyWithin(t, wait, "the rebalance", func() bool { return groupState(c, "preparing") == PreparingRebalance })
	commitAs(c, 8, "solo", -1, "", "t", 0, 1, "")

	list := func(version int16, states, types []string) string {
		resp := c.ListGroups(context.Background(), &kmsg.ListGroupsRequest{Version: version, StatesFilter: states, TypesFilter: types})
		var out []string
		for _, g := range resp.Groups {
			out = append(out, fmt.Sprintf("%s/%s/%s/%s", g.Group, g.ProtocolType, g.GroupState, g.GroupType))
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		name          string
		version       int16
		states, types []string
		want          string
	}{
		{"all", 5, nil, nil, "preparing/consumer/PreparingRebalance/classic solo//Empty/classic stable/consumer/Stable/classic"},
		{"states", 4, []string{"stable", "Empty"}, nil, "solo//Empty/classic stable/consumer/Stable/classic"},
		{"classic type", 5, nil, []string{"Classic"}, "preparing/consumer/PreparingRebalance/classic solo//Empty/classic stable/consumer/Stable/classic"},
		{"consumer type", 5, nil, []string{"consumer"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := list(tc.version, tc.states, tc.types); got != tc.want {
				t.Errorf("ListGroups: got %q, want %q", got, tc.want)
			}
		})
	}

	resp := c.DescribeGroups(context.Background(), &kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"stable", "preparing", "missing"}})
	if len(resp.Groups) != 3 {
		t.Fatalf("described groups: got %d, want 3", len(resp.Groups))
	}
	st := resp.Groups[0]
	if st.ErrorCode != 0 || st.State != "Stable" || st.ProtocolType != "consumer" || st.Protocol != "range" || len(st.Members) != 2 {
		t.Errorf("stable group: got %s %s %s %s with %d members, want NONE Stable consumer range 2",
			codeName(st.ErrorCode), st.State, st.ProtocolType, st.Protocol, len(st.Members))
	}
	for _, m := range st.Members {
		name := strings.TrimPrefix(string(m.MemberAssignment), "assign-")
		if m.ClientID != name || m.ClientHost != "/127.0.0.1" || string(m.ProtocolMetadata) != "meta-"+name {
			t.Errorf("member %s: got client %q host %q metadata %q assignment %q, want %s /127.0.0.1 meta-%s assign-%s",
				m.MemberID, m.ClientID, m.ClientHost, m.ProtocolMetadata, m.MemberAssignment, name, name, name)
		}
	}
	pr := resp.Groups[1]
	if pr.State != "PreparingRebalance" || pr.Protocol != "" || len(pr.Members) != 2 {
		t.Errorf("preparing group: got %s protocol %q with %d members, want PreparingRebalance \"\" 2", pr.State, pr.Protocol, len(pr.Members))
	}
	for _, m := range pr.Members {
		if len(m.ProtocolMetadata) != 0 || len(m.MemberAssignment) != 0 {
			t.Errorf("member %s of a rebalancing group: got metadata %q assignment %q, want none", m.MemberID, m.ProtocolMetadata, m.MemberAssignment)
		}
	}
	if mi := resp.Groups[2]; mi.ErrorCode != 0 || mi.State != "Dead" {
		t.Errorf("missing group v5: got %s %s, want NONE Dead", codeName(mi.ErrorCode), mi.State)
	}
	resp = c.DescribeGroups(context.Background(), &kmsg.DescribeGroupsRequest{Version: 6, Groups: []string{"missing"}})
	checkCode(t, "missing group v6", resp.Groups[0].ErrorCode, kerr.GroupIDNotFound)
}

func TestDeleteGroups(t *testing.T) {
	log := &MemLog{}
	c := newTestCoordinator(t, testConfig(), log)
	a := newMember(t, c, "busy", "a")
	stableGroup(t, a)
	a.commit("t", 0, 1)
	commitAs(c, 8, "idle", -1, "", "t", 0, 5, "")
	commitAs(c, 8, "idle", -1, "", "t", 1, 6, "")

	resp := c.DeleteGroups(context.Background(), &kmsg.DeleteGroupsRequest{Version: 2, Groups: []string{"busy", "idle", "missing", "idle"}})
	if len(resp.Groups) != 3 {
		t.Fatalf("results: got %d, want 3 (duplicates answered once)", len(resp.Groups))
	}
	for i, want := range []*kerr.Error{kerr.NonEmptyGroup, nil, kerr.GroupIDNotFound} {
		checkCode(t, "delete "+resp.Groups[i].Group, resp.Groups[i].ErrorCode, want)
	}
	checkState(t, c, "idle", Dead)
	if got := c.Groups(); fmt.Sprint(got) != "[busy]" {
		t.Errorf("groups after delete: got %v, want [busy]", got)
	}
	// Deleted offsets read as never committed.
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 7
	req.Group = "idle"
	if r := c.OffsetFetch(context.Background(), req); len(r.Topics) != 0 {
		t.Errorf("offsets of deleted group: got %+v, want none", r.Topics)
	}

	// Once its member leaves, the group can go.
	a.leave()
	resp = c.DeleteGroups(context.Background(), &kmsg.DeleteGroupsRequest{Version: 2, Groups: []string{"busy"}})
	checkCode(t, "delete emptied group", resp.Groups[0].ErrorCode, nil)

	// A new group of the same name starts afresh.
	checkCode(t, "commit to recreated group", commitAs(c, 8, "idle", -1, "", "t", 0, 9, ""), nil)
	if got := fmt.Sprint(c.Committed("idle")); got != "map[t:map[0:9]]" {
		t.Errorf("recreated group offsets: got %s, want map[t:map[0:9]]", got)
	}
}

func TestDeleteGroupsLogFailureKeepsGroup(t *testing.T) {
	log := &failingLog{}
	c := newTestCoordinator(t, testConfig(), log)
	commitAs(c, 8, "idle", -1, "", "t", 0, 5, "")
	log.setFail(fmt.Errorf("append: %w", kerr.NotEnoughReplicas))
	resp := c.DeleteGroups(context.Background(), &kmsg.DeleteGroupsRequest{Version: 2, Groups: []string{"idle"}})
	checkCode(t, "delete with failing log", resp.Groups[0].ErrorCode, kerr.CoordinatorNotAvailable)
	checkState(t, c, "idle", Empty)
	if got := fmt.Sprint(c.Committed("idle")); got != "map[t:map[0:5]]" {
		t.Errorf("offsets after failed delete: got %s, want map[t:map[0:5]]", got)
	}
}
