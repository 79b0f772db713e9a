package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"

	"github.com/fluxo-io/fluxo/core/acl"
)

// Command is one change to the cluster metadata, proposed with
// Cluster.Apply and applied by every node's FSM in log order. The set of
// commands is closed: the types below are all there is.
//
// Applying a command depends only on the State and the command: anything
// random or time-dependent (a topic id) is decided by the proposer and
// carried in the command.
type Command interface {
	kind() commandKind
	apply(t *txn) (Result, error)
}

// Result is what a command returns besides its error.
type Result struct {
	// FirstProducerID is the first id of an AllocateProducerIDs range.
	FirstProducerID int64 `json:"first_producer_id,omitempty"`
	// Partition is the partition's new state after AlterPartition or
	// ReassignPartition.
	Partition PartitionState `json:"partition"`
	// Deleted holds, for each filter of a DeleteACLs in order, the
	// bindings it removed.
	Deleted [][]acl.Binding `json:"deleted,omitempty"`
}

// ErrInvalidCommand is returned for a command that is malformed in itself
// (an empty topic name, a producer id count below 1, duplicate replicas).
var ErrInvalidCommand = errors.New("cluster: invalid command")

// commandKind is the first byte of an encoded command. The values are
// stored in Raft logs and snapshots of every node: never renumber them.
type commandKind uint8

const (
	kindCreateTopic         commandKind = 1
	kindDeleteTopic         commandKind = 2
	kindCreatePartitions    commandKind = 3
	kindSetConfigs          commandKind = 4
	kindAllocateProducerIDs commandKind = 5
	kindAlterPartition      commandKind = 6
	kindRegisterBroker      commandKind = 7
	kindFenceBroker         commandKind = 8
	kindRemoveBroker        commandKind = 9
	kindReassignPartition   commandKind = 10
	kindUpsertScram         commandKind = 11
	kindDeleteScram         commandKind = 12
	kindCreateACLs          commandKind = 13
	kindDeleteACLs          commandKind = 14
)

func (k commandKind) String() string {
	switch k {
	case kindCreateTopic:
		return "create-topic"
	case kindDeleteTopic:
		return "delete-topic"
	case kindCreatePartitions:
		return "create-partitions"
	case kindSetConfigs:
		return "set-configs"
	case kindAllocateProducerIDs:
		return "allocate-producer-ids"
	case kindAlterPartition:
		return "alter-partition"
	case kindRegisterBroker:
		return "register-broker"
	case kindFenceBroker:
		return "fence-broker"
	case kindRemoveBroker:
		return "remove-broker"
	case kindReassignPartition:
		return "reassign-partition"
	case kindUpsertScram:
		return "upsert-scram-credential"
	case kindDeleteScram:
		return "delete-scram-credential"
	case kindCreateACLs:
		return "create-acls"
	case kindDeleteACLs:
		return "delete-acls"
	}
	return fmt.Sprintf("command-%d", uint8(k))
}

// encodeCommand is the command's kind byte followed by its JSON body.
// A command whose JSON would not decode to itself (an ACL command with an
// UNKNOWN enum, which JSON carries as a name that does not parse back) is
// refused here with its validation error, before it reaches a log.
func encodeCommand(c Command) ([]byte, error) {
	if v, ok := c.(interface{ validate() error }); ok {
		if err := v.validate(); err != nil {
			return nil, err
		}
	}
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot encode %s: %w", c.kind(), err)
	}
	return append([]byte{byte(c.kind())}, body...), nil
}

