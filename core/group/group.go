package group

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newMemberJoinTimeout bounds how long a new member may sit in a rebalance
// with its first JoinGroup: a client that gave up and retried would
// otherwise leave a defunct member behind (Kafka's NewMemberJoinTimeoutMs).
const newMemberJoinTimeout = 5 * time.Minute

// consumerProtocolType is the protocol type of Kafka consumers, whose
// subscription metadata the coordinator reads to learn the group's topics.
const consumerProtocolType = "consumer"

// group is one classic group. Its methods whose names do not say otherwise
// must be called with mu held.
type group struct {
	c  *Coordinator
	id string
	lg zerolog.Logger

	// appendMu serializes the group's log writes (see write). Lock order:
	// appendMu, then mu, then Coordinator.mu.
	appendMu sync.Mutex

	mu        sync.Mutex // guards every field below, and the members
	unloaded  bool       // set by Close: no more timers, every call answers an error
	state     State
	stateTime time.Time // when state was entered

	protocolType string // set by the first member; kept while the group lives
	protocol     string // the current generation's protocol; "" when Empty
	generation   int32
	leader       string             // member id; "" when no members
	members      map[string]*member // by member id
	seq          uint64             // join order counter, for member.seq
	static       map[string]string  // group instance id → member id
	supported    map[string]int     // protocol name → members that support it
	awaitingJoin int                // members with a pending JoinGroup

	// pending holds the member ids handed out with MEMBER_ID_REQUIRED
	// (KIP-394), each with a timer that forgets it after the session
	// timeout. A rebalance waits for them.
	pending map[string]*time.Timer

	joinTimer      *time.Timer // completes PreparingRebalance
	joinInitial    bool        // joinTimer is the initial delay: joins do not complete the rebalance early
	newMemberAdded bool        // a member joined during the initial delay: extend it

	pendingSync map[string]struct{} // members yet to send SyncGroup this generation
	syncTimer   *time.Timer         // removes them after the rebalance timeout

	// subscribed is the union of the topics the members of a "consumer"
	// group subscribe to; nil when unknown.
	subscribed map[string]struct{}

	offsets map[string]map[int32]offset // committed offsets by topic, partition
}

// member is one member of a group, guarded by its group's mu.
type member struct {
	id         string
	instanceID *string // group.instance.id of a static member (KIP-345)
	clientID   string
	clientHost string

	protocolType     string
	protocols        []kmsg.JoinGroupRequestProtocol // in the member's order of preference
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration

	assignment []byte // from the leader's SyncGroup
	seq        uint64 // join order
	isNew      bool   // has not yet completed a join

	join    *joinWaiter // the member's JoinGroup awaiting the rebalance
	sync    *syncWaiter // the member's SyncGroup awaiting the leader's
	session *time.Timer // removes the member when it stops heartbeating
}

// joinWaiter is a JoinGroup call parked until the rebalance completes. The
// channel holds one response, so answering never blocks even when the
// caller has gone.
type joinWaiter struct {
	req *kmsg.JoinGroupRequest
	ch  chan *kmsg.JoinGroupResponse
}

func newJoinWaiter(req *kmsg.JoinGroupRequest) *joinWaiter {
	return &joinWaiter{req: req, ch: make(chan *kmsg.JoinGroupResponse, 1)}
}

func (w *joinWaiter) answer(resp *kmsg.JoinGroupResponse) {
	select {
	case w.ch <- resp:
	default:
	}
}

// syncWaiter is a SyncGroup call parked until the leader's assignment.
type syncWaiter struct {
	req *kmsg.SyncGroupRequest
	ch  chan *kmsg.SyncGroupResponse
}

func newSyncWaiter(req *kmsg.SyncGroupRequest) *syncWaiter {
	return &syncWaiter{req: req, ch: make(chan *kmsg.SyncGroupResponse, 1)}
}

func (w *syncWaiter) answer(resp *kmsg.SyncGroupResponse) {
	select {
	case w.ch <- resp:
	default:
	}
}

