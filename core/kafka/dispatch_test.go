package kafka

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// header is a request header (v1, or v2 when flexible) for raw frames.
func header(key kmsg.Key, version int16, corr int32, flexible bool) []byte {
	b := kbin.AppendInt16(nil, int16(key))
	b = kbin.AppendInt16(b, version)
	b = kbin.AppendInt32(b, corr)
	b = kbin.AppendNullableString(b, kmsg.StringPtr("raw-test"))
	if flexible {
		b = append(b, 0)
	}
	return b
}

func TestBadFramesCloseTheConnection(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bytes  []byte
		reason string
	}{
		{"length below a header", frame([]byte{0, 18, 0, 0}), reasonMalformed},
		{"zero length", frame(nil), reasonMalformed},
		{"negative length", []byte{0xff, 0xff, 0xff, 0xff}, reasonOversized},
		{"http request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), reasonOversized},
		{"tls client hello", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, reasonOversized},
		{"unknown api key", frame(header(9999, 0, 1, false)), reasonUnsupported},
		{"negative api key", frame(header(-1, 0, 1, false)), reasonUnsupported},
		{"truncated client id", frame([]byte{0, 18, 0, 0, 0, 0, 0, 1, 0, 9, 'a'}), reasonMalformed},
		{"client id length beyond frame", frame([]byte{0, 18, 0, 3, 0, 0, 0, 1, 0x7f, 0xff}), reasonMalformed},
		{"flexible header without tags", frame([]byte{0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff}), reasonMalformed},
		{"header tag beyond frame", frame(append(header(kmsg.ApiVersions, 3, 1, false), 1, 0, 50)), reasonMalformed},
		{"body missing", frame(header(kmsg.ApiVersions, 3, 1, true)), reasonMalformed},
		{"body truncated", frame(append(header(kmsg.ApiVersions, 3, 1, true), 10, 'f', 'l')), reasonMalformed},
		{"garbage", frame([]byte{0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef}), reasonUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := startServerWithMetrics(t, testConfig(t), nil)
			c := dial(t, s)
			c.write(tc.bytes)
			c.expectClosed()
			if got := value(t, s.metrics.requestErrors.WithLabelValues(tc.reason)); got != 1 {
				t.Fatalf("request errors{reason=%q}: got %v, want 1", tc.reason, got)
			}
			// The broker lives on.
			dial(t, s).apiVersions()
		})
	}
}

func TestUnsupportedKeysAndVersions(t *testing.T) {
	s := startServer(t, testConfig(t), registerHeartbeat) // Heartbeat v0-v2
	type outcome int
	const (
		closed outcome = iota
		answered
	)
	for _, tc := range []struct {
		name    string
		key     kmsg.Key
		version int16
		want    outcome
	}{
		{"registered key above its range", kmsg.Heartbeat, 4, answered},
		{"registered key above its range, not flexible", kmsg.Heartbeat, 3, answered},
		{"unregistered key with a top-level error code", kmsg.SyncGroup, 5, answered},
		{"unregistered key, version with a top-level error code", kmsg.FindCoordinator, 3, answered},
		{"unregistered key, version without a top-level error code", kmsg.FindCoordinator, 4, closed},
		{"Metadata before its top-level error code", kmsg.Metadata, 12, closed},
		{"Metadata with its top-level error code", kmsg.Metadata, 13, answered},
		{"Produce", kmsg.Produce, 9, closed},
		{"registered key beyond the decoder", kmsg.Heartbeat, 99, closed},
		{"negative version", kmsg.Heartbeat, -1, closed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s)
			req := kmsg.RequestForKey(int16(tc.key))
			req.SetVersion(tc.version)
			if tc.version < 0 || tc.version > req.MaxVersion() {
				c.write(frame(append(header(tc.key, tc.version, 1, false), 0, 0, 0, 0)))
				c.expectClosed()
				return
			}
			corr := c.send(req)
			if tc.want == closed {
				c.expectClosed()
				return
			}
			resp := req.ResponseKind()
			c.readResponse(corr, resp)
			if got, _ := errorCode(resp); got != kerr.UnsupportedVersion.Code {
				t.Fatalf("error code: got %d, want %d", got, kerr.UnsupportedVersion.Code)
			}
			// The connection stays usable.
			c.apiVersions()
		})
	}
}

