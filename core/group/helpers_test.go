package group

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

// wait is how long a test waits for an outcome before failing. It is far
// above any timer the tests set: outcomes are awaited, never timed.
const wait = 10 * time.Second

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.MinSessionTimeout = time.Millisecond
	cfg.InitialRebalanceDelay = 0
	cfg.OffsetsRetentionCheckInterval = time.Hour
	return cfg
}

func newTestCoordinator(t *testing.T, cfg Config, log Log) *Coordinator {
	t.Helper()
	c, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: got error %v, want nil", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func codeName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	return kerr.ErrorForCode(code).(*kerr.Error).Message
}

func checkCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	wantCode := int16(0)
	if want != nil {
		wantCode = want.Code
	}
	if got != wantCode {
		t.Errorf("%s: got %s, want %s", what, codeName(got), codeName(wantCode))
	}
}

// tmember plays a group member the way a client does.
type tmember struct {
	t        *testing.T
	c        *Coordinator
	name     string // client id
	group    string
	id       string
	gen      int32
	instance *string

	protocolType string
	protocols    []kmsg.JoinGroupRequestProtocol
	session      time.Duration
	rebalance    time.Duration

	context context.Context // carries the client; calls add a timeout

	mu         sync.Mutex
	lastJoin   *kmsg.JoinGroupResponse
	assignment []byte
}

func newMember(t *testing.T, c *Coordinator, group, name string) *tmember {
	return &tmember{
		t:            t,
		context:      WithClient(context.Background(), Client{ID: name, Host: "/127.0.0.1"}),
		c:            c,
		name:         name,
		group:        group,
		protocolType: "consumer",
		protocols:    []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("meta-" + name)}},
		session:      10 * time.Second,
		rebalance:    10 * time.Second,
	}
}

// clone returns a copy of m, to act as m's stale self.
func (m *tmember) clone() *tmember {
	return &tmember{
		t: m.t, c: m.c, name: m.name, group: m.group, id: m.id, gen: m.gen, instance: m.instance,
		protocolType: m.protocolType, protocols: m.protocols, session: m.session, rebalance: m.rebalance,
		context: m.context,
	}
}

// ctx returns a context for one call, ending after wait.
func (m *tmember) ctx() context.Context {
	ctx, cancel := context.WithTimeout(m.context, wait)
	context.AfterFunc(ctx, cancel) // released when the call's deadline passes
	return ctx
}

func (m *tmember) joinRequest(version int16) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = version
	req.Group = m.group
	req.SessionTimeoutMillis = int32(m.session / time.Millisecond)
	req.RebalanceTimeoutMillis = int32(m.rebalance / time.Millisecond)
	req.MemberID = m.id
	req.InstanceID = m.instance
	req.ProtocolType = m.protocolType
	req.Protocols = m.protocols
	return req
}

// joinOnce sends one JoinGroup (v9) and records the member id and
// generation it returns.
func (m *tmember) joinOnce() *kmsg.JoinGroupResponse {
	resp := m.c.JoinGroup(m.ctx(), m.joinRequest(9))
	m.mu.Lock()
	defer m.mu.Unlock()
	if resp.ErrorCode == 0 || resp.ErrorCode == kerr.MemberIDRequired.Code {
		m.id = resp.MemberID
	}
	if resp.ErrorCode == 0 {
		m.gen = resp.Generation
		m.lastJoin = resp
	}
	return resp
}

// join joins as a client does, answering MEMBER_ID_REQUIRED with a rejoin.
// It reports an error on any other failure; it may run in a goroutine.
func (m *tmember) join() *kmsg.JoinGroupResponse {
	resp := m.joinOnce()
	if resp.ErrorCode == kerr.MemberIDRequired.Code {
		resp = m.joinOnce()
	}
	if resp.ErrorCode != 0 {
		m.t.Errorf("%s: join: got %s, want NONE", m.name, codeName(resp.ErrorCode))
	}
	return resp
}

func (m *tmember) syncRequest(assign map[string][]byte) *kmsg.SyncGroupRequest {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = 5
	req.Group = m.group
	req.Generation = m.gen
	req.MemberID = m.id
	req.InstanceID = m.instance
	req.ProtocolType = kmsg.StringPtr(m.protocolType)
	m.mu.Lock()
	if m.lastJoin != nil {
		req.Protocol = m.lastJoin.Protocol
	}
	m.mu.Unlock()
	for id, a := range assign {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: a})
	}
	return req
}

func (m *tmember) sync(assign map[string][]byte) *kmsg.SyncGroupResponse {
	resp := m.c.SyncGroup(m.ctx(), m.syncRequest(assign))
	if resp.ErrorCode == 0 {
		m.mu.Lock()
		m.assignment = resp.MemberAssignment
		m.mu.Unlock()
	}
	return resp
}

func (m *tmember) heartbeat() int16 {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Version = 4
	req.Group = m.group
	req.Generation = m.gen
	req.MemberID = m.id
	req.InstanceID = m.instance
	return m.c.Heartbeat(m.ctx(), req).ErrorCode
}

