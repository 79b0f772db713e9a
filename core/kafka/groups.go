package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/group"
)

// The consumer group APIs, one file per API key like the others
// (08_offset_commit.go to 16_list_groups.go and 42_delete_groups.go), hand
// their requests to the group coordinator (core/group) that owns the group, which implements Kafka's classic
// group protocol; see its package doc for the behavior. The versions
// served are:
//
//	JoinGroup v0-v9      SyncGroup v0-v5     Heartbeat v0-v4
//	LeaveGroup v0-v5     OffsetCommit v0-v9  OffsetFetch v0-v9
//	DescribeGroups v0-v5 ListGroups v0-v5    DeleteGroups v0-v2
//
// (OffsetCommit and OffsetFetch v10 name topics by id.) JoinGroup and
// SyncGroup block until the rebalance completes; the connection serves
// nothing else meanwhile, as with Kafka.
//
// Groups are spread over brokers as Kafka spreads them: each belongs to a
// partition of the replicated __consumer_offsets topic, and that
// partition's leader coordinates it (Config.Groups decides). A request for
// a group this broker does not coordinate gets NOT_COORDINATOR, so the
// client looks the coordinator up again; requests naming several groups
// (OffsetFetch v8+, DescribeGroups, DeleteGroups) get it per group, and
// ListGroups lists the groups of this broker's coordinators, as Kafka's
// does.
//
// Authorization (authz.go): READ on the group to join, sync, heartbeat,
// leave and commit (GROUP_AUTHORIZATION_FAILED), and READ on each topic
// committed (TOPIC_AUTHORIZATION_FAILED for its partitions); DESCRIBE on
// the group and each topic to fetch offsets (offsets of all topics leave
// out those not describable); DESCRIBE on a group to describe it and
// DELETE to delete it; ListGroups lists every group with DESCRIBE on the
// cluster, else those the principal may DESCRIBE.

// Groups finds the coordinator of each consumer group.
type Groups interface {
	// Coordinator returns this broker's coordinator for group, or nil
	// when another broker (or, right now, none) coordinates it.
	Coordinator(group string) *group.Coordinator
	// Local returns every coordinator this broker runs.
	Local() []*group.Coordinator
	// Find names the broker coordinating key and its Kafka address, or
	// returns a Kafka error code (COORDINATOR_NOT_AVAILABLE while it has
	// none).
	Find(ctx context.Context, key string) (node int32, addr string, code int16)
}

func (s *Server) groupCtx(ctx context.Context, cc *Conn) context.Context {
	return group.WithClient(ctx, group.Client{ID: cc.Header().ClientID, Host: "/" + cc.RemoteAddr().String()})
}

// notCoordinator answers req NOT_COORDINATOR at its top level.
func notCoordinator(req kmsg.Request) kmsg.Response {
	return errorResponse(req, kerr.NotCoordinator.Code, "this broker does not coordinate the group")
}

// splitTopics splits topics into those ok accepts and the others, keeping
// the order. A nil list stays nil on the allowed side (it means "all").
func splitTopics[T any](topics []T, ok func(T) bool) (allowed, denied []T) {
	if topics == nil {
		return nil, nil
	}
	allowed = make([]T, 0, len(topics))
	for _, t := range topics {
		if ok(t) {
			allowed = append(allowed, t)
		} else {
			denied = append(denied, t)
		}
	}
	return allowed, denied
}

// groupDenied answers req GROUP_AUTHORIZATION_FAILED at its top level.
func groupDenied(req kmsg.Request) kmsg.Response {
	return errorResponse(req, kerr.GroupAuthorizationFailed.Code, "not authorized to access the group")
}
