package kafka

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// waitFor bounds every wait in these tests: generous, so that a slow
// machine or the race detector never fails a test that would pass.
const waitFor = 10 * time.Second

// testConfig is DefaultConfig on a loopback port, logging to the test.
func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	return cfg
}

// startServer starts a server for cfg after register has added handlers,
// and shuts it down when the test ends.
func startServer(t *testing.T, cfg Config, register func(*Server)) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: got error %v, want nil", err)
	}
	if register != nil {
		register(s)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: got error %v, want nil", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: got error %v, want nil", err)
		}
	})
	return s
}

// startServerWithMetrics is startServer with a fresh Prometheus registry.
func startServerWithMetrics(t *testing.T, cfg Config, register func(*Server)) (*Server, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	return startServer(t, cfg, register), reg
}

// newClient returns a franz-go client seeded with s.
func newClient(t *testing.T, s *Server) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()))
	if err != nil {
		t.Fatalf("kgo.NewClient: got error %v, want nil", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// rawConn speaks the protocol by hand, to send what clients never send.
type rawConn struct {
	t    *testing.T
	nc   net.Conn
	corr int32
}

func dial(t *testing.T, s *Server) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.Addr().String(), waitFor)
	if err != nil {
		t.Fatalf("dial: got error %v, want nil", err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc}
}

// send writes req with the next correlation id and returns that id.
func (c *rawConn) send(req kmsg.Request) int32 {
	c.t.Helper()
	c.corr++
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw-test"))
	c.write(f.AppendRequest(nil, req, c.corr))
	return c.corr
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: got error %v, want nil", err)
	}
}

// frame prefixes b with its length.
func frame(b []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

// readResponse reads one response frame and decodes it into resp, whose
// version must be set; it checks the correlation id and, for flexible
// versions other than ApiVersions, skips the empty header tag section.
func (c *rawConn) readResponse(corr int32, resp kmsg.Response) {
	c.t.Helper()
	body, err := c.readFrame()
	if err != nil {
		c.t.Fatalf("read %s response: got error %v, want a response", kmsg.NameForKey(resp.Key()), err)
	}
	if len(body) < 4 {
		c.t.Fatalf("response frame: got %d bytes, want at least 4", len(body))
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		c.t.Fatalf("correlation id: got %d, want %d", got, corr)
	}
	body = body[4:]
	if resp.IsFlexible() && resp.Key() != int16(kmsg.ApiVersions) {
		if len(body) == 0 || body[0] != 0 {
			c.t.Fatalf("response header tags: got %x, want 00", body[:min(1, len(body))])
		}
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		c.t.Fatalf("decode %s v%d response: got error %v, want nil", kmsg.NameForKey(resp.Key()), resp.GetVersion(), err)
	}
}

// roundTrip sends req and decodes its response.
func (c *rawConn) roundTrip(req kmsg.Request) kmsg.Response {
	c.t.Helper()
	corr := c.send(req)
	resp := req.ResponseKind()
	c.readResponse(corr, resp)
	return resp
}

func (c *rawConn) readFrame() ([]byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(waitFor))
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err := io.ReadFull(c.nc, body)
	return body, err
}

// expectClosed waits for the server to close the connection, failing if
// it answers instead or stays silent for waitFor. A close arrives as EOF,
// or as a reset when the server left bytes unread.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitFor))
	var b [1]byte
	n, err := c.nc.Read(b[:])
	switch {
	case n > 0:
		c.t.Fatalf("read after bad request: got a byte, want the connection closed")
	case isTimeout(err):
		c.t.Fatalf("read after bad request: got a timeout after %s, want the connection closed", waitFor)
	case err == nil:
		c.t.Fatalf("read after bad request: got no error, want the connection closed")
	}
}

// apiVersions asks for ApiVersions at the newest version and checks that
// the server answered; it proves the server still serves.
func (c *rawConn) apiVersions() *kmsg.ApiVersionsResponse {
	c.t.Helper()
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = req.MaxVersion()
	req.ClientSoftwareName = "fluxo-test"
	req.ClientSoftwareVersion = "1.0"
	resp := c.roundTrip(req).(*kmsg.ApiVersionsResponse)
	if resp.ErrorCode != 0 {
		c.t.Fatalf("ApiVersions error code: got %d, want 0", resp.ErrorCode)
	}
	return resp
}

// value reads a counter's or gauge's current value.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatalf("read metric: got %v, want nil", err)
	}
	switch {
	case pb.Counter != nil:
		return pb.Counter.GetValue()
	case pb.Gauge != nil:
		return pb.Gauge.GetValue()
	}
	t.Fatalf("read metric: got %v, want a counter or gauge", &pb)
	return 0
}