func newGroup(c *Coordinator, id string) *group {
	return &group{
		c:           c,
		id:          id,
		lg:          c.lg.With().Str("group", id).Logger(),
		state:       Empty,
		stateTime:   c.now(),
		members:     make(map[string]*member),
		static:      make(map[string]string),
		supported:   make(map[string]int),
		pending:     make(map[string]*time.Timer),
		pendingSync: make(map[string]struct{}),
		offsets:     make(map[string]map[int32]offset),
	}
}

// gone reports whether the group no longer serves requests: it was
// unloaded by Close, or it is Dead (being deleted, or deleted).
func (g *group) gone() bool { return g.unloaded || g.state == Dead }

func (g *group) transition(to State) {
	if !canTransition(g.state, to) {
		panic("group: invalid state transition from " + g.state.String() + " to " + to.String() + " (broken invariant)")
	}
	g.state = to
	g.stateTime = g.c.now()
}

// after runs fn with mu held after d. fn receives its own timer, so that it
// can tell whether it was replaced in the meantime: a timer stopped too late
// still runs. Nothing is scheduled once the group is unloaded.
func (g *group) after(d time.Duration, fn func(self *time.Timer)) *time.Timer {
	if g.unloaded {
		return nil
	}
	var t *time.Timer
	g.c.wg.Add(1)
	// t is written below while mu is held, and read by the callback only
	// once it holds mu.
	t = time.AfterFunc(d, func() {
		defer g.c.wg.Done()
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.unloaded {
			return
		}
		fn(t)
	})
	return t
}

// stop stops a timer made by after; nil is fine.
func (g *group) stop(t *time.Timer) {
	if t != nil && t.Stop() {
		g.c.wg.Done()
	}
}

// spawn runs fn in a goroutine Close waits for; nothing once unloaded.
func (g *group) spawn(fn func()) {
	if g.unloaded {
		return
	}
	g.c.wg.Add(1)
	go func() {
		defer g.c.wg.Done()
		fn()
	}()
}

// write appends the records that build returns, then calls the function
// build returned (if any) with the append's result. build and done run
// with mu held; the append runs without it. Writes of a group run one at a
// time, so the log holds them in the order build saw the group, and done
// applies them to memory in that order. Call write without mu held.
func (g *group) write(ctx context.Context, build func() ([]Record, func(error))) {
	g.appendMu.Lock()
	defer g.appendMu.Unlock()
	g.mu.Lock()
	recs, done := build()
	g.mu.Unlock()
	var err error
	if len(recs) > 0 {
		err = g.c.log.Append(ctx, recs)
	}
	if done != nil {
		g.mu.Lock()
		done(err)
		g.mu.Unlock()
	}
}

// unload stops the group for Close: timers stop and parked calls answer
// NOT_COORDINATOR, as Kafka answers when a group moves away.
func (g *group) unload() {
	if g.unloaded {
		return
	}
	g.stop(g.joinTimer)
	g.stop(g.syncTimer)
	g.joinTimer, g.syncTimer = nil, nil
	for id, t := range g.pending {
		g.stop(t)
		delete(g.pending, id)
	}
	for _, m := range g.members {
		g.stop(m.session)
		m.session = nil
		if m.join != nil {
			g.failJoin(m, m.id, kerr.NotCoordinator.Code)
		}
		if m.sync != nil {
			g.answerSync(m, kerr.NotCoordinator.Code)
		}
	}
	g.unloaded = true
}

// sortedMembers returns the members in join order.
func (g *group) sortedMembers() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *member) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return ms
}

func (g *group) rebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// protocolNames returns the distinct protocol names of ps.
func protocolNames(ps []kmsg.JoinGroupRequestProtocol) []string {
	names := make([]string, 0, len(ps))
	for _, p := range ps {
		if !slices.Contains(names, p.Name) {
			names = append(names, p.Name)
		}
	}
	return names
}

func (g *group) supportedAdd(m *member, delta int) {
	for _, name := range protocolNames(m.protocols) {
		g.supported[name] += delta
		if g.supported[name] == 0 {
			delete(g.supported, name)
		}
	}
}

