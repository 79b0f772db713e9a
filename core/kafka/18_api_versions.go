package kafka

import (
	"context"
	"regexp"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions: every version kmsg knows (v0-v5 with kmsg v1.15).
//
// Behavior:
//   - Lists exactly the registered API keys and version ranges.
//   - A version we do not serve is answered by the dispatcher with a v0
//     response carrying UNSUPPORTED_VERSION and our ApiVersions range
//     (KIP-511); see apiVersionsUnsupported.
//   - v3+: INVALID_REQUEST if the client software name or version does not
//     match Kafka's pattern, as Kafka answers.
//   - v5+: INVALID_REQUEST if only one of cluster id and node id is set;
//     REBOOTSTRAP_REQUIRED if they name another cluster or node than
//     Config.ClusterID and Config.NodeID (KIP-1242), checked only when
//     Config.ClusterID is set.
//   - No features (KIP-584): franz-go, librdkafka, sarama and kafka-python
//     need none.
//
// The response header is always v0, even for flexible versions
// (writeResponse).

// softwareNameVersion is Kafka's pattern for ClientSoftwareName and
// ClientSoftwareVersion.
var softwareNameVersion = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$`)

func (s *Server) handleApiVersions(_ context.Context, _ *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)

	if req.Version >= 3 && (!softwareNameVersion.MatchString(req.ClientSoftwareName) ||
		!softwareNameVersion.MatchString(req.ClientSoftwareVersion)) {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	if req.Version >= 5 {
		hasCluster, hasNode := req.ClusterID != nil, req.NodeID != -1
		switch {
		case hasCluster != hasNode:
			resp.ErrorCode = kerr.InvalidRequest.Code
			return resp, nil
		case hasCluster && s.cfg.ClusterID != "" &&
			(*req.ClusterID != s.cfg.ClusterID || req.NodeID != s.cfg.NodeID):
			resp.ErrorCode = kerr.RebootstrapRequired.Code
			return resp, nil
		}
	}
	resp.ApiKeys = slices.Clone(s.apiKeys)
	return resp, nil
}

// apiVersionsUnsupported is the answer to an ApiVersions request at a
// version we do not serve (KIP-511): v0, UNSUPPORTED_VERSION, and only the
// ApiVersions entry, whose max version the client retries with.
func (s *Server) apiVersionsUnsupported() *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	for _, k := range s.apiKeys {
		if k.ApiKey == int16(kmsg.ApiVersions) {
			resp.ApiKeys = append(resp.ApiKeys, k)
		}
	}
	return resp
}
