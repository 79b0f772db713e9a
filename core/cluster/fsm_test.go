package cluster

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
)

// brokers returns a state with brokers ids registered and unfenced.
func brokers(t *testing.T, ids ...int32) *State {
	t.Helper()
	s := NewState()
	for _, id := range ids {
		s = mustApply(t, s, RegisterBroker{Info: BrokerInfo{ID: id, KafkaAddr: "k"}})
	}
	return s
}

func mustApply(t *testing.T, s *State, cmds ...Command) *State {
	t.Helper()
	for _, c := range cmds {
		next, _, err := s.Apply(c)
		if err != nil {
			t.Fatalf("%#v: got error %v, want nil", c, err)
		}
		s = next
	}
	return s
}

// part builds a partition state.
func part(replicas, isr []int32, leader, le, pe int32) PartitionState {
	return PartitionState{Replicas: replicas, ISR: isr, Leader: leader, LeaderEpoch: le, PartitionEpoch: pe}
}

// withTopic adds topic "t" with the given partitions directly.
func withTopic(s *State, parts ...PartitionState) *State {
	n := *s
	n.Topics = map[string]*TopicState{"t": {Name: "t", Partitions: parts}}
	return &n
}

func fenced(s *State, ids ...int32) *State {
	n := *s
	n.Brokers = map[int32]BrokerInfo{}
	for id, b := range s.Brokers {
		b.Fenced = slices.Contains(ids, id)
		n.Brokers[id] = b
	}
	return &n
}

func ids(v ...int32) []int32 { return v }

func TestCreateTopic(t *testing.T) {
	three := brokers(t, 1, 2, 3)
	tests := []struct {
		name string
		s    *State
		cmd  CreateTopic
		err  error
		rf   int
	}{
		{"default rf 3", three, CreateTopic{Name: "a", Partitions: 6}, nil, 3},
		{"default rf capped by brokers", brokers(t, 1, 2), CreateTopic{Name: "a", Partitions: 2}, nil, 2},
		{"rf 1", three, CreateTopic{Name: "a", Partitions: 3, ReplicationFactor: 1}, nil, 1},
		{"rf above brokers", three, CreateTopic{Name: "a", Partitions: 1, ReplicationFactor: 4}, ErrReplicationFactor, 0},
		{"rf above unfenced", fenced(three, 3), CreateTopic{Name: "a", Partitions: 1, ReplicationFactor: 3}, ErrReplicationFactor, 0},
		{"no brokers", NewState(), CreateTopic{Name: "a", Partitions: 1}, ErrReplicationFactor, 0},
		{"zero partitions", three, CreateTopic{Name: "a", Partitions: 0}, ErrInvalidPartitions, 0},
		{"exists", mustApply(t, three, CreateTopic{Name: "a", Partitions: 1}), CreateTopic{Name: "a", Partitions: 1}, ErrTopicExists, 0},
		{"empty name", three, CreateTopic{Partitions: 1}, ErrInvalidCommand, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, _, err := tt.s.Apply(tt.cmd)
			if !errors.Is(err, tt.err) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if err != nil {
				if next != tt.s {
					t.Fatalf("got a new state on error, want the old one")
				}
				return
			}
			ts := next.Topics[tt.cmd.Name]
			if got := len(ts.Partitions); got != int(tt.cmd.Partitions) {
				t.Fatalf("got %d partitions, want %d", got, tt.cmd.Partitions)
			}
			live := next.Live()
			for i, p := range ts.Partitions {
				if len(p.Replicas) != tt.rf {
					t.Fatalf("partition %d: got %d replicas, want %d", i, len(p.Replicas), tt.rf)
				}
				if !reflect.DeepEqual(p.ISR, p.Replicas) || p.Leader != p.Replicas[0] || p.LeaderEpoch != 0 || p.PartitionEpoch != 0 {
					t.Fatalf("partition %d: got %+v, want ISR = replicas, leader first replica, epochs 0", i, p)
				}
				// Round robin: consecutive brokers, consecutive starts.
				start := slices.Index(live, p.Replicas[0])
				for j, r := range p.Replicas {
					if want := live[(start+j)%len(live)]; r != want {
						t.Fatalf("partition %d: got replicas %v, want consecutive brokers of %v", i, p.Replicas, live)
					}
				}
				if i > 0 {
					prev := slices.Index(live, ts.Partitions[i-1].Replicas[0])
					if start != (prev+1)%len(live) {
						t.Fatalf("partition %d: got leader %d after %d, want the next broker", i, p.Replicas[0], ts.Partitions[i-1].Replicas[0])
					}
				}
			}
			if _, ok := tt.s.Topics[tt.cmd.Name]; ok && tt.err == nil {
				t.Fatalf("old state changed")
			}
		})
	}
}

