package broker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/fluxo-io/fluxo/core/cluster"
)

// stateWith returns a metadata state with the given brokers registered
// (fenced ones fenced afterwards) and the topics created, placed by the
// controller's own rules.
func stateWith(t *testing.T, brokers []int32, fenced []int32, topics map[string][2]int) *cluster.State {
	t.Helper()
	st := cluster.NewState()
	apply := func(cmd cluster.Command) {
		t.Helper()
		next, _, err := st.Apply(cmd)
		if err != nil {
			t.Fatalf("apply %T: got error %v, want nil", cmd, err)
		}
		st = next
	}
	for _, id := range brokers {
		apply(cluster.RegisterBroker{Info: cluster.BrokerInfo{ID: id, KafkaAddr: fmt.Sprintf("127.0.0.1:%d", 9000+id)}})
	}
	for name, pr := range topics {
		apply(cluster.CreateTopic{Name: name, Partitions: int32(pr[0]), ReplicationFactor: int16(pr[1])})
	}
	for _, id := range fenced {
		apply(cluster.FenceBroker{ID: id})
	}
	return st
}

// TestPlacementMatchesController: the replicas per broker that the
// limit check predicts are those the controller's placement produces,
// for new topics and for partitions added to existing ones.
func TestPlacementMatchesController(t *testing.T) {
	for _, tc := range []struct {
		brokers, fenced []int32
		name            string
		from, to        int32
		rf              int
	}{
		{[]int32{1}, nil, "a", 0, 5, 1},
		{[]int32{1, 2, 3}, nil, "telemetry", 0, 7, 2},
		{[]int32{1, 2, 3}, nil, "alarms", 0, 1, 3},
		{[]int32{1, 2, 3, 4, 5}, []int32{2}, "devices", 0, 13, 3},
		{[]int32{3, 7, 9}, nil, "grow", 4, 11, 2},
		{[]int32{1, 2, 3, 4}, []int32{4}, "grow2", 3, 10, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before *cluster.State
			if tc.from > 0 {
				before = stateWith(t, tc.brokers, tc.fenced, map[string][2]int{tc.name: {int(tc.from), tc.rf}})
			} else {
				before = stateWith(t, tc.brokers, tc.fenced, nil)
			}
			var cmd cluster.Command = cluster.CreateTopic{Name: tc.name, Partitions: tc.to, ReplicationFactor: int16(tc.rf)}
			if tc.from > 0 {
				cmd = cluster.CreatePartitions{Name: tc.name, Total: tc.to}
			}
			after, _, err := before.Apply(cmd)
			if err != nil {
				t.Fatalf("apply: got error %v, want nil", err)
			}
			want := hostedReplicas(after)
			for id, n := range hostedReplicas(before) {
				want[id] -= n
			}
			got := placement(before.Live(), tc.name, tc.from, tc.to, tc.rf)
			for _, id := range tc.brokers {
				if got[id] != want[id] {
					t.Errorf("broker %d: got %d new replicas, want %d (the controller's placement)", id, got[id], want[id])
				}
			}
		})
	}
}

