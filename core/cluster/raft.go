package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"

	"github.com/fluxo-io/fluxo/internal/logadapt"
)

// openRaft opens the Raft stores in DataDir, starts Raft on the mux's
// stream layer and, with BootstrapExpect <= 1 and no existing state,
// bootstraps a single-server cluster. It reports whether there was state.
func (c *Cluster) openRaft() (bool, error) {
	hlog := logadapt.Hclog(c.log, "raft")
	store, err := openBoltStore(filepath.Join(c.cfg.DataDir, "raft.db"))
	if err != nil {
		return false, err
	}
	c.store = store
	// The file snapshot store puts its files under DataDir/snapshots.
	snaps, err := raft.NewFileSnapshotStoreWithLogger(c.cfg.DataDir, 2, hlog.Named("snapshot"))
	if err != nil {
		return false, fmt.Errorf("cluster: snapshot store: %w", err)
	}
	c.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  c.layer,
		MaxPool: 3,
		// One request in flight per follower: no pipelined replication.
		// The metadata log is small and slow, and hashicorp/raft's
		// pipeline can deadlock when a leader steps down with it full
		// (see shutdownRaft).
		MaxRPCsInFlight: 1,
		Timeout:         5 * time.Second,
		Logger:          hlog.Named("net"),
	})
	t := c.cfg.Timers
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(strconv.Itoa(int(c.cfg.NodeID)))
	rc.HeartbeatTimeout = t.RaftHeartbeat
	rc.ElectionTimeout = t.RaftElection
	rc.LeaderLeaseTimeout = t.RaftLeaderLease
	rc.CommitTimeout = t.RaftCommit
	rc.Logger = hlog
	// Metadata is small: snapshot after 1024 entries rather than 8192 so a
	// restart replays little.
	rc.SnapshotThreshold = 1024
	rc.TrailingLogs = 1024
	if err := raft.ValidateConfig(rc); err != nil {
		return false, fmt.Errorf("cluster: raft config: %w", err)
	}
	hasState, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return false, fmt.Errorf("cluster: raft state: %w", err)
	}
	r, err := raft.NewRaft(rc, c.fsm, store, store, snaps, c.trans)
	if err != nil {
		return false, fmt.Errorf("cluster: raft: %w", err)
	}
	c.raft = r
	// Leadership changes wake the controller loop at once; the loop also
	// polls raft.State, so a dropped observation only delays it.
	c.obs = raft.NewObserver(c.leaderKick, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	r.RegisterObserver(c.obs)
	if !hasState && c.cfg.BootstrapExpect <= 1 {
		err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
			{Suffrage: raft.Voter, ID: rc.LocalID, Address: raft.ServerAddress(c.raftAddr)},
		}}).Error()
		if err != nil {
			return false, fmt.Errorf("cluster: raft bootstrap: %w", err)
		}
		c.log.Info().Msg("raft bootstrapped alone")
	}
	if hasState {
		c.electAloneAtOnce(rc)
	}
	return hasState, nil
}

// electAloneAtOnce spares a restarting single-voter cluster the wait for a
// heartbeat timeout before its election (1 to 2 s by default): nobody else
// can lead it, so the follower's timer is fired at once by lowering the
// heartbeat timeout, which makes Raft re-arm it, and then put back.
func (c *Cluster) electAloneAtOnce(rc *raft.Config) {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	srv := f.Configuration().Servers
	if len(srv) != 1 || srv[0].ID != rc.LocalID || srv[0].Suffrage != raft.Voter || rc.LeaderLeaseTimeout >= rc.HeartbeatTimeout {
		return
	}
	cur := c.raft.ReloadableConfig()
	short := cur
	short.HeartbeatTimeout = rc.LeaderLeaseTimeout
	if c.raft.ReloadConfig(short) == nil {
		c.raft.ReloadConfig(cur)
	}
}

// bootstrapLoop waits for BootstrapExpect members and bootstraps Raft
// with the ones of lowest id, unless one of them already has Raft state
// (then that cluster's controller adds this node). It stops once this
// node has any Raft state.
func (c *Cluster) bootstrapLoop() {
	want := c.cfg.BootstrapExpect
	tick := time.NewTicker(c.cfg.Timers.SerfProbeInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-tick.C:
		}
		if c.raft.LastIndex() > 0 {
			return // bootstrapped by us, or replicated to by a leader
		}
		var servers []BrokerInfo
		for _, m := range c.serf.Members() {
			if info, ok := parseMember(m); ok && m.Status == serf.StatusAlive && m.Tags[tagLeaving] == "" {
				servers = append(servers, info)
			}
		}
		if len(servers) < want {
			continue
		}
		slices.SortFunc(servers, func(a, b BrokerInfo) int { return int(a.ID) - int(b.ID) })
		servers = servers[:want]
		if !slices.ContainsFunc(servers, func(b BrokerInfo) bool { return b.ID == c.cfg.NodeID }) {
			c.log.Info().Msg("not among the first servers: waiting to be added")
			return
		}
		existing, ok := c.peersHaveState(servers)
		if !ok {
			continue // a peer did not answer: ask again
		}
		if existing {
			c.log.Info().Msg("a peer has raft state: waiting to be added")
			return
		}
		conf := raft.Configuration{}
		for _, s := range servers {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(strconv.Itoa(int(s.ID))), Address: raft.ServerAddress(s.RaftAddr)})
		}
		if err := c.raft.BootstrapCluster(conf).Error(); err != nil {
			c.log.Warn().Err(err).Msg("raft bootstrap failed")
			continue
		}
		c.log.Info().Int("servers", want).Msg("raft bootstrapped")
		return
	}
}

// peersHaveState asks every other server whether it has Raft state. ok is
// false if one did not answer.
func (c *Cluster) peersHaveState(servers []BrokerInfo) (existing, ok bool) {
	for _, s := range servers {
		if s.ID == c.cfg.NodeID {
			continue
		}
		ctx, cancel := context.WithTimeout(c.ctx, time.Second)
		resp, err := c.call(ctx, s.RaftAddr, rpcRequest{Op: opStatus})
		cancel()
		if err != nil || resp.Status == nil {
			return false, false
		}
		if resp.Status.HasState {
			return true, true
		}
	}
	return false, true
}