func TestErrorResponse(t *testing.T) {
	for _, tc := range []struct {
		key     kmsg.Key
		version int16
		want    bool
	}{
		{kmsg.Heartbeat, 0, true},
		{kmsg.Heartbeat, 4, true},
		{kmsg.FindCoordinator, 3, true},
		{kmsg.FindCoordinator, 4, false},
		{kmsg.Metadata, 12, false},
		{kmsg.Metadata, 13, true},
		{kmsg.Fetch, 6, false},
		{kmsg.Fetch, 7, true},
		{kmsg.Produce, 3, false},
		{kmsg.OffsetCommit, 8, false},
		{kmsg.Heartbeat, 5, false}, // beyond kmsg
	} {
		req := kmsg.RequestForKey(int16(tc.key))
		req.SetVersion(tc.version)
		resp := errorResponse(req, kerr.UnsupportedVersion.Code, "no")
		if got := resp != nil; got != tc.want {
			t.Errorf("%s v%d: got a response %v, want %v", tc.key.Name(), tc.version, got, tc.want)
		}
		if resp != nil && resp.GetVersion() != tc.version {
			t.Errorf("%s v%d: got response version %d, want %d", tc.key.Name(), tc.version, resp.GetVersion(), tc.version)
		}
	}
}

// TestResponseKindVersion checks what handlers rely on: for every key and
// version kmsg knows, ResponseKind returns the key's response at the
// request's version.
func TestResponseKindVersion(t *testing.T) {
	for key := int16(0); key < 1000; key++ {
		req := kmsg.RequestForKey(key)
		if req == nil {
			continue
		}
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			resp := req.ResponseKind()
			if resp.Key() != key || resp.GetVersion() != v {
				t.Errorf("%s v%d: got response key %d version %d, want key %d version %d", kmsg.NameForKey(key), v, resp.Key(), resp.GetVersion(), key, v)
			}
		}
	}
}

func TestResponsesInRequestOrder(t *testing.T) {
	s := startServer(t, testConfig(t), registerHeartbeat)
	c := dial(t, s)

	// Pipeline several requests, then read: answers come in order.
	av0 := kmsg.NewPtrApiVersionsRequest()
	av0.Version = 0
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version = 2
	hbUnsupported := kmsg.NewPtrHeartbeatRequest()
	hbUnsupported.Version = 4
	av3 := kmsg.NewPtrApiVersionsRequest()
	av3.Version = 3
	av3.ClientSoftwareName, av3.ClientSoftwareVersion = "fluxo-test", "1"

	reqs := []kmsg.Request{av0, hb, hbUnsupported, av3, hb}
	var corrs []int32
	for _, r := range reqs {
		corrs = append(corrs, c.send(r))
	}
	for i, r := range reqs {
		c.readResponse(corrs[i], r.ResponseKind())
	}
}

func TestHandlerContract(t *testing.T) {
	errBroken := errors.New("broken")
	for _, tc := range []struct {
		name     string
		key      kmsg.Key
		fn       handlerFunc
		answered bool
	}{
		{"error closes", kmsg.Heartbeat, func(context.Context, *Conn, kmsg.Request) (kmsg.Response, error) {
			return nil, errBroken
		}, false},
		{"nil response closes", kmsg.Heartbeat, func(context.Context, *Conn, kmsg.Request) (kmsg.Response, error) {
			return nil, nil
		}, false},
		{"response of another version closes", kmsg.Heartbeat, func(_ context.Context, _ *Conn, req kmsg.Request) (kmsg.Response, error) {
			resp := req.ResponseKind()
			resp.SetVersion(req.GetVersion() - 1)
			return resp, nil
		}, false},
		{"response of another key closes", kmsg.Heartbeat, func(context.Context, *Conn, kmsg.Request) (kmsg.Response, error) {
			return kmsg.NewPtrSyncGroupResponse(), nil
		}, false},
		{"nil Produce response sends nothing", kmsg.Produce, func(context.Context, *Conn, kmsg.Request) (kmsg.Response, error) {
			return nil, nil
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := startServerWithMetrics(t, testConfig(t), func(s *Server) {
				s.handle(tc.key, 1, 1, tc.fn)
			})
			c := dial(t, s)
			req := kmsg.RequestForKey(int16(tc.key))
			req.SetVersion(1)
			c.send(req)
			if !tc.answered {
				c.expectClosed()
				if got := value(t, s.metrics.requestErrors.WithLabelValues(reasonHandler)); got != 1 {
					t.Fatalf("request errors{reason=handler}: got %v, want 1", got)
				}
				return
			}
			// Nothing was sent for the request: the next response
			// read is the next request's.
			c.apiVersions()
		})
	}
}

