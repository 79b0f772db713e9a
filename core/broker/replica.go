package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/core/commitlog"
)

// setAssignment applies the metadata's view of the partition. It returns
// true when this replica must (re)start following: it is a follower and
// the leader or the leader epoch changed, so it has to truncate to the
// leader's history before fetching again.
func (p *Partition) setAssignment(ps cluster.PartitionState, minISR int) (follow bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	me := p.b.NodeID()
	changed := ps.Leader != p.leader || ps.LeaderEpoch != p.leaderEpoch || p.replicas == nil
	wasLeader := p.leader == me
	p.replicas, p.isr = slices.Clone(ps.Replicas), slices.Clone(ps.ISR)
	p.partitionEpoch, p.minISR = ps.PartitionEpoch, minISR
	p.leader, p.leaderEpoch = ps.Leader, ps.LeaderEpoch
	if ps.Leader != me {
		p.followers = nil
		if wasLeader {
			p.b.log.Info().Str("topic", p.Topic).Int32("partition", p.Index).Int32("leader", ps.Leader).Int32("epoch", ps.LeaderEpoch).Msg("no longer leader")
		}
		return changed && ps.Leader != cluster.NoLeader
	}
	if changed || !wasLeader {
		// A new term: every follower starts unknown and, as Kafka does,
		// counts as caught up now, so none is dropped from the ISR before
		// it had a chance to fetch.
		now := time.Now()
		p.followers = map[int32]*followerState{}
		p.localEnd = p.log.LogEndOffset()
		p.epochStart = p.localEnd
		for _, id := range ps.Replicas {
			if id != me {
				p.followers[id] = &followerState{leo: -1, caughtUp: now, lastFetch: now}
			}
		}
		p.b.log.Info().Str("topic", p.Topic).Int32("partition", p.Index).Int32("epoch", ps.LeaderEpoch).Ints32("isr", ps.ISR).Int64("log_end", p.localEnd).Msg("leading")
	} else {
		for _, id := range ps.Replicas {
			if _, ok := p.followers[id]; !ok && id != me {
				p.followers[id] = &followerState{leo: -1, caughtUp: time.Now(), lastFetch: time.Now()}
			}
		}
	}
	p.advanceHighWatermarkLocked()
	return false
}

// ReplicaFetch records that follower replica fetches from offset at its
// view of the leader epoch (-1: not given), which tells the leader the
// follower has every record below offset. It returns a Kafka error code
// when this replica cannot serve it.
func (p *Partition) ReplicaFetch(replica int32, offset int64, epoch int32) int16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.leader != p.b.NodeID():
		return kerr.NotLeaderForPartition.Code
	case epoch >= 0 && epoch < p.leaderEpoch:
		return kerr.FencedLeaderEpoch.Code
	case epoch > p.leaderEpoch:
		return kerr.UnknownLeaderEpoch.Code
	}
	f := p.followers[replica]
	if f == nil {
		return kerr.ReplicaNotAvailable.Code
	}
	now := time.Now()
	switch {
	case offset >= p.localEnd:
		f.caughtUp = now
	case offset >= f.lastFetchTo && f.lastFetch.After(f.caughtUp):
		// It has everything the leader had at its previous fetch.
		f.caughtUp = f.lastFetch
	}
	f.leo = min(offset, p.log.LogEndOffset())
	f.lastFetch, f.lastFetchTo = now, p.localEnd
	p.advanceHighWatermarkLocked()
	if !slices.Contains(p.isr, replica) && f.leo >= p.log.HighWatermark() && f.leo >= p.epochStart && !p.isrPending {
		isr := append(slices.Clone(p.isr), replica)
		slices.Sort(isr)
		p.proposeISRLocked(isr, "caught up")
	}
	return 0
}

// checkLag drops followers that have not caught up for longer than the
// lag limit from the ISR (Kafka's replica.lag.time.max.ms).
func (p *Partition) checkLag(now time.Time, limit time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leader != p.b.NodeID() || p.isrPending {
		return
	}
	isr := p.isr[:0:0]
	var dropped []int32
	for _, id := range p.isr {
		if f := p.followers[id]; id != p.b.NodeID() && f != nil && now.Sub(f.caughtUp) > limit {
			dropped = append(dropped, id)
			continue
		}
		isr = append(isr, id)
	}
	if len(dropped) > 0 {
		p.proposeISRLocked(isr, fmt.Sprintf("%v lagging more than %v", dropped, limit))
	}
}

