package group

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

func TestJoinMemberIDRequired(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	m := newMember(t, c, "g", "client")

	r := m.joinOnce()
	checkCode(t, "first join", r.ErrorCode, kerr.MemberIDRequired)
	if r.MemberID == "" || r.Generation != -1 {
		t.Fatalf("first join: got member id %q generation %d, want an id and generation -1", r.MemberID, r.Generation)
	}
	id := r.MemberID
	checkState(t, c, "g", Empty)

	r = m.joinOnce()
	checkCode(t, "rejoin", r.ErrorCode, nil)
	if r.MemberID != id {
		t.Errorf("rejoin member id: got %q, want %q", r.MemberID, id)
	}
	if r.Generation != 1 {
		t.Errorf("generation: got %d, want 1", r.Generation)
	}
	if r.LeaderID != id {
		t.Errorf("leader: got %q, want %q", r.LeaderID, id)
	}
	if r.Protocol == nil || *r.Protocol != "range" || r.ProtocolType == nil || *r.ProtocolType != "consumer" {
		t.Errorf("protocol: got %v/%v, want consumer/range", r.ProtocolType, r.Protocol)
	}
	if len(r.Members) != 1 || r.Members[0].MemberID != id || string(r.Members[0].ProtocolMetadata) != "meta-client" {
		t.Errorf("members: got %+v, want [%s with meta-client]", r.Members, id)
	}
	checkState(t, c, "g", CompletingRebalance)
	if r := m.sync(map[string][]byte{id: []byte("a")}); r.ErrorCode != 0 || string(r.MemberAssignment) != "a" {
		t.Errorf("sync: got %s %q, want NONE \"a\"", codeName(r.ErrorCode), r.MemberAssignment)
	}
	checkState(t, c, "g", Stable)
}

func TestJoinV3WithoutMemberIDJoinsAtOnce(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	m := newMember(t, c, "g", "old")
	r := c.JoinGroup(m.ctx(), m.joinRequest(3))
	checkCode(t, "v3 join", r.ErrorCode, nil)
	if r.MemberID == "" || r.Generation != 1 {
		t.Errorf("v3 join: got member %q generation %d, want an id and 1", r.MemberID, r.Generation)
	}
}

func TestJoinValidation(t *testing.T) {
	cfg := testConfig()
	cfg.MinSessionTimeout = 100 * time.Millisecond
	cfg.MaxSessionTimeout = time.Second
	c := newTestCoordinator(t, cfg, &MemLog{})
	existing := newMember(t, c, "taken", "x")
	existing.session = 500 * time.Millisecond
	existing.join()

	for _, tc := range []struct {
		name   string
		change func(r *kmsg.JoinGroupRequest)
		want   *kerr.Error
	}{
		{"empty group id", func(r *kmsg.JoinGroupRequest) { r.Group = "" }, kerr.InvalidGroupID},
		{"session below min", func(r *kmsg.JoinGroupRequest) { r.SessionTimeoutMillis = 99 }, kerr.InvalidSessionTimeout},
		{"session above max", func(r *kmsg.JoinGroupRequest) { r.SessionTimeoutMillis = 1001 }, kerr.InvalidSessionTimeout},
		{"no protocol type", func(r *kmsg.JoinGroupRequest) { r.ProtocolType = "" }, kerr.InconsistentGroupProtocol},
		{"no protocols", func(r *kmsg.JoinGroupRequest) { r.Protocols = nil }, kerr.InconsistentGroupProtocol},
		{"unknown member of unknown group", func(r *kmsg.JoinGroupRequest) { r.MemberID = "ghost" }, kerr.UnknownMemberID},
		{"unknown member of known group", func(r *kmsg.JoinGroupRequest) { r.Group, r.MemberID = "taken", "ghost" }, kerr.UnknownMemberID},
		{"other protocol type", func(r *kmsg.JoinGroupRequest) { r.Group, r.ProtocolType = "taken", "connect" }, kerr.InconsistentGroupProtocol},
		{"no common protocol", func(r *kmsg.JoinGroupRequest) {
			r.Group = "taken"
			r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "roundrobin"}}
		}, kerr.InconsistentGroupProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMember(t, c, "g", "c")
			m.session = 500 * time.Millisecond
			req := m.joinRequest(9)
			tc.change(req)
			r := c.JoinGroup(m.ctx(), req)
			checkCode(t, "join", r.ErrorCode, tc.want)
			if got := c.Groups(); len(got) != 1 || got[0] != "taken" {
				t.Errorf("groups after a failed join: got %v, want [taken]", got)
			}
		})
	}
}