func TestPlacementSpreadsLeaders(t *testing.T) {
	s := brokers(t, 1, 2, 3, 4)
	s = mustApply(t, s, CreateTopic{Name: "a", Partitions: 8, ReplicationFactor: 3})
	count := map[int32]int{}
	for _, p := range s.Topics["a"].Partitions {
		count[p.Leader]++
	}
	for _, id := range ids(1, 2, 3, 4) {
		if count[id] != 2 {
			t.Fatalf("got leaders %v, want 2 partitions led by each broker", count)
		}
	}
	// Single-partition topics spread too (the start depends on the name).
	count = map[int32]int{}
	for _, name := range []string{"b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m"} {
		s = mustApply(t, s, CreateTopic{Name: name, Partitions: 1, ReplicationFactor: 1})
		count[s.Topics[name].Partitions[0].Leader]++
	}
	if len(count) < 3 {
		t.Fatalf("got leaders %v for 12 single-partition topics, want at least 3 brokers used", count)
	}
	// Fenced brokers get nothing.
	s = mustApply(t, s, FenceBroker{ID: 2}, CreateTopic{Name: "z", Partitions: 6, ReplicationFactor: 3})
	for _, p := range s.Topics["z"].Partitions {
		if slices.Contains(p.Replicas, 2) {
			t.Fatalf("got replicas %v, want none on fenced broker 2", p.Replicas)
		}
	}
}

func TestTopicCommands(t *testing.T) {
	s := brokers(t, 1, 2, 3)
	s = mustApply(t, s, CreateTopic{Name: "a", Partitions: 2, ReplicationFactor: 2, Configs: map[string]string{"x": "1"}})
	tests := []struct {
		name  string
		cmd   Command
		err   error
		check func(t *testing.T, s *State)
	}{
		{"delete", DeleteTopic{Name: "a"}, nil, func(t *testing.T, s *State) {
			if s.Topics["a"] != nil {
				t.Fatalf("got topic a, want it deleted")
			}
		}},
		{"delete unknown", DeleteTopic{Name: "b"}, ErrUnknownTopic, nil},
		{"grow", CreatePartitions{Name: "a", Total: 5}, nil, func(t *testing.T, s *State) {
			ps := s.Topics["a"].Partitions
			if len(ps) != 5 {
				t.Fatalf("got %d partitions, want 5", len(ps))
			}
			for i, p := range ps {
				if len(p.Replicas) != 2 || p.Leader != p.Replicas[0] {
					t.Fatalf("partition %d: got %+v, want 2 replicas led by the first", i, p)
				}
			}
		}},
		{"shrink", CreatePartitions{Name: "a", Total: 1}, ErrInvalidPartitions, nil},
		{"same", CreatePartitions{Name: "a", Total: 2}, ErrInvalidPartitions, nil},
		{"grow unknown", CreatePartitions{Name: "b", Total: 3}, ErrUnknownTopic, nil},
		{"configs replaced", SetConfigs{Name: "a", Configs: map[string]string{"y": "2"}}, nil, func(t *testing.T, s *State) {
			if got := s.Topics["a"].Configs; !reflect.DeepEqual(got, map[string]string{"y": "2"}) {
				t.Fatalf("got configs %v, want y=2 only", got)
			}
		}},
		{"configs unknown", SetConfigs{Name: "b"}, ErrUnknownTopic, nil},
		{"producer ids zero", AllocateProducerIDs{N: 0}, ErrInvalidCommand, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cloneState(t, s)
			next, _, err := s.Apply(tt.cmd)
			if !errors.Is(err, tt.err) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if tt.check != nil {
				tt.check(t, next)
			}
			if !reflect.DeepEqual(cloneState(t, s), before) {
				t.Fatalf("the old state changed")
			}
		})
	}
}

func TestAllocateProducerIDs(t *testing.T) {
	s := NewState()
	next, res, err := s.Apply(AllocateProducerIDs{N: 10})
	if err != nil || res.FirstProducerID != 1000 {
		t.Fatalf("got %d, %v, want 1000, nil", res.FirstProducerID, err)
	}
	_, res, _ = next.Apply(AllocateProducerIDs{N: 5})
	if res.FirstProducerID != 1010 {
		t.Fatalf("got %d, want 1010", res.FirstProducerID)
	}
}

