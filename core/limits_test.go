package core

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-io/fluxo/core/cluster"
)

// startNodeWith starts a node with DefaultConfig changed by edit.
func startNodeWith(t *testing.T, edit func(*Config)) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Cluster.Timers = cluster.FastTimers() // not a test of timing: elect at once
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = ""
	edit(&cfg)
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New: got error %v, want nil", err)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("Start: got error %v, want nil", err)
	}
	t.Cleanup(func() { n.Shutdown(ctxT(t)) })
	return n
}

// TestPartitionLimitsThroughKadm: CreateTopics and CreatePartitions,
// validate-only or not, are refused above the per-topic limit with
// INVALID_PARTITIONS and above the per-broker limit with POLICY_VIOLATION
// naming the broker and the limit.
func TestPartitionLimitsThroughKadm(t *testing.T) {
	node := startNodeWith(t, func(c *Config) {
		c.Broker.MaxPartitionsPerTopic = 100
		c.Broker.MaxPartitionsPerBroker = 10
	})
	adm := kadm.NewClient(client(t, node))
	ctx := ctxT(t)

	topicErr := func(what string, rs kadm.CreateTopicResponses, err error, want error) kadm.CreateTopicResponse {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: got request error %v, want a response", what, err)
		}
		for _, r := range rs {
			if !errors.Is(r.Err, want) || (want == nil) != (r.Err == nil) {
				t.Fatalf("%s: got %v, want %v", what, r.Err, want)
			}
			return r
		}
		t.Fatalf("%s: got no topic in the response, want one", what)
		return kadm.CreateTopicResponse{}
	}
	rs, err := adm.ValidateCreateTopics(ctx, math.MaxInt32, 1, nil, "huge")
	topicErr("validate 2^31-1 partitions", rs, err, kerr.InvalidPartitions)
	rs, err = adm.CreateTopics(ctx, 101, 1, nil, "huge")
	topicErr("create 101 partitions", rs, err, kerr.InvalidPartitions)
	rs, err = adm.CreateTopics(ctx, 8, 1, nil, "a")
	topicErr("create 8 partitions", rs, err, nil)
	rs, err = adm.ValidateCreateTopics(ctx, 3, 1, nil, "b")
	topicErr("validate 3 more partitions", rs, err, kerr.PolicyViolation)
	rs, err = adm.CreateTopics(ctx, 3, 1, nil, "b")
	r := topicErr("create 3 more partitions", rs, err, kerr.PolicyViolation)
	if want := "broker 1 would host 11 partition replicas, above the limit of 10"; !strings.Contains(r.ErrMessage, want) {
		t.Errorf("POLICY_VIOLATION message: got %q, want it to contain %q", r.ErrMessage, want)
	}

	partErr := func(what string, rs kadm.CreatePartitionsResponses, err error, want error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: got request error %v, want a response", what, err)
		}
		r, ok := rs["a"]
		if !ok {
			t.Fatalf("%s: got no answer for topic a, want one", what)
		}
		if !errors.Is(r.Err, want) || (want == nil) != (r.Err == nil) {
			t.Fatalf("%s: got %v, want %v", what, r.Err, want)
		}
	}
	prs, err := adm.ValidateUpdatePartitions(ctx, math.MaxInt32, "a")
	partErr("validate growing to 2^31-1", prs, err, kerr.InvalidPartitions)
	prs, err = adm.UpdatePartitions(ctx, 11, "a")
	partErr("grow to 11", prs, err, kerr.PolicyViolation)
	prs, err = adm.ValidateUpdatePartitions(ctx, 11, "a")
	partErr("validate growing to 11", prs, err, kerr.PolicyViolation)
	prs, err = adm.UpdatePartitions(ctx, 10, "a")
	partErr("grow to 10", prs, err, nil)

	td, err := adm.ListTopics(ctx, "a", "b", "huge")
	if err != nil {
		t.Fatalf("ListTopics: got %v, want nil", err)
	}
	if got := len(td["a"].Partitions); got != 10 {
		t.Errorf("partitions of a: got %d, want 10", got)
	}
	if td.Has("b") || td.Has("huge") {
		t.Errorf("refused topics: got %v, want neither b nor huge", td.Names())
	}
}
