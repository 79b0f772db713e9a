package group

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestOffsetCommitFetchRoundTrip(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})

	// A standalone consumer commits with generation -1: the group is made.
	checkCode(t, "simple commit", commitAs(c, 8, "solo", -1, "", "t", 0, 42, "meta"), nil)
	checkCode(t, "simple commit", commitAs(c, 8, "solo", -1, "", "t", 1, 7, ""), nil)
	checkCode(t, "simple commit", commitAs(c, 8, "solo", -1, "", "u", 0, 9, ""), nil)

	// v1, one group, named partitions, one of them never committed.
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 1
	req.Group = "solo"
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0, 5}}}
	resp := c.OffsetFetch(context.Background(), req)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
		t.Fatalf("v1 fetch: got %+v, want one topic with two partitions", resp.Topics)
	}
	p0, p5 := resp.Topics[0].Partitions[0], resp.Topics[0].Partitions[1]
	if p0.Offset != 42 || p0.Metadata == nil || *p0.Metadata != "meta" || p0.ErrorCode != 0 {
		t.Errorf("t/0: got offset %d metadata %v code %d, want 42 \"meta\" 0", p0.Offset, p0.Metadata, p0.ErrorCode)
	}
	if p5.Offset != -1 || p5.ErrorCode != 0 {
		t.Errorf("t/5: got offset %d code %d, want -1 0", p5.Offset, p5.ErrorCode)
	}

	// v7, all topics.
	req = kmsg.NewPtrOffsetFetchRequest()
	req.Version = 7
	req.Group = "solo"
	resp = c.OffsetFetch(context.Background(), req)
	var got []string
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			got = append(got, fmt.Sprintf("%s/%d=%d@%d", rt.Topic, rp.Partition, rp.Offset, rp.LeaderEpoch))
		}
	}
	if want := "t/0=42@3 t/1=7@3 u/0=9@3"; strings.Join(got, " ") != want {
		t.Errorf("v7 fetch all: got %s, want %s", strings.Join(got, " "), want)
	}

	// v8, several groups; an unknown group reads -1 without error.
	req = kmsg.NewPtrOffsetFetchRequest()
	req.Version = 8
	for _, g := range []string{"solo", "nobody"} {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = g
		rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "u", Partitions: []int32{0}}}
		req.Groups = append(req.Groups, rg)
	}
	resp = c.OffsetFetch(context.Background(), req)
	if len(resp.Groups) != 2 {
		t.Fatalf("v8 fetch: got %d groups, want 2", len(resp.Groups))
	}
	for i, want := range []int64{9, -1} {
		rg := resp.Groups[i]
		if rg.ErrorCode != 0 || rg.Topics[0].Partitions[0].Offset != want {
			t.Errorf("v8 group %s: got code %d offset %d, want 0 %d", rg.Group, rg.ErrorCode, rg.Topics[0].Partitions[0].Offset, want)
		}
	}

	if got := c.Committed("solo"); fmt.Sprint(got) != "map[t:map[0:42 1:7] u:map[0:9]]" {
		t.Errorf("Committed: got %v, want map[t:map[0:42 1:7] u:map[0:9]]", got)
	}
	if got := c.Committed("nobody"); got != nil {
		t.Errorf("Committed of unknown group: got %v, want nil", got)
	}
}

func TestOffsetCommitValidation(t *testing.T) {
	cfg := testConfig()
	cfg.OffsetMetadataMaxBytes = 8
	c := newTestCoordinator(t, cfg, &MemLog{})
	a := newMember(t, c, "g", "a")
	a.join() // CompletingRebalance

	checkCode(t, "commit while completing rebalance", a.commit("t", 0, 1), kerr.RebalanceInProgress)
	a.sync(map[string][]byte{a.id: nil})

	for _, tc := range []struct {
		name    string
		version int16
		group   string
		gen     int32
		member  string
		meta    string
		want    *kerr.Error
	}{
		{"member", 8, "g", a.gen, a.id, "", nil},
		{"empty group id is valid", 8, "", -1, "", "", nil},
		{"unknown member", 8, "g", a.gen, "ghost", "", kerr.UnknownMemberID},
		{"old generation", 8, "g", a.gen - 1, a.id, "", kerr.IllegalGeneration},
		{"simple commit to a group with members", 8, "g", -1, "", "", kerr.UnknownMemberID},
		{"generation for unknown group", 8, "none", 3, "m", "", kerr.IllegalGeneration},
		{"generation for unknown group v9", 9, "none", 3, "m", "", kerr.GroupIDNotFound},
		{"metadata too large", 8, "g", a.gen, a.id, "123456789", kerr.OffsetMetadataTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkCode(t, "commit", commitAs(c, tc.version, tc.group, tc.gen, tc.member, "t", 0, 5, tc.meta), tc.want)
		})
	}
}

