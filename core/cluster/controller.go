package cluster

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
)

// maxVoters bounds the Raft voters the controller adds; further members
// join as non-voters.
const maxVoters = 5

// controllerLoop runs for the life of the Cluster and acts only while this
// node is the Raft leader: after a barrier (so the State includes
// everything earlier leaders committed) it reconciles Serf's members with
// the registered brokers on every Serf event, every ReconcileInterval, and
// when a failed member's confirmation time is up.
func (c *Cluster) controllerLoop() {
	t := c.cfg.Timers
	tick := time.NewTicker(t.ReconcileInterval)
	defer tick.Stop()
	confirm := time.NewTimer(time.Hour)
	confirm.Stop()
	defer confirm.Stop()
	leading := false
	// Controller-local, reset on every new term of leadership: when a
	// member was first seen failed, first found missing from Serf, or
	// first seen reporting itself cut off.
	var failedSince, absentSince, cutSince map[int32]time.Time
	for {
		select {
		case <-c.quit:
			return
		case <-tick.C:
		case <-c.reconcile:
		case <-c.leaderKick:
		case <-confirm.C:
		}
		if c.raft.State() != raft.Leader {
			if leading {
				c.log.Info().Msg("no longer the controller")
				leading = false
			}
			continue
		}
		if !leading {
			if err := c.raft.Barrier(5 * t.RaftHeartbeat).Error(); err != nil {
				c.log.Warn().Err(err).Msg("controller barrier failed")
				continue
			}
			leading = true
			failedSince, absentSince, cutSince = map[int32]time.Time{}, map[int32]time.Time{}, map[int32]time.Time{}
			c.log.Info().Uint64("index", c.State().Index).Msg("became the controller")
		}
		if next := c.reconcileMembers(failedSince, absentSince, cutSince); !next.IsZero() {
			confirm.Reset(time.Until(next))
		}
	}
}

// reconcileMembers makes the State and the Raft configuration follow
// Serf: alive members get registered (and unfenced) and join Raft, failed
// ones get fenced once they have stayed failed for FailureConfirm, alive
// ones that report themselves cut off from the controller (the cutoff
// tag) once they have for cutOffConfirm, left or leaving ones at once, registered brokers Serf does not know at all after
// absentConfirm. It returns when the next pending confirmation is due, or
// zero.
func (c *Cluster) reconcileMembers(failedSince, absentSince, cutSince map[int32]time.Time) time.Time {
	st := c.State()
	now := time.Now()
	var next time.Time
	seen := map[int32]bool{}
	var alive []BrokerInfo
	for _, m := range c.serf.Members() {
		info, ok := parseMember(m)
		if !ok || seen[info.ID] && m.Status != serf.StatusAlive {
			continue
		}
		seen[info.ID] = true
		delete(absentSince, info.ID)
		reg, registered := st.Brokers[info.ID]
		live := registered && !reg.Fenced
		// A member that reports itself cut off from the controller
		// (ReportCutOff) is alive to gossip, not to us; this node leads,
		// so its own tag is stale.
		cutOff := m.Tags[tagCutOff] != "" && info.ID != c.cfg.NodeID
		if !cutOff {
			delete(cutSince, info.ID)
		}
		switch {
		case m.Status == serf.StatusAlive && m.Tags[tagLeaving] == "" && cutOff:
			delete(failedSince, info.ID)
			if live {
				if d, ok := c.confirmed(cutSince, info.ID, now, c.cutOffConfirm()); ok {
					c.decide(FenceBroker{ID: info.ID}, info.ID, "fencing broker cut off from the controller")
					delete(cutSince, info.ID)
				} else if next.IsZero() || d.Before(next) {
					next = d
				}
			}
		case m.Status == serf.StatusAlive && m.Tags[tagLeaving] == "":
			delete(failedSince, info.ID)
			alive = append(alive, info)
			if !live || reg.KafkaAddr != info.KafkaAddr || !maps.Equal(reg.Listeners, info.Listeners) || reg.RaftAddr != info.RaftAddr || reg.SerfAddr != info.SerfAddr || reg.Unclean != info.Unclean {
				c.decide(RegisterBroker{Info: info}, info.ID, "registering broker")
			}
		case m.Status == serf.StatusFailed:
			if live {
				if d, ok := c.failedFor(failedSince, info.ID, now); ok {
					c.decide(FenceBroker{ID: info.ID}, info.ID, "fencing failed broker")
					delete(failedSince, info.ID)
				} else if next.IsZero() || d.Before(next) {
					next = d
				}
			}
		default: // left, leaving, or alive with the leaving tag
			if live {
				c.decide(FenceBroker{ID: info.ID}, info.ID, "fencing leaving broker")
			}
		}
	}
	// A registered broker Serf does not know at all (reaped long after it
	// failed, or not yet gossiped to a new controller after a restart of
	// the whole cluster) counts as failed, after a longer confirmation so
	// that a cluster restart does not fence members still joining.
	for _, id := range st.Live() {
		if seen[id] {
			continue
		}
		if d, ok := c.confirmed(absentSince, id, now, c.absentConfirm()); ok {
			c.decide(FenceBroker{ID: id}, id, "fencing broker unknown to serf")
			delete(absentSince, id)
		} else if next.IsZero() || d.Before(next) {
			next = d
		}
	}
	c.addVoters(alive)
	return next
}