func TestAlterPartition(t *testing.T) {
	base := withTopic(brokers(t, 1, 2, 3, 4), part(ids(1, 2, 3), ids(1, 2), 1, 5, 7))
	ok := AlterPartition{Topic: "t", Partition: 0, Broker: 1, LeaderEpoch: 5, PartitionEpoch: 7, ISR: ids(1, 2, 3)}
	with := func(f func(*AlterPartition)) AlterPartition { c := ok; c.ISR = slices.Clone(ok.ISR); f(&c); return c }
	tests := []struct {
		name string
		s    *State
		cmd  AlterPartition
		err  error
		isr  []int32
	}{
		{"expand", base, ok, nil, ids(1, 2, 3)},
		{"shrink", base, with(func(c *AlterPartition) { c.ISR = ids(1) }), nil, ids(1)},
		{"unknown topic", base, with(func(c *AlterPartition) { c.Topic = "x" }), ErrUnknownTopic, nil},
		{"unknown partition", base, with(func(c *AlterPartition) { c.Partition = 1 }), ErrUnknownTopic, nil},
		{"not leader", base, with(func(c *AlterPartition) { c.Broker = 2 }), ErrNotLeader, nil},
		{"old leader epoch", base, with(func(c *AlterPartition) { c.LeaderEpoch = 4 }), ErrFencedLeaderEpoch, nil},
		{"future leader epoch", base, with(func(c *AlterPartition) { c.LeaderEpoch = 6 }), ErrFencedLeaderEpoch, nil},
		{"stale partition epoch", base, with(func(c *AlterPartition) { c.PartitionEpoch = 6 }), ErrInvalidUpdate, nil},
		{"empty isr", base, with(func(c *AlterPartition) { c.ISR = nil }), ErrInvalidUpdate, nil},
		{"not a replica", base, with(func(c *AlterPartition) { c.ISR = ids(1, 4) }), ErrInvalidUpdate, nil},
		{"lacks leader", base, with(func(c *AlterPartition) { c.ISR = ids(2, 3) }), ErrInvalidUpdate, nil},
		{"duplicate", base, with(func(c *AlterPartition) { c.ISR = ids(1, 2, 2) }), ErrInvalidUpdate, nil},
		{"fenced joins", fenced(base, 3), ok, ErrInvalidUpdate, nil},
		{"fenced stays", fenced(base, 2), with(func(c *AlterPartition) { c.ISR = ids(1, 2) }), nil, ids(1, 2)},
		{"fenced leaves", fenced(base, 2), with(func(c *AlterPartition) { c.ISR = ids(1) }), nil, ids(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, res, err := tt.s.Apply(tt.cmd)
			if !errors.Is(err, tt.err) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			want := part(ids(1, 2, 3), tt.isr, 1, 5, 8)
			if got, _ := next.Partition("t", 0); !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
			if !reflect.DeepEqual(res.Partition, want) {
				t.Fatalf("got result %+v, want %+v", res.Partition, want)
			}
			if got, _ := tt.s.Partition("t", 0); !reflect.DeepEqual(got.ISR, ids(1, 2)) {
				t.Fatalf("old state changed: got ISR %v, want [1 2]", got.ISR)
			}
		})
	}
}