// decodeCommand reverses encodeCommand.
func decodeCommand(b []byte) (Command, error) {
	if len(b) == 0 {
		return nil, errors.New("cluster: empty command")
	}
	k, body := commandKind(b[0]), b[1:]
	var c Command
	var err error
	switch k {
	case kindCreateTopic:
		c, err = decodeAs[CreateTopic](body)
	case kindDeleteTopic:
		c, err = decodeAs[DeleteTopic](body)
	case kindCreatePartitions:
		c, err = decodeAs[CreatePartitions](body)
	case kindSetConfigs:
		c, err = decodeAs[SetConfigs](body)
	case kindAllocateProducerIDs:
		c, err = decodeAs[AllocateProducerIDs](body)
	case kindAlterPartition:
		c, err = decodeAs[AlterPartition](body)
	case kindRegisterBroker:
		c, err = decodeAs[RegisterBroker](body)
	case kindFenceBroker:
		c, err = decodeAs[FenceBroker](body)
	case kindRemoveBroker:
		c, err = decodeAs[RemoveBroker](body)
	case kindReassignPartition:
		c, err = decodeAs[ReassignPartition](body)
	case kindUpsertScram:
		c, err = decodeAs[UpsertScramCredential](body)
	case kindDeleteScram:
		c, err = decodeAs[DeleteScramCredential](body)
	case kindCreateACLs:
		c, err = decodeAs[CreateACLs](body)
	case kindDeleteACLs:
		c, err = decodeAs[DeleteACLs](body)
	default:
		return nil, fmt.Errorf("cluster: unknown command type %d", b[0])
	}
	if err == nil {
		if v, ok := c.(interface{ validate() error }); ok {
			err = v.validate()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot decode %s: %w", k, err)
	}
	return c, nil
}

func decodeAs[T Command](body []byte) (Command, error) {
	var c T
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, err
	}
	return c, nil
}

// CreateTopic creates a topic and places its replicas: round robin over
// the unfenced brokers sorted by id, partition i of a topic starting at
// broker (h+i) mod n where h is a hash of the topic name, so that the
// leaders (the first replicas) of a topic's partitions, and of
// single-partition topics, spread over the brokers. Every ISR starts as
// the full replica list, led by the first replica, at epoch 0.
//
// Errors: ErrTopicExists, ErrInvalidPartitions (Partitions < 1),
// ErrReplicationFactor (more than the unfenced brokers, or none).
type CreateTopic struct {
	Name       string `json:"name"`
	Partitions int32  `json:"partitions"`
	// ReplicationFactor <= 0 means min(3, unfenced brokers).
	ReplicationFactor int16             `json:"replication_factor"`
	Configs           map[string]string `json:"configs,omitempty"`
	// ID is the topic id; Cluster.Apply fills a random one when zero.
	ID [16]byte `json:"id"`
}

// DeleteTopic deletes a topic. Error: ErrUnknownTopic.
type DeleteTopic struct {
	Name string `json:"name"`
}

// CreatePartitions grows a topic to Total partitions, placing the new ones
// as CreateTopic does with the topic's replication factor (the replica
// count of partition 0). Errors: ErrUnknownTopic, ErrInvalidPartitions
// (Total not above the current count), ErrReplicationFactor.
type CreatePartitions struct {
	Name  string `json:"name"`
	Total int32  `json:"total"`
}

// SetConfigs replaces a topic's configs. Error: ErrUnknownTopic.
type SetConfigs struct {
	Name    string            `json:"name"`
	Configs map[string]string `json:"configs,omitempty"`
}

// AllocateProducerIDs reserves N consecutive producer ids; the first is
// Result.FirstProducerID. Ids start at 1000. Error: ErrInvalidCommand for
// N < 1.
type AllocateProducerIDs struct {
	N int64 `json:"n"`
}

