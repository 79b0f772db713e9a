package group

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit stores committed offsets once they are durable in the Log.
//
// A member of the group commits with its member id and generation: an
// unknown member gets UNKNOWN_MEMBER_ID, another generation
// ILLEGAL_GENERATION, and a group in CompletingRebalance
// REBALANCE_IN_PROGRESS; during PreparingRebalance commits are still taken,
// as in Kafka. A commit with generation -1 and no member id (a standalone
// consumer, or an admin) is taken only while the group has no members, and
// creates the group if needed. The empty group id is valid here, as in
// Kafka. Each partition has its own code: OFFSET_METADATA_TOO_LARGE for
// metadata over OffsetMetadataMaxBytes, or the log's error.
//
// The coordinator stores offsets by topic name and does not check that
// topics or partitions exist: the protocol server answers
// UNKNOWN_TOPIC_OR_PARTITION before calling, as Kafka's API layer does,
// and for v10+ it fills each topic's name from its TopicID (a topic with an
// id and no name gets UNKNOWN_TOPIC_ID).
func (c *Coordinator) OffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	setAll := func(code int16) *kmsg.OffsetCommitResponse {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
		return resp
	}

	if c.isClosed() {
		return setAll(kerr.CoordinatorNotAvailable.Code)
	}
	g := c.lookup(req.Group)
	if g == nil {
		switch {
		case req.Generation < 0:
			if g, _ = c.getOrCreate(req.Group); g == nil {
				return setAll(kerr.CoordinatorNotAvailable.Code)
			}
		case req.Version >= 9:
			return setAll(kerr.GroupIDNotFound.Code)
		default:
			return setAll(kerr.IllegalGeneration.Code)
		}
	}
	var instanceID *string
	if req.Version >= 7 {
		instanceID = req.InstanceID
	}

	type commit struct {
		ti, pi    int
		topic     string
		partition int32
		o         offset
	}
	now := c.now()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	g.write(wctx, func() ([]Record, func(error)) {
		if g.gone() {
			setAll(kerr.CoordinatorNotAvailable.Code)
			return nil, nil
		}
		if code := g.validateOffsetCommit(req.Generation, req.MemberID, instanceID); code != 0 {
			setAll(code)
			return nil, nil
		}
		if m := g.members[req.MemberID]; m != nil && (g.state == Stable || g.state == PreparingRebalance) {
			g.scheduleSession(m)
		}
		var (
			recs    []Record
			commits []commit
		)
		for ti, t := range req.Topics {
			for pi, p := range t.Partitions {
				rp := &resp.Topics[ti].Partitions[pi]
				if t.Topic == "" && t.TopicID != [16]byte{} {
					rp.ErrorCode = kerr.UnknownTopicID.Code
					continue
				}
				var md string
				if p.Metadata != nil {
					md = *p.Metadata
				}
				if len(md) > c.cfg.OffsetMetadataMaxBytes {
					rp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
					continue
				}
				o := offset{offset: p.Offset, leaderEpoch: -1, metadata: md, committed: now}
				if req.Version >= 6 {
					o.leaderEpoch = p.LeaderEpoch
				}
				if req.Version == 1 && p.Timestamp != -1 {
					o.committed = time.UnixMilli(p.Timestamp)
				}
				if req.Version >= 2 && req.Version <= 4 && req.RetentionTimeMillis != -1 {
					o.expires = now.Add(time.Duration(req.RetentionTimeMillis) * time.Millisecond)
				}
				recs = append(recs, Record{Key: offsetKey(g.id, t.Topic, p.Partition), Value: offsetValue(o)})
				commits = append(commits, commit{ti, pi, t.Topic, p.Partition, o})
			}
		}
		return recs, func(err error) {
			if err != nil {
				g.lg.Warn().Err(err).Int("partitions", len(commits)).Msg("cannot store offset commit")
				code := commitErrorCode(err)
				for _, cm := range commits {
					resp.Topics[cm.ti].Partitions[cm.pi].ErrorCode = code
				}
				return
			}
			for _, cm := range commits {
				ps := g.offsets[cm.topic]
				if ps == nil {
					ps = make(map[int32]offset)
					g.offsets[cm.topic] = ps
				}
				ps[cm.partition] = cm.o
			}
		}
	})
	return resp
}

