// Command natsmqtt runs nats-server (embedded from its Go module) with its
// MQTT front and JetStream, in the shape benchmarks/mqtt's -peer targets
// take: MQTT on -addr, and on -stats-addr /readyz and /stats, the number
// of messages the server has taken in from MQTT publishers so far.
//
// JetStream stores to a temporary directory (removed at exit) with the
// server's defaults (no fsync per message: the file store syncs every
// two minutes, as `fluxo edge --spool-sync never` leaves it to the page
// cache). A stream FLEET captures the subjects the devices' MQTT topics
// map to (cars/c-0001/telemetry is cars.c-0001.telemetry), so that every
// message is stored, as the edge spools every message; /stats is that
// stream's message count. It runs until SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "natsmqtt:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:1883", "MQTT TCP listen address")
	statsAddr := flag.String("stats-addr", "127.0.0.1:0", "HTTP address for /readyz and /stats")
	flag.Parse()
	host, portS, err := net.SplitHostPort(*addr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "natsmqtt-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	s, err := server.NewServer(&server.Options{
		ServerName: "bench",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   dir,
		MQTT:       server.MQTTOpts{Host: host, Port: port},
	})
	if err != nil {
		return err
	}
	go s.Start()
	defer func() {
		s.Shutdown()
		s.WaitForShutdown()
	}()
	if !s.ReadyForConnections(30 * time.Second) {
		return errors.New("nats-server not ready after 30s")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	stream, err := js.CreateStream(sctx, jetstream.StreamConfig{
		Name:     "FLEET",
		Subjects: []string{"cars.>", "sensors.>", "panels.>"},
		Storage:  jetstream.FileStorage,
		MaxBytes: 4 << 30,
		Discard:  jetstream.DiscardOld,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("create stream: %w", err)
	}

	ln, err := net.Listen("tcp", *statsAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		info, err := stream.Info(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, info.State.Msgs)
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	<-ctx.Done()
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer hcancel()
	return hs.Shutdown(hctx)
}