func TestThreeMembersJoinAndSync(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	a, b, d := newMember(t, c, "g", "a"), newMember(t, c, "g", "b"), newMember(t, c, "g", "d")
	resps := joinAll(t, a, b, d)

	var leaders int
	for i, r := range resps {
		if r.Generation != 1 {
			t.Errorf("member %d generation: got %d, want 1", i, r.Generation)
		}
		if r.LeaderID != resps[0].LeaderID {
			t.Errorf("member %d leader: got %q, want %q", i, r.LeaderID, resps[0].LeaderID)
		}
		if r.LeaderID != r.MemberID {
			if len(r.Members) != 0 {
				t.Errorf("follower %d members: got %d, want 0", i, len(r.Members))
			}
			continue
		}
		leaders++
		got := make(map[string]string)
		for _, lm := range r.Members {
			got[lm.MemberID] = string(lm.ProtocolMetadata)
		}
		want := map[string]string{a.id: "meta-a", b.id: "meta-b", d.id: "meta-d"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("leader's members: got %v, want %v", got, want)
		}
	}
	if leaders != 1 {
		t.Fatalf("leaders: got %d, want 1", leaders)
	}
	checkState(t, c, "g", CompletingRebalance)

	syncs := syncAll(t, a, b, d)
	for i, m := range []*tmember{a, b, d} {
		if got, want := string(syncs[i].MemberAssignment), "assign-"+m.name; got != want {
			t.Errorf("%s assignment: got %q, want %q", m.name, got, want)
		}
		if syncs[i].Protocol == nil || *syncs[i].Protocol != "range" {
			t.Errorf("%s sync protocol: got %v, want range", m.name, syncs[i].Protocol)
		}
		checkCode(t, m.name+" heartbeat", m.heartbeat(), nil)
	}
	checkState(t, c, "g", Stable)

	// A member that missed its sync response gets it again.
	if r := b.sync(nil); string(r.MemberAssignment) != "assign-b" {
		t.Errorf("resync: got %q, want %q", r.MemberAssignment, "assign-b")
	}
}

func TestLeaveRebalancesRemainingMembers(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	a, b, d := newMember(t, c, "g", "a"), newMember(t, c, "g", "b"), newMember(t, c, "g", "d")
	stableGroup(t, a, b, d)

	checkCode(t, "leave", d.leave(), nil)
	checkState(t, c, "g", PreparingRebalance)
	checkCode(t, "a heartbeat", a.heartbeat(), kerr.RebalanceInProgress)
	checkCode(t, "b heartbeat", b.heartbeat(), kerr.RebalanceInProgress)
	checkCode(t, "left member heartbeat", d.heartbeat(), kerr.UnknownMemberID)

	resps := joinAll(t, a, b)
	for i, r := range resps {
		if r.Generation != 2 {
			t.Errorf("member %d generation: got %d, want 2", i, r.Generation)
		}
		if r.LeaderID == r.MemberID && len(r.Members) != 2 {
			t.Errorf("leader's members: got %d, want 2", len(r.Members))
		}
	}
	syncAll(t, a, b)
	checkState(t, c, "g", Stable)

	// Leaving again, by a batch: unknown members get their own code.
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version = 3
	req.Group = "g"
	req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: a.id}, {MemberID: "ghost"}, {MemberID: b.id}}
	resp := c.LeaveGroup(a.ctx(), req)
	for i, want := range []*kerr.Error{nil, kerr.UnknownMemberID, nil} {
		checkCode(t, fmt.Sprintf("batch leave member %d", i), resp.Members[i].ErrorCode, want)
	}
	checkState(t, c, "g", Empty)
}

