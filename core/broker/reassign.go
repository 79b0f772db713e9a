package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/fluxo-io/fluxo/core/cluster"
)

// ErrInvalidAssignment marks a replica list the cluster cannot take:
// empty, with duplicates, or naming an unknown broker.
var ErrInvalidAssignment = errors.New("broker: invalid replica assignment")

// reassignTimeout bounds how long a reassignment waits for its new
// replicas to catch up before it gives up (the partition then keeps the
// old and the new replicas).
const reassignTimeout = 30 * time.Minute

// Reassign moves a partition to the replicas target (the first is the
// preferred leader) without stopping writes, as Kafka does: the new
// replicas are added first and copy the log; once every one of them is
// in the ISR, the replicas not in target are dropped (and delete their
// copy), leadership moving if the leader was one of them. Reassign
// returns once the first step is applied; the rest runs in the
// background on this broker. Reassigning to the current replicas does
// nothing.
func (b *Broker) Reassign(ctx context.Context, topic string, partition int32, target []int32) error {
	st := b.State()
	ps, ok := st.Partition(topic, partition)
	if !ok {
		return ErrUnknownTopic
	}
	if len(target) == 0 {
		return fmt.Errorf("%w: no replicas", ErrInvalidAssignment)
	}
	for i, id := range target {
		if _, ok := st.Brokers[id]; !ok {
			return fmt.Errorf("%w: no broker %d", ErrInvalidAssignment, id)
		}
		if slices.Contains(target[:i], id) {
			return fmt.Errorf("%w: broker %d twice", ErrInvalidAssignment, id)
		}
	}
	if slices.Equal(ps.Replicas, target) {
		return nil
	}
	all := slices.Clone(target)
	for _, id := range ps.Replicas {
		if !slices.Contains(all, id) {
			all = append(all, id)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	if !slices.Equal(all, ps.Replicas) {
		if _, err := b.meta.Apply(ctx, cluster.ReassignPartition{Topic: topic, Partition: partition, Replicas: all}); err != nil {
			return metaError(err)
		}
	}
	key := topic + "/" + strconv.Itoa(int(partition))
	b.rmu.Lock()
	b.reassigning[key] = slices.Clone(target)
	b.rmu.Unlock()
	b.log.Info().Str("topic", topic).Int32("partition", partition).Ints32("from", ps.Replicas).Ints32("to", target).Msg("reassigning: new replicas catching up")
	b.goAsync(func(ctx context.Context) {
		defer func() {
			b.rmu.Lock()
			delete(b.reassigning, key)
			b.rmu.Unlock()
		}()
		b.finishReassign(ctx, topic, partition, target)
	})
	return nil
}

// finishReassign waits for every target replica to be in the ISR, then
// drops the others.
func (b *Broker) finishReassign(ctx context.Context, topic string, partition int32, target []int32) {
	ctx, cancel := context.WithTimeout(ctx, reassignTimeout)
	defer cancel()
	caughtUp := func(st *cluster.State) bool {
		ps, ok := st.Partition(topic, partition)
		if !ok {
			return true // deleted meanwhile
		}
		for _, id := range target {
			if !ps.InISR(id) {
				return false
			}
		}
		return true
	}
	for ctx.Err() == nil {
		if err := b.waitState(ctx, caughtUp); err != nil {
			break
		}
		if _, ok := b.State().Partition(topic, partition); !ok {
			return
		}
		actx, acancel := context.WithTimeout(ctx, applyTimeout)
		_, err := b.meta.Apply(actx, cluster.ReassignPartition{Topic: topic, Partition: partition, Replicas: target})
		acancel()
		if err == nil {
			b.log.Info().Str("topic", topic).Int32("partition", partition).Ints32("replicas", target).Msg("reassigned")
			return
		}
		// The ISR may have shrunk again in between: wait and retry.
		b.log.Warn().Err(err).Str("topic", topic).Int32("partition", partition).Msg("reassignment step refused, retrying")
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
	b.log.Error().Str("topic", topic).Int32("partition", partition).Ints32("to", target).Msg("reassignment did not finish: the partition keeps its old and new replicas")
}

// Reassigning returns the reassignments this broker is driving: topic/
// partition to target replicas.
func (b *Broker) Reassigning() map[string][]int32 {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	out := make(map[string][]int32, len(b.reassigning))
	for k, v := range b.reassigning {
		out[k] = slices.Clone(v)
	}
	return out
}
