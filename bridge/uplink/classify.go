package uplink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// class is what the uplink does about a failed request.
type class int8

const (
	// classRetry: a transient failure (a leader moving, a broker
	// restarting, a timeout, the network): retry with backoff.
	classRetry class = iota
	// classNewProducer: the cluster lost or fenced this producer: take a
	// new producer id and send the window again (at least once).
	classNewProducer
	// classPermanent: retrying the same request cannot succeed until
	// someone changes the cluster or the configuration (an ACL, a topic,
	// a credential, a size limit): park the lane.
	classPermanent
)

func (c class) String() string {
	switch c {
	case classRetry:
		return "retry"
	case classNewProducer:
		return "new-producer"
	case classPermanent:
		return "permanent"
	}
	return fmt.Sprintf("class(%d)", int8(c))
}

// classify sorts an error from the cluster or from the way to it: the
// one place that decides which Kafka error codes are worth a retry.
//
//   - new producer: OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID,
//     INVALID_PRODUCER_EPOCH, PRODUCER_FENCED, INVALID_PRODUCER_ID_MAPPING;
//   - retry: every code kerr marks retriable (NOT_LEADER_OR_FOLLOWER,
//     NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT, UNKNOWN_TOPIC_ID: the
//     caller refreshes its metadata first, ...), UNKNOWN_SERVER_ERROR,
//     and every error that carries no Kafka code (dial, I/O, timeouts);
//     UNKNOWN_TOPIC_OR_PARTITION is retried here, and parked by the lane
//     once it has lasted Config.UnknownTopicTimeout;
//   - permanent: CORRUPT_MESSAGE (kerr's retriable, but the uplink
//     resends the same bytes) and every other Kafka code
//     (TOPIC_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED,
//     SASL_AUTHENTICATION_FAILED, INVALID_RECORD, MESSAGE_TOO_LARGE,
//     INVALID_TOPIC_EXCEPTION, UNSUPPORTED_VERSION, POLICY_VIOLATION,
//     ...), and a TLS peer whose certificate does not verify.
//
// nil and DUPLICATE_SEQUENCE_NUMBER (the batch is already stored) are not
// failures; classify is not called for them.
func classify(err error) class {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		switch ke {
		case kerr.OutOfOrderSequenceNumber, kerr.UnknownProducerID, kerr.InvalidProducerEpoch,
			kerr.ProducerFenced, kerr.InvalidProducerIDMapping:
			return classNewProducer
		case kerr.UnknownTopicOrPartition, kerr.UnknownTopicID, kerr.UnknownServerError,
			kerr.NotEnoughReplicas, kerr.NotEnoughReplicasAfterAppend, kerr.NotLeaderForPartition,
			kerr.LeaderNotAvailable, kerr.RequestTimedOut, kerr.NetworkException, kerr.KafkaStorageError,
			kerr.ThrottlingQuotaExceeded, kerr.BrokerNotAvailable, kerr.InconsistentTopicID:
			return classRetry
		case kerr.CorruptMessage:
			// kerr calls it retriable (a bit flipped on the way); the
			// uplink resends the same bytes, which fail the same way.
			return classPermanent
		}
		if kerr.IsRetriable(ke) {
			return classRetry
		}
		return classPermanent
	}
	if certError(err) {
		return classPermanent
	}
	return classRetry
}

// certError reports whether err is a TLS certificate that failed to
// verify: a wrong CA or server name does not fix itself.
func certError(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}

// reasonOf names a permanent error for operators (the reason label of
// fluxo_edge_uplink_parked, the /readyz body): the Kafka error code's
// name, or TLS_CERTIFICATE.
func reasonOf(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	if certError(err) {
		return "TLS_CERTIFICATE"
	}
	return "UNKNOWN"
}

// permanentError is a failure the lane does not retry: it parks until a
// probe succeeds.
type permanentError struct {
	reason string // reasonOf, or UNKNOWN_TOPIC_OR_PARTITION after the timeout
	err    error
}

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// judged wraps err by its class: errNewProducer, a *permanentError, or err
// itself (retry). nil stays nil.
func judged(err error) error {
	if err == nil {
		return nil
	}
	switch classify(err) {
	case classNewProducer:
		return fmt.Errorf("%w: %w", errNewProducer, err)
	case classPermanent:
		return &permanentError{reason: reasonOf(err), err: err}
	}
	return err
}
