// Package opshttp serves the operational HTTP endpoints every fluxo node
// has: /healthz (the process is alive), /readyz (the node takes traffic;
// the body may say more) and /metrics (Prometheus).
package opshttp

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is a running ops endpoint.
type Server struct {
	ln  net.Listener
	srv *http.Server
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
	s := &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go s.srv.Serve(ln)
	return s, nil
}

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
