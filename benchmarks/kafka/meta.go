package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// partitionState is one partition as a broker's Metadata answer shows it.
type partitionState struct {
	leader int32 // -1: none
	isr    []int32
}

// metaClient asks one broker, and only that one, for metadata: what that
// broker believes, rather than what a client's metadata cache holds or
// what whichever broker answered first believes.
type metaClient struct{ cl *kgo.Client }

func newMetaClient(addr string) (*metaClient, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return nil, err
	}
	return &metaClient{cl: cl}, nil
}

func (m *metaClient) Close() { m.cl.Close() }

// topic returns topic's partitions as the broker sees them, and the
// controller it names, in one request bounded by a second. A partition
// answered with an error code has leader -1.
func (m *metaClient) topic(ctx context.Context, topic string) (map[int32]partitionState, int32, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := m.cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return nil, -1, err
	}
	mr := resp.(*kmsg.MetadataResponse)
	for _, t := range mr.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return nil, -1, fmt.Errorf("topic %s: %w", topic, err)
		}
		out := make(map[int32]partitionState, len(t.Partitions))
		for _, p := range t.Partitions {
			st := partitionState{leader: p.Leader, isr: p.ISR}
			if p.ErrorCode != 0 {
				st.leader = -1
			}
			out[p.Partition] = st
		}
		return out, mr.ControllerID, nil
	}
	return nil, -1, fmt.Errorf("topic %s: not in the answer", topic)
}

// complete reports whether parts has partitions 0 to n-1, each with a
// leader and at least isr in-sync replicas, every one of want among them.
func complete(parts map[int32]partitionState, n int32, isr int, want ...int32) bool {
	for p := range n {
		st, ok := parts[p]
		if !ok || st.leader < 0 || len(st.isr) < isr {
			return false
		}
		for _, id := range want {
			if !slices.Contains(st.isr, id) {
				return false
			}
		}
	}
	return true
}

// waitTopic waits, up to a minute, until every broker in addrs answers
// Metadata with topic's partitions partitions, each with a leader and
// replicas in-sync replicas: before that a producer could be told the
// topic does not exist by a broker that has not caught up.
func waitTopic(ctx context.Context, addrs []string, topic string, partitions int32, replicas int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, addr := range addrs {
		m, err := newMetaClient(addr)
		if err != nil {
			return err
		}
		err = pollUntil(ctx, 50*time.Millisecond, func() bool {
			parts, _, err := m.topic(ctx, topic)
			return err == nil && complete(parts, partitions, replicas)
		})
		m.Close()
		if err != nil {
			return fmt.Errorf("topic %s on %s: not complete: %w", topic, addr, err)
		}
	}
	return nil
}

// pollUntil calls done every interval until it returns true or ctx ends.
func pollUntil(ctx context.Context, interval time.Duration, done func() bool) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}
