// Package opshttp serves the operational HTTP endpoints every fluxo node
// has: /healthz (the process is alive), /readyz (the node takes traffic;
// the body may say more) and /metrics (Prometheus).
package opshttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is a running ops endpoint.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	failed chan error // the fatal serve error, then closed; closed alone after Shutdown
}

// Start listens on addr and serves until Shutdown. ready writes the
// /readyz body and reports whether the node is ready (200) or not (503).
func Start(addr string, reg *prometheus.Registry, ready func(w http.ResponseWriter) bool) (*Server, error) {
	return StartWith(addr, reg, ready, nil)
}

// StartWith is Start with more routes: pattern (as http.ServeMux takes
// it) to handler.
func StartWith(addr string, reg *prometheus.Registry, ready func(w http.ResponseWriter) bool, routes map[string]http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for HTTP: %w", err)
	}
	return Serve(ln, reg, ready, routes), nil
}

// Serve is StartWith on a listener the caller opened; the server closes
// it on Shutdown.
func Serve(ln net.Listener, reg *prometheus.Registry, ready func(w http.ResponseWriter) bool, routes map[string]http.Handler) *Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		rw := &deferred{}
		if !ready(rw) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.Write(rw.body)
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	for pattern, h := range routes {
		mux.Handle(pattern, h)
	}
	s := &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, failed: make(chan error, 1)}
	go s.serve()
	return s
}

// serve runs the HTTP server until Shutdown or until its listener fails.
func (s *Server) serve() {
	defer close(s.failed)
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		s.failed <- fmt.Errorf("opshttp: serving on %s: %w", s.ln.Addr(), err)
	}
}

// Failed delivers the error that stopped the server when its listener
// failed (it can no longer accept connections: the node must fail
// /readyz, where it can, and stop), then is closed. After Shutdown it is
// closed without an error: a receive gets ok == false.
func (s *Server) Failed() <-chan error { return s.failed }

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops serving, waiting for requests in flight up to ctx.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// deferred collects the /readyz body so the status can be set after the
// readiness function ran.
type deferred struct{ body []byte }

func (d *deferred) Header() http.Header         { return http.Header{} }
func (d *deferred) WriteHeader(int)             {}
func (d *deferred) Write(b []byte) (int, error) { d.body = append(d.body, b...); return len(b), nil }
