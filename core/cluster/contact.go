package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// trackContact records, every tenth of a Raft heartbeat, when this node
// last knew itself in contact with the Raft leader: now while it leads
// (hashicorp/raft steps a leader down once it has not reached a quorum for
// RaftLeaderLease, so leading means in contact), the last message from
// the leader while it follows one. A candidate, or a follower that knows
// no leader, records nothing. LastContact reads it without calling Raft.
func (c *Cluster) trackContact() {
	t := time.NewTicker(max(c.cfg.Timers.RaftHeartbeat/10, 5*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			c.noteContact()
		}
	}
}

func (c *Cluster) noteContact() {
	var at time.Time
	switch c.raft.State() {
	case raft.Leader:
		at = time.Now()
	case raft.Follower:
		if addr, _ := c.raft.LeaderWithID(); addr != "" {
			at = c.raft.LastContact()
		}
	}
	if at.IsZero() {
		return
	}
	d := int64(at.Sub(c.born))
	for {
		old := c.contact.Load()
		if d <= old || c.contact.CompareAndSwap(old, d) {
			return
		}
	}
}

// LastContact returns how long ago this node was last in contact with the
// Raft leader (about 0 while it is the leader itself), as of the last
// check, made every tenth of Timers.RaftHeartbeat: a node cut off from
// the majority sees it grow without bound, one in a healthy cluster sees
// it stay below a heartbeat interval, and every node sees it grow while
// the cluster elects a new leader. Before the first contact it is 0: a
// node that never reached the leader has not caught up, so it serves
// nothing to step down from (the core waits for that before serving
// Kafka), and a slow first election must not read as a lost quorum. It
// is cheap (an atomic load), fit for every request.
func (c *Cluster) LastContact() time.Duration {
	at := c.contact.Load()
	if at == 0 {
		return 0
	}
	return max(0, time.Since(c.born)-time.Duration(at))
}

// CatchUp waits until this node has applied everything the Raft leader
// had applied when asked (a barrier when this node leads), and returns
// nil; it returns an error wrapping ctx's when ctx ends first. A node that
// was cut off calls it before acting on its State again.
func (c *Cluster) CatchUp(ctx context.Context) error {
	for {
		if c.catchUp(ctx) {
			return nil
		}
		t := time.NewTimer(25 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("cluster: not caught up with the controller: %w", ctx.Err())
		case <-c.quit:
			t.Stop()
			return ErrClosed
		}
	}
}

// ReportCutOff tells the other members through gossip that this node's
// broker has stepped down for lack of contact with the Raft leader (true),
// or has resumed (false), by setting or clearing this member's cutoff
// tag. The controller fences an alive member that carries the tag, as it
// fences a failed one: a partial partition can cut a broker off from the
// controller while gossip still reaches it through a member both sides
// see, so that Serf never reports it failed, and without the tag the
// partitions it stepped down from would stay leaderless until the
// network heals. It returns at once; the tag goes out in the background
// (a tag change may wait on the network).
func (c *Cluster) ReportCutOff(cut bool) {
	c.tagsMu.Lock()
	changed := c.cutOff != cut
	c.cutOff = cut
	c.tagsMu.Unlock()
	if changed {
		select {
		case c.tagKick <- struct{}{}:
		default:
		}
	}
}

// tagLoop sets this member's Serf tags when ReportCutOff changed what
// they should say.
func (c *Cluster) tagLoop() {
	for {
		select {
		case <-c.quit:
			return
		case <-c.tagKick:
		}
		c.tagsMu.Lock()
		tags := c.tagsLocked()
		err := c.serf.SetTags(tags)
		c.tagsMu.Unlock()
		if err != nil {
			c.log.Warn().Err(err).Str("cutoff", tags[tagCutOff]).Msg("cannot set the cutoff tag")
			continue
		}
		c.log.Info().Bool("cut_off", tags[tagCutOff] != "").Msg("cutoff tag gossiped")
	}
}

// tagsLocked is the tags this member should carry now. tagsMu is held.
func (c *Cluster) tagsLocked() map[string]string {
	tags := c.cfg.tags(c.raftAddr)
	if c.leaving {
		tags[tagLeaving] = "1"
	}
	if c.cutOff {
		tags[tagCutOff] = "1"
	}
	return tags
}
