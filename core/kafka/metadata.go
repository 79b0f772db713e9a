package kafka

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
	"github.com/fluxo-io/fluxo/core/cluster"
)

// Metadata is the cluster metadata the security APIs read and change.
type Metadata interface {
	State() *cluster.State
	Apply(ctx context.Context, cmd cluster.Command) (cluster.Result, error)
}

// registerSecurityHandlers registers the SCRAM user and ACL APIs, which
// need only the cluster metadata.
func (s *Server) registerSecurityHandlers() {
	if s.cfg.Metadata == nil {
		return
	}
	s.handle(kmsg.DescribeACLs, 0, 3, s.handleDescribeACLs)
	s.handle(kmsg.CreateACLs, 0, 3, s.handleCreateACLs)
	s.handle(kmsg.DeleteACLs, 0, 3, s.handleDeleteACLs)
	s.handle(kmsg.DescribeUserSCRAMCredentials, 0, 0, s.handleDescribeUserSCRAMCredentials)
	s.handle(kmsg.AlterUserSCRAMCredentials, 0, 0, s.handleAlterUserSCRAMCredentials)
}

// metadataTimeout bounds one change of the metadata, as Kafka's
// request.timeout.ms bounds a forwarded admin request.
const metadataTimeout = 30 * time.Second

// applyMetadata applies cmd within metadataTimeout.
func (s *Server) applyMetadata(ctx context.Context, cmd cluster.Command) (cluster.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	return s.cfg.Metadata.Apply(ctx, cmd)
}

// metadataErrorCode maps the error of a security command to the Kafka
// error code Kafka's controller answers with.
func metadataErrorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, cluster.ErrUnknownCredential):
		return kerr.ResourceNotFound.Code
	case errors.Is(err, cluster.ErrUnsupportedMechanism):
		return kerr.UnsupportedSaslMechanism.Code
	case errors.Is(err, cluster.ErrInvalidCredential), errors.Is(err, cluster.ErrInvalidCommand):
		return kerr.UnacceptableCredential.Code
	case errors.Is(err, acl.ErrInvalid):
		return kerr.InvalidRequest.Code
	case errors.Is(err, cluster.ErrNoController), errors.Is(err, cluster.ErrUnknownOutcome),
		errors.Is(err, cluster.ErrClosed), errors.Is(err, context.DeadlineExceeded):
		// Retriable: the change may be retried once a controller answers.
		return kerr.RequestTimedOut.Code
	}
	return kerr.UnknownServerError.Code
}