func TestFenceBroker(t *testing.T) {
	b := brokers(t, 1, 2, 3)
	tests := []struct {
		name string
		s    *State
		id   int32
		want PartitionState
		err  error
	}{
		{"leader moves to next replica in isr", withTopic(b, part(ids(1, 2, 3), ids(1, 2, 3), 1, 0, 0)), 1,
			part(ids(1, 2, 3), ids(2, 3), 2, 1, 1), nil},
		{"replica order decides, not isr order", withTopic(b, part(ids(1, 3, 2), ids(1, 2, 3), 1, 2, 4)), 1,
			part(ids(1, 3, 2), ids(2, 3), 3, 3, 5), nil},
		{"follower leaves isr", withTopic(b, part(ids(1, 2, 3), ids(1, 2, 3), 1, 0, 0)), 2,
			part(ids(1, 2, 3), ids(1, 3), 1, 0, 1), nil},
		{"out of sync follower: nothing", withTopic(b, part(ids(1, 2, 3), ids(1, 3), 1, 0, 0)), 2,
			part(ids(1, 2, 3), ids(1, 3), 1, 0, 0), nil},
		{"last replica standing", withTopic(b, part(ids(1, 2, 3), ids(1), 1, 4, 4)), 1,
			part(ids(1, 2, 3), ids(1), NoLeader, 5, 5), nil},
		{"no unfenced isr member", withTopic(fenced(b, 2), part(ids(1, 2), ids(1, 2), 1, 0, 0)), 1,
			part(ids(1, 2), ids(2), NoLeader, 1, 1), nil},
		{"unknown broker", withTopic(b, part(ids(1), ids(1), 1, 0, 0)), 9, PartitionState{}, ErrUnknownBroker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, _, err := tt.s.Apply(FenceBroker{ID: tt.id})
			if !errors.Is(err, tt.err) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got, _ := next.Partition("t", 0); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if !next.Brokers[tt.id].Fenced {
				t.Fatalf("got broker %d unfenced, want fenced", tt.id)
			}
			// Fencing again changes nothing.
			again, _, err := next.Apply(FenceBroker{ID: tt.id})
			if got, _ := again.Partition("t", 0); err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("fencing twice: got %+v, %v, want %+v, nil", got, err, tt.want)
			}
		})
	}
}

func TestRegisterBrokerElectsLeaderless(t *testing.T) {
	s := withTopic(brokers(t, 1, 2, 3),
		part(ids(1, 2, 3), ids(1, 2), 1, 0, 0),
		part(ids(2, 1, 3), ids(1, 2), 2, 0, 0))
	// 2 then 1 fail: partition 1's leader moves to 1, then both end
	// leaderless with 1 as the last ISR member.
	s = mustApply(t, s, FenceBroker{ID: 2}, FenceBroker{ID: 1})
	// With 2 fenced the ISR fell below min.insync.replicas (2 of 3
	// replicas): 2 became an eligible leader replica.
	elr := func(p PartitionState) PartitionState { p.ELR = ids(2); return p }
	for i, want := range []PartitionState{
		elr(part(ids(1, 2, 3), ids(1), NoLeader, 1, 2)),
		elr(part(ids(2, 1, 3), ids(1), NoLeader, 2, 2)),
	} {
		if got, _ := s.Partition("t", int32(i)); !reflect.DeepEqual(got, want) {
			t.Fatalf("partition %d after fencing: got %+v, want %+v", i, got, want)
		}
	}
	// 2 comes back: not in the ISR, so it leads nothing.
	s = mustApply(t, s, RegisterBroker{Info: BrokerInfo{ID: 2, KafkaAddr: "new"}})
	if got, _ := s.Partition("t", 0); got.Leader != NoLeader {
		t.Fatalf("got leader %d, want none (2 is out of the ISR)", got.Leader)
	}
	if s.Brokers[2].Fenced || s.Brokers[2].KafkaAddr != "new" {
		t.Fatalf("got %+v, want 2 unfenced with the new address", s.Brokers[2])
	}
	// 1 comes back: it leads both again.
	s = mustApply(t, s, RegisterBroker{Info: BrokerInfo{ID: 1}})
	for i, want := range []PartitionState{
		elr(part(ids(1, 2, 3), ids(1), 1, 2, 3)),
		elr(part(ids(2, 1, 3), ids(1), 1, 3, 3)),
	} {
		if got, _ := s.Partition("t", int32(i)); !reflect.DeepEqual(got, want) {
			t.Fatalf("partition %d after register: got %+v, want %+v", i, got, want)
		}
	}
}

func TestRemoveBroker(t *testing.T) {
	s := withTopic(brokers(t, 1, 2), part(ids(1, 2), ids(1, 2), 1, 0, 0))
	s = mustApply(t, s, RemoveBroker{ID: 1})
	if _, ok := s.Brokers[1]; ok {
		t.Fatalf("got broker 1 registered, want removed")
	}
	if got, want := s.Topics["t"].Partitions[0], part(ids(1, 2), ids(2), 2, 1, 1); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, _, err := s.Apply(RemoveBroker{ID: 1}); !errors.Is(err, ErrUnknownBroker) {
		t.Fatalf("got %v, want ErrUnknownBroker", err)
	}
}

