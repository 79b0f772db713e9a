package group

// State is where a group is in its life cycle, as Kafka names it.
type State int8

const (
	// Empty: no members. The group may still hold committed offsets, and
	// a join moves it to PreparingRebalance.
	Empty State = iota
	// PreparingRebalance: waiting for every member to (re)join.
	PreparingRebalance
	// CompletingRebalance: members have their join responses; waiting for
	// the leader's assignments in SyncGroup.
	CompletingRebalance
	// Stable: every member has (or can fetch) its assignment.
	Stable
	// Dead: the group is being or has been removed.
	Dead
)

var stateNames = [...]string{
	Empty:               "Empty",
	PreparingRebalance:  "PreparingRebalance",
	CompletingRebalance: "CompletingRebalance",
	Stable:              "Stable",
	Dead:                "Dead",
}

// String returns the name Kafka uses on the wire (DescribeGroups,
// ListGroups), such as "PreparingRebalance".
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "Unknown"
}

// validPrevious lists, for each state, the states a group may enter it
// from (Kafka's GroupState.validPreviousStates).
var validPrevious = [...][]State{
	Empty:               {PreparingRebalance},
	PreparingRebalance:  {Stable, CompletingRebalance, Empty},
	CompletingRebalance: {PreparingRebalance},
	Stable:              {CompletingRebalance},
	Dead:                {Stable, PreparingRebalance, CompletingRebalance, Empty, Dead},
}

// canTransition reports whether a group in state from may move to to.
func canTransition(from, to State) bool {
	if to < 0 || int(to) >= len(validPrevious) {
		return false
	}
	for _, s := range validPrevious[to] {
		if s == from {
			return true
		}
	}
	return false
}