// AlterPartition is a partition leader's change to its ISR, Kafka's
// AlterPartition. It is refused with ErrUnknownTopic (no such partition),
// ErrNotLeader (Broker does not lead it), ErrFencedLeaderEpoch (LeaderEpoch
// is not the current one) or ErrInvalidUpdate (PartitionEpoch is not the
// current one, or the ISR is empty, has duplicates, is not a subset of the
// replicas, lacks the leader, or adds a fenced or unregistered broker: a
// fenced broker may stay in or leave the ISR but not join it). On success
// the ISR is replaced, PartitionEpoch goes up by one and Result.Partition
// is the new state.
type AlterPartition struct {
	Topic          string  `json:"topic"`
	Partition      int32   `json:"partition"`
	Broker         int32   `json:"broker"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	PartitionEpoch int32   `json:"partition_epoch"`
	ISR            []int32 `json:"isr"`
}

// RegisterBroker adds a broker or updates its addresses, and unfences it.
// Every leaderless partition whose ISR holds the broker gets it as leader
// (LeaderEpoch and PartitionEpoch up by one).
type RegisterBroker struct {
	Info BrokerInfo `json:"info"`
}

// FenceBroker marks a broker fenced and moves everything off it. For each
// partition: the broker leaves the ISR unless it is the ISR's only member
// (the last replica standing stays, as in Kafka, so it can lead again when
// it comes back); if it led, the new leader is the first replica (in
// Replicas order) in the new ISR that is unfenced, else NoLeader.
// LeaderEpoch goes up by one when the leader changes, PartitionEpoch on any
// change. Fencing a fenced broker changes nothing. Error: ErrUnknownBroker.
type FenceBroker struct {
	ID int32 `json:"id"`
}

// RemoveBroker fences a broker as FenceBroker does, then deletes it from
// State.Brokers. Its partitions keep naming it in Replicas until they are
// reassigned. Error: ErrUnknownBroker.
type RemoveBroker struct {
	ID int32 `json:"id"`
}

// ReassignPartition replaces a partition's replica set. All replicas must
// be registered (ErrUnknownBroker) and distinct (ErrInvalidCommand). The
// ISR becomes ISR ∩ Replicas; if that is empty the command is refused with
// ErrInvalidUpdate and nothing changes (add the new replicas first, let
// them join the ISR, then drop the old ones). If the leader is not in the
// new set, or there is none, the first new replica that is in the ISR and
// unfenced leads (LeaderEpoch up by one), else NoLeader.
type ReassignPartition struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Replicas  []int32 `json:"replicas"`
}

func (CreateTopic) kind() commandKind           { return kindCreateTopic }
func (DeleteTopic) kind() commandKind           { return kindDeleteTopic }
func (CreatePartitions) kind() commandKind      { return kindCreatePartitions }
func (SetConfigs) kind() commandKind            { return kindSetConfigs }
func (AllocateProducerIDs) kind() commandKind   { return kindAllocateProducerIDs }
func (AlterPartition) kind() commandKind        { return kindAlterPartition }
func (RegisterBroker) kind() commandKind        { return kindRegisterBroker }
func (FenceBroker) kind() commandKind           { return kindFenceBroker }
func (RemoveBroker) kind() commandKind          { return kindRemoveBroker }
func (ReassignPartition) kind() commandKind     { return kindReassignPartition }
func (UpsertScramCredential) kind() commandKind { return kindUpsertScram }
func (DeleteScramCredential) kind() commandKind { return kindDeleteScram }
func (CreateACLs) kind() commandKind            { return kindCreateACLs }
func (DeleteACLs) kind() commandKind            { return kindDeleteACLs }

// NewState returns the empty state a cluster starts from.
func NewState() *State {
	return &State{
		Brokers:        map[int32]BrokerInfo{},
		Topics:         map[string]*TopicState{},
		NextProducerID: 1000,
	}
}

// Apply returns the state after cmd and the command's result, leaving s
// unchanged (the new state shares what cmd did not touch). On error the
// returned state is s. Index is left as it was: the FSM sets it.
func (s *State) Apply(cmd Command) (*State, Result, error) {
	next, res, _, err := applyCommand(s, cmd)
	return next, res, err
}

// applyCommand applies cmd to a copy of s and also returns how many
// partition leaders it changed.
func applyCommand(s *State, cmd Command) (*State, Result, int, error) {
	t := newTxn(s)
	res, err := cmd.apply(t)
	if err != nil {
		return s, Result{}, 0, err
	}
	return t.s, res, t.leaderChanges, nil
}

// txn builds the next State by copy on write: the maps are copied once,
// a topic is copied the first time one of its partitions changes, and a
// changed partition gets new slices; nothing reachable from the old State
// is written.
type txn struct {
	old           *State
	s             *State
	copied        map[string]bool // topics already copied into s
	leaderChanges int
}

func newTxn(old *State) *txn {
	s := &State{
		Index:          old.Index,
		Brokers:        maps.Clone(old.Brokers),
		Topics:         maps.Clone(old.Topics),
		NextProducerID: old.NextProducerID,
		Users:          old.Users, // commands that change it copy it first
		ACLs:           old.ACLs,  // likewise
	}
	if s.Brokers == nil {
		s.Brokers = map[int32]BrokerInfo{}
	}
	if s.Topics == nil {
		s.Topics = map[string]*TopicState{}
	}
	return &txn{old: old, s: s, copied: map[string]bool{}}
}

// topic returns a writable copy of topic name in the new state.
func (t *txn) topic(name string) *TopicState {
	ts := t.s.Topics[name]
	if ts == nil || t.copied[name] {
		return ts
	}
	c := *ts
	c.Partitions = slices.Clone(ts.Partitions)
	t.s.Topics[name] = &c
	t.copied[name] = true
	return &c
}

// setPartition stores p as partition i of topic name.
func (t *txn) setPartition(name string, i int, p PartitionState) {
	ts := t.topic(name)
	if ts.Partitions[i].Leader != p.Leader {
		t.leaderChanges++
	}
	ts.Partitions[i] = p
}

func (t *txn) fenced(id int32) bool {
	b, ok := t.s.Brokers[id]
	return !ok || b.Fenced
}

// place returns the replicas of partitions [from, to) of topic name with
// rf replicas each, round robin over the unfenced brokers.
func place(s *State, name string, from, to int32, rf int) ([]PartitionState, error) {
	live := s.Live()
	if rf < 1 || rf > len(live) {
		return nil, ErrReplicationFactor
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	start := int(h.Sum32() % uint32(len(live)))
	var out []PartitionState
	for i := from; i < to; i++ {
		r := make([]int32, rf)
		for j := range r {
			r[j] = live[(start+int(i)+j)%len(live)]
		}
		out = append(out, PartitionState{Replicas: r, ISR: slices.Clone(r), Leader: r[0]})
	}
	return out, nil
}

func (c CreateTopic) apply(t *txn) (Result, error) {
	if c.Name == "" {
		return Result{}, ErrInvalidCommand
	}
	if _, ok := t.s.Topics[c.Name]; ok {
		return Result{}, ErrTopicExists
	}
	if c.Partitions < 1 {
		return Result{}, ErrInvalidPartitions
	}
	rf := int(c.ReplicationFactor)
	if rf <= 0 {
		rf = min(3, len(t.s.Live()))
	}
	parts, err := place(t.s, c.Name, 0, c.Partitions, rf)
	if err != nil {
		return Result{}, err
	}
	t.s.Topics[c.Name] = &TopicState{Name: c.Name, ID: c.ID, Configs: maps.Clone(c.Configs), Partitions: parts}
	t.copied[c.Name] = true
	return Result{}, nil
}

func (c DeleteTopic) apply(t *txn) (Result, error) {
	if _, ok := t.s.Topics[c.Name]; !ok {
		return Result{}, ErrUnknownTopic
	}
	delete(t.s.Topics, c.Name)
	return Result{}, nil
}

func (c CreatePartitions) apply(t *txn) (Result, error) {
	old := t.s.Topics[c.Name]
	if old == nil {
		return Result{}, ErrUnknownTopic
	}
	n := int32(len(old.Partitions))
	if c.Total <= n {
		return Result{}, ErrInvalidPartitions
	}
	rf := 1
	if n > 0 {
		rf = len(old.Partitions[0].Replicas)
	}
	parts, err := place(t.s, c.Name, n, c.Total, rf)
	if err != nil {
		return Result{}, err
	}
	ts := t.topic(c.Name)
	ts.Partitions = append(ts.Partitions, parts...)
	return Result{}, nil
}

func (c SetConfigs) apply(t *txn) (Result, error) {
	if t.s.Topics[c.Name] == nil {
		return Result{}, ErrUnknownTopic
	}
	t.topic(c.Name).Configs = maps.Clone(c.Configs)
	return Result{}, nil
}

func (c AllocateProducerIDs) apply(t *txn) (Result, error) {
	if c.N < 1 {
		return Result{}, ErrInvalidCommand
	}
	first := t.s.NextProducerID
	t.s.NextProducerID += c.N
	return Result{FirstProducerID: first}, nil
}

func (c AlterPartition) apply(t *txn) (Result, error) {
	p, ok := t.s.Partition(c.Topic, c.Partition)
	if !ok {
		return Result{}, ErrUnknownTopic
	}
	switch {
	case c.Broker != p.Leader:
		return Result{}, ErrNotLeader
	case c.LeaderEpoch != p.LeaderEpoch:
		return Result{}, ErrFencedLeaderEpoch
	case c.PartitionEpoch != p.PartitionEpoch, len(c.ISR) == 0, !slices.Contains(c.ISR, p.Leader):
		return Result{}, ErrInvalidUpdate
	}
	for i, id := range c.ISR {
		if slices.Contains(c.ISR[:i], id) || !slices.Contains(p.Replicas, id) {
			return Result{}, ErrInvalidUpdate
		}
		if t.fenced(id) && !p.InISR(id) {
			return Result{}, ErrInvalidUpdate
		}
	}
	p.ISR = slices.Clone(c.ISR)
	for _, r := range p.ISR {
		p.ELR = without(p.ELR, r)
	}
	if len(p.ISR) >= MinInsync(t.s.Topics[c.Topic]) {
		p.ELR = nil
	}
	p.PartitionEpoch++
	t.setPartition(c.Topic, int(c.Partition), p)
	return Result{Partition: p}, nil
}

func (c RegisterBroker) apply(t *txn) (Result, error) {
	info := c.Info
	id := info.ID
	if old, ok := t.s.Brokers[id]; ok && info.Unclean && !old.Fenced {
		// Back from a crash before it was noticed: its last term ended
		// as a failure does, so it is fenced first (leadership and ISR
		// places go to replicas that kept every record).
		if err := fence(t, id); err != nil {
			return Result{}, err
		}
	}
	info.Fenced = false
	t.s.Brokers[id] = info
	for _, name := range sortedTopics(t.s) {
		for i, p := range t.s.Topics[name].Partitions {
			changed := false
			if info.Unclean && slices.Contains(p.ELR, id) {
				// Its log may be short: no longer eligible (KIP-966).
				p.ELR = without(p.ELR, id)
				changed = true
			}
			if p.Leader == NoLeader {
				switch {
				case p.InISR(id) && info.Unclean && len(p.ISR) == 1 && len(p.ELR) > 0:
					// The last ISR member came back from a crash, and
					// replicas that had every acknowledged record exist:
					// one of them leads when it is back, not this one.
					// Until one is back the partition has no leader.
					if e := electLeader(t, p.Replicas, p.ELR); e != NoLeader {
						p.Leader, p.ISR, p.ELR = e, []int32{e}, without(p.ELR, e)
						p.LeaderEpoch++
					} else {
						p.ISR = nil
					}
					changed = true
				case p.InISR(id):
					p.Leader = id
					p.LeaderEpoch++
					changed = true
				case len(p.ISR) == 0 && slices.Contains(p.ELR, id):
					p.Leader, p.ISR, p.ELR = id, []int32{id}, without(p.ELR, id)
					p.LeaderEpoch++
					changed = true
				case len(p.ISR) == 0 && len(p.ELR) == 0 && slices.Contains(p.Replicas, id):
					// Every eligible replica was removed for good: this
					// one is the best left.
					p.Leader, p.ISR = id, []int32{id}
					p.LeaderEpoch++
					changed = true
				}
			}
			if changed {
				p.PartitionEpoch++
				t.setPartition(name, i, p)
			}
		}
	}
	return Result{}, nil
}

// without returns ids without id, as a new slice.
func without(ids []int32, id int32) []int32 {
	out := slices.DeleteFunc(slices.Clone(ids), func(r int32) bool { return r == id })
	if len(out) == 0 {
		return nil
	}
	return out
}

func (c FenceBroker) apply(t *txn) (Result, error) {
	return Result{}, fence(t, c.ID)
}

func (c RemoveBroker) apply(t *txn) (Result, error) {
	if err := fence(t, c.ID); err != nil {
		return Result{}, err
	}
	delete(t.s.Brokers, c.ID)
	return Result{}, nil
}

func fence(t *txn, id int32) error {
	b, ok := t.s.Brokers[id]
	if !ok {
		return ErrUnknownBroker
	}
	b.Fenced = true
	t.s.Brokers[id] = b
	for _, name := range sortedTopics(t.s) {
		ts := t.s.Topics[name]
		minISR := MinInsync(ts)
		for i, p := range ts.Partitions {
			changed := false
			if p.InISR(id) && len(p.ISR) > 1 {
				p.ISR = without(p.ISR, id)
				if len(p.ISR) < minISR {
					// Out of an ISR now too small to commit: it has every
					// committed record and may lead later (KIP-966).
					p.ELR = append(slices.Clone(p.ELR), id)
				}
				changed = true
			}
			if p.Leader == id {
				p.Leader = electLeader(t, p.Replicas, p.ISR)
				if p.Leader == NoLeader && len(p.ISR) == 1 && p.ISR[0] == id {
					// The last ISR member failed: an eligible replica
					// leads if one runs, and the failed one joins them.
					if e := electLeader(t, p.Replicas, p.ELR); e != NoLeader {
						p.Leader, p.ISR, p.ELR = e, []int32{e}, append(without(p.ELR, e), id)
					}
				}
				p.LeaderEpoch++
				changed = true
			}
			if changed {
				p.PartitionEpoch++
				t.setPartition(name, i, p)
			}
		}
	}
	return nil
}

// electLeader returns the first of replicas that is in isr and unfenced,
// or NoLeader.
func electLeader(t *txn, replicas, isr []int32) int32 {
	for _, r := range replicas {
		if slices.Contains(isr, r) && !t.fenced(r) {
			return r
		}
	}
	return NoLeader
}

func (c ReassignPartition) apply(t *txn) (Result, error) {
	p, ok := t.s.Partition(c.Topic, c.Partition)
	if !ok {
		return Result{}, ErrUnknownTopic
	}
	if len(c.Replicas) == 0 {
		return Result{}, ErrInvalidCommand
	}
	for i, id := range c.Replicas {
		if slices.Contains(c.Replicas[:i], id) {
			return Result{}, ErrInvalidCommand
		}
		if _, ok := t.s.Brokers[id]; !ok {
			return Result{}, ErrUnknownBroker
		}
	}
	isr := slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return !slices.Contains(c.Replicas, r) })
	if len(isr) == 0 {
		return Result{}, ErrInvalidUpdate
	}
	p.Replicas = slices.Clone(c.Replicas)
	p.ISR = isr
	if p.Leader == NoLeader || !slices.Contains(c.Replicas, p.Leader) {
		if l := electLeader(t, p.Replicas, p.ISR); l != p.Leader {
			p.Leader = l
			p.LeaderEpoch++
		}
	}
	p.PartitionEpoch++
	t.setPartition(c.Topic, int(c.Partition), p)
	return Result{Partition: p}, nil
}

// sortedTopics returns the topic names in order, so that commands walk
// the topics the same way on every node (the outcome does not depend on
// the order today; keeping it fixed keeps it so).
func sortedTopics(s *State) []string {
	return slices.Sorted(maps.Keys(s.Topics))
}

// SCRAM mechanisms and their iteration bounds, as Kafka has them.
const (
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	// MinScramIterations and MaxScramIterations bound a credential's
	// iteration count (Kafka's ScramMechanism.minIterations for both
	// mechanisms, and its fixed maximum).
	MinScramIterations = 4096
	MaxScramIterations = 16384
)

// UpsertScramCredential sets User's credential for Mechanism (ScramSHA256
// or ScramSHA512), replacing any it had. Errors: ErrInvalidCommand (empty
// user), ErrUnsupportedMechanism, ErrInvalidCredential (iterations outside
// [MinScramIterations, MaxScramIterations], or an empty salt or key).
type UpsertScramCredential struct {
	User       string          `json:"user"`
	Mechanism  string          `json:"mechanism"`
	Credential ScramCredential `json:"credential"`
}

// DeleteScramCredential removes User's credential for Mechanism; a user
// left without credentials is removed. Errors: ErrInvalidCommand (empty
// user), ErrUnsupportedMechanism, ErrUnknownCredential (none stored).
type DeleteScramCredential struct {
	User      string `json:"user"`
	Mechanism string `json:"mechanism"`
}

// CreateACLs adds bindings; one equal to a stored binding (or to an
// earlier one of the same command) is not stored twice. Every binding must
// pass acl.Binding.Validate, else nothing is stored and the error wraps
// acl.ErrInvalid.
type CreateACLs struct {
	Bindings []acl.Binding `json:"bindings"`
}

// DeleteACLs removes every binding matching any of Filters.
// Result.Deleted[i] lists, in stored order, the bindings Filters[i]
// matched; a binding matched by several filters is listed under each and
// removed once, as Kafka does. Every filter must pass acl.Filter.Validate,
// else nothing is removed and the error wraps acl.ErrInvalid.
type DeleteACLs struct {
	Filters []acl.Filter `json:"filters"`
}

// ValidScramMechanism reports whether m is a SCRAM mechanism users can
// have credentials for.
func ValidScramMechanism(m string) bool { return m == ScramSHA256 || m == ScramSHA512 }

func (c UpsertScramCredential) apply(t *txn) (Result, error) {
	cred := c.Credential
	switch {
	case c.User == "":
		return Result{}, ErrInvalidCommand
	case !ValidScramMechanism(c.Mechanism):
		return Result{}, ErrUnsupportedMechanism
	case cred.Iterations < MinScramIterations || cred.Iterations > MaxScramIterations:
		return Result{}, ErrInvalidCredential
	case len(cred.Salt) == 0 || len(cred.StoredKey) == 0 || len(cred.ServerKey) == 0:
		return Result{}, ErrInvalidCredential
	}
	users := maps.Clone(t.s.Users)
	if users == nil {
		users = map[string]map[string]ScramCredential{}
	}
	mechs := maps.Clone(users[c.User])
	if mechs == nil {
		mechs = map[string]ScramCredential{}
	}
	mechs[c.Mechanism] = ScramCredential{
		Salt:       slices.Clone(cred.Salt),
		StoredKey:  slices.Clone(cred.StoredKey),
		ServerKey:  slices.Clone(cred.ServerKey),
		Iterations: cred.Iterations,
	}
	users[c.User] = mechs
	t.s.Users = users
	return Result{}, nil
}

func (c DeleteScramCredential) apply(t *txn) (Result, error) {
	switch {
	case c.User == "":
		return Result{}, ErrInvalidCommand
	case !ValidScramMechanism(c.Mechanism):
		return Result{}, ErrUnsupportedMechanism
	}
	if _, ok := t.s.Users[c.User][c.Mechanism]; !ok {
		return Result{}, ErrUnknownCredential
	}
	users := maps.Clone(t.s.Users)
	mechs := maps.Clone(users[c.User])
	delete(mechs, c.Mechanism)
	if len(mechs) == 0 {
		delete(users, c.User) // a user is there only with a credential
	} else {
		users[c.User] = mechs
	}
	if len(users) == 0 {
		users = nil // as a snapshot restores it
	}
	t.s.Users = users
	return Result{}, nil
}

func (c CreateACLs) validate() error {
	for _, b := range c.Bindings {
		if err := b.Validate(); err != nil {
			return err
		}
	}
	return nil
}

func (c CreateACLs) apply(t *txn) (Result, error) {
	if err := c.validate(); err != nil {
		return Result{}, err
	}
	acls := slices.Clone(t.s.ACLs)
	for _, b := range c.Bindings {
		if !slices.Contains(acls, b) {
			acls = append(acls, b)
		}
	}
	if len(acls) == 0 {
		acls = nil // as a snapshot restores it
	}
	t.s.ACLs = acls
	return Result{}, nil
}

func (c DeleteACLs) validate() error {
	for _, f := range c.Filters {
		if err := f.Validate(); err != nil {
			return err
		}
	}
	return nil
}

func (c DeleteACLs) apply(t *txn) (Result, error) {
	if err := c.validate(); err != nil {
		return Result{}, err
	}
	deleted := make([][]acl.Binding, len(c.Filters))
	var keep []acl.Binding
	for _, b := range t.s.ACLs {
		matched := false
		for i, f := range c.Filters {
			if f.Matches(b) {
				deleted[i] = append(deleted[i], b)
				matched = true
			}
		}
		if !matched {
			keep = append(keep, b)
		}
	}
	t.s.ACLs = keep
	return Result{Deleted: deleted}, nil
}
