package kafka

import (
	"context"
	"errors"
	"maps"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // substring of the error, "" for none
	}{
		{"default", func(*Config) {}, ""},
		{"unbounded in-flight bytes", func(c *Config) { c.MaxInFlightBytes = 0 }, ""},
		{"negative node id", func(c *Config) { c.NodeID = -1 }, "node id"},
		{"request bytes below a header", func(c *Config) { c.MaxRequestBytes = 7 }, "max request bytes"},
		{"request bytes beyond int32", func(c *Config) { c.MaxRequestBytes = 1 << 31 }, "max request bytes"},
		{"negative in-flight bytes", func(c *Config) { c.MaxInFlightBytes = -1 }, "in-flight"},
		{"in-flight bytes below a request", func(c *Config) { c.MaxInFlightBytes = 1 << 20 }, "in-flight"},
		{"no connections", func(c *Config) { c.MaxConnections = 0 }, "max connections"},
		{"no idle timeout", func(c *Config) { c.IdleTimeout = 0 }, "idle timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: got %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: got %v, want an error about %q", err, tc.want)
			}
			if _, err := New(cfg); (err == nil) != (tc.want == "") {
				t.Fatalf("New: got %v, want the same as Validate", err)
			}
		})
	}
}

func TestMetricsRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	cfg.Registerer = reg
	if _, err := New(cfg); err != nil {
		t.Fatalf("first New: got %v, want nil", err)
	}
	if _, err := New(cfg); err == nil {
		t.Fatalf("second New on the same registry: got nil, want an error")
	}

	s, reg := startServerWithMetrics(t, testConfig(t), nil)
	dial(t, s).apiVersions()
	if got := value(t, s.metrics.requests.WithLabelValues("ApiVersions")); got != 1 {
		t.Fatalf("requests{api=ApiVersions}: got %v, want 1", got)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: got %v, want nil", err)
	}
	got := map[string]int{}
	for _, f := range families {
		got[f.GetName()] = len(f.GetMetric())
	}
	want := map[string]int{
		"fluxo_kafka_requests_total":             1, // ApiVersions
		"fluxo_kafka_request_duration_seconds":   1, // ApiVersions
		"fluxo_kafka_connections":                1,
		"fluxo_kafka_connections_rejected_total": 1,
		"fluxo_kafka_request_errors_total":       5, // every reason, from zero
	}
	if !maps.Equal(got, want) {
		t.Fatalf("series per family: got %v, want %v", got, want)
	}
}

func TestOversizedFrameIsNotAllocated(t *testing.T) {
	s, _ := startServerWithMetrics(t, testConfig(t), nil)
	c := dial(t, s)
	c.apiVersions()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c.write([]byte{0x40, 0, 0, 0}) // 1 GiB
	c.write(make([]byte, 64<<10))  // and the start of a body
	c.expectClosed()
	runtime.ReadMemStats(&after)

	if got := after.TotalAlloc - before.TotalAlloc; got > 256<<20 {
		t.Fatalf("bytes allocated while rejecting a 1 GiB frame: got %d, want well under 1 GiB", got)
	}
	if got := value(t, s.metrics.requestErrors.WithLabelValues(reasonOversized)); got != 1 {
		t.Fatalf("request errors{reason=oversized}: got %v, want 1", got)
	}
	dial(t, s).apiVersions()
}