// TestAuthenticationGate: on a SASL listener, only ApiVersions,
// SaslHandshake and SaslAuthenticate pass before authentication; any
// other request closes the connection, as Kafka does.
func TestAuthenticationGate(t *testing.T) {
	principals := make(chan string, 1)
	s, _ := startServerWithMetrics(t, saslConfig(t), func(s *Server) {
		registerHeartbeat(s)
		s.handle(kmsg.SyncGroup, 0, 5, func(_ context.Context, cc *Conn, req kmsg.Request) (kmsg.Response, error) {
			principals <- cc.Principal()
			return req.ResponseKind(), nil
		})
	})
	addr := startListener(t, s, Listener{Name: "CLIENT", Protocol: SASLPlaintext})

	t.Run("before authentication", func(t *testing.T) {
		c := dialAddr(t, addr, nil)
		c.apiVersions()
		c.send(kmsg.NewPtrHeartbeatRequest())
		c.expectClosed()
		if got := value(t, s.metrics.requestErrors.WithLabelValues(reasonUnauthenticated)); got != 1 {
			t.Fatalf("request errors{reason=unauthenticated}: got %v, want 1", got)
		}
	})
	t.Run("unknown key before authentication", func(t *testing.T) {
		c := dialAddr(t, addr, nil)
		c.write(frame(header(9999, 0, 1, false)))
		c.expectClosed()
	})
	t.Run("after authentication", func(t *testing.T) {
		c := dialAddr(t, addr, nil)
		c.apiVersions()
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version = 1
		hs.Mechanism = MechanismPlain
		if got := c.roundTrip(hs).(*kmsg.SASLHandshakeResponse).ErrorCode; got != 0 {
			t.Fatalf("SaslHandshake error code: got %d, want 0", got)
		}
		auth := kmsg.NewPtrSASLAuthenticateRequest()
		auth.SASLAuthBytes = []byte("\x00alice\x00alice-secret")
		if got := c.roundTrip(auth).(*kmsg.SASLAuthenticateResponse).ErrorCode; got != 0 {
			t.Fatalf("SaslAuthenticate error code: got %d, want 0", got)
		}
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Version = 2
		c.roundTrip(hb)
		c.roundTrip(kmsg.NewPtrSyncGroupRequest())
		if principal := <-principals; principal != "User:alice" {
			t.Fatalf("principal: got %q, want %q", principal, "User:alice")
		}
	})
	t.Run("plaintext listener is anonymous", func(t *testing.T) {
		c := dial(t, s)
		c.roundTrip(kmsg.NewPtrSyncGroupRequest())
		if principal := <-principals; principal != principalAnonymous {
			t.Fatalf("principal: got %q, want %q", principal, principalAnonymous)
		}
	})
}

func TestHandleRejectsBadRegistrations(t *testing.T) {
	noop := func(context.Context, *Conn, kmsg.Request) (kmsg.Response, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		do   func(s *Server)
	}{
		{"unknown key", func(s *Server) { s.handle(9999, 0, 0, noop) }},
		{"max beyond kmsg", func(s *Server) { s.handle(kmsg.Heartbeat, 0, 99, noop) }},
		{"min above max", func(s *Server) { s.handle(kmsg.Heartbeat, 2, 1, noop) }},
		{"negative min", func(s *Server) { s.handle(kmsg.Heartbeat, -1, 1, noop) }},
		{"nil handler", func(s *Server) { s.handle(kmsg.Heartbeat, 0, 1, nil) }},
		{"twice", func(s *Server) { s.handle(kmsg.ApiVersions, 0, 1, noop) }},
		{"after start", func(s *Server) {
			if err := s.Start(); err != nil {
				t.Fatalf("Start: got %v, want nil", err)
			}
			defer s.Shutdown(context.Background())
			s.handle(kmsg.Heartbeat, 0, 1, noop)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(testConfig(t))
			if err != nil {
				t.Fatalf("New: got %v, want nil", err)
			}
			defer func() {
				if recover() == nil {
					t.Fatalf("handle: got no panic, want one")
				}
			}()
			tc.do(s)
		})
	}
}
