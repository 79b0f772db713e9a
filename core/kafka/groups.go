package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/group"
)

// The consumer group APIs hand their requests to the group coordinator
// (core/group), which implements Kafka's classic group protocol; see its
// package doc for the behavior. The versions served are:
//
//	JoinGroup v0-v9      SyncGroup v0-v5     Heartbeat v0-v4
//	LeaveGroup v0-v5     OffsetCommit v0-v9  OffsetFetch v0-v9
//	DescribeGroups v0-v5 ListGroups v0-v5    DeleteGroups v0-v2
//
// (OffsetCommit and OffsetFetch v10 name topics by id.) JoinGroup and
// SyncGroup block until the rebalance completes; the connection serves
// nothing else meanwhile, as with Kafka.

func (s *Server) groupCtx(ctx context.Context, cc *Conn) context.Context {
	return group.WithClient(ctx, group.Client{ID: cc.Header().ClientID, Host: "/" + cc.RemoteAddr().String()})
}

func (s *Server) handleJoinGroup(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	return s.cfg.Groups.JoinGroup(s.groupCtx(ctx, cc), kreq.(*kmsg.JoinGroupRequest)), nil
}

func (s *Server) handleSyncGroup(ctx context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	return s.cfg.Groups.SyncGroup(s.groupCtx(ctx, cc), kreq.(*kmsg.SyncGroupRequest)), nil
}

func (s *Server) handleHeartbeat(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	return s.cfg.Groups.Heartbeat(ctx, kreq.(*kmsg.HeartbeatRequest)), nil
}

func (s *Server) handleLeaveGroup(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	return s.cfg.Groups.LeaveGroup(ctx, kreq.(*kmsg.LeaveGroupRequest)), nil
}

func (s *Server) handleOffsetCommit(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	return s.cfg.Groups.OffsetCommit(ctx, kreq.(*kmsg.OffsetCommitRequest)), nil
}

func (s *Server) handleOffsetFetch(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	return s.cfg.Groups.OffsetFetch(ctx, kreq.(*kmsg.OffsetFetchRequest)), nil
}

func (s *Server) handleDescribeGroups(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	return s.cfg.Groups.DescribeGroups(ctx, kreq.(*kmsg.DescribeGroupsRequest)), nil
}

func (s *Server) handleListGroups(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	return s.cfg.Groups.ListGroups(ctx, kreq.(*kmsg.ListGroupsRequest)), nil
}

func (s *Server) handleDeleteGroups(ctx context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	return s.cfg.Groups.DeleteGroups(ctx, kreq.(*kmsg.DeleteGroupsRequest)), nil
}
