package broker

import (
	"context"
	"time"
)

// Quorum tells a broker whether its node is in contact with the cluster's
// controller, and tells the controller when the broker steps down:
// cluster.Cluster implements it.
type Quorum interface {
	// LastContact is how long ago the node last heard from the Raft
	// leader (about 0 while it leads). Called often: it must be cheap.
	LastContact() time.Duration
	// CatchUp waits until the node's metadata has everything the
	// controller had applied when asked.
	CatchUp(ctx context.Context) error
	// ReportCutOff tells the controller, by a way that does not need
	// contact with it (gossip), that this broker stepped down (true) or
	// resumed (false), so that it fences a broker cut off from it that
	// the failure detector still sees alive. It must not block.
	ReportCutOff(cut bool)
}

// DefaultLeaderLease is Config.LeaderLease's default: 2 s, two Raft
// heartbeats of cluster.DefaultTimers. A healthy follower hears from the
// leader every tenth of a heartbeat, and when the leader dies a follower
// starts an election after one to two heartbeats, so the others rarely
// go 2 s without a leader; the majority needs 2.5 to 3.5 s to notice a
// cut-off broker and move its partitions (cluster's package doc has the
// arithmetic), so a cut-off leader has stepped down by then (a cut-off
// controller about when it is fenced: Raft first steps it down after 0.5
// to 1 s, and its lease counts from there).
const DefaultLeaderLease = 2 * time.Second

// leaseStep is what the lease rule asks of a broker that has (lost true)
// or has not stepped down, given how long ago it last heard from the
// controller.
type leaseStep int

const (
	leaseKeep     leaseStep = iota // nothing changes
	leaseStepDown                  // stop acting as leader
	leaseResume                    // contact is back: catch up, then resume
)

// leaseRule is the step-down rule: a broker out of contact for longer
// than lease steps down; one that stepped down resumes once it hears from
// the controller within the lease again. A lease of 0 or less never steps
// down.
func leaseRule(lost bool, lastContact, lease time.Duration) leaseStep {
	switch {
	case lease <= 0:
		if lost {
			return leaseResume
		}
		return leaseKeep
	case !lost && lastContact > lease:
		return leaseStepDown
	case lost && lastContact <= lease:
		return leaseResume
	}
	return leaseKeep
}

// watchQuorum applies the lease rule every tenth of the lease.
func (b *Broker) watchQuorum() {
	defer b.wg.Done()
	t := time.NewTicker(max(b.cfg.LeaderLease/10, 5*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		last := b.cfg.Quorum.LastContact()
		switch leaseRule(b.quorumLost.Load(), last, b.cfg.LeaderLease) {
		case leaseStepDown:
			b.stepDown(last)
		case leaseResume:
			b.resume(last)
		}
	}
}

// stepDown stops this broker acting as leader: Append refuses, acks=all
// waiters are woken to answer NOT_LEADER_OR_FOLLOWER, and the Kafka
// server stops serving and advertising the partitions it leads.
func (b *Broker) stepDown(last time.Duration) {
	b.mu.Lock()
	b.quorumLost.Store(true)
	close(b.lostCh)
	b.lostCh = make(chan struct{})
	b.mu.Unlock()
	ev := b.log.Warn()
	if b.ledCount() == 0 {
		ev = b.log.Info()
	}
	ev.Dur("last_contact", last).Dur("lease", b.cfg.LeaderLease).Int("partitions_led", b.ledCount()).
		Msg("lost contact with the controller: stepping down as leader of every partition")
	b.cfg.Quorum.ReportCutOff(true)
}

// resume ends a step-down once this node's metadata and this broker's
// replicas have caught up with the controller's: only then do its roles
// say what the majority decided meanwhile (a partition it has lost is a
// follower again, truncating to the new leader's history).
func (b *Broker) resume(last time.Duration) {
	ctx, cancel := context.WithTimeout(b.ctx, max(b.cfg.LeaderLease, time.Second))
	defer cancel()
	if err := b.cfg.Quorum.CatchUp(ctx); err != nil {
		b.log.Debug().Err(err).Msg("contact with the controller is back, metadata not caught up yet")
		return
	}
	st, _ := b.meta.Watch()
	if err := b.WaitApplied(ctx, st.Index); err != nil {
		return
	}
	b.quorumLost.Store(false)
	b.cfg.Quorum.ReportCutOff(false)
	b.log.Info().Dur("last_contact", last).Int("partitions_led", b.ledCount()).Uint64("metadata_index", st.Index).
		Msg("contact with the controller is back: resuming the roles the metadata gives")
}

// QuorumLost reports whether this broker has stepped down for lack of
// contact with the controller (Config.LeaderLease): it then leads nothing,
// whatever its metadata says.
func (b *Broker) QuorumLost() bool { return b.quorumLost.Load() }

// steppedDown returns a channel closed at the next step-down.
func (b *Broker) steppedDown() <-chan struct{} {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.lostCh
}

// ledCount counts the partitions the applied metadata has this broker
// lead.
func (b *Broker) ledCount() int {
	n := 0
	st := b.State()
	if st == nil {
		return 0
	}
	for _, ts := range st.Topics {
		for _, ps := range ts.Partitions {
			if ps.Leader == b.cfg.NodeID {
				n++
			}
		}
	}
	return n
}
