package opshttp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "fluxo_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)
	var ready atomic.Bool
	s, err := Start("127.0.0.1:0", reg, func(w http.ResponseWriter) bool {
		if !ready.Load() {
			fmt.Fprintln(w, "starting")
			return false
		}
		fmt.Fprintln(w, "ready")
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		path, body string
		code       int
		ready      bool
	}{
		{"/healthz", "ok", 200, false},
		{"/readyz", "starting", 503, false},
		{"/readyz", "ready", 200, true},
		{"/metrics", "fluxo_test_total 3", 200, true},
	}
	for _, tt := range tests {
		ready.Store(tt.ready)
		code, body := get(tt.path)
		if code != tt.code || !strings.Contains(body, tt.body) {
			t.Errorf("%s: got %d %q, want %d containing %q", tt.path, code, body, tt.code, tt.body)
		}
	}
}

// TestFailedListener closes the listener under a running server: Failed
// delivers the accept error, then is closed.
func TestFailedListener(t *testing.T) {
	s, err := Start("127.0.0.1:0", prometheus.NewRegistry(), func(http.ResponseWriter) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	s.ln.Close()
	err, ok := <-s.Failed()
	if !ok || err == nil || !strings.Contains(err.Error(), "opshttp: serving on") {
		t.Fatalf("got %v (ok %v), want the serve error", err, ok)
	}
	if _, ok := <-s.Failed(); ok {
		t.Fatalf("got a second value, want Failed closed")
	}
}

// TestShutdownIsNotAFailure: after Shutdown, Failed is closed with no error.
func TestShutdownIsNotAFailure(t *testing.T) {
	s, err := Start("127.0.0.1:0", prometheus.NewRegistry(), func(http.ResponseWriter) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err, ok := <-s.Failed(); ok {
		t.Fatalf("got %v, want Failed closed without an error", err)
	}
}