// validateOffsetCommit checks who may commit to the group now (Kafka's
// ClassicGroup.validateOffsetCommit).
func (g *group) validateOffsetCommit(generation int32, memberID string, instanceID *string) int16 {
	if generation < 0 && g.state == Empty {
		return 0
	}
	if generation >= 0 || memberID != "" || instanceID != nil {
		if code := g.validateMember(memberID, instanceID); code != 0 {
			return code
		}
		if generation != g.generation {
			return kerr.IllegalGeneration.Code
		}
	} else if g.state != Empty {
		return kerr.UnknownMemberID.Code
	}
	if g.state == CompletingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

// OffsetFetch returns committed offsets: before v8 for the request's one
// group, from v8 for each group of Groups. Topics nil means every topic
// the group committed to. A partition without a commit, or a group the
// coordinator does not know, reads offset -1 with no error, as in Kafka.
// With RequireStable (v7+), a partition with a transactional commit
// pending answers UNSTABLE_OFFSET_COMMIT, and the client retries. For v10
// the protocol server maps TopicID to Topic and back, as for OffsetCommit.
func (c *Coordinator) OffsetFetch(_ context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			resp.Groups = append(resp.Groups, c.fetchGroup(rg.Group, rg.Topics, req.RequireStable))
		}
		return resp
	}
	var topics []kmsg.OffsetFetchRequestGroupTopic
	if req.Topics != nil {
		topics = make([]kmsg.OffsetFetchRequestGroupTopic, 0, len(req.Topics))
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetFetchRequestGroupTopic()
			rt.Topic = t.Topic
			rt.Partitions = t.Partitions
			topics = append(topics, rt)
		}
	}
	rg := c.fetchGroup(req.Group, topics, req.Version >= 7 && req.RequireStable)
	resp.ErrorCode = rg.ErrorCode
	if rg.ErrorCode != 0 && req.Version < 2 {
		// v0 and v1 have no group error code: it goes on each partition.
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition = p
				rp.Offset = -1
				rp.Metadata = kmsg.StringPtr("")
				rp.ErrorCode = rg.ErrorCode
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	for _, t := range rg.Topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition = p.Partition
			rp.Offset = p.Offset
			rp.LeaderEpoch = p.LeaderEpoch
			rp.Metadata = p.Metadata
			rp.ErrorCode = p.ErrorCode
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// fetchGroup answers OffsetFetch for one group; topics nil means all.
// With stable, partitions with a transactional commit pending answer
// UNSTABLE_OFFSET_COMMIT.
func (c *Coordinator) fetchGroup(id string, topics []kmsg.OffsetFetchRequestGroupTopic, stable bool) kmsg.OffsetFetchResponseGroup {
	rg := kmsg.NewOffsetFetchResponseGroup()
	rg.Group = id
	if c.isClosed() {
		rg.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return rg
	}
	partition := func(p int32, o offset, ok bool) kmsg.OffsetFetchResponseGroupTopicPartition {
		rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
		rp.Partition = p
		rp.Offset = -1
		rp.Metadata = kmsg.StringPtr("")
		if ok {
			rp.Offset = o.offset
			rp.LeaderEpoch = o.leaderEpoch
			rp.Metadata = kmsg.StringPtr(o.metadata)
		}
		return rp
	}

	var offsets map[string]map[int32]offset
	if g := c.lookup(id); g != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
		if !g.gone() {
			offsets = g.offsets
		}
	}
	if topics == nil {
		for _, t := range slices.Sorted(maps.Keys(offsets)) {
			rt := kmsg.NewOffsetFetchResponseGroupTopic()
			rt.Topic = t
			for _, p := range slices.Sorted(maps.Keys(offsets[t])) {
				rp := partition(p, offsets[t][p], true)
				if stable && c.unstable(id, t, p) {
					rp = partition(p, offset{}, false)
					rp.ErrorCode = kerr.UnstableOffsetCommit.Code
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			rg.Topics = append(rg.Topics, rt)
		}
		return rg
	}
	for _, t := range topics {
		rt := kmsg.NewOffsetFetchResponseGroupTopic()
		rt.Topic = t.Topic
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			if t.Topic == "" && t.TopicID != [16]byte{} {
				rp := partition(p, offset{}, false)
				rp.ErrorCode = kerr.UnknownTopicID.Code
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			o, ok := offsets[t.Topic][p]
			rp := partition(p, o, ok)
			if stable && c.unstable(id, t.Topic, p) {
				rp = partition(p, offset{}, false)
				rp.ErrorCode = kerr.UnstableOffsetCommit.Code
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		rg.Topics = append(rg.Topics, rt)
	}
	return rg
}

// OffsetDelete deletes committed offsets of a group. An Empty group loses
// any of them; a group with members only those of topics its consumers do
// not subscribe to (the others get GROUP_SUBSCRIBED_TO_TOPIC), and a group
// of another protocol type none (NON_EMPTY_GROUP). A group left Empty with
// no offsets is deleted, as in Kafka.
func (c *Coordinator) OffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	if c.isClosed() {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	g := c.lookup(req.Group)
	if g == nil {
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	g.write(wctx, func() ([]Record, func(error)) {
		switch {
		case g.unloaded:
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return nil, nil
		case g.state == Dead:
			resp.ErrorCode = kerr.GroupIDNotFound.Code
			return nil, nil
		case g.state != Empty && g.protocolType != consumerProtocolType:
			resp.ErrorCode = kerr.NonEmptyGroup.Code
			return nil, nil
		}
		remove := make(map[string][]int32)
		var deleted []*kmsg.OffsetDeleteResponseTopicPartition
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetDeleteResponseTopic()
			rt.Topic = t.Topic
			_, subscribed := g.subscribed[t.Topic]
			subscribed = subscribed && g.state != Empty
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetDeleteResponseTopicPartition()
				rp.Partition = p.Partition
				if subscribed {
					rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
				} else {
					remove[t.Topic] = append(remove[t.Topic], p.Partition)
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if resp.Topics[i].Partitions[j].ErrorCode == 0 {
					deleted = append(deleted, &resp.Topics[i].Partitions[j])
				}
			}
		}
		recs, dead := g.planRemoval(remove)
		return recs, func(err error) {
			if err != nil {
				code := commitErrorCode(err)
				for _, rp := range deleted {
					rp.ErrorCode = code
				}
			}
			g.finishRemoval(remove, dead, err)
		}
	})
	return resp
}

// planRemoval returns the tombstones that remove the committed offsets in
// tps, and whether the group goes with them: if that leaves it Empty with
// no offsets and no member id pending, it is marked Dead and its metadata
// tombstone added. finishRemoval applies the plan once written.
func (g *group) planRemoval(tps map[string][]int32) (recs []Record, dead bool) {
	n := 0
	for t, ps := range tps {
		for _, p := range ps {
			if _, ok := g.offsets[t][p]; ok {
				recs = append(recs, Record{Key: offsetKey(g.id, t, p)})
				n++
			}
		}
	}
	total := 0
	for _, ps := range g.offsets {
		total += len(ps)
	}
	if g.state == Empty && total == n && len(g.pending) == 0 {
		g.transition(Dead)
		recs = append(recs, Record{Key: groupKey(g.id)})
		dead = true
	}
	return recs, dead
}

// finishRemoval applies a removal planned by planRemoval after its records
// were written, or undoes the plan if err is not nil.
func (g *group) finishRemoval(tps map[string][]int32, dead bool, err error) {
	if err != nil {
		g.lg.Warn().Err(err).Msg("cannot store offset removal")
		if dead && g.state == Dead {
			g.state = Empty // undo planRemoval's transition
		}
		return
	}
	for t, ps := range tps {
		for _, p := range ps {
			delete(g.offsets[t], p)
		}
		if len(g.offsets[t]) == 0 {
			delete(g.offsets, t)
		}
	}
	if dead {
		g.lg.Info().Int32("generation", g.generation).Msg("group removed")
		g.drop()
	}
}

// drop removes a Dead group from the coordinator.
func (g *group) drop() {
	for id := range g.pending {
		g.removePending(id)
	}
	g.stop(g.joinTimer)
	g.stop(g.syncTimer)
	g.joinTimer, g.syncTimer = nil, nil
	g.c.drop(g)
}

// cleanup removes the offsets pick returns, and the group if that leaves
// nothing to keep (Kafka's cleanupGroupMetadata). Call without mu held.
func (g *group) cleanup(ctx context.Context, pick func() map[string][]int32) {
	g.write(ctx, func() ([]Record, func(error)) {
		if g.gone() {
			return nil, nil
		}
		tps := pick()
		recs, dead := g.planRemoval(tps)
		if len(recs) == 0 {
			return nil, nil
		}
		return recs, func(err error) { g.finishRemoval(tps, dead, err) }
	})
}

// expiredOffsets returns the offsets whose retention has passed, as Kafka
// decides: for an Empty group with a protocol, all of them once the group
// has been Empty for OffsetsRetention; for a Stable consumer group whose
// subscriptions are known, those of unsubscribed topics committed longer
// ago than that; for a group used only for offsets, those committed
// longer ago than that. An offset committed with an explicit retention
// expires at its own time in each case. Other groups keep their offsets.
func (g *group) expiredOffsets(now time.Time) map[string][]int32 {
	retention := g.c.cfg.OffsetsRetention
	var base func(o offset) time.Time
	var skip map[string]struct{}
	switch {
	case g.protocolType != "" && g.state == Empty:
		base = func(offset) time.Time { return g.stateTime }
	case g.protocolType == consumerProtocolType && g.subscribed != nil && g.state == Stable:
		base = func(o offset) time.Time { return o.committed }
		skip = g.subscribed
	case g.protocolType == "":
		base = func(o offset) time.Time { return o.committed }
	default:
		return nil
	}
	out := make(map[string][]int32)
	for t, ps := range g.offsets {
		if _, ok := skip[t]; ok {
			continue
		}
		for p, o := range ps {
			var expired bool
			if !o.expires.IsZero() {
				expired = !now.Before(o.expires)
			} else {
				expired = now.Sub(base(o)) >= retention
			}
			if expired {
				out[t] = append(out[t], p)
			}
		}
	}
	return out
}
