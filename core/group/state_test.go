package group

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{
		Empty:               "Empty",
		PreparingRebalance:  "PreparingRebalance",
		CompletingRebalance: "CompletingRebalance",
		Stable:              "Stable",
		Dead:                "Dead",
		State(42):           "Unknown",
	} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String(): got %q, want %q", s, got, want)
		}
	}
}

func TestCanTransition(t *testing.T) {
	allowed := map[[2]State]bool{
		{Empty, PreparingRebalance}:               true,
		{PreparingRebalance, CompletingRebalance}: true,
		{PreparingRebalance, Empty}:               true,
		{CompletingRebalance, Stable}:             true,
		{CompletingRebalance, PreparingRebalance}: true,
		{Stable, PreparingRebalance}:              true,
		{Empty, Dead}:                             true,
		{PreparingRebalance, Dead}:                true,
		{CompletingRebalance, Dead}:               true,
		{Stable, Dead}:                            true,
		{Dead, Dead}:                              true,
	}
	states := []State{Empty, PreparingRebalance, CompletingRebalance, Stable, Dead}
	for _, from := range states {
		for _, to := range states {
			if got, want := canTransition(from, to), allowed[[2]State{from, to}]; got != want {
				t.Errorf("canTransition(%v, %v): got %v, want %v", from, to, got, want)
			}
		}
	}
}

// TestStateTransitions drives a group through the protocol and checks the
// state after each step.
func TestStateTransitions(t *testing.T) {
	type step struct {
		do   string // "join a", "start join b" (in the background), "sync", "leave a", "change a"
		want State
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"join and sync", []step{
			{"join a", CompletingRebalance},
			{"sync", Stable},
		}},
		{"last member leaves", []step{
			{"join a", CompletingRebalance},
			{"sync", Stable},
			{"leave a", Empty}, // through PreparingRebalance, which has no one to wait for
		}},
		{"leave while completing", []step{
			{"join a", CompletingRebalance},
			{"leave a", Empty},
		}},
		{"leave while preparing", []step{
			{"join a", CompletingRebalance},
			{"sync", Stable},
			{"start join b", PreparingRebalance},
			{"leave a", CompletingRebalance}, // b alone is all there is to wait for
			{"sync", Stable},
		}},
		{"new member while stable", []step{
			{"join a", CompletingRebalance},
			{"sync", Stable},
			{"start join b", PreparingRebalance},
			{"join a", CompletingRebalance},
			{"sync", Stable},
		}},
		{"new member while completing", []step{
			{"join a", CompletingRebalance},
			{"start join b", PreparingRebalance},
			{"join a", CompletingRebalance},
			{"sync", Stable},
		}},
		{"rejoin with the same metadata while completing", []step{
			{"join a", CompletingRebalance},
			{"join a", CompletingRebalance},
			{"sync", Stable},
		}},
		{"rejoin with new metadata while stable", []step{
			{"join a", CompletingRebalance},
			{"sync", Stable},
			{"change a", Stable},
			{"join a", CompletingRebalance},
			{"sync", Stable},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCoordinator(t, testConfig(), &MemLog{})
			ms := map[string]*tmember{"a": newMember(t, c, "g", "a"), "b": newMember(t, c, "g", "b")}
			var wg sync.WaitGroup
			defer wg.Wait()
			for i, s := range tc.steps {
				verb, name, _ := strings.Cut(s.do, " ")
				m := ms[name]
				switch verb {
				case "join":
					m.join()
				case "start":
					m = ms[strings.TrimPrefix(name, "join ")]
					wg.Go(func() { m.join() })
					testutil.EventuallyWithin(t, wait, s.do, func() bool { return groupState(c, "g") == s.want })
				case "sync":
					wg.Wait()
					g := c.lookup("g")
					g.mu.Lock()
					var joined []*tmember
					for _, m := range ms {
						if g.members[m.id] != nil {
							joined = append(joined, m)
						}
					}
					g.mu.Unlock()
					syncAll(t, joined...)
				case "leave":
					checkCode(t, s.do, m.leave(), nil)
					m.id, m.gen = "", 0
				case "change":
					m.protocols[0].Metadata = []byte("new")
				}
				if got := groupState(c, "g"); got != s.want {
					t.Fatalf("step %d (%s): got %v, want %v", i, s.do, got, s.want)
				}
			}
		})
	}
}

// TestHeartbeatByState checks the heartbeat answers in each state.
func TestHeartbeatByState(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	a := newMember(t, c, "g", "a")
	checkCode(t, "unknown group", a.heartbeat(), kerr.UnknownMemberID)
	a.join()
	checkCode(t, "CompletingRebalance", a.heartbeat(), nil)
	a.sync(nil)
	checkCode(t, "Stable", a.heartbeat(), nil)
	stale := a.clone()
	stale.gen--
	checkCode(t, "old generation", stale.heartbeat(), kerr.IllegalGeneration)
	stale = a.clone()
	stale.id = "ghost"
	checkCode(t, "unknown member", stale.heartbeat(), kerr.UnknownMemberID)
	stale = a.clone()
	stale.group = ""
	checkCode(t, "empty group id", stale.heartbeat(), kerr.InvalidGroupID)
	stale = a.clone()
	stale.instance = new(string)
	checkCode(t, "unknown instance", stale.heartbeat(), kerr.UnknownMemberID)

	b := newMember(t, c, "g", "b")
	var wg sync.WaitGroup
	wg.Go(func() { b.join() })
	testutil.EventuallyWithin(t, wait, "the rebalance", func() bool { return groupState(c, "g") == PreparingRebalance })
	checkCode(t, "PreparingRebalance", a.heartbeat(), kerr.RebalanceInProgress)
	a.join()
	wg.Wait()
}

func TestConfigValidate(t *testing.T) {
	if cfg := DefaultConfig(); cfg.Validate() != nil {
		t.Fatalf("DefaultConfig().Validate(): got %v, want nil", cfg.Validate())
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"min session", func(c *Config) { c.MinSessionTimeout = 0 }, "MinSessionTimeout"},
		{"max below min", func(c *Config) { c.MaxSessionTimeout = time.Second }, "MaxSessionTimeout"},
		{"max too large", func(c *Config) { c.MaxSessionTimeout = 1000 * time.Hour }, "MaxSessionTimeout"},
		{"negative delay", func(c *Config) { c.InitialRebalanceDelay = -1 }, "InitialRebalanceDelay"},
		{"group size", func(c *Config) { c.MaxGroupSize = 0 }, "MaxGroupSize"},
		{"retention", func(c *Config) { c.OffsetsRetention = 0 }, "OffsetsRetention"},
		{"retention check", func(c *Config) { c.OffsetsRetentionCheckInterval = 0 }, "OffsetsRetentionCheckInterval"},
		{"metadata size", func(c *Config) { c.OffsetMetadataMaxBytes = -1 }, "OffsetMetadataMaxBytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: got %v, want an error naming %s", err, tc.want)
			}
			if _, err := New(cfg, &MemLog{}); err == nil {
				t.Errorf("New: got nil error, want one")
			}
		})
	}
	if _, err := New(DefaultConfig(), nil); err == nil {
		t.Errorf("New with nil Log: got nil error, want one")
	}
}