func TestLeaveV0(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	a := newMember(t, c, "g", "a")
	a.join()
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = "g"
	req.MemberID = "ghost"
	checkCode(t, "v0 leave of unknown member", c.LeaveGroup(a.ctx(), req).ErrorCode, kerr.UnknownMemberID)
	req.MemberID = a.id
	checkCode(t, "v0 leave", c.LeaveGroup(a.ctx(), req).ErrorCode, nil)
	checkState(t, c, "g", Empty)
}

func TestSessionTimeoutRemovesMember(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	a, b := newMember(t, c, "g", "a"), newMember(t, c, "g", "b")
	b.session = 300 * time.Millisecond
	stableGroup(t, a, b)

	// a keeps heartbeating; b goes silent.
	var code int16
	testutil.EventuallyWithin(t, wait, "b's session to expire", func() bool {
		code = a.heartbeat()
		return code != 0
	})
	checkCode(t, "a heartbeat after b expired", code, kerr.RebalanceInProgress)
	checkCode(t, "b heartbeat", b.heartbeat(), kerr.UnknownMemberID)

	r := a.join()
	if r.Generation != 2 || len(r.Members) != 1 || r.Members[0].MemberID != a.id {
		t.Errorf("rejoin: got generation %d with %d members, want 2 with a alone", r.Generation, len(r.Members))
	}
}

func TestRebalanceTimeoutRemovesSilentMember(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	a, b := newMember(t, c, "g", "a"), newMember(t, c, "g", "b")
	a.rebalance, b.rebalance = 200*time.Millisecond, 200*time.Millisecond
	stableGroup(t, a, b)
	leader, follower := a, b
	if !a.isLeader() {
		leader, follower = b, a
	}

	// The leader rejoins, which rebalances; the follower never rejoins and
	// is removed when the rebalance timeout passes.
	r := leader.join()
	if r.Generation != 2 || len(r.Members) != 1 || r.Members[0].MemberID != leader.id {
		t.Fatalf("leader rejoin: got generation %d with %d members, want 2 with the leader alone", r.Generation, len(r.Members))
	}
	checkCode(t, "follower heartbeat", follower.heartbeat(), kerr.UnknownMemberID)
}

func TestMissingSyncRemovesMember(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	a, b := newMember(t, c, "g", "a"), newMember(t, c, "g", "b")
	a.rebalance, b.rebalance = 200*time.Millisecond, 200*time.Millisecond
	joinAll(t, a, b)
	leader, follower := a, b
	if !a.isLeader() {
		leader, follower = b, a
	}
	leader.sync(map[string][]byte{leader.id: []byte("x"), follower.id: []byte("y")})
	checkState(t, c, "g", Stable)
	// The follower never syncs: it is removed and the group rebalances.
	testutil.EventuallyWithin(t, wait, "the group to rebalance", func() bool { return leader.heartbeat() == kerr.RebalanceInProgress.Code })
	checkCode(t, "follower heartbeat", follower.heartbeat(), kerr.UnknownMemberID)
}

// consumerMeta encodes a consumer protocol subscription owning partitions
// of topic t, as a cooperative consumer sends it.
func consumerMeta(topic string, owned ...int32) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Version = 1
	m.Topics = []string{topic}
	if len(owned) > 0 {
		m.OwnedPartitions = []kmsg.ConsumerMemberMetadataOwnedPartition{{Topic: topic, Partitions: owned}}
	}
	return m.AppendTo(nil)
}

