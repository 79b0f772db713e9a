package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/source"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/bridge/uplink"
	"github.com/fluxo-io/fluxo/edge"
	"github.com/fluxo-io/fluxo/internal/opshttp"
)

func init() { register(newBridgeCmd) }

// bridgeConfig is what fluxo bridge wires together.
type bridgeConfig struct {
	Source   source.Config
	SpoolDir string
	Spool    spool.Config
	Uplink   uplink.Config // StateDir is the spool dir
	HTTPAddr string        // /healthz, /readyz, /metrics; empty: off
	// ShutdownWait bounds the stop of the source and the uplink.
	ShutdownWait time.Duration
}

// defaultBridgeHTTPAddr is next to the core's 8080 and the edge's 8081.
const defaultBridgeHTTPAddr = "127.0.0.1:8082"

func newBridgeCmd() *cobra.Command {
	cfg := bridgeConfig{
		Source:       source.DefaultConfig(),
		Spool:        spool.DefaultConfig(),
		Uplink:       uplink.DefaultConfig(),
		HTTPAddr:     defaultBridgeHTTPAddr,
		ShutdownWait: 30 * time.Second,
	}
	var (
		routes                 []string
		fwd                    forwardFlags
		caFile, certFile, keyF string
		insecure               bool
	)
	c := &cobra.Command{
		Use:   "bridge",
		Short: "Bridge an existing MQTT broker to the core: subscribe, spool on disk, forward",
		Long: `Run a bridge: the edge's spool and uplink, fed by subscribing to an MQTT broker
the site already runs (Mosquitto, EMQX, HiveMQ, ...) instead of by devices.

The bridge subscribes to the --filter topic filters at QoS 1 with a persistent
session (clean session off, client id --client-id: keep it stable), so the
broker keeps what is published while the bridge is away. Each message is routed
like a device publish at the edge, appended to the spool on disk and only then
acknowledged to the broker; the uplink forwards the spool to the core (or any
Kafka cluster) in snappy-compressed batches with an idempotent producer.

If the spool refuses a message (its disk budget is used up by alarms), the
message is not acknowledged: the bridge reconnects, with backoff, and the
broker delivers it again. Raise the broker's queue limit for the bridge's
session (Mosquitto: max_queued_messages) to ride out long refusals or absences.

Records are the edge's: key = device id ({fleet}/{device}/{stream}: second
level, else the bridge's client id), value = payload, headers mqtt.topic,
mqtt.qos, edge.id (--bridge-id) and edge.received_ms. Default routes:

  +/+/alarm/#    → alarms        (alarm lane)
  +/+/cmd/reply  → command-acks  (alarm lane)
  #              → telemetry     (telemetry lane)

--route replaces them: FILTER=TOPIC[,lane=alarm|telemetry][,key=device|clientid].
A message no route matches is acknowledged and dropped (and counted).

--shared-group G subscribes as $share/G/FILTER, so that several bridges (each
with its own --client-id and --spool-dir) share the messages.

The connections to the core are plaintext unless TLS (--core-tls-ca, and
--core-tls-cert/--core-tls-key for mutual TLS) or SASL (--core-sasl-mechanism
PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 with --core-sasl-user) is set, or
--client-config names a librdkafka/Java properties file (as kcat -F takes;
flags win over it). The SASL password is never a flag: it comes from
--core-sasl-password-file, else from FLUXO_CORE_SASL_PASSWORD.

/healthz, /readyz (ready while subscribed to the source) and /metrics are
served on --http-addr. SIGTERM or Ctrl-C disconnects from the source (what was
spooled is acknowledged first), stops the uplink (what the core has not
acknowledged stays spooled for the next start) and closes the spool.`,
		Example: `  # everything on a local Mosquitto, forwarded to a core on this machine
  fluxo bridge --source tcp://127.0.0.1:1883 --filter '#' --core 127.0.0.1:9092 --spool-dir ./spool

  # two fleets from a site broker over TLS, with a user (password from FLUXO_PASSWORD)
  FLUXO_PASSWORD=secret fluxo bridge --source ssl://mqtt.site.local:8883 --source-ca /etc/ssl/site-ca.pem \
    --username fluxo --filter 'cars/#' --filter 'sensors/#' \
    --core core1:9092,core2:9092 --spool-dir /var/lib/fluxo/bridge

  # two bridges sharing the load of one broker
  fluxo bridge --source tcp://emqx:1883 --shared-group fluxo --client-id bridge-a --spool-dir /srv/a
  fluxo bridge --source tcp://emqx:1883 --shared-group fluxo --client-id bridge-b --spool-dir /srv/b`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := logger(cmd)
			var err error
			if err = fwd.apply(cmd, &cfg.Spool, &cfg.Uplink); err != nil {
				return err
			}
			if len(routes) > 0 {
				cfg.Source.Routes = nil
				for _, r := range routes {
					rt, err := route.ParseRoute(r)
					if err != nil {
						return err
					}
					cfg.Source.Routes = append(cfg.Source.Routes, rt)
				}
			}
			if !cmd.Flags().Changed("client-id") && cmd.Flags().Changed("bridge-id") {
				cfg.Source.ClientID = "fluxo-bridge-" + cfg.Source.BridgeID
			}
			if cfg.Source.TLS, err = sourceTLS(caFile, certFile, keyF, insecure); err != nil {
				return err
			}
			return runBridge(cmd.Context(), cfg, log, cmd.ErrOrStderr())
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Source.Source, "source", cfg.Source.Source, "MQTT broker to subscribe to: tcp://HOST:PORT, ssl://HOST:PORT, ws://HOST:PORT/PATH or wss://HOST:PORT/PATH")
	f.StringArrayVar(&cfg.Source.Filters, "filter", cfg.Source.Filters, "MQTT topic filter to subscribe to (repeatable)")
	f.Uint8Var(&cfg.Source.QoS, "qos", cfg.Source.QoS, "QoS of the subscriptions: 1 or 2 (0: nothing is acknowledged, a refused message is lost)")
	f.StringVar(&cfg.Source.ClientID, "client-id", cfg.Source.ClientID, "MQTT client id, the name of the persistent session on the broker: stable, one per bridge (fluxo-bridge-<bridge id> unless set)")
	f.StringVar(&cfg.Source.BridgeID, "bridge-id", cfg.Source.BridgeID, "this bridge's id, in every record's edge.id header")
	f.StringVar(&cfg.Source.Username, "username", "", "MQTT user name at the source broker")
	f.StringVar(&cfg.Source.Password, "password", "", "MQTT password at the source broker (better: FLUXO_PASSWORD)")
	f.StringVar(&cfg.Source.SharedGroup, "shared-group", "", "subscribe as $share/GROUP/FILTER, sharing the messages with the other bridges of the group")
	f.StringVar(&caFile, "source-ca", "", "CA certificates (PEM) to check an ssl:// or wss:// source with (default: the system's)")
	f.StringVar(&certFile, "source-cert", "", "client certificate (PEM) for an ssl:// or wss:// source (needs --source-key)")
	f.StringVar(&keyF, "source-key", "", "client key (PEM) for --source-cert")
	f.BoolVar(&insecure, "source-insecure", false, "do not check the source's TLS certificate (not for production)")
	f.DurationVar(&cfg.Source.KeepAlive, "keepalive", cfg.Source.KeepAlive, "MQTT keep-alive with the source broker")
	f.StringArrayVar(&routes, "route", nil, "routing rule FILTER=TOPIC[,lane=alarm|telemetry][,key=device|clientid] (repeatable; replaces the defaults)")
	fwd.add(f, &cfg.SpoolDir, "spool directory (also keeps the uplink's producer state)", &cfg.Spool, &cfg.Uplink)
	f.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "HTTP listen address for /healthz, /readyz and /metrics (empty: off)")
	f.DurationVar(&cfg.ShutdownWait, "shutdown-timeout", cfg.ShutdownWait, "how long SIGTERM waits for the source and in-flight sends")
	return c
}