func TestMaxRequestBytesBoundary(t *testing.T) {
	cfg := testConfig(t)
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName, req.ClientSoftwareVersion = "fluxo-test", "1"
	size := len(kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw-test")).AppendRequest(nil, req, 1)) - 4
	cfg.MaxRequestBytes = size
	s := startServer(t, cfg, nil)

	dial(t, s).roundTrip(req) // exactly the limit: served

	c := dial(t, s)
	req.ClientSoftwareVersion = "12" // one byte more
	c.send(req)
	c.expectClosed()
}

func TestMaxConnections(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxConnections = 2
	s, _ := startServerWithMetrics(t, cfg, nil)

	first, second := dial(t, s), dial(t, s)
	first.apiVersions()
	second.apiVersions()

	third := dial(t, s)
	third.expectClosed()
	if got := value(t, s.metrics.connectionsRejected); got != 1 {
		t.Fatalf("connections rejected: got %v, want 1", got)
	}
	if got := value(t, s.metrics.connections); got != 2 {
		t.Fatalf("connections: got %v, want 2", got)
	}

	first.nc.Close()
	testutil.EventuallyWithin(t, waitFor, "connection count drops after a client leaves", func() bool {
		return value(t, s.metrics.connections) == 1
	})
	dial(t, s).apiVersions()
	second.apiVersions()
}

func TestIdleTimeout(t *testing.T) {
	cfg := testConfig(t)
	cfg.IdleTimeout = 250 * time.Millisecond
	s := startServer(t, cfg, nil)

	silent := dial(t, s)
	served := dial(t, s)
	served.apiVersions()
	silent.expectClosed()
	served.expectClosed()
}

func TestInFlightBytesBudget(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxRequestBytes = 1 << 10
	cfg.MaxInFlightBytes = 1 << 10
	started, release := make(chan struct{}), make(chan struct{})
	s := startServer(t, cfg, func(s *Server) {
		s.handle(kmsg.Heartbeat, 0, 4, func(_ context.Context, _ *Conn, req kmsg.Request) (kmsg.Response, error) {
			started <- struct{}{}
			<-release
			return req.ResponseKind(), nil
		})
	})

	// A request holding nearly the whole budget.
	big := kmsg.NewPtrHeartbeatRequest()
	big.Group = strings.Repeat("g", 900)
	holder := dial(t, s)
	corr := holder.send(big)
	<-started

	// A second request does not fit until the first is answered.
	waiter := dial(t, s)
	waiterCorr := waiter.send(big)
	select {
	case <-started:
		t.Fatalf("second request: got handled while the budget was taken, want it to wait")
	case <-time.After(50 * time.Millisecond):
	}
	release <- struct{}{}
	holder.readResponse(corr, big.ResponseKind())

	<-started
	release <- struct{}{}
	waiter.readResponse(waiterCorr, big.ResponseKind())
}

func TestShutdownWaitsForInFlightRequest(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	s, err := New(testConfig(t))
	if err != nil {
		t.Fatalf("New: got %v, want nil", err)
	}
	s.handle(kmsg.Heartbeat, 0, 4, func(_ context.Context, _ *Conn, req kmsg.Request) (kmsg.Response, error) {
		close(started)
		<-release
		return req.ResponseKind(), nil
	})
	if err := s.Start(); err != nil {
		t.Fatalf("Start: got %v, want nil", err)
	}
	addr := s.Addr().String()

	idle := dial(t, s)
	idle.apiVersions()
	busy := dial(t, s)
	corr := busy.send(kmsg.NewPtrHeartbeatRequest())
	<-started

	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()

	idle.expectClosed()
	testutil.EventuallyWithin(t, waitFor, "listener closed", func() bool {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		nc.Close()
		return false
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown: returned %v while a request was in flight, want it to wait", err)
	case <-time.After(50 * time.Millisecond):
	}

	close(release)
	busy.readResponse(corr, kmsg.NewPtrHeartbeatRequest().ResponseKind())
	busy.expectClosed()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: got %v, want nil", err)
		}
	case <-time.After(waitFor):
		t.Fatalf("Shutdown: still waiting %s after the request was answered", waitFor)
	}
	if err := s.Serve(newListener(t)); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: got %v, want %v", err, ErrServerClosed)
	}
	if err := s.Start(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Start after Shutdown: got %v, want %v", err, ErrServerClosed)
	}
}

func TestShutdownDeadlineCancelsHandlers(t *testing.T) {
	started, cancelled := make(chan struct{}), make(chan struct{})
	s, err := New(testConfig(t))
	if err != nil {
		t.Fatalf("New: got %v, want nil", err)
	}
	s.handle(kmsg.Heartbeat, 0, 4, func(ctx context.Context, _ *Conn, req kmsg.Request) (kmsg.Response, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return nil, ctx.Err()
	})
	if err := s.Start(); err != nil {
		t.Fatalf("Start: got %v, want nil", err)
	}
	c := dial(t, s)
	c.send(kmsg.NewPtrHeartbeatRequest())
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: got %v, want %v", err, context.DeadlineExceeded)
	}
	select {
	case <-cancelled:
	default:
		t.Fatalf("handler context: got not cancelled when Shutdown returned, want cancelled")
	}
	c.expectClosed()
}