// failedFor records id as failed since now if it was not already, and
// reports whether it has been failed for FailureConfirm; if not, when it
// will have been.
func (c *Cluster) failedFor(failedSince map[int32]time.Time, id int32, now time.Time) (time.Time, bool) {
	return c.confirmed(failedSince, id, now, c.cfg.Timers.FailureConfirm)
}

func (c *Cluster) confirmed(since map[int32]time.Time, id int32, now time.Time, d time.Duration) (time.Time, bool) {
	first, ok := since[id]
	if !ok {
		first = now
		since[id] = now
		c.log.Info().Int32("broker", id).Dur("confirm", d).Msg("broker failed: confirming")
	}
	due := first.Add(d)
	return due, !now.Before(due)
}

// cutOffConfirm is how long an alive member must report itself cut off
// from the controller before it is fenced: FailureConfirm plus two Raft
// heartbeats, 2.5 s with DefaultTimers. While a new controller is
// elected every broker may step down for a moment and tag itself; each
// clears its tag once it has caught up with the new controller, well
// within two heartbeats, and must not be fenced for it.
func (c *Cluster) cutOffConfirm() time.Duration {
	return c.cfg.Timers.FailureConfirm + 2*c.cfg.Timers.RaftHeartbeat
}

// absentConfirm is how long a registered broker must be missing from
// Serf before it is fenced: 5 × (FailureConfirm + ReconcileInterval),
// 7.5 s with DefaultTimers.
func (c *Cluster) absentConfirm() time.Duration {
	return 5 * (c.cfg.Timers.FailureConfirm + c.cfg.Timers.ReconcileInterval)
}

// decide applies a controller decision and logs it with the partitions
// whose leadership it changed.
func (c *Cluster) decide(cmd Command, broker int32, msg string) {
	before := c.State()
	ctx, cancel := context.WithTimeout(c.ctx, 5*c.cfg.Timers.RaftHeartbeat)
	defer cancel()
	_, err := c.applyLocal(ctx, mustEncode(cmd))
	if err != nil {
		if errors.Is(err, errRetry) || errors.Is(err, ErrClosed) {
			c.log.Debug().Err(err).Int32("broker", broker).Msg("controller decision dropped: leadership moved")
		} else {
			c.log.Warn().Err(err).Int32("broker", broker).Str("command", cmd.kind().String()).Msg("controller decision failed")
		}
		return
	}
	after := c.State()
	c.log.Info().Int32("broker", broker).Str("command", cmd.kind().String()).Uint64("index", after.Index).Msg(msg)
	logLeaderChanges(c, before, after)
}

func mustEncode(cmd Command) []byte {
	b, err := encodeCommand(cmd)
	if err != nil {
		panic("cluster: broken invariant: cannot encode a controller command: " + err.Error())
	}
	return b
}

// logLeaderChanges logs each partition whose leader differs between two
// states.
func logLeaderChanges(c *Cluster, before, after *State) {
	for name, t := range after.Topics {
		old := before.Topics[name]
		if old == t || old == nil {
			continue
		}
		for i, p := range t.Partitions {
			if i >= len(old.Partitions) || old.Partitions[i].Leader == p.Leader {
				continue
			}
			c.log.Info().Str("topic", name).Int("partition", i).Int32("leader", p.Leader).
				Int32("epoch", p.LeaderEpoch).Ints32("isr", p.ISR).Msg("partition leader changed")
		}
	}
}

// addVoters adds alive members missing from the Raft configuration (or
// with a changed address): voters up to maxVoters, non-voters beyond.
func (c *Cluster) addVoters(alive []BrokerInfo) {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return
	}
	servers := f.Configuration().Servers
	voters := 0
	known := map[raft.ServerID]raft.Server{}
	for _, s := range servers {
		known[s.ID] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	timeout := 5 * c.cfg.Timers.RaftHeartbeat
	for _, b := range alive {
		id := raft.ServerID(strconv.Itoa(int(b.ID)))
		addr := raft.ServerAddress(b.RaftAddr)
		s, ok := known[id]
		if ok && s.Address == addr {
			continue
		}
		var err error
		suffrage := "voter"
		if ok && s.Suffrage == raft.Voter || voters < maxVoters {
			err = c.raft.AddVoter(id, addr, 0, timeout).Error()
			if !ok && err == nil {
				voters++
			}
		} else {
			suffrage = "nonvoter"
			err = c.raft.AddNonvoter(id, addr, 0, timeout).Error()
		}
		if err != nil {
			c.log.Warn().Err(err).Int32("broker", b.ID).Msg("cannot add raft server")
			continue
		}
		c.log.Info().Int32("broker", b.ID).Str("raft", b.RaftAddr).Str("suffrage", suffrage).Msg("raft server added")
	}
}