func TestReassignPartition(t *testing.T) {
	base := withTopic(brokers(t, 1, 2, 3, 4, 5), part(ids(1, 2, 3), ids(1, 2), 1, 3, 3))
	tests := []struct {
		name     string
		s        *State
		replicas []int32
		want     PartitionState
		err      error
	}{
		{"add", base, ids(1, 2, 3, 4), part(ids(1, 2, 3, 4), ids(1, 2), 1, 3, 4), nil},
		{"drop follower", base, ids(1, 3), part(ids(1, 3), ids(1), 1, 3, 4), nil},
		{"drop leader", base, ids(4, 2, 3), part(ids(4, 2, 3), ids(2), 2, 4, 4), nil},
		{"no isr left", base, ids(3, 4), PartitionState{}, ErrInvalidUpdate},
		{"unregistered", base, ids(1, 9), PartitionState{}, ErrUnknownBroker},
		{"duplicate", base, ids(1, 1), PartitionState{}, ErrInvalidCommand},
		{"empty", base, nil, PartitionState{}, ErrInvalidCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, res, err := tt.s.Apply(ReassignPartition{Topic: "t", Partition: 0, Replicas: tt.replicas})
			if !errors.Is(err, tt.err) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got, _ := next.Partition("t", 0); !reflect.DeepEqual(got, tt.want) || !reflect.DeepEqual(res.Partition, tt.want) {
				t.Fatalf("got %+v (result %+v), want %+v", got, res.Partition, tt.want)
			}
		})
	}
	if _, _, err := base.Apply(ReassignPartition{Topic: "x", Replicas: ids(1)}); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("got %v, want ErrUnknownTopic", err)
	}
}

func TestCommandEncoding(t *testing.T) {
	cmds := []Command{
		CreateTopic{Name: "a", Partitions: 3, ReplicationFactor: 2, Configs: map[string]string{"k": "v"}, ID: [16]byte{1, 2}},
		DeleteTopic{Name: "a"},
		CreatePartitions{Name: "a", Total: 4},
		SetConfigs{Name: "a", Configs: map[string]string{"k": "v"}},
		AllocateProducerIDs{N: 3},
		AlterPartition{Topic: "a", Partition: 1, Broker: 2, LeaderEpoch: 3, PartitionEpoch: 4, ISR: ids(2, 3)},
		RegisterBroker{Info: BrokerInfo{ID: 1, KafkaAddr: "k", RaftAddr: "r", SerfAddr: "s"}},
		FenceBroker{ID: 1},
		RemoveBroker{ID: 1},
		ReassignPartition{Topic: "a", Partition: 1, Replicas: ids(1, 2)},
		UpsertScramCredential{User: "u", Mechanism: ScramSHA512, Credential: ScramCredential{Salt: []byte{1}, StoredKey: []byte{2}, ServerKey: []byte{3}, Iterations: 4096}},
		DeleteScramCredential{User: "u", Mechanism: ScramSHA256},
		CreateACLs{Bindings: []acl.Binding{{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: "t", PatternType: kmsg.ACLResourcePatternTypePrefixed,
			Principal: "User:u", Host: "*", Operation: kmsg.ACLOperationRead, Permission: kmsg.ACLPermissionTypeAllow}}},
		DeleteACLs{Filters: []acl.Filter{{ResourceType: kmsg.ACLResourceTypeAny, ResourceName: str("t"), PatternType: kmsg.ACLResourcePatternTypeMatch,
			Principal: str("User:u"), Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}}},
	}
	for _, c := range cmds {
		b, err := encodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeCommand(b)
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("got %#v, %v, want %#v", got, err, c)
		}
	}
	if _, err := encodeCommand(CreateACLs{Bindings: []acl.Binding{{}}}); !errors.Is(err, acl.ErrInvalid) {
		t.Fatalf("encoding an invalid binding: got %v, want acl.ErrInvalid", err)
	}
	for _, b := range [][]byte{nil, {0}, {99, '{', '}'}, {1, '['}, []byte("\x0d{\"bindings\":[{}]}")} {
		if _, err := decodeCommand(b); err == nil {
			t.Fatalf("decoding %q: got nil error, want one", b)
		}
	}
}