func TestCooperativeRejoin(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	a, b := newMember(t, c, "g", "a"), newMember(t, c, "g", "b")
	for _, m := range []*tmember{a, b} {
		m.protocols = []kmsg.JoinGroupRequestProtocol{{Name: "cooperative-sticky", Metadata: consumerMeta("t")}}
	}
	stableGroup(t, a, b)
	leader, follower := a, b
	if !a.isLeader() {
		leader, follower = b, a
	}
	gen1 := follower.gen

	// A follower rejoining with unchanged metadata gets its generation
	// back: no rebalance.
	r := follower.joinOnce()
	if r.ErrorCode != 0 || r.Generation != gen1 {
		t.Fatalf("unchanged rejoin: got %s generation %d, want NONE %d", codeName(r.ErrorCode), r.Generation, gen1)
	}
	checkState(t, c, "g", Stable)

	// Both own partitions now; the follower rejoins owning fewer, having
	// revoked one: a rebalance, while it keeps consuming the rest.
	leader.protocols[0].Metadata = consumerMeta("t", 0, 1)
	follower.protocols[0].Metadata = consumerMeta("t", 2)
	var wg sync.WaitGroup
	var fr *kmsg.JoinGroupResponse
	wg.Go(func() { fr = follower.join() })
	testutil.EventuallyWithin(t, wait, "the rebalance", func() bool { return groupState(c, "g") == PreparingRebalance })

	// The leader learns of it by heartbeat; commits of the current
	// generation still go through while the group prepares.
	checkCode(t, "leader heartbeat", leader.heartbeat(), kerr.RebalanceInProgress)
	checkCode(t, "commit during rebalance", leader.commit("t", 0, 10), nil)

	lr := leader.join()
	wg.Wait()
	if lr.Generation != gen1+1 || fr.Generation != gen1+1 {
		t.Fatalf("generations after rejoin: got %d and %d, want %d", lr.Generation, fr.Generation, gen1+1)
	}
	for _, lm := range lr.Members {
		want := consumerMeta("t", 0, 1)
		if lm.MemberID == follower.id {
			want = consumerMeta("t", 2)
		}
		if !bytes.Equal(lm.ProtocolMetadata, want) {
			t.Errorf("leader sees metadata of %s: got %x, want %x", lm.MemberID, lm.ProtocolMetadata, want)
		}
	}

	// The old generation is fenced.
	stale := commitAs(c, 8, "g", gen1, follower.id, "t", 2, 5, "")
	checkCode(t, "commit of old generation", stale, kerr.IllegalGeneration)
	syncAll(t, a, b)
	checkCode(t, "commit of new generation", follower.commit("t", 2, 5), nil)
	old := follower.clone()
	old.gen = gen1
	checkCode(t, "heartbeat of old generation", old.heartbeat(), kerr.IllegalGeneration)

	// The leader rejoining with the same metadata also rebalances: it may
	// have seen topics change.
	wg.Go(func() { leader.join() })
	testutil.EventuallyWithin(t, wait, "the leader's rebalance", func() bool { return groupState(c, "g") == PreparingRebalance })
	follower.join()
	wg.Wait()
	if leader.gen != gen1+2 {
		t.Errorf("generation after leader rejoin: got %d, want %d", leader.gen, gen1+2)
	}
}