// TestPartitionLimits is the table of the per-topic and per-broker
// limits, checked without a cluster.
func TestPartitionLimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPartitionsPerTopic = 100
	cfg.MaxPartitionsPerBroker = 50
	b := &Broker{cfg: cfg}
	// Three brokers, each hosting 2*30/3 = 20 replicas of "existing".
	three := stateWith(t, []int32{1, 2, 3}, nil, map[string][2]int{"existing": {30, 2}})
	for _, tc := range []struct {
		name       string
		st         *cluster.State
		from, to   int32
		rf         int
		wantErr    error
		wantInText string
	}{
		{name: "within both", st: three, to: 30, rf: 2},
		{name: "per-broker exactly at the limit", st: three, to: 45, rf: 2},
		{name: "per-broker one over", st: three, to: 46, rf: 2, wantErr: ErrPolicyViolation, wantInText: "limit of 50 per broker"},
		{name: "rf 3 fills every broker", st: three, to: 31, rf: 3, wantErr: ErrPolicyViolation},
		{name: "per-topic at the limit, per-broker over", st: three, to: 100, rf: 1, wantErr: ErrPolicyViolation},
		{name: "per-topic over", st: three, to: 101, rf: 1, wantErr: ErrInvalidPartitions, wantInText: "limit of 100 per topic"},
		{name: "per-topic max int32", st: three, to: math.MaxInt32, rf: 1, wantErr: ErrInvalidPartitions},
		{name: "growing within", st: three, from: 10, to: 40, rf: 2},
		{name: "growing over", st: three, from: 10, to: 56, rf: 2, wantErr: ErrPolicyViolation},
		{name: "default rf is min(3, live)", st: three, to: 31, rf: 0, wantErr: ErrPolicyViolation},
		{name: "rf above live brokers", st: three, to: 1, rf: 4, wantErr: ErrInvalidReplication},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := b.checkTopicPartitions("new", tc.to)
			if err == nil {
				err = b.checkBrokerPartitions(tc.st, "new", tc.from, tc.to, tc.rf)
			}
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("got error %v, want %v", err, tc.wantErr)
			}
			if tc.wantInText != "" && !strings.Contains(err.Error(), tc.wantInText) {
				t.Errorf("got message %q, want it to contain %q", err, tc.wantInText)
			}
		})
	}
}

// TestPartitionLimitsOnBroker: CreateTopic, ValidateNewTopic and
// CreatePartitions (validate-only too) apply both limits on a real
// single-node cluster, and a refused request changes nothing.
func TestPartitionLimitsOnBroker(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPartitionsPerTopic = 20
	cfg.MaxPartitionsPerBroker = 25
	b := openTestBrokerConfig(t, t.TempDir(), cfg)
	defer b.Close()
	ctx := context.Background()

	if err := b.ValidateNewTopic("huge", math.MaxInt32, 1, nil); !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("ValidateNewTopic of 2^31-1 partitions: got %v, want ErrInvalidPartitions", err)
	}
	if _, err := b.CreateTopic(ctx, "huge", 21, 1, nil); !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("CreateTopic of 21 partitions: got %v, want ErrInvalidPartitions", err)
	}
	if _, err := b.CreateTopic(ctx, "a", 20, 1, nil); err != nil {
		t.Fatalf("CreateTopic of 20 partitions: got %v, want nil", err)
	}
	if err := b.ValidateNewTopic("b", 6, 1, nil); !errors.Is(err, ErrPolicyViolation) {
		t.Fatalf("ValidateNewTopic of 6 more partitions: got %v, want ErrPolicyViolation", err)
	}
	if _, err := b.CreateTopic(ctx, "b", 6, 1, nil); !errors.Is(err, ErrPolicyViolation) {
		t.Fatalf("CreateTopic of 6 more partitions: got %v, want ErrPolicyViolation", err)
	}
	if _, ok := b.Topic("b"); ok {
		t.Fatalf("topic b: got created, want refused")
	}
	if _, err := b.CreateTopic(ctx, "b", 2, 1, nil); err != nil {
		t.Fatalf("CreateTopic of 2 more partitions: got %v, want nil", err)
	}
	for _, validateOnly := range []bool{true, false} {
		if err := b.CreatePartitions(ctx, "b", 6, validateOnly); !errors.Is(err, ErrPolicyViolation) {
			t.Fatalf("CreatePartitions to 6 (validate only %v): got %v, want ErrPolicyViolation", validateOnly, err)
		}
		if err := b.CreatePartitions(ctx, "a", math.MaxInt32, validateOnly); !errors.Is(err, ErrInvalidPartitions) {
			t.Fatalf("CreatePartitions to 2^31-1 (validate only %v): got %v, want ErrInvalidPartitions", validateOnly, err)
		}
	}
	if err := b.CreatePartitions(ctx, "b", 5, false); err != nil {
		t.Fatalf("CreatePartitions to 5: got %v, want nil", err)
	}
	if got := hostedReplicas(b.State())[1]; got != 25 {
		t.Fatalf("replicas on broker 1: got %d, want 25", got)
	}
}
