package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// bareMochiCommand is the first argument that makes this program the
// baseline server instead of the harness.
const bareMochiCommand = "bare-mochi"

// bareMochi runs the baseline: a mochi-mqtt server with its default
// options, the allow-all hook and one TCP listener, nothing else (no
// persistence, no routing, no forwarding). It also serves, on a separate
// HTTP address, /readyz and /stats (the number of PUBLISH packets
// received from clients, mochi's Info.MessagesReceived), and runs until
// SIGTERM or SIGINT.
func bareMochi(args []string) error {
	fs := flag.NewFlagSet(bareMochiCommand, flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:1883", "MQTT TCP listen address")
	statsAddr := fs.String("stats-addr", "127.0.0.1:0", "HTTP address for /readyz and /stats")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv := mqtt.New(&mqtt.Options{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: *addr})); err != nil {
		return err
	}
	if err := srv.Serve(); err != nil {
		return err
	}
	defer srv.Close()

	var ready atomic.Bool
	ready.Store(true)
	ln, err := net.Listen("tcp", *statsAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, atomic.LoadInt64(&srv.Info.MessagesReceived))
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	<-ctx.Done()
	ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}
