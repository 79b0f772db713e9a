package kafka

import (
	"context"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// registerHeartbeat registers a Heartbeat handler at v0-v2 that answers
// with no error; tests use it as an API that is not ApiVersions.
func registerHeartbeat(s *Server) {
	s.handle(kmsg.Heartbeat, 0, 2, func(_ context.Context, _ *Conn, req kmsg.Request) (kmsg.Response, error) {
		return req.ResponseKind(), nil
	})
}

func wantKeys(t *testing.T, got []kmsg.ApiVersionsResponseApiKey) {
	t.Helper()
	want := []kmsg.ApiVersionsResponseApiKey{
		{ApiKey: int16(kmsg.Heartbeat), MinVersion: 0, MaxVersion: 2},
		{ApiKey: int16(kmsg.ApiVersions), MinVersion: 0, MaxVersion: kmsg.NewPtrApiVersionsRequest().MaxVersion()},
	}
	eq := func(a, b kmsg.ApiVersionsResponseApiKey) bool {
		return a.ApiKey == b.ApiKey && a.MinVersion == b.MinVersion && a.MaxVersion == b.MaxVersion
	}
	if !slices.EqualFunc(got, want, eq) {
		t.Fatalf("api keys: got %+v, want %+v", got, want)
	}
}

func TestApiVersionsFranzGo(t *testing.T) {
	s := startServer(t, testConfig(t), registerHeartbeat)
	cl := newClient(t, s)

	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatalf("ApiVersions: got error %v, want nil", err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("error code: got %d, want 0", resp.ErrorCode)
	}
	wantKeys(t, resp.ApiKeys)
}

func TestApiVersionsRaw(t *testing.T) {
	s := startServer(t, testConfig(t), registerHeartbeat)
	maxV := kmsg.NewPtrApiVersionsRequest().MaxVersion()
	for _, v := range []int16{0, 1, 2, 3, maxV} {
		c := dial(t, s)
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		req.ClientSoftwareName = "fluxo-test"
		req.ClientSoftwareVersion = "1.0.0-rc.1"
		resp := c.roundTrip(req).(*kmsg.ApiVersionsResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("v%d error code: got %d, want 0", v, resp.ErrorCode)
		}
		wantKeys(t, resp.ApiKeys)
	}
}

// apiVersionsFrame is an ApiVersions request at any version, even one kmsg
// cannot encode: a v2 header (flexible from v3) and a few body bytes.
func apiVersionsFrame(version int16, corr int32) []byte {
	b := kbin.AppendInt16(nil, int16(kmsg.ApiVersions))
	b = kbin.AppendInt16(b, version)
	b = kbin.AppendInt32(b, corr)
	b = kbin.AppendNullableString(b, kmsg.StringPtr("future-client"))
	if version >= 3 {
		b = append(b, 0) // no header tags
	}
	b = append(b, 1, 1, 0) // body this server must not need to read
	return frame(b)
}

func TestApiVersionsUnsupportedVersion(t *testing.T) {
	s := startServer(t, testConfig(t), registerHeartbeat)
	maxV := kmsg.NewPtrApiVersionsRequest().MaxVersion()
	for _, v := range []int16{maxV + 1, 127, -1} {
		c := dial(t, s)
		c.write(apiVersionsFrame(v, 7))
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = 0
		c.readResponse(7, resp)
		if resp.ErrorCode != kerr.UnsupportedVersion.Code {
			t.Fatalf("v%d error code: got %d, want %d", v, resp.ErrorCode, kerr.UnsupportedVersion.Code)
		}
		want := []kmsg.ApiVersionsResponseApiKey{{ApiKey: 18, MinVersion: 0, MaxVersion: maxV}}
		if len(resp.ApiKeys) != 1 || resp.ApiKeys[0].ApiKey != want[0].ApiKey || resp.ApiKeys[0].MaxVersion != maxV {
			t.Fatalf("v%d api keys: got %+v, want %+v", v, resp.ApiKeys, want)
		}
		// The client retries at our version on the same connection.
		c.apiVersions()
	}
}

func TestApiVersionsValidation(t *testing.T) {
	cfg := testConfig(t)
	cfg.ClusterID = "fluxo-test-cluster"
	cfg.NodeID = 3
	s := startServer(t, cfg, nil)

	for _, tc := range []struct {
		name      string
		version   int16
		software  string
		clusterID *string
		nodeID    int32
		want      int16
	}{
		{"valid v3", 3, "fluxo-test", nil, -1, 0},
		{"empty software name", 3, "", nil, -1, kerr.InvalidRequest.Code},
		{"software name with space", 4, "my client", nil, -1, kerr.InvalidRequest.Code},
		{"software name ending in dash", 4, "client-", nil, -1, kerr.InvalidRequest.Code},
		{"software name ignored before v3", 2, "my client", nil, -1, 0},
		{"our cluster and node", 5, "fluxo-test", kmsg.StringPtr("fluxo-test-cluster"), 3, 0},
		{"seed without cluster and node", 5, "fluxo-test", nil, -1, 0},
		{"other node", 5, "fluxo-test", kmsg.StringPtr("fluxo-test-cluster"), 4, kerr.RebootstrapRequired.Code},
		{"other cluster", 5, "fluxo-test", kmsg.StringPtr("elsewhere"), 3, kerr.RebootstrapRequired.Code},
		{"cluster without node", 5, "fluxo-test", kmsg.StringPtr("fluxo-test-cluster"), -1, kerr.InvalidRequest.Code},
		{"node without cluster", 5, "fluxo-test", nil, 3, kerr.InvalidRequest.Code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s)
			req := kmsg.NewPtrApiVersionsRequest()
			req.Version = tc.version
			req.ClientSoftwareName = tc.software
			req.ClientSoftwareVersion = "1.0"
			req.ClusterID = tc.clusterID
			req.NodeID = tc.nodeID
			resp := c.roundTrip(req).(*kmsg.ApiVersionsResponse)
			if resp.ErrorCode != tc.want {
				t.Fatalf("error code: got %d, want %d", resp.ErrorCode, tc.want)
			}
			if tc.want == 0 && len(resp.ApiKeys) == 0 {
				t.Fatalf("api keys: got none, want ours")
			}
		})
	}
}