// proposeISRLocked asks the controller to change the ISR. One proposal is
// in flight at a time; the outcome comes back as a metadata change. Until
// then the high watermark keeps counting the current ISR, so a shrink
// never lets acks=all succeed on fewer replicas than the controller knows.
func (p *Partition) proposeISRLocked(isr []int32, why string) {
	p.isrPending = true
	shrink := len(isr) < len(p.isr)
	cmd := cluster.AlterPartition{Topic: p.Topic, Partition: p.Index, Broker: p.b.NodeID(), LeaderEpoch: p.leaderEpoch, PartitionEpoch: p.partitionEpoch, ISR: isr}
	p.b.log.Info().Str("topic", p.Topic).Int32("partition", p.Index).Ints32("from", p.isr).Ints32("to", isr).Str("why", why).Msg("proposing isr change")
	p.b.goAsync(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := p.b.meta.Apply(ctx, cmd)
		if err != nil {
			p.b.log.Warn().Err(err).Str("topic", p.Topic).Int32("partition", p.Index).Msg("isr change refused")
		} else if shrink {
			p.b.isrShrinks.Add(1)
		} else {
			p.b.isrExpands.Add(1)
		}
		// Let the metadata change land here before the next proposal.
		p.b.waitState(ctx, func(st *cluster.State) bool {
			ps, ok := st.Partition(cmd.Topic, cmd.Partition)
			return !ok || ps.PartitionEpoch != cmd.PartitionEpoch || ps.LeaderEpoch != cmd.LeaderEpoch
		})
		p.mu.Lock()
		p.isrPending = false
		p.mu.Unlock()
	})
}

// appendReplica appends batches fetched from the leader; data must start
// at this replica's log end. leaderHW is the leader's high watermark.
func (p *Partition) appendReplica(data []byte, leaderHW int64, epoch int32) error {
	var batches []commitlog.Batch
	pos := 0
	for pos < len(data) {
		// Stored batches: a compacted leader's may hold fewer records
		// than their offset span.
		b, err := commitlog.ValidateStoredBatch(data[pos:])
		if err != nil {
			if _, herr := commitlog.ParseHeader(data[pos:]); herr != nil || pos+61 > len(data) {
				break // a partial batch at the end of the response
			}
			return err
		}
		batches = append(batches, b)
		pos += b.Size
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leader == p.b.NodeID() || p.leaderEpoch != epoch {
		return errStaleFetch
	}
	if len(batches) > 0 {
		// A batch past the log end is a gap the leader's cleaner left.
		if want := p.log.LogEndOffset(); batches[0].BaseOffset < want {
			return fmt.Errorf("%w: leader sent offset %d, log end is %d", errDiverged, batches[0].BaseOffset, want)
		}
		if _, err := p.log.AppendReplicated(data[:pos], batches); err != nil {
			return err
		}
		for pos, i := 0, 0; i < len(batches); i++ {
			p.note(batches[i], data[pos:pos+batches[i].Size])
			pos += batches[i].Size
		}
		p.localEnd = p.log.LogEndOffset()
	}
	p.log.SetHighWatermark(min(leaderHW, p.log.LogEndOffset()))
	return nil
}

var (
	errStaleFetch = errors.New("broker: fetched for an old leader epoch")
	errDiverged   = errors.New("broker: replica log diverged from the leader's")
)

// divergence is where this follower's history stops agreeing with the
// leader's, from the leader's OffsetForLeaderEpoch answer for the last
// epoch this replica wrote: leaderEpoch is the largest epoch the leader
// knows at or below it and endOffset where that epoch ends on the leader
// (KIP-279). Both -1 (the leader knows no such epoch) falls back to the
// high watermark; an out-of-range fetch cuts further if need be.
func (p *Partition) divergence(leaderEpoch int32, endOffset int64) int64 {
	if leaderEpoch < 0 || endOffset < 0 {
		return p.log.HighWatermark()
	}
	_, mine := p.log.EndOffsetForEpoch(leaderEpoch)
	if mine < 0 {
		mine = p.log.LogStartOffset()
	}
	return min(p.log.LogEndOffset(), endOffset, mine)
}

// truncateTo cuts the follower's log at offset (KIP-101/279: to where its
// history and the leader's agree).
func (p *Partition) truncateTo(offset int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if offset >= p.log.LogEndOffset() {
		return nil
	}
	end := p.log.LogEndOffset()
	if _, err := p.log.TruncateTo(max(offset, p.log.LogStartOffset())); err != nil {
		return err
	}
	p.localEnd = p.log.LogEndOffset()
	p.producers = map[int64]*producerState{}
	p.txns = txnState{}
	if err := p.rebuildProducers(); err != nil {
		return err
	}
	p.b.log.Info().Str("topic", p.Topic).Int32("partition", p.Index).Int64("from", end).Int64("to", p.localEnd).Msg("truncated to the leader's history")
	return nil
}

// Appended returns a channel closed at the next append (leader side), for
// replica fetches that wait for data.
func (p *Partition) Appended() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.appended == nil {
		p.appended = make(chan struct{})
	}
	return p.appended
}