// supportsProtocols reports whether a member of protocolType supporting
// protocols may join: the first member needs a type and a protocol, later
// ones the group's type and a protocol every member supports.
func (g *group) supportsProtocols(protocolType string, protocols []kmsg.JoinGroupRequestProtocol) bool {
	if g.state == Empty {
		return protocolType != "" && len(protocols) > 0
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		if g.supported[p.Name] == len(g.members) {
			return true
		}
	}
	return false
}

// matches reports whether m's protocols equal ps, names and metadata in
// the same order.
func (m *member) matches(ps []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(m.protocols, ps, func(a, b kmsg.JoinGroupRequestProtocol) bool {
		return a.Name == b.Name && bytes.Equal(a.Metadata, b.Metadata)
	})
}

// metadata returns m's metadata for the named protocol.
func (m *member) metadata(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// cloneProtocols copies ps so that the member does not keep the request's
// buffer.
func cloneProtocols(ps []kmsg.JoinGroupRequestProtocol) []kmsg.JoinGroupRequestProtocol {
	out := make([]kmsg.JoinGroupRequestProtocol, len(ps))
	for i, p := range ps {
		out[i] = kmsg.JoinGroupRequestProtocol{Name: p.Name, Metadata: bytes.Clone(p.Metadata)}
		if out[i].Metadata == nil {
			out[i].Metadata = []byte{}
		}
	}
	return out
}

// add makes m a member.
func (g *group) add(m *member) {
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	g.seq++
	m.seq = g.seq
	g.members[m.id] = m
	g.supportedAdd(m, 1)
	if m.join != nil {
		g.awaitingJoin++
	}
	if g.leader == "" {
		g.leader = m.id
	}
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
}

// removeMember removes m, answering its parked calls with code. It does
// not start a rebalance; see removeMemberAndUpdate.
func (g *group) removeMember(m *member, code int16) {
	if g.members[m.id] != m {
		return
	}
	delete(g.members, m.id)
	g.supportedAdd(m, -1)
	if m.join != nil {
		g.failJoin(m, "", code)
	}
	if m.sync != nil {
		g.answerSync(m, code)
	}
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	g.stop(m.session)
	m.session = nil
	delete(g.pendingSync, m.id)
	if g.leader == m.id {
		g.leader = ""
		if ms := g.sortedMembers(); len(ms) > 0 {
			g.leader = ms[0].id
		}
	}
}

// removeMemberAndUpdate removes m after it left or failed, and moves the
// group on: a rebalance if it was settled, or a check whether the current
// rebalance can complete without m.
func (g *group) removeMemberAndUpdate(m *member, reason string) {
	g.removeMember(m, kerr.UnknownMemberID.Code)
	switch g.state {
	case Stable, CompletingRebalance:
		g.maybePrepareRebalance(reason)
	case PreparingRebalance:
		g.tryCompleteJoin()
	}
}

// updateMember takes a rejoining member's new protocols and timeouts, and
// parks its JoinGroup w (nil: none). A JoinGroup already parked for m is
// answered REBALANCE_IN_PROGRESS: its caller retried or is gone.
func (g *group) updateMember(m *member, protocols []kmsg.JoinGroupRequestProtocol, session, rebalance time.Duration, w *joinWaiter) {
	g.supportedAdd(m, -1)
	m.protocols = protocols
	g.supportedAdd(m, 1)
	m.sessionTimeout, m.rebalanceTimeout = session, rebalance
	old := m.join
	switch {
	case old == nil && w != nil:
		g.awaitingJoin++
	case old != nil && w == nil:
		g.awaitingJoin--
	}
	m.join = w
	if old != nil && old != w {
		resp := old.req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.MemberID = m.id
		resp.ErrorCode = kerr.RebalanceInProgress.Code
		old.answer(resp)
	}
}

// addPending records a member id handed out with MEMBER_ID_REQUIRED; it is
// forgotten if the member does not join within timeout.
func (g *group) addPending(id string, timeout time.Duration) {
	g.pending[id] = g.after(timeout, func(self *time.Timer) {
		if t, ok := g.pending[id]; !ok || t != self {
			return
		}
		delete(g.pending, id)
		g.lg.Debug().Str("member", id).Msg("pending member expired")
		if g.state == PreparingRebalance {
			g.tryCompleteJoin()
		}
	})
}

func (g *group) removePending(id string) {
	g.stop(g.pending[id])
	delete(g.pending, id)
}

// scheduleSession restarts m's session timer with its session timeout.
func (g *group) scheduleSession(m *member) { g.scheduleSessionIn(m, m.sessionTimeout) }

// scheduleSessionIn restarts m's session timer with d. When it fires, a
// new member is removed; a member with a parked JoinGroup or SyncGroup is
// kept, since the rebalance answers for it and restarts the timer; any
// other member missed its heartbeats and is removed.
func (g *group) scheduleSessionIn(m *member, d time.Duration) {
	g.stop(m.session)
	m.session = g.after(d, func(self *time.Timer) {
		if m.session != self || g.members[m.id] != m {
			return
		}
		m.session = nil
		if !m.isNew && (m.join != nil || m.sync != nil) {
			return
		}
		g.lg.Info().Str("member", m.id).Dur("session_timeout", m.sessionTimeout).Msg("member session expired")
		g.removeMemberAndUpdate(m, "session timeout")
	})
}

// maybePrepareRebalance starts a rebalance unless one is in progress.
func (g *group) maybePrepareRebalance(reason string) {
	switch g.state {
	case Stable, CompletingRebalance, Empty:
		g.prepareRebalance(reason)
	}
}

// prepareRebalance moves the group to PreparingRebalance: parked
// SyncGroups answer REBALANCE_IN_PROGRESS, and the join timer starts. An
// Empty group first waits InitialRebalanceDelay for more members.
func (g *group) prepareRebalance(reason string) {
	if g.state == CompletingRebalance {
		g.resetAndPropagateAssignmentError(kerr.RebalanceInProgress.Code)
	}
	g.clearPendingSync()
	wasEmpty := g.state == Empty
	g.transition(PreparingRebalance)
	g.lg.Info().Int32("generation", g.generation).Str("reason", reason).Msg("preparing rebalance")
	if delay := g.c.cfg.InitialRebalanceDelay; wasEmpty && delay > 0 {
		g.newMemberAdded = false
		g.scheduleInitialJoin(delay, max(g.rebalanceTimeout()-delay, 0))
		return
	}
	g.scheduleJoin(g.rebalanceTimeout())
	g.tryCompleteJoin()
}

// scheduleJoin completes the rebalance after d, whoever has joined by then.
func (g *group) scheduleJoin(d time.Duration) {
	g.stop(g.joinTimer)
	g.joinInitial = false
	g.joinTimer = g.after(d, func(self *time.Timer) {
		if g.joinTimer != self {
			return
		}
		g.joinTimer = nil
		if g.state == PreparingRebalance {
			g.completeJoin()
		}
	})
}

// scheduleInitialJoin completes the first rebalance of an empty group after
// delay, or, if members joined meanwhile, waits again, until remaining is
// spent (Kafka's InitialDelayedJoin).
func (g *group) scheduleInitialJoin(delay, remaining time.Duration) {
	g.stop(g.joinTimer)
	g.joinInitial = true
	g.joinTimer = g.after(delay, func(self *time.Timer) {
		if g.joinTimer != self {
			return
		}
		g.joinTimer = nil
		if g.state != PreparingRebalance {
			return
		}
		if g.newMemberAdded && remaining > 0 {
			g.newMemberAdded = false
			d := min(g.c.cfg.InitialRebalanceDelay, remaining)
			g.scheduleInitialJoin(d, remaining-d)
			return
		}
		g.completeJoin()
	})
}

// tryCompleteJoin completes the rebalance once every member has rejoined
// and no member id handed out is still expected.
func (g *group) tryCompleteJoin() {
	if g.state == PreparingRebalance && !g.joinInitial && g.awaitingJoin == len(g.members) && len(g.pending) == 0 {
		g.completeJoin()
	}
}

// completeJoin ends PreparingRebalance: dynamic members that did not
// rejoin are removed, the next generation starts, and every parked
// JoinGroup is answered, the leader's with the members' metadata.
func (g *group) completeJoin() {
	g.stop(g.joinTimer)
	g.joinTimer = nil
	for _, m := range g.sortedMembers() {
		if m.join == nil && m.instanceID == nil {
			g.lg.Info().Str("member", m.id).Msg("removing member that did not rejoin")
			g.removeMember(m, kerr.UnknownMemberID.Code)
		}
	}
	if !g.electJoinedLeader() && len(g.members) > 0 {
		// Only static members that have not rejoined remain: wait for
		// them, or for their session timeouts to remove them.
		g.lg.Warn().Msg("no member rejoined, extending rebalance")
		g.scheduleJoin(g.rebalanceTimeout())
		return
	}
	g.nextGeneration()
	g.lg.Info().Int32("generation", g.generation).Int("members", len(g.members)).Str("protocol", g.protocol).Msg("rebalance joined")
	if g.state == Empty {
		g.storeEmpty()
		return
	}
	for _, m := range g.sortedMembers() {
		g.answerJoin(m)
		g.scheduleSession(m)
		m.isNew = false
		g.pendingSync[m.id] = struct{}{}
	}
	g.schedulePendingSync()
}

// electJoinedLeader keeps the leader if it rejoined, else makes the first
// member that rejoined the leader. It reports false if no member rejoined.
func (g *group) electJoinedLeader() bool {
	l := g.members[g.leader]
	if l == nil {
		return false
	}
	if l.join != nil {
		return true
	}
	for _, m := range g.sortedMembers() {
		if m.join != nil {
			g.leader = m.id
			return true
		}
	}
	return false
}

// nextGeneration bumps the generation and picks its protocol.
func (g *group) nextGeneration() {
	g.generation++
	if len(g.members) > 0 {
		g.protocol = g.selectProtocol()
		g.subscribed = g.computeSubscribed()
		g.transition(CompletingRebalance)
	} else {
		g.protocol = ""
		g.subscribed = g.computeSubscribed()
		g.transition(Empty)
	}
	g.clearPendingSync()
}

// selectProtocol picks the protocol for the next generation as Kafka does:
// among the protocols every member supports, each member votes for the one
// it prefers most, and the most votes win. A tie goes to the protocol the
// longest-standing member prefers.
func (g *group) selectProtocol() string {
	ms := g.sortedMembers()
	votes := make(map[string]int)
	for _, m := range ms {
		for _, p := range m.protocols {
			if g.supported[p.Name] == len(ms) {
				votes[p.Name]++
				break
			}
		}
	}
	best, bestVotes := "", 0
	for _, m := range ms {
		for _, p := range m.protocols {
			if v := votes[p.Name]; v > bestVotes {
				best, bestVotes = p.Name, v
			}
		}
	}
	if best == "" {
		panic("group: no protocol common to all members (broken invariant)")
	}
	return best
}

// computeSubscribed returns the topics a "consumer" group's members
// subscribe to, read from the version-0 prefix that every version of the
// consumer protocol's subscription shares; nil if unknown.
func (g *group) computeSubscribed() map[string]struct{} {
	if g.protocolType != consumerProtocolType {
		return nil
	}
	topics := make(map[string]struct{})
	for _, m := range g.members {
		ts, ok := subscriptionTopics(m.metadata(g.protocol))
		if !ok {
			g.lg.Warn().Str("member", m.id).Msg("cannot parse consumer subscription")
			return nil
		}
		for _, t := range ts {
			topics[t] = struct{}{}
		}
	}
	return topics
}

// subscriptionTopics reads the topics of a consumer protocol subscription:
// version int16, then topics [int32 count, int16-length strings].
func subscriptionTopics(b []byte) ([]string, bool) {
	r := kbin.Reader{Src: b}
	r.Int16()
	n := r.ArrayLen()
	if !r.Ok() || n < 0 || int(n) > len(r.Src)/2 {
		return nil, false
	}
	topics := make([]string, 0, n)
	for range n {
		topics = append(topics, r.String())
	}
	return topics, r.Ok()
}

func (g *group) clearPendingSync() {
	clear(g.pendingSync)
	g.stop(g.syncTimer)
	g.syncTimer = nil
}

// schedulePendingSync removes the members that have not sent SyncGroup
// within the rebalance timeout, and rebalances without them.
func (g *group) schedulePendingSync() {
	g.stop(g.syncTimer)
	gen := g.generation
	g.syncTimer = g.after(g.rebalanceTimeout(), func(self *time.Timer) {
		if g.syncTimer != self {
			return
		}
		g.syncTimer = nil
		if g.generation != gen || (g.state != CompletingRebalance && g.state != Stable) || len(g.pendingSync) == 0 {
			return
		}
		for _, m := range g.sortedMembers() {
			if _, ok := g.pendingSync[m.id]; ok {
				g.lg.Info().Str("member", m.id).Msg("removing member that did not sync")
				g.removeMember(m, kerr.UnknownMemberID.Code)
			}
		}
		g.prepareRebalance("members did not sync")
	})
}

func (g *group) removePendingSync(id string) {
	delete(g.pendingSync, id)
	if len(g.pendingSync) == 0 {
		g.stop(g.syncTimer)
		g.syncTimer = nil
	}
}

// fillJoin fills a successful JoinGroup response for memberID; the
// leader's carries the members and their metadata.
func (g *group) fillJoin(resp *kmsg.JoinGroupResponse, memberID string, withMembers bool) {
	resp.ErrorCode = 0
	resp.Generation = g.generation
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	if g.protocol != "" {
		resp.Protocol = kmsg.StringPtr(g.protocol)
	}
	resp.LeaderID = g.leader
	resp.MemberID = memberID
	if withMembers {
		resp.Members = g.memberMetadata()
	}
}

func (g *group) memberMetadata() []kmsg.JoinGroupResponseMember {
	ms := g.sortedMembers()
	out := make([]kmsg.JoinGroupResponseMember, 0, len(ms))
	for _, m := range ms {
		out = append(out, kmsg.JoinGroupResponseMember{
			MemberID:         m.id,
			InstanceID:       m.instanceID,
			ProtocolMetadata: m.metadata(g.protocol),
		})
	}
	return out
}

// answerJoin answers m's parked JoinGroup with the current generation.
func (g *group) answerJoin(m *member) {
	w := m.join
	if w == nil {
		return
	}
	resp := w.req.ResponseKind().(*kmsg.JoinGroupResponse)
	g.fillJoin(resp, m.id, g.leader == m.id)
	m.join = nil
	g.awaitingJoin--
	w.answer(resp)
}

// failJoin answers m's parked JoinGroup with code.
func (g *group) failJoin(m *member, memberID string, code int16) {
	w := m.join
	if w == nil {
		return
	}
	resp := w.req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.MemberID = memberID
	resp.ErrorCode = code
	m.join = nil
	g.awaitingJoin--
	w.answer(resp)
}

// answerSync answers m's parked SyncGroup: its assignment if code is 0.
func (g *group) answerSync(m *member, code int16) bool {
	w := m.sync
	if w == nil {
		return false
	}
	resp := w.req.ResponseKind().(*kmsg.SyncGroupResponse)
	resp.ErrorCode = code
	if code == 0 {
		resp.ProtocolType = kmsg.StringPtr(g.protocolType)
		resp.Protocol = kmsg.StringPtr(g.protocol)
		resp.MemberAssignment = m.assignment
	}
	m.sync = nil
	w.answer(resp)
	return true
}

// propagateAssignment answers every parked SyncGroup with code (0: the
// member's assignment) and restarts the session timers of those answered.
func (g *group) propagateAssignment(code int16) {
	for _, m := range g.sortedMembers() {
		if g.answerSync(m, code) {
			g.scheduleSession(m)
		}
	}
}

func (g *group) setAndPropagateAssignment(assign map[string][]byte) {
	for _, m := range g.members {
		m.assignment = assign[m.id]
	}
	g.propagateAssignment(0)
}

func (g *group) resetAndPropagateAssignmentError(code int16) {
	for _, m := range g.members {
		m.assignment = nil
	}
	g.propagateAssignment(code)
}

// metadataRecord returns the group's metadata as a log record, with assign
// as the members' assignments (nil: the current ones).
func (g *group) metadataRecord(assign map[string][]byte) Record {
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupValueVersion
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		v.Protocol = kmsg.StringPtr(g.protocol)
	}
	if g.leader != "" {
		v.Leader = kmsg.StringPtr(g.leader)
	}
	v.CurrentStateTimestamp = g.stateTime.UnixMilli()
	for _, m := range g.sortedMembers() {
		mv := kmsg.NewGroupMetadataValueMember()
		mv.MemberID = m.id
		mv.InstanceID = m.instanceID
		mv.ClientID = m.clientID
		mv.ClientHost = m.clientHost
		mv.RebalanceTimeoutMillis = int32(m.rebalanceTimeout / time.Millisecond)
		mv.SessionTimeoutMillis = int32(m.sessionTimeout / time.Millisecond)
		mv.Subscription = m.metadata(g.protocol)
		mv.Assignment = m.assignment
		if assign != nil {
			mv.Assignment = assign[m.id]
		}
		v.Members = append(v.Members, mv)
	}
	return Record{Key: groupKey(g.id), Value: v.AppendTo(nil)}
}

