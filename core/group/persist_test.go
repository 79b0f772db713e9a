package group

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

func TestOffsetsSurviveRestart(t *testing.T) {
	log := &MemLog{}
	c, err := New(testConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	a := newMember(t, c, "g", "a")
	stableGroup(t, a)
	checkCode(t, "commit", a.commit("t", 0, 100), nil)
	checkCode(t, "commit", a.commit("t", 0, 150), nil)
	checkCode(t, "simple commit", commitAs(c, 8, "solo", -1, "", "u", 3, 7, "m"), nil)
	c.Close()

	c = newTestCoordinator(t, testConfig(), log)
	if got := fetchOffset(t, c, "g", "t", 0); got != 150 {
		t.Errorf("g t/0 after restart: got %d, want 150", got)
	}
	if got := fetchOffset(t, c, "solo", "u", 3); got != 7 {
		t.Errorf("solo u/3 after restart: got %d, want 7", got)
	}

	// The group comes back Stable with its member, which carries on with
	// its generation and assignment as if nothing happened.
	checkState(t, c, "g", Stable)
	a.c = c
	checkCode(t, "heartbeat after restart", a.heartbeat(), nil)
	if r := a.sync(nil); r.ErrorCode != 0 || string(r.MemberAssignment) != "assign-a" {
		t.Errorf("sync after restart: got %s %q, want NONE %q", codeName(r.ErrorCode), r.MemberAssignment, "assign-a")
	}
	checkCode(t, "commit after restart", a.commit("t", 0, 160), nil)

	d := c.DescribeGroups(context.Background(), &kmsg.DescribeGroupsRequest{Version: 5, Groups: []string{"g"}}).Groups[0]
	if d.ProtocolType != "consumer" || d.Protocol != "range" || len(d.Members) != 1 || d.Members[0].ClientID != "a" {
		t.Errorf("restored group: got type %q protocol %q %d members, want consumer range 1 (client a)", d.ProtocolType, d.Protocol, len(d.Members))
	}
}

func TestEmptyGroupAndDeletionSurviveRestart(t *testing.T) {
	log := &MemLog{}
	c, err := New(testConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	a := newMember(t, c, "g", "a")
	stableGroup(t, a)
	a.commit("t", 0, 1)
	a.leave()
	commitAs(c, 8, "gone", -1, "", "t", 0, 1, "")
	testutil.EventuallyWithin(t, wait, "the empty group to be stored", func() bool {
		var gen int32 = -1
		log.Replay(func(key, value []byte) error {
			if d, ok, _ := decodeRecord(key, value); ok && !d.isOffset && d.group == "g" && d.meta != nil {
				gen = d.meta.Generation
			}
			return nil
		})
		return gen == 2
	})
	resp := c.DeleteGroups(context.Background(), &kmsg.DeleteGroupsRequest{Version: 2, Groups: []string{"gone"}})
	checkCode(t, "delete", resp.Groups[0].ErrorCode, nil)
	c.Close()

	c = newTestCoordinator(t, testConfig(), log)
	checkState(t, c, "g", Empty)
	checkState(t, c, "gone", Dead)
	l := c.ListGroups(context.Background(), &kmsg.ListGroupsRequest{Version: 4})
	if len(l.Groups) != 1 || l.Groups[0].Group != "g" || l.Groups[0].ProtocolType != "consumer" || l.Groups[0].GroupState != "Empty" {
		t.Errorf("groups after restart: got %+v, want g (consumer, Empty) alone", l.Groups)
	}
	// The old member is not restored: it must join again.
	a.c = c
	checkCode(t, "heartbeat of a member that left", a.heartbeat(), kerr.UnknownMemberID)
	r := a.joinOnce()
	checkCode(t, "rejoin with old id", r.ErrorCode, kerr.UnknownMemberID)
}

func TestRestoredMemberExpires(t *testing.T) {
	log := &MemLog{}
	c, err := New(testConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	a := newMember(t, c, "g", "a")
	a.session = 50e6 // 50ms
	stableGroup(t, a)
	c.Close()

	c = newTestCoordinator(t, testConfig(), log)
	checkState(t, c, "g", Stable)
	testutil.EventuallyWithin(t, wait, "the restored member to expire", func() bool { return groupState(c, "g") == Empty })
}

func TestReplayRejectsCorruptRecord(t *testing.T) {
	log := &MemLog{}
	log.Append(context.Background(), []Record{{Key: offsetKey("g", "t", 0), Value: []byte{0, 3, 1}}})
	_, err := New(testConfig(), log)
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("New over a corrupt record: got %v, want ErrCorrupt", err)
	}
}

func TestReplaySkipsUnknownRecords(t *testing.T) {
	log := &MemLog{}
	log.Append(context.Background(), []Record{
		{Key: []byte{0, 9, 1, 2, 3}, Value: []byte{1}}, // a newer record type
		{Key: offsetKey("g", "t", 0), Value: offsetValue(offset{offset: 5, leaderEpoch: -1})},
		{Key: offsetKey("g", "t", 1), Value: offsetValue(offset{offset: 6, leaderEpoch: -1})},
		{Key: offsetKey("g", "t", 1)}, // tombstone
	})
	c := newTestCoordinator(t, testConfig(), log)
	if got := c.Committed("g"); len(got) != 1 || len(got["t"]) != 1 || got["t"][0] != 5 {
		t.Errorf("replayed offsets: got %v, want map[t:map[0:5]]", got)
	}
}

func TestRecordFormatIsKafkas(t *testing.T) {
	// An offset commit key and value as Kafka writes them.
	key := offsetKey("g", "t", 2)
	wantKey := []byte{0, 1, 0, 1, 'g', 0, 1, 't', 0, 0, 0, 2}
	if string(key) != string(wantKey) {
		t.Errorf("offset key: got %x, want %x", key, wantKey)
	}
	val := offsetValue(offset{offset: 7, leaderEpoch: 1, metadata: "m"})
	var v kmsg.OffsetCommitValue
	if err := v.ReadFrom(val); err != nil || v.Version != 3 || v.Offset != 7 || v.LeaderEpoch != 1 || v.Metadata != "m" {
		t.Errorf("offset value: got %+v (err %v), want v3 offset 7 epoch 1 metadata m", v, err)
	}
	if gk := groupKey("g"); string(gk) != string([]byte{0, 2, 0, 1, 'g'}) {
		t.Errorf("group key: got %x, want 0002 0001 67", gk)
	}
}
