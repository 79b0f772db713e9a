package broker

import (
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/fluxo-io/fluxo/core/cluster"
)

// ErrPolicyViolation marks a request the broker's limits refuse although
// it is well formed: a topic or partition creation that would put more
// partition replicas on a broker than MaxPartitionsPerBroker (Kafka
// answers POLICY_VIOLATION).
var ErrPolicyViolation = errors.New("broker: policy violation")

// ValidateNewTopic checks a topic creation without making it: the name,
// the partition count against MaxPartitionsPerTopic, the replication
// factor against the live brokers, the configs, and the replicas each
// broker would host after placement against MaxPartitionsPerBroker.
// partitions and rf of 0 or less mean the defaults, as in CreateTopic.
// It does not check whether the topic exists.
func (b *Broker) ValidateNewTopic(name string, partitions int32, rf int16, configs map[string]string) error {
	if err := ValidateTopicName(name); err != nil {
		return err
	}
	partitions, rf = b.topicDefaults(partitions, rf)
	if err := b.checkTopicPartitions(name, partitions); err != nil {
		return err
	}
	if err := b.ValidateTopicConfigs(configs); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return b.checkBrokerPartitions(b.State(), name, 0, partitions, int(rf))
}

// topicDefaults replaces a partition count or replication factor of 0 or
// less by the broker's default; a replication factor left at 0 after
// that is resolved by the controller (min(3, live brokers)).
func (b *Broker) topicDefaults(partitions int32, rf int16) (int32, int16) {
	if partitions <= 0 {
		partitions = b.cfg.DefaultPartitions
	}
	if rf <= 0 {
		rf = b.cfg.DefaultReplicationFactor
	}
	return partitions, rf
}

// checkTopicPartitions refuses a topic of more than MaxPartitionsPerTopic
// partitions, before anything is allocated for them.
func (b *Broker) checkTopicPartitions(name string, partitions int32) error {
	if partitions > b.cfg.MaxPartitionsPerTopic {
		return fmt.Errorf("%w: topic %s: %d partitions exceed the limit of %d per topic", ErrInvalidPartitions, name, partitions, b.cfg.MaxPartitionsPerTopic)
	}
	return nil
}

// checkBrokerPartitions refuses adding partitions [from, to) of topic
// name, rf replicas each (0 or less: the controller's default), when a
// broker receiving one of the new replicas would then host more than
// MaxPartitionsPerBroker partition replicas (Kafka's
// max.broker.partitions, KIP-578). The placement is the controller's
// (see placement); the count is taken on this broker's copy of the
// metadata, so creations racing through several brokers are each checked
// against the state before the others.
func (b *Broker) checkBrokerPartitions(st *cluster.State, name string, from, to int32, rf int) error {
	live := st.Live()
	if rf <= 0 {
		rf = min(3, len(live))
	}
	if rf < 1 || rf > len(live) {
		return fmt.Errorf("%w: %d replicas asked, %d brokers live", ErrInvalidReplication, rf, len(live))
	}
	added := placement(live, name, from, to, rf)
	hosted := hostedReplicas(st)
	limit := int64(b.cfg.MaxPartitionsPerBroker)
	for _, id := range live {
		if n := added[id]; n > 0 && hosted[id]+n > limit {
			return fmt.Errorf("%w: broker %d would host %d partition replicas, above the limit of %d per broker (max.broker.partitions)",
				ErrPolicyViolation, id, hosted[id]+n, limit)
		}
	}
	return nil
}

// placement counts the replicas each live broker receives when partitions
// [from, to) of topic name are placed with rf replicas each. It mirrors
// the controller's placement (core/cluster's place): round robin over
// the live brokers, ascending, from the FNV-1a hash of the topic name.
// A test compares the two.
func placement(live []int32, name string, from, to int32, rf int) map[int32]int64 {
	out := make(map[int32]int64, len(live))
	if len(live) == 0 || to <= from {
		return out
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	start := int(h.Sum32() % uint32(len(live)))
	for i := from; i < to; i++ {
		for j := range rf {
			out[live[(start+int(i)+j)%len(live)]]++
		}
	}
	return out
}

// hostedReplicas counts the partition replicas each broker hosts.
func hostedReplicas(st *cluster.State) map[int32]int64 {
	out := map[int32]int64{}
	for _, ts := range st.Topics {
		for _, p := range ts.Partitions {
			for _, r := range p.Replicas {
				out[r]++
			}
		}
	}
	return out
}