func TestProtocolSelection(t *testing.T) {
	proto := func(names ...string) []kmsg.JoinGroupRequestProtocol {
		var ps []kmsg.JoinGroupRequestProtocol
		for _, n := range names {
			ps = append(ps, kmsg.JoinGroupRequestProtocol{Name: n, Metadata: []byte(n)})
		}
		return ps
	}
	for _, tc := range []struct {
		name    string
		members [][]kmsg.JoinGroupRequestProtocol
		want    string
	}{
		{"one member, first preference", [][]kmsg.JoinGroupRequestProtocol{proto("sticky", "range")}, "sticky"},
		{"majority", [][]kmsg.JoinGroupRequestProtocol{proto("range", "sticky"), proto("sticky", "range"), proto("sticky", "range")}, "sticky"},
		{"only common", [][]kmsg.JoinGroupRequestProtocol{proto("cooperative-sticky", "range"), proto("range")}, "range"},
		// A tie goes to the longest-standing member's choice: the leader's.
		{"tie", [][]kmsg.JoinGroupRequestProtocol{proto("roundrobin", "range"), proto("range", "roundrobin")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCoordinator(t, testConfig(), &MemLog{})
			var ms []*tmember
			for i, ps := range tc.members {
				m := newMember(t, c, "g", fmt.Sprint("m", i))
				m.protocols = ps
				ms = append(ms, m)
			}
			resps := joinAll(t, ms...)
			want := tc.want
			if want == "" {
				for _, m := range ms {
					if m.isLeader() {
						want = m.protocols[0].Name
					}
				}
			}
			for _, r := range resps {
				if got := kmsg.StringPtr(""); r.Protocol == nil || *r.Protocol != want {
					if r.Protocol != nil {
						got = r.Protocol
					}
					t.Errorf("protocol: got %q, want %q", *got, want)
				}
				for _, lm := range r.Members {
					if string(lm.ProtocolMetadata) != want {
						t.Errorf("leader's metadata: got %q, want %q", lm.ProtocolMetadata, want)
					}
				}
			}
		})
	}
}

func TestInitialRebalanceDelayWaitsForMembers(t *testing.T) {
	cfg := testConfig()
	cfg.InitialRebalanceDelay = 100 * time.Millisecond
	c := newTestCoordinator(t, cfg, &MemLog{})
	a, b := newMember(t, c, "g", "a"), newMember(t, c, "g", "b")
	a.rebalance, b.rebalance = wait, wait

	// a joins alone and waits out the delay; b arrives meanwhile, which
	// extends it, so one generation holds both.
	var wg sync.WaitGroup
	var ar *kmsg.JoinGroupResponse
	wg.Go(func() { ar = a.join() })
	testutil.EventuallyWithin(t, wait, "a to join", func() bool { return groupState(c, "g") == PreparingRebalance })
	br := b.join()
	wg.Wait()
	if ar.Generation != 1 || br.Generation != 1 {
		t.Errorf("generations: got %d and %d, want 1 and 1", ar.Generation, br.Generation)
	}
}