// restore sets the group from its last stored metadata: Stable with the
// stored members, whose sessions start now, or Empty.
func (g *group) restore(v *kmsg.GroupMetadataValue) {
	g.protocolType = v.ProtocolType
	g.generation = v.Generation
	if v.CurrentStateTimestamp >= 0 {
		g.stateTime = time.UnixMilli(v.CurrentStateTimestamp)
	}
	if v.Protocol == nil || len(v.Members) == 0 {
		if len(v.Members) > 0 {
			g.lg.Warn().Int("members", len(v.Members)).Msg("stored group has members but no protocol, restoring it empty")
		}
		return
	}
	g.protocol = *v.Protocol
	for _, mv := range v.Members {
		m := &member{
			id:               mv.MemberID,
			instanceID:       mv.InstanceID,
			clientID:         mv.ClientID,
			clientHost:       mv.ClientHost,
			protocolType:     v.ProtocolType,
			protocols:        []kmsg.JoinGroupRequestProtocol{{Name: g.protocol, Metadata: bytes.Clone(mv.Subscription)}},
			sessionTimeout:   time.Duration(mv.SessionTimeoutMillis) * time.Millisecond,
			rebalanceTimeout: time.Duration(mv.RebalanceTimeoutMillis) * time.Millisecond,
			assignment:       bytes.Clone(mv.Assignment),
		}
		if mv.RebalanceTimeoutMillis < 0 {
			m.rebalanceTimeout = m.sessionTimeout
		}
		g.add(m)
	}
	if v.Leader != nil && g.members[*v.Leader] != nil {
		g.leader = *v.Leader
	}
	g.state = Stable
	g.subscribed = g.computeSubscribed()
	for _, m := range g.members {
		g.scheduleSession(m)
	}
}

// storeEmpty writes the group's metadata in the background after it became
// Empty; failing is harmless, as the stored generation has no members that
// could come back (Kafka only warns too).
func (g *group) storeEmpty() {
	gen := g.generation
	g.spawn(func() {
		g.write(g.c.ctx, func() ([]Record, func(error)) {
			if g.gone() || g.state != Empty || g.generation != gen {
				return nil, nil
			}
			return []Record{g.metadataRecord(nil)}, func(err error) {
				if err != nil {
					g.lg.Warn().Err(err).Int32("generation", gen).Msg("cannot store empty group")
				}
			}
		})
	})
}