func TestOffsetCommitLogFailure(t *testing.T) {
	log := &failingLog{}
	c := newTestCoordinator(t, testConfig(), log)
	checkCode(t, "commit", commitAs(c, 8, "g", -1, "", "t", 0, 1, ""), nil)

	log.setFail(errors.New("disk gone"))
	checkCode(t, "commit with failing log", commitAs(c, 8, "g", -1, "", "t", 0, 2, ""), kerr.CoordinatorNotAvailable)
	log.setFail(fmt.Errorf("append: %w", kerr.MessageTooLarge))
	checkCode(t, "commit too large for the log", commitAs(c, 8, "g", -1, "", "t", 0, 2, ""), kerr.InvalidCommitOffsetSize)
	if got := fetchOffset(t, c, "g", "t", 0); got != 1 {
		t.Errorf("offset after failed commits: got %d, want 1", got)
	}
}

func TestOffsetDelete(t *testing.T) {
	c := newTestCoordinator(t, testConfig(), &MemLog{})
	del := func(group string, topics ...string) *kmsg.OffsetDeleteResponse {
		req := kmsg.NewPtrOffsetDeleteRequest()
		req.Group = group
		for _, topic := range topics {
			req.Topics = append(req.Topics, kmsg.OffsetDeleteRequestTopic{Topic: topic, Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}})
		}
		return c.OffsetDelete(context.Background(), req)
	}

	checkCode(t, "unknown group", del("none", "t").ErrorCode, kerr.GroupIDNotFound)
	checkCode(t, "empty group id", del("", "t").ErrorCode, kerr.InvalidGroupID)

	// A consumer group with members keeps the offsets of its topics.
	a := newMember(t, c, "g", "a")
	a.protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: consumerMeta("sub")}}
	stableGroup(t, a)
	a.commit("sub", 0, 1)
	a.commit("old", 0, 2)
	resp := del("g", "sub", "old")
	checkCode(t, "group", resp.ErrorCode, nil)
	checkCode(t, "subscribed topic", resp.Topics[0].Partitions[0].ErrorCode, kerr.GroupSubscribedToTopic)
	checkCode(t, "unsubscribed topic", resp.Topics[1].Partitions[0].ErrorCode, nil)
	if got := fmt.Sprint(c.Committed("g")); got != "map[sub:map[0:1]]" {
		t.Errorf("offsets left: got %s, want map[sub:map[0:1]]", got)
	}

	// A group of another protocol type with members keeps all.
	o := newMember(t, c, "connect", "o")
	o.protocolType = "connect"
	stableGroup(t, o)
	checkCode(t, "non-consumer group with members", del("connect", "t").ErrorCode, kerr.NonEmptyGroup)

	// An Empty group loses its offsets, and goes when the last does.
	a.leave()
	checkCode(t, "empty group", del("g", "sub").Topics[0].Partitions[0].ErrorCode, nil)
	checkState(t, c, "g", Dead)
}

func TestOffsetExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg := testConfig()
	cfg.OffsetsRetention = time.Hour
	cfg.Now = func() time.Time { return now }
	c := newTestCoordinator(t, cfg, &MemLog{})

	// A standalone group's offsets expire from their commit.
	commitAs(c, 8, "solo", -1, "", "t", 0, 1, "")
	now = now.Add(30 * time.Minute)
	commitAs(c, 8, "solo", -1, "", "t", 1, 1, "")

	// A consumer group's offsets expire from when it became Empty.
	a := newMember(t, c, "g", "a")
	stableGroup(t, a)
	a.commit("t", 0, 5)
	now = now.Add(2 * time.Hour)
	c.expireOffsets()
	if got := c.Committed("g"); fmt.Sprint(got) != "map[t:map[0:5]]" {
		t.Errorf("offsets of a group with members: got %v, want map[t:map[0:5]]", got)
	}
	if got := c.Committed("solo"); got != nil {
		t.Errorf("offsets of standalone group after retention: got %v, want nil", got)
	}
	checkState(t, c, "solo", Dead)

	a.leave()
	now = now.Add(59 * time.Minute)
	c.expireOffsets()
	if got := c.Committed("g"); got == nil {
		t.Errorf("offsets of a group empty for less than retention: got nil, want kept")
	}
	now = now.Add(time.Minute)
	c.expireOffsets()
	if got := c.Committed("g"); got != nil {
		t.Errorf("offsets of a group empty for retention: got %v, want nil", got)
	}
	checkState(t, c, "g", Dead)
}

func TestOffsetCommitRetentionTime(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg := testConfig()
	cfg.Now = func() time.Time { return now }
	log := &MemLog{}
	c := newTestCoordinator(t, cfg, log)
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 2
	req.Group = "old"
	req.RetentionTimeMillis = 60_000
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 3}}}}
	checkCode(t, "v2 commit", c.OffsetCommit(context.Background(), req).Topics[0].Partitions[0].ErrorCode, nil)
	c.Close()

	// The expiry survives a restart (value v1).
	c = newTestCoordinator(t, cfg, log)
	now = now.Add(time.Minute)
	c.expireOffsets()
	if got := c.Committed("old"); got != nil {
		t.Errorf("offsets past their own retention: got %v, want nil", got)
	}
}