func (m *tmember) leave() int16 {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version = 5
	req.Group = m.group
	req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: m.id, InstanceID: m.instance}}
	resp := m.c.LeaveGroup(m.ctx(), req)
	if resp.ErrorCode != 0 {
		return resp.ErrorCode
	}
	return resp.Members[0].ErrorCode
}

func (m *tmember) commit(topic string, partition int32, offset int64) int16 {
	return commitAs(m.c, 8, m.group, m.gen, m.id, topic, partition, offset, "")
}

func (m *tmember) isLeader() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastJoin != nil && m.lastJoin.LeaderID == m.id
}

// commitAs commits one offset and returns the partition's code.
func commitAs(c *Coordinator, version int16, group string, gen int32, memberID, topic string, partition int32, offset int64, metadata string) int16 {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = version
	req.Group = group
	req.Generation = gen
	req.MemberID = memberID
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition = partition
	rp.Offset = offset
	rp.LeaderEpoch = 3
	rp.Metadata = kmsg.StringPtr(metadata)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := c.OffsetCommit(context.Background(), req)
	return resp.Topics[0].Partitions[0].ErrorCode
}

// fetchOffset returns the committed offset of one partition (v8).
func fetchOffset(t *testing.T, c *Coordinator, group, topic string, partition int32) int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 8
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	rt := kmsg.NewOffsetFetchRequestGroupTopic()
	rt.Topic = topic
	rt.Partitions = []int32{partition}
	rg.Topics = append(rg.Topics, rt)
	req.Groups = append(req.Groups, rg)
	resp := c.OffsetFetch(context.Background(), req)
	g := resp.Groups[0]
	if g.ErrorCode != 0 || g.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("fetch %s %s/%d: got group %s, partition %s, want NONE", group, topic, partition,
			codeName(g.ErrorCode), codeName(g.Topics[0].Partitions[0].ErrorCode))
	}
	return g.Topics[0].Partitions[0].Offset
}

// joinAll joins every member concurrently and returns their responses.
// Members without an id first get one with MEMBER_ID_REQUIRED, one after
// the other, so that the rebalance waits for all of them: the outcome does
// not depend on timing.
func joinAll(t *testing.T, ms ...*tmember) []*kmsg.JoinGroupResponse {
	t.Helper()
	for _, m := range ms {
		if m.id == "" && m.instance == nil {
			if r := m.joinOnce(); r.ErrorCode != kerr.MemberIDRequired.Code {
				t.Fatalf("%s: first join: got %s, want MEMBER_ID_REQUIRED", m.name, codeName(r.ErrorCode))
			}
		}
	}
	resps := make([]*kmsg.JoinGroupResponse, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() { resps[i] = m.join() })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return resps
}

// syncAll syncs every member, the leader assigning "assign-<name>" to each,
// and returns their responses in order. Followers sync first, so that
// their calls wait for the leader's.
func syncAll(t *testing.T, ms ...*tmember) []*kmsg.SyncGroupResponse {
	t.Helper()
	var leader *tmember
	assign := make(map[string][]byte)
	for _, m := range ms {
		assign[m.id] = []byte("assign-" + m.name)
		if m.isLeader() {
			leader = m
		}
	}
	if leader == nil {
		t.Fatalf("no leader among %d members", len(ms))
	}
	resps := make([]*kmsg.SyncGroupResponse, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		if m == leader {
			continue
		}
		wg.Go(func() { resps[i] = m.sync(nil) })
	}
	g := leader.c.lookup(leader.group)
	testutil.EventuallyWithin(t, wait, "followers to sync", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, m := range ms {
			if m != leader && (g.members[m.id] == nil || g.members[m.id].sync == nil) {
				return false
			}
		}
		return true
	})
	for i, m := range ms {
		if m == leader {
			resps[i] = m.sync(assign)
		}
	}
	wg.Wait()
	for i, r := range resps {
		if r.ErrorCode != 0 {
			t.Fatalf("%s: sync: got %s, want NONE", ms[i].name, codeName(r.ErrorCode))
		}
	}
	return resps
}

// stableGroup makes the members a Stable group.
func stableGroup(t *testing.T, ms ...*tmember) {
	t.Helper()
	joinAll(t, ms...)
	syncAll(t, ms...)
	checkState(t, ms[0].c, ms[0].group, Stable)
}

func groupState(c *Coordinator, id string) State {
	g := c.lookup(id)
	if g == nil {
		return Dead
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state
}

func checkState(t *testing.T, c *Coordinator, id string, want State) {
	t.Helper()
	if got := groupState(c, id); got != want {
		t.Fatalf("group %s state: got %v, want %v", id, got, want)
	}
}

// failingLog is a Log whose appends fail while fail is set.
type failingLog struct {
	MemLog
	mu   sync.Mutex
	fail error
}

func (l *failingLog) setFail(err error) {
	l.mu.Lock()
	l.fail = err
	l.mu.Unlock()
}

func (l *failingLog) Append(ctx context.Context, recs []Record) error {
	l.mu.Lock()
	err := l.fail
	l.mu.Unlock()
	if err != nil {
		return err
	}
	return l.MemLog.Append(ctx, recs)
}
