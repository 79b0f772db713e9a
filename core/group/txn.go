package group

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Transactional offset commits (KIP-98, KIP-447). TxnOffsetCommit keeps a
// producer's offsets aside, by producer id; they become the group's
// committed offsets when the transaction commits (CompleteTxn with
// commit, called once the transaction's marker is in this coordinator's
// __consumer_offsets partition) and are dropped when it aborts. Until
// then, OffsetFetch with RequireStable answers UNSTABLE_OFFSET_COMMIT for
// the group's partitions that have some.
//
// With a TxnLog (the broker's), the pending offsets are in the log as
// transactional records before TxnOffsetCommit answers, and the marker
// decides them there: a coordinator that moves or restarts finds them on
// replay, pending or decided. With another Log they are held in memory
// only, and CompleteTxn writes them as ordinary commits.

var errClosed = errors.New("group: coordinator closed")

// txnOffsets are the pending transactional commits of one coordinator.
type txnOffsets struct {
	mu      sync.Mutex                                       // a leaf
	pending map[int64]map[string]map[string]map[int32]offset // producer id → group → topic → partition
}

// TxnOffsetCommit keeps the request's offsets aside until the producer's
// transaction ends. From v3 the member id and generation are checked as
// for OffsetCommit (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID);
// before v3 the group is not checked. The protocol server has checked
// authorization. Whether the producer's transaction includes the group
// (AddOffsetsToTxn) is not checked: offsets of a producer whose
// transaction never reaches this partition stay pending until the
// coordinator closes.
func (c *Coordinator) TxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	code := int16(0)
	if c.isClosed() {
		code = kerr.CoordinatorNotAvailable.Code
	} else if req.Version >= 3 && (req.Generation >= 0 || req.MemberID != "") {
		g := c.lookup(req.Group)
		if g == nil {
			code = kerr.IllegalGeneration.Code
		} else {
			g.mu.Lock()
			code = g.validateOffsetCommit(req.Generation, req.MemberID, req.InstanceID)
			g.mu.Unlock()
		}
	}
	now := c.now()
	var add map[string]map[int32]offset
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = code
			var md string
			if p.Metadata != nil {
				md = *p.Metadata
			}
			if code == 0 && len(md) > c.cfg.OffsetMetadataMaxBytes {
				rp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
			}
			if rp.ErrorCode == 0 {
				if add == nil {
					add = map[string]map[int32]offset{}
				}
				if add[t.Topic] == nil {
					add[t.Topic] = map[int32]offset{}
				}
				o := offset{offset: p.Offset, leaderEpoch: -1, metadata: md, committed: now}
				if req.Version >= 2 {
					o.leaderEpoch = p.LeaderEpoch
				}
				add[t.Topic][p.Partition] = o
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if add == nil {
		return resp
	}
	if tl, ok := c.log.(TxnLog); ok {
		var recs []Record
		for t, ps := range add {
			for p, o := range ps {
				recs = append(recs, Record{Key: offsetKey(req.Group, t, p), Value: offsetValue(o)})
			}
		}
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(c.ctx, cancel)()
		if err := tl.AppendTxn(wctx, req.ProducerID, req.ProducerEpoch, recs); err != nil {
			c.lg.Warn().Err(err).Str("group", req.Group).Msg("cannot store transactional offset commit")
			code := commitErrorCode(err)
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					if rp := &resp.Topics[i].Partitions[j]; rp.ErrorCode == 0 {
						rp.ErrorCode = code
					}
				}
			}
			return resp
		}
	}
	for t, ps := range add {
		c.txo.add(req.ProducerID, req.Group, t, ps)
	}
	return resp
}

// add keeps offsets of group's topic aside for producer id.
func (x *txnOffsets) add(producerID int64, group, topic string, ps map[int32]offset) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.pending == nil {
		x.pending = map[int64]map[string]map[string]map[int32]offset{}
	}
	byGroup := x.pending[producerID]
	if byGroup == nil {
		byGroup = map[string]map[string]map[int32]offset{}
		x.pending[producerID] = byGroup
	}
	topics := byGroup[group]
	if topics == nil {
		topics = map[string]map[int32]offset{}
		byGroup[group] = topics
	}
	if topics[topic] == nil {
		topics[topic] = map[int32]offset{}
	}
	maps.Copy(topics[topic], ps)
}

// CompleteTxn ends producer id's transactional commits: with commit they
// become the groups' committed offsets, otherwise they are dropped. With a
// TxnLog the caller has written the transaction's marker to it first, and
// the offsets are applied in memory. With another Log they are written as
// ordinary commits, and CompleteTxn returns once they are durable, or
// returns the log's error with the commits kept so that a retry stores
// them. A producer with nothing pending is done at once.
func (c *Coordinator) CompleteTxn(ctx context.Context, producerID int64, commit bool) error {
	if _, ok := c.log.(TxnLog); ok {
		c.txo.mu.Lock()
		byGroup := c.txo.pending[producerID]
		delete(c.txo.pending, producerID)
		c.txo.mu.Unlock()
		if !commit {
			return nil
		}
		for id, topics := range byGroup {
			g, _ := c.getOrCreate(id)
			if g == nil {
				return errClosed
			}
			g.mu.Lock()
			for t, ps := range topics {
				if g.offsets[t] == nil {
					g.offsets[t] = make(map[int32]offset)
				}
				maps.Copy(g.offsets[t], ps)
			}
			g.mu.Unlock()
		}
		return nil
	}
	c.txo.mu.Lock()
	byGroup := c.txo.pending[producerID]
	c.txo.mu.Unlock()
	if !commit || len(byGroup) == 0 {
		c.txo.mu.Lock()
		delete(c.txo.pending, producerID)
		c.txo.mu.Unlock()
		return nil
	}
	for _, id := range slices.Sorted(maps.Keys(byGroup)) {
		topics := byGroup[id]
		g, _ := c.getOrCreate(id)
		if g == nil {
			return errClosed
		}
		var werr error
		wctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(c.ctx, cancel)
		g.write(wctx, func() ([]Record, func(error)) {
			if g.gone() {
				werr = errClosed
				return nil, nil
			}
			var recs []Record
			for t, ps := range topics {
				for p, o := range ps {
					recs = append(recs, Record{Key: offsetKey(g.id, t, p), Value: offsetValue(o)})
				}
			}
			return recs, func(err error) {
				if err != nil {
					werr = err
					return
				}
				for t, ps := range topics {
					if g.offsets[t] == nil {
						g.offsets[t] = make(map[int32]offset)
					}
					maps.Copy(g.offsets[t], ps)
				}
			}
		})
		stop()
		cancel()
		if werr != nil {
			return werr
		}
		c.txo.mu.Lock()
		delete(c.txo.pending[producerID], id)
		c.txo.mu.Unlock()
	}
	c.txo.mu.Lock()
	delete(c.txo.pending, producerID)
	c.txo.mu.Unlock()
	return nil
}

// unstable reports whether a transaction has offsets pending for the
// group's topic partition (topic "" means any).
func (c *Coordinator) unstable(group, topic string, partition int32) bool {
	c.txo.mu.Lock()
	defer c.txo.mu.Unlock()
	for _, byGroup := range c.txo.pending {
		for t, ps := range byGroup[group] {
			if topic == "" || t == topic {
				if _, ok := ps[partition]; ok || topic == "" {
					return true
				}
			}
		}
	}
	return false
}