// FuzzDecodeCommand checks that decodeCommand never panics, and that what
// it accepts encodes back to something that decodes to the same command.
func FuzzDecodeCommand(f *testing.F) {
	f.Add([]byte{1, '{', '}'})
	f.Add([]byte(`` + "\x06" + `{"topic":"a","isr":[1,2]}`))
	f.Add([]byte(`` + "\x0b" + `{"user":"u","mechanism":"SCRAM-SHA-256","credential":{"salt":"AQ==","iterations":4096}}`))
	f.Add([]byte(`` + "\x0e" + `{"filters":[{"ResourceType":"TOPIC","PatternType":"MATCH","ResourceName":"t","Operation":"ANY","Permission":"ALLOW"}]}`))
	f.Add([]byte(`` + "\x0d" + `{"bindings":[{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommand(b)
		if err != nil {
			return
		}
		enc, err := encodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := decodeCommand(enc)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("got %#v, %v, want %#v", c2, err, c)
		}
	})
}

func cloneState(t *testing.T, s *State) *State {
	t.Helper()
	f := NewFSM()
	f.publish(s)
	var buf bytes.Buffer
	snap, _ := f.Snapshot()
	if err := snap.Persist(&sink{Buffer: &buf}); err != nil {
		t.Fatal(err)
	}
	g := NewFSM()
	if err := g.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	return g.State()
}

type sink struct{ *bytes.Buffer }

func (sink) ID() string    { return "test" }
func (sink) Cancel() error { return nil }
func (sink) Close() error  { return nil }

func TestFSMApplySnapshotRestore(t *testing.T) {
	f := NewFSM()
	var leaderChanges int
	f.onLeaderChanges = func(n int) { leaderChanges += n }
	s0, changed := f.Watch()
	cmds := []Command{
		RegisterBroker{Info: BrokerInfo{ID: 1, KafkaAddr: "a:1"}},
		RegisterBroker{Info: BrokerInfo{ID: 2, KafkaAddr: "b:1"}},
		CreateTopic{Name: "a", Partitions: 4, ReplicationFactor: 2, ID: [16]byte{9}, Configs: map[string]string{"c": "d"}},
		AllocateProducerIDs{N: 7},
		FenceBroker{ID: 1},
		UpsertScramCredential{User: "u", Mechanism: ScramSHA256, Credential: cred(4096)},
		CreateACLs{Bindings: []acl.Binding{binding(kmsg.ACLResourceTypeGroup, "g", kmsg.ACLResourcePatternTypePrefixed, "User:u", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeDeny)}},
	}
	for i, c := range cmds {
		b, _ := encodeCommand(c)
		resp := f.Apply(&raft.Log{Index: uint64(i + 10), Type: raft.LogCommand, Data: b}).(applyResponse)
		if resp.err != nil {
			t.Fatalf("%T: got %v, want nil", c, resp.err)
		}
	}
	// A refused command publishes nothing.
	b, _ := encodeCommand(DeleteTopic{Name: "x"})
	if resp := f.Apply(&raft.Log{Index: 20, Type: raft.LogCommand, Data: b}).(applyResponse); !errors.Is(resp.err, ErrUnknownTopic) {
		t.Fatalf("got %v, want ErrUnknownTopic", resp.err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("watch channel not closed after a change")
	}
	if len(s0.Topics) != 0 || len(s0.Brokers) != 0 {
		t.Fatalf("the first state changed: %+v", s0)
	}
	s := f.State()
	if s.Index != 16 {
		t.Fatalf("got index %d, want 16", s.Index)
	}
	if leaderChanges != 2 {
		t.Fatalf("got %d leader changes, want 2 (broker 1 led 2 of 4 partitions)", leaderChanges)
	}
	if got := cloneState(t, s); !reflect.DeepEqual(got, s) {
		t.Fatalf("after snapshot and restore: got %+v, want %+v", got, s)
	}
}

// TestLastReplicaStandingUnclean is KIP-966's case: the ISR shrinks to
// one broker as the others fail, then that last member fails too and
// comes back from a crash, possibly with a shorter log. A replica that
// left the ISR with every committed record leads instead; the crashed
// one leads only when no such replica exists.
func TestLastReplicaStandingUnclean(t *testing.T) {
	base := withTopic(brokers(t, 1, 2, 3), part(ids(1, 2, 3), ids(1, 2, 3), 1, 0, 0))
	// 3 then 2 fail: 3 leaves an ISR still at min.insync.replicas (2),
	// 2 leaves it below: only 2 is eligible.
	s := mustApply(t, base, FenceBroker{ID: 3}, FenceBroker{ID: 2})
	p, _ := s.Partition("t", 0)
	if !reflect.DeepEqual(p.ISR, ids(1)) || !reflect.DeepEqual(p.ELR, ids(2)) || p.Leader != 1 {
		t.Fatalf("after 3 and 2 failed: got %+v, want leader 1, ISR [1], ELR [2]", p)
	}
	// 1 fails: nobody eligible runs, so it stays the last ISR member.
	s = mustApply(t, s, FenceBroker{ID: 1})
	p, _ = s.Partition("t", 0)
	if p.Leader != NoLeader || !reflect.DeepEqual(p.ISR, ids(1)) {
		t.Fatalf("after 1 failed: got %+v, want no leader, ISR [1]", p)
	}

	t.Run("crashed last member back first", func(t *testing.T) {
		s := mustApply(t, s, RegisterBroker{Info: BrokerInfo{ID: 1, Unclean: true}})
		p, _ := s.Partition("t", 0)
		if p.Leader != NoLeader || len(p.ISR) != 0 || !reflect.DeepEqual(p.ELR, ids(2)) {
			t.Fatalf("got %+v, want no leader until 2 is back, 1 not eligible", p)
		}
		s = mustApply(t, s, RegisterBroker{Info: BrokerInfo{ID: 2}})
		p, _ = s.Partition("t", 0)
		if p.Leader != 2 || !reflect.DeepEqual(p.ISR, ids(2)) {
			t.Fatalf("got %+v, want 2 leading alone", p)
		}
	})
	t.Run("eligible replica back first", func(t *testing.T) {
		s := mustApply(t, s, RegisterBroker{Info: BrokerInfo{ID: 2}}, RegisterBroker{Info: BrokerInfo{ID: 1, Unclean: true}})
		p, _ := s.Partition("t", 0)
		if p.Leader != 2 || !reflect.DeepEqual(p.ISR, ids(2)) || slices.Contains(p.ELR, 1) {
			t.Fatalf("got %+v, want 2 leading alone and 1 not eligible", p)
		}
	})
	t.Run("clean restart", func(t *testing.T) {
		s := mustApply(t, s, RegisterBroker{Info: BrokerInfo{ID: 1}})
		p, _ := s.Partition("t", 0)
		if p.Leader != 1 {
			t.Fatalf("got %+v, want 1 leading again: its log is whole", p)
		}
	})
	t.Run("no eligible replica", func(t *testing.T) {
		// One replica only: after a crash it is all there is.
		s := withTopic(brokers(t, 1), part(ids(1), ids(1), 1, 0, 0))
		s = mustApply(t, s, FenceBroker{ID: 1}, RegisterBroker{Info: BrokerInfo{ID: 1, Unclean: true}})
		if p, _ := s.Partition("t", 0); p.Leader != 1 {
			t.Fatalf("got %+v, want 1 leading", p)
		}
	})
	t.Run("ISR whole again clears the eligible", func(t *testing.T) {
		s := mustApply(t, s, RegisterBroker{Info: BrokerInfo{ID: 1}}, RegisterBroker{Info: BrokerInfo{ID: 2}})
		p, _ := s.Partition("t", 0)
		s = mustApply(t, s, AlterPartition{Topic: "t", Partition: 0, Broker: 1, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, ISR: ids(1, 2)})
		if p, _ := s.Partition("t", 0); len(p.ELR) != 0 {
			t.Fatalf("got %+v, want no eligible replicas once the ISR is at min.insync.replicas", p)
		}
	})
}

// TestUncleanRestartOfUnnoticedLeader: a leader that crashed and came back
// before Serf noticed registers as unclean: it is fenced first, so the
// partition moves to a replica that kept every record, and the crashed
// one rejoins as a follower.
func TestUncleanRestartOfUnnoticedLeader(t *testing.T) {
	s := withTopic(brokers(t, 1, 2, 3), part(ids(1, 2, 3), ids(1, 2, 3), 1, 0, 0))
	s = mustApply(t, s, RegisterBroker{Info: BrokerInfo{ID: 1, Unclean: true}})
	p, _ := s.Partition("t", 0)
	if p.Leader != 2 || p.InISR(1) || p.LeaderEpoch != 1 {
		t.Fatalf("got %+v, want 2 leading at epoch 1 and 1 out of the ISR", p)
	}
	if b := s.Brokers[1]; b.Fenced || !b.Unclean {
		t.Fatalf("got %+v, want 1 registered, unfenced, marked unclean", b)
	}
}
