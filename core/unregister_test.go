package core

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/cluster"
)

// TestUnregisterBroker: UnregisterBroker through the Kafka protocol
// removes a crashed broker for good; an unknown id answers
// BROKER_ID_NOT_REGISTERED and a broker cannot remove itself.
func TestUnregisterBroker(t *testing.T) {
	tc := startCluster(t, 3)
	tc.waitState("3 live brokers", func(s *cluster.State) bool { return len(s.Live()) == 3 })
	tc.crash(2)
	tc.waitState("broker 3 fenced", func(s *cluster.State) bool { return s.Brokers[3].Fenced })
	cl := tc.client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	unregister := func(to, id int32) (int16, string) {
		t.Helper()
		req := kmsg.NewPtrUnregisterBrokerRequest()
		req.BrokerID = id
		resp, err := req.RequestWith(ctx, cl.Broker(int(to)))
		if err != nil {
			t.Fatalf("unregister %d: %v", id, err)
		}
		var msg string
		if resp.ErrorMessage != nil {
			msg = *resp.ErrorMessage
		}
		return resp.ErrorCode, msg
	}
	if code, msg := unregister(1, 9); code != kerr.BrokerIDNotRegistered.Code {
		t.Fatalf("unregister 9: got code %d (%s), want BROKER_ID_NOT_REGISTERED", code, msg)
	}
	if code, msg := unregister(1, 1); code != kerr.InvalidRequest.Code {
		t.Fatalf("unregister self: got code %d (%s), want INVALID_REQUEST", code, msg)
	}
	if code, msg := unregister(1, 3); code != 0 {
		t.Fatalf("unregister 3: got code %d (%s), want 0", code, msg)
	}
	tc.waitState("broker 3 removed", func(s *cluster.State) bool { _, ok := s.Brokers[3]; return !ok })
	for _, m := range tc.nodes[1].cluster.Members() {
		if m.ID == 3 {
			t.Fatalf("got member %+v after removal, want none", m)
		}
	}
	// Gone for good: a second removal is the operator's typo.
	if code, msg := unregister(2, 3); code != kerr.BrokerIDNotRegistered.Code {
		t.Fatalf("unregister 3 again: got code %d (%s), want BROKER_ID_NOT_REGISTERED", code, msg)
	}
}