// sourceTLS builds the TLS configuration of the source connection from
// the flags; nil when none is set (paho then uses the system's roots for
// ssl:// and wss://).
func sourceTLS(caFile, certFile, keyFile string, insecure bool) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" && !insecure {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--source-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--source-ca: no PEM certificate in %s", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--source-cert and --source-key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--source-cert: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// runBridge opens the spool, starts the uplink, the subscriber and HTTP,
// and runs until ctx is done; then it stops them in that order and logs
// the accounting.
func runBridge(ctx context.Context, cfg bridgeConfig, log zerolog.Logger, out io.Writer) error {
	if err := cfg.Source.Validate(); err != nil { // before the spool dir is made
		return err
	}
	sc := cfg.Spool
	sc.Logger = log.With().Str("part", "spool").Logger()
	sp, err := spool.Open(cfg.SpoolDir, sc)
	if err != nil {
		return err
	}
	uc := cfg.Uplink
	uc.StateDir = cfg.SpoolDir
	uc.Logger = log.With().Str("part", "uplink").Logger()
	if uc.ClientID == "" || uc.ClientID == uplink.DefaultConfig().ClientID {
		uc.ClientID = "fluxo-bridge-" + cfg.Source.BridgeID
	}
	up, err := uplink.New(uc, sp)
	if err != nil {
		sp.Close()
		return err
	}
	srcCfg := cfg.Source
	srcCfg.Logger = log.With().Str("part", "source").Logger()
	sub, err := source.New(srcCfg, sp)
	if err != nil {
		up.Close()
		sp.Close()
		return err
	}
	srcCfg = sub.Config()

	var stopped atomic.Bool
	var httpSrv *opshttp.Server
	httpAddr := ""
	if cfg.HTTPAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			edge.NewSpoolCollector(sp, up), sub.Collector())
		httpSrv, err = opshttp.Start(cfg.HTTPAddr, reg, func(w http.ResponseWriter) bool {
			return bridgeReadyz(w, srcCfg.Source, sub, up, stopped.Load())
		})
		if err != nil {
			up.Close()
			sp.Close()
			return fmt.Errorf("bridge: %w", err)
		}
		httpAddr = httpSrv.Addr()
	}

	srcCtx, stopSource := context.WithCancel(context.Background())
	upCtx, stopUplink := context.WithCancel(context.Background())
	defer stopSource()
	defer stopUplink()
	var srcWG, upWG sync.WaitGroup
	upWG.Add(1)
	go func() {
		defer upWG.Done()
		up.Run(upCtx)
	}()
	srcWG.Add(1)
	go func() {
		defer srcWG.Done()
		sub.Run(srcCtx)
	}()

	subs := make([]string, len(srcCfg.Filters))
	for i, f := range srcCfg.Filters {
		subs[i] = f
		if srcCfg.SharedGroup != "" {
			subs[i] = "$share/" + srcCfg.SharedGroup + "/" + f
		}
	}
	log.Info().Str("source", srcCfg.Source).Strs("filters", subs).Str("client", srcCfg.ClientID).Str("http", httpAddr).
		Strs("core", uc.Brokers).Str("spool", cfg.SpoolDir).Str("sync", sc.Sync.String()).Msg("bridge started")
	fmt.Fprintf(out, "fluxo bridge: source %s (%s), HTTP on %s, spool in %s (sync %s), core %s\n",
		srcCfg.Source, strings.Join(subs, " "), httpAddr, cfg.SpoolDir, sc.Sync, strings.Join(uc.Brokers, ","))

	<-ctx.Done()
	stopped.Store(true)
	timeout := time.NewTimer(cfg.ShutdownWait)
	defer timeout.Stop()
	var errs []error
	// The source first: its last appends are acknowledged to the broker
	// before it disconnects. Then the uplink: what the core has not
	// acknowledged stays spooled for the next start.
	stopSource()
	if !waitGroup(&srcWG, timeout.C) {
		errs = append(errs, errors.New("bridge: the source did not stop in time"))
	}
	stopUplink()
	if !waitGroup(&upWG, timeout.C) {
		errs = append(errs, errors.New("bridge: the uplink did not stop in time"))
	}
	up.Close()
	if httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		httpSrv.Shutdown(sctx)
		cancel()
	}
	st := sub.Stats()
	log.Info().Int64("received", st.Received).Int64("redelivered", st.Redelivered).Int64("spooled", st.Spooled).
		Int64("unrouted", st.Unrouted).Int64("failed", st.Failed).Int64("discarded", st.Discarded).
		Int64("reconnects", st.Reconnects).Msg("source accounting")
	for _, s := range sp.Stats() {
		log.Info().Str("lane", s.Lane.String()).Int64("accepted", s.Accepted).Int64("delivered", s.Delivered).
			Int64("evicted", s.Evicted).Int64("expired", s.Expired).Int64("spooled", s.Spool).Msg("spool accounting")
	}
	errs = append(errs, sp.Close())
	return errors.Join(errs...)
}

// waitGroup waits for wg, or until timeout fires; it reports whether wg
// finished.
func waitGroup(wg *sync.WaitGroup, timeout <-chan time.Time) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-timeout:
		return false
	}
}

// bridgeReadyz: ready while subscribed to the source; the uplink's state
// is reported but not required (the bridge keeps spooling while the core
// is away).
func bridgeReadyz(w http.ResponseWriter, src string, sub *source.Subscriber, up *uplink.Uplink, stopped bool) bool {
	if stopped || !sub.Connected() {
		fmt.Fprintln(w, "not ready: not subscribed to "+src)
		return false
	}
	fmt.Fprintln(w, "ready")
	fmt.Fprintf(w, "source %s: up\n", src)
	for _, s := range up.Stats() {
		state := "down"
		if s.Connected {
			state = "up"
		}
		fmt.Fprintf(w, "uplink %s: %s, backlog %d\n", s.Lane, state, s.Backlog)
	}
	return true
}
