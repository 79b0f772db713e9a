package uplink

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		err    error
		want   class
		reason string // for classPermanent
	}{
		{kerr.NotLeaderForPartition, classRetry, ""},
		{kerr.NotEnoughReplicas, classRetry, ""},
		{kerr.NotEnoughReplicasAfterAppend, classRetry, ""},
		{kerr.RequestTimedOut, classRetry, ""},
		{kerr.LeaderNotAvailable, classRetry, ""},
		{kerr.UnknownTopicOrPartition, classRetry, ""},
		{kerr.UnknownTopicID, classRetry, ""},
		{kerr.InconsistentTopicID, classRetry, ""},
		{kerr.UnknownServerError, classRetry, ""},
		{kerr.KafkaStorageError, classRetry, ""},
		{kerr.CoordinatorLoadInProgress, classRetry, ""},
		{io.EOF, classRetry, ""},
		{context.DeadlineExceeded, classRetry, ""},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, classRetry, ""},
		{kerr.OutOfOrderSequenceNumber, classNewProducer, ""},
		{kerr.UnknownProducerID, classNewProducer, ""},
		{kerr.InvalidProducerEpoch, classNewProducer, ""},
		{kerr.ProducerFenced, classNewProducer, ""},
		{kerr.InvalidProducerIDMapping, classNewProducer, ""},
		{kerr.TopicAuthorizationFailed, classPermanent, "TOPIC_AUTHORIZATION_FAILED"},
		{kerr.ClusterAuthorizationFailed, classPermanent, "CLUSTER_AUTHORIZATION_FAILED"},
		{kerr.InvalidRecord, classPermanent, "INVALID_RECORD"},
		{kerr.CorruptMessage, classPermanent, "CORRUPT_MESSAGE"},
		{kerr.MessageTooLarge, classPermanent, "MESSAGE_TOO_LARGE"},
		{kerr.InvalidTopicException, classPermanent, "INVALID_TOPIC_EXCEPTION"},
		{kerr.SaslAuthenticationFailed, classPermanent, "SASL_AUTHENTICATION_FAILED"},
		{kerr.UnsupportedSaslMechanism, classPermanent, "UNSUPPORTED_SASL_MECHANISM"},
		{kerr.UnsupportedVersion, classPermanent, "UNSUPPORTED_VERSION"},
		{kerr.PolicyViolation, classPermanent, "POLICY_VIOLATION"},
		{kerr.InvalidTimestamp, classPermanent, "INVALID_TIMESTAMP"},
		// Wrapped as the uplink wraps them.
		{fmt.Errorf("uplink: produce to broker 1: %w", kerr.SaslAuthenticationFailed), classPermanent, "SASL_AUTHENTICATION_FAILED"},
		{fmt.Errorf("uplink: topic t: %w", kerr.NotLeaderForPartition), classRetry, ""},
		{fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), classPermanent, "TLS_CERTIFICATE"},
	}
	for _, tt := range tests {
		got := classify(tt.err)
		if got != tt.want {
			t.Errorf("classify(%v): got %s, want %s", tt.err, got, tt.want)
			continue
		}
		if got == classPermanent {
			if r := reasonOf(tt.err); r != tt.reason {
				t.Errorf("reasonOf(%v): got %s, want %s", tt.err, r, tt.reason)
			}
		}
	}
}

// TestCheckProduce: per partition codes become one verdict for the
// response, a v13 response's topic ids are named back.
func TestCheckProduce(t *testing.T) {
	id := [16]byte{1, 2, 3}
	req := kmsg.NewPtrProduceRequest()
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic, rt.TopicID = "telemetry", id
	req.Topics = append(req.Topics, rt)
	resp := func(codes ...int16) *kmsg.ProduceResponse {
		r := kmsg.NewPtrProduceResponse()
		t := kmsg.NewProduceResponseTopic()
		t.TopicID = id
		for i, c := range codes {
			p := kmsg.NewProduceResponseTopicPartition()
			p.Partition, p.ErrorCode = int32(i), c
			t.Partitions = append(t.Partitions, p)
		}
		r.Topics = append(r.Topics, t)
		return r
	}
	tests := []struct {
		name  string
		codes []int16
		want  class
		nil   bool // success: checkProduce returns nil
	}{
		{"stored", []int16{0, 0}, classRetry, true},
		{"duplicate", []int16{0, kerr.DuplicateSequenceNumber.Code}, classRetry, true},
		{"leader moved", []int16{0, kerr.NotLeaderForPartition.Code}, classRetry, false},
		{"producer lost", []int16{kerr.NotLeaderForPartition.Code, kerr.UnknownProducerID.Code}, classNewProducer, false},
		{"denied", []int16{kerr.NotLeaderForPartition.Code, kerr.TopicAuthorizationFailed.Code}, classPermanent, false},
	}
	for _, tt := range tests {
		err := checkProduce(req, resp(tt.codes...))
		if tt.nil {
			if err != nil {
				t.Errorf("%s: got %v, want nil", tt.name, err)
			}
			continue
		}
		var got class
		var pe *permanentError
		switch {
		case err == nil:
			t.Errorf("%s: got nil, want a %s error", tt.name, tt.want)
			continue
		case errors.Is(err, errNewProducer):
			got = classNewProducer
		case errors.As(err, &pe):
			got = classPermanent
		default:
			got = classRetry
		}
		if got != tt.want {
			t.Errorf("%s: got %s (%v), want %s", tt.name, got, err, tt.want)
		}
		if !strings.Contains(err.Error(), "telemetry/1") {
			t.Errorf("%s: got %q, want the topic named from its id", tt.name, err)
		}
	}
}