func TestStaticMemberRestartKeepsAssignment(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	a, b := newMember(t, c, "g", "a"), newMember(t, c, "g", "b")
	a.instance, b.instance = kmsg.StringPtr("inst-a"), kmsg.StringPtr("inst-b")

	// Static members join without MEMBER_ID_REQUIRED: a alone first, then
	// b, which rebalances the group, and a rejoins.
	r := a.joinOnce()
	if r.ErrorCode != 0 || r.Generation != 1 {
		t.Fatalf("static join: got %s generation %d, want NONE 1", codeName(r.ErrorCode), r.Generation)
	}
	var wg sync.WaitGroup
	wg.Go(func() { b.join() })
	testutil.EventuallyWithin(t, wait, "b to join", func() bool { return groupState(c, "g") == PreparingRebalance })
	a.join()
	wg.Wait()
	syncAll(t, a, b)
	gen := a.gen
	follower := b
	if b.isLeader() {
		follower = a
	}
	oldID := follower.id

	// The follower restarts: it rejoins without its member id, and takes
	// over its membership without a rebalance.
	follower.id = ""
	r = follower.joinOnce()
	checkCode(t, "static rejoin", r.ErrorCode, nil)
	if r.MemberID == oldID || r.Generation != gen {
		t.Fatalf("static rejoin: got member %q generation %d, want a new id and generation %d", r.MemberID, r.Generation, gen)
	}
	if r.LeaderID == r.MemberID || r.SkipAssignment {
		t.Errorf("static follower rejoin: got leader %q skip %v, want another leader and no skip", r.LeaderID, r.SkipAssignment)
	}
	checkState(t, c, "g", Stable)
	if s := follower.sync(nil); s.ErrorCode != 0 || string(s.MemberAssignment) != "assign-"+follower.name {
		t.Errorf("sync after static rejoin: got %s %q, want NONE %q", codeName(s.ErrorCode), s.MemberAssignment, "assign-"+follower.name)
	}

	// The old member id is fenced.
	stale := follower.clone()
	stale.id = oldID
	checkCode(t, "heartbeat of replaced member", stale.heartbeat(), kerr.FencedInstanceID)

	// A static leader's restart keeps it leader, told to skip assignment.
	leader := a
	if follower == a {
		leader = b
	}
	leader.id = ""
	r = leader.joinOnce()
	if r.ErrorCode != 0 || r.LeaderID != r.MemberID || !r.SkipAssignment || len(r.Members) != 2 {
		t.Errorf("static leader rejoin: got %s leader=%v skip=%v members=%d, want NONE true true 2",
			codeName(r.ErrorCode), r.LeaderID == r.MemberID, r.SkipAssignment, len(r.Members))
	}

	// Removing a static member by instance id rebalances.
	resp := c.LeaveGroup(leader.ctx(), &kmsg.LeaveGroupRequest{Version: 3, Group: "g", Members: []kmsg.LeaveGroupRequestMember{{InstanceID: follower.instance}}})
	checkCode(t, "leave by instance id", resp.Members[0].ErrorCode, nil)
	checkState(t, c, "g", PreparingRebalance)
}

func TestMaxGroupSize(t *testing.T) {
	cfg := testConfig()
	cfg.MaxGroupSize = 1
	c := newTestCoordinator(t, cfg, &MemLog{})
	a, b := newMember(t, c, "g", "a"), newMember(t, c, "g", "b")
	a.join()
	r := b.joinOnce()
	checkCode(t, "join beyond max size", r.ErrorCode, kerr.GroupMaxSizeReached)
}

func TestCloseUnblocksJoin(t *testing.T) {
	cfg := testConfig()
	cfg.InitialRebalanceDelay = time.Hour
	c, err := New(cfg, &MemLog{})
	if err != nil {
		t.Fatal(err)
	}
	m := newMember(t, c, "g", "a")
	m.rebalance = 2 * time.Hour
	m.joinOnce()
	done := make(chan *kmsg.JoinGroupResponse)
	go func() { done <- m.joinOnce() }()
	testutil.EventuallyWithin(t, wait, "the join to park", func() bool { return groupState(c, "g") == PreparingRebalance })
	c.Close()
	select {
	case r := <-done:
		checkCode(t, "parked join at close", r.ErrorCode, kerr.NotCoordinator)
	case <-time.After(wait):
		t.Fatal("join still blocked after Close")
	}
	checkCode(t, "join after close", m.joinOnce().ErrorCode, kerr.CoordinatorNotAvailable)
	checkCode(t, "heartbeat after close", m.heartbeat(), kerr.CoordinatorNotAvailable)
	checkCode(t, "commit after close", commitAs(c, 8, "g", -1, "", "t", 0, 1, ""), kerr.CoordinatorNotAvailable)
	c.Close() // a second Close is harmless
}

