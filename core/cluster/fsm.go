package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// FSM is the Raft state machine: it applies the committed commands to the
// State. It implements raft.FSM; Cluster runs one. (Outside this package,
// build States for tests with NewState and State.Apply.)
//
// Raft calls Apply, Snapshot and Restore from one goroutine. State and
// Watch may be called from any goroutine at any time: the current State
// sits behind an atomic pointer and is replaced, never modified.
type FSM struct {
	cur atomic.Pointer[published]
	// onLeaderChanges, if set, is called from Apply with the number of
	// partition leader changes a command made (for metrics).
	onLeaderChanges func(n int)
}

// published is one State and the channel closed when it is replaced.
type published struct {
	s       *State
	changed chan struct{}
}

// applyResponse is what FSM.Apply returns to raft (and raft to
// ApplyFuture.Response).
type applyResponse struct {
	res Result
	err error
}

// NewFSM returns an FSM holding NewState().
func NewFSM() *FSM {
	f := &FSM{}
	f.cur.Store(&published{s: NewState(), changed: make(chan struct{})})
	return f
}

// State returns the latest applied state. It is never modified.
func (f *FSM) State() *State { return f.cur.Load().s }

// Watch returns the latest applied state and a channel closed when a later
// one replaces it.
func (f *FSM) Watch() (*State, <-chan struct{}) {
	p := f.cur.Load()
	return p.s, p.changed
}

func (f *FSM) publish(s *State) {
	old := f.cur.Swap(&published{s: s, changed: make(chan struct{})})
	close(old.changed)
}

// Apply applies one committed log entry. It returns an applyResponse; a
// command refused by its rules changes nothing (State.Index stays at the
// last command that changed the state). An entry that does not decode is
// refused the same way on every node.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := decodeCommand(l.Data)
	if err != nil {
		return applyResponse{err: err}
	}
	next, res, leaderChanges, err := applyCommand(f.State(), cmd)
	if err != nil {
		return applyResponse{err: err}
	}
	next.Index = l.Index
	f.publish(next)
	if leaderChanges > 0 && f.onLeaderChanges != nil {
		f.onLeaderChanges(leaderChanges)
	}
	return applyResponse{res: res}
}

// Snapshot captures the current State; persisting it (JSON) may run
// concurrently with later Applies since a State is never modified.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return fsmSnapshot{f.State()}, nil
}

// Restore replaces the state with a snapshot's.
func (f *FSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	s := NewState()
	if err := json.NewDecoder(r).Decode(s); err != nil {
		return fmt.Errorf("cluster: cannot restore snapshot: %w", err)
	}
	if s.Brokers == nil {
		s.Brokers = map[int32]BrokerInfo{}
	}
	if s.Topics == nil {
		s.Topics = map[string]*TopicState{}
	}
	f.publish(s)
	return nil
}

type fsmSnapshot struct{ s *State }

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.s); err != nil {
		sink.Cancel()
		return fmt.Errorf("cluster: cannot write snapshot: %w", err)
	}
	return sink.Close()
}

func (fsmSnapshot) Release() {}