func TestServeOnOwnListener(t *testing.T) {
	s, err := New(testConfig(t))
	if err != nil {
		t.Fatalf("New: got %v, want nil", err)
	}
	ln := newListener(t)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	testutil.EventuallyWithin(t, waitFor, "server listening", func() bool { return s.Addr() != nil })

	cl := newClient(t, s)
	if _, err := kmsg.NewPtrApiVersionsRequest().RequestWith(context.Background(), cl); err != nil {
		t.Fatalf("ApiVersions: got %v, want nil", err)
	}
	cl.Close()

	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: got %v, want nil", err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: got %v, want %v", err, ErrServerClosed)
	}
	if s.Addr() != nil {
		t.Fatalf("Addr after Shutdown: got %v, want nil", s.Addr())
	}
}

func newListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: got %v, want nil", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// produceReq is a Produce request (v7) whose timeout carries n, so that a
// handler can tell requests apart.
func produceReq(n int32) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 7
	req.Acks = 1
	req.TimeoutMillis = n
	return req
}

// TestPipelinedProduce sends Produce requests back to back, without
// waiting for responses, while the first one's handler is held: each is
// handled once, in order, and answered in order; another request after
// them is answered too (the frame read during the last Produce is the
// next one handled).
func TestPipelinedProduce(t *testing.T) {
	started, release := make(chan int32, 8), make(chan struct{})
	s := startServer(t, testConfig(t), func(s *Server) {
		s.handle(kmsg.Produce, 3, 12, func(_ context.Context, _ *Conn, req kmsg.Request) (kmsg.Response, error) {
			n := req.(*kmsg.ProduceRequest).TimeoutMillis
			started <- n
			if n == 1 {
				<-release
			}
			return req.ResponseKind(), nil
		})
	})
	c := dial(t, s)
	var corrs []int32
	for n := range int32(4) {
		corrs = append(corrs, c.send(produceReq(n+1)))
	}
	if got := <-started; got != 1 {
		t.Fatalf("first request handled: got %d, want 1", got)
	}
	select {
	case n := <-started:
		t.Fatalf("request %d: got handled while request 1 was, want it to wait", n)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	for i, corr := range corrs {
		c.readResponse(corr, produceReq(0).ResponseKind())
		if i > 0 {
			if got := <-started; got != int32(i+1) {
				t.Fatalf("handled: got request %d, want %d", got, i+1)
			}
		}
	}
	c.apiVersions()
}

// TestShutdownDuringPipelinedProduce: a Produce request in flight is
// answered and the one read behind it is dropped unanswered, as Shutdown
// drops a request just read; Shutdown then returns, with the goroutine
// that read ahead gone.
func TestShutdownDuringPipelinedProduce(t *testing.T) {
	started, release := make(chan int32, 8), make(chan struct{})
	s, err := New(testConfig(t))
	if err != nil {
		t.Fatalf("New: got %v, want nil", err)
	}
	s.handle(kmsg.Produce, 3, 12, func(_ context.Context, _ *Conn, req kmsg.Request) (kmsg.Response, error) {
		n := req.(*kmsg.ProduceRequest).TimeoutMillis
		started <- n
		if n == 1 {
			<-release
		}
		return req.ResponseKind(), nil
	})
	if err := s.Start(); err != nil {
		t.Fatalf("Start: got %v, want nil", err)
	}
	addr := s.Addr().String()
	c := dial(t, s)
	corr := c.send(produceReq(1))
	c.send(produceReq(2))
	<-started
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	// Shutdown has begun once the listener is closed; only then may the
	// first request finish.
	testutil.EventuallyWithin(t, waitFor, "listener closed", func() bool {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		nc.Close()
		return false
	})
	close(release)
	c.readResponse(corr, produceReq(0).ResponseKind())
	c.expectClosed()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: got %v, want nil", err)
		}
	case <-time.After(waitFor):
		t.Fatalf("Shutdown: still waiting %s after the request was answered", waitFor)
	}
	select {
	case n := <-started:
		t.Fatalf("request %d: got handled after Shutdown, want it dropped", n)
	default:
	}
}