func TestCloseUnblocksSync(t *testing.T) {
	c, err := New(testConfig(), &MemLog{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := newMember(t, c, "g", "a"), newMember(t, c, "g", "b")
	joinAll(t, a, b)
	follower := a
	if a.isLeader() {
		follower = b
	}
	done := make(chan *kmsg.SyncGroupResponse)
	go func() { done <- follower.sync(nil) }()
	testutil.EventuallyWithin(t, wait, "the sync to park", func() bool {
		g := c.lookup("g")
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.members[follower.id].sync != nil
	})
	c.Close()
	select {
	case r := <-done:
		checkCode(t, "parked sync at close", r.ErrorCode, kerr.NotCoordinator)
	case <-time.After(wait):
		t.Fatal("sync still blocked after Close")
	}
}

func TestSyncValidation(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	a := newMember(t, c, "g", "a")
	a.join()
	for _, tc := range []struct {
		name   string
		change func(r *kmsg.SyncGroupRequest)
		want   *kerr.Error
	}{
		{"empty group id", func(r *kmsg.SyncGroupRequest) { r.Group = "" }, kerr.InvalidGroupID},
		{"unknown group", func(r *kmsg.SyncGroupRequest) { r.Group = "other" }, kerr.UnknownMemberID},
		{"unknown member", func(r *kmsg.SyncGroupRequest) { r.MemberID = "ghost" }, kerr.UnknownMemberID},
		{"wrong generation", func(r *kmsg.SyncGroupRequest) { r.Generation = 7 }, kerr.IllegalGeneration},
		{"wrong protocol type", func(r *kmsg.SyncGroupRequest) { r.ProtocolType = kmsg.StringPtr("connect") }, kerr.InconsistentGroupProtocol},
		{"wrong protocol", func(r *kmsg.SyncGroupRequest) { r.Protocol = kmsg.StringPtr("sticky") }, kerr.InconsistentGroupProtocol},
		{"unknown instance", func(r *kmsg.SyncGroupRequest) { r.InstanceID = kmsg.StringPtr("i") }, kerr.UnknownMemberID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := a.syncRequest(nil)
			tc.change(req)
			checkCode(t, "sync", c.SyncGroup(a.ctx(), req).ErrorCode, tc.want)
		})
	}
}

func TestLeaderLeavingMemberOutGetsEmptyAssignment(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	a, b := newMember(t, c, "g", "a"), newMember(t, c, "g", "b")
	joinAll(t, a, b)
	leader, follower := a, b
	if !a.isLeader() {
		leader, follower = b, a
	}
	var wg sync.WaitGroup
	var fr *kmsg.SyncGroupResponse
	wg.Go(func() { fr = follower.sync(nil) })
	testutil.EventuallyWithin(t, wait, "the follower to sync", func() bool {
		g := c.lookup("g")
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.members[follower.id].sync != nil
	})
	leader.sync(map[string][]byte{leader.id: []byte("all")})
	wg.Wait()
	if fr.ErrorCode != 0 || len(fr.MemberAssignment) != 0 {
		t.Errorf("left-out follower: got %s %q, want NONE and an empty assignment", codeName(fr.ErrorCode), fr.MemberAssignment)
	}
}

func TestStoreFailureAtSyncRebalances(t *testing.T) {
	log := &failingLog{}
	c := newTestCoordinator(t, testConfig(), log)
	a, b := newMember(t, c, "g", "a"), newMember(t, c, "g", "b")
	joinAll(t, a, b)
	log.setFail(fmt.Errorf("disk full"))
	leader, follower := a, b
	if !a.isLeader() {
		leader, follower = b, a
	}
	var wg sync.WaitGroup
	var fr *kmsg.SyncGroupResponse
	wg.Go(func() { fr = follower.sync(nil) })
	testutil.EventuallyWithin(t, wait, "the follower to sync", func() bool {
		g := c.lookup("g")
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.members[follower.id].sync != nil
	})
	lr := leader.sync(map[string][]byte{a.id: []byte("x"), b.id: []byte("y")})
	wg.Wait()
	checkCode(t, "leader sync with failing log", lr.ErrorCode, kerr.CoordinatorNotAvailable)
	checkCode(t, "follower sync with failing log", fr.ErrorCode, kerr.CoordinatorNotAvailable)
	checkState(t, c, "g", PreparingRebalance)
}

// TestChurn runs members as clients would, joining, syncing, heartbeating
// and leaving at random, to shake out races and deadlocks. Every member
// ends by leaving, and the group must end Empty.
func TestChurn(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	const members, rounds = 6, 15
	var wg sync.WaitGroup
	for i := range members {
		m := newMember(t, c, "churn", fmt.Sprint("m", i))
		m.rebalance = 2 * time.Second
		wg.Go(func() {
			for round := range rounds {
				r := m.joinOnce()
				switch r.ErrorCode {
				case kerr.MemberIDRequired.Code:
					continue
				case kerr.UnknownMemberID.Code:
					m.id = ""
					continue
				case 0:
				default:
					continue
				}
				var assign map[string][]byte
				if r.LeaderID == r.MemberID {
					assign = make(map[string][]byte)
					for _, lm := range r.Members {
						assign[lm.MemberID] = []byte(lm.MemberID)
					}
				}
				if s := m.sync(assign); s.ErrorCode == 0 && !bytes.Equal(s.MemberAssignment, []byte(m.id)) {
					t.Errorf("%s: assignment: got %q, want %q", m.name, s.MemberAssignment, m.id)
				}
				m.heartbeat()
				commitAs(c, 8, "churn", m.gen, m.id, "t", int32(i), int64(round), "")
				if round%5 == i%5 {
					m.leave()
					m.id = ""
				}
			}
			m.leave()
		})
	}
	wg.Wait()
	testutil.EventuallyWithin(t, wait, "the group to empty", func() bool { return groupState(c, "churn") == Empty })
}

func TestPendingMemberHoldsRebalanceUntilItExpires(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	a, b := newMember(t, c, "g", "a"), newMember(t, c, "g", "b")
	a.session = 200 * time.Millisecond
	// a gets a member id and never comes back; b's rebalance waits for it
	// until a's session timeout forgets it.
	checkCode(t, "a's first join", a.joinOnce().ErrorCode, kerr.MemberIDRequired)
	r := b.join()
	if r.Generation != 1 || len(r.Members) != 1 {
		t.Errorf("b's join: got generation %d with %d members, want 1 with 1", r.Generation, len(r.Members))
	}
	checkCode(t, "a's late join", a.joinOnce().ErrorCode, kerr.UnknownMemberID)
}

func TestStaticReplacementStoreFailureKeepsOldMember(t *testing.T) {
	log := &failingLog{}
	c := newTestCoordinator(t, testConfig(), log)
	a := newMember(t, c, "g", "a")
	a.instance = kmsg.StringPtr("inst")
	stableGroup(t, a)
	log.setFail(errors.New("disk gone"))
	restarted := a.clone()
	restarted.id = ""
	r := c.JoinGroup(restarted.ctx(), restarted.joinRequest(9))
	checkCode(t, "static rejoin with failing log", r.ErrorCode, kerr.CoordinatorNotAvailable)
	checkCode(t, "old member's heartbeat", a.heartbeat(), nil)
	checkState(t, c, "g", Stable)
}

func TestFollowerBecomesLeaderWhenLeaderDoesNotRejoin(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	a, b := newMember(t, c, "g", "a"), newMember(t, c, "g", "b")
	a.rebalance, b.rebalance = 200*time.Millisecond, 200*time.Millisecond
	stableGroup(t, a, b)
	leader, follower := a, b
	if !a.isLeader() {
		leader, follower = b, a
	}
	follower.protocols[0].Metadata = []byte("changed")
	r := follower.join()
	if r.LeaderID != follower.id || len(r.Members) != 1 || r.Generation != 2 {
		t.Errorf("follower's rejoin: got leader %q with %d members generation %d, want itself alone in generation 2", r.LeaderID, len(r.Members), r.Generation)
	}
	checkCode(t, "old leader's heartbeat", leader.heartbeat(), kerr.UnknownMemberID)
}
