package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fluxo-io/fluxo/bridge"
)

func init() { register(newBridgeCmd) }

func newBridgeCmd() *cobra.Command {
	cfg := bridge.DefaultConfig()
	var (
		routes                 []string
		fwd                    forwardFlags
		caFile, certFile, keyF string
		insecure               bool
		shutdownWait           time.Duration
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
			cfg.Logger = logger(cmd)
			var err error
			if err = fwd.apply(cmd, &cfg.Spool, &cfg.Uplink); err != nil {
				return err
			}
			if len(routes) > 0 {
				if cfg.Source.Routes, err = parseRoutes(routes); err != nil {
					return err
				}
			}
			if !cmd.Flags().Changed("client-id") && cmd.Flags().Changed("bridge-id") {
				cfg.Source.ClientID = "fluxo-bridge-" + cfg.Source.BridgeID
			}
			if cfg.Source.TLS, err = sourceTLS(caFile, certFile, keyF, insecure); err != nil {
				return err
			}
			return runBridge(cmd.Context(), cfg, shutdownWait, cmd.ErrOrStderr())
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
	f.DurationVar(&shutdownWait, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for the source and in-flight sends")
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

// runBridge builds and starts a bridge node, and runs it until ctx is
// done; the node then stops within shutdownWait.
func runBridge(ctx context.Context, cfg bridge.Config, shutdownWait time.Duration, out io.Writer) error {
	node, err := bridge.NewNode(cfg)
	if err != nil {
		return err
	}
	if err := node.Start(); err != nil {
		return err
	}
	sc, fc := node.Subscriber().Config(), node.Forwarder().Config()
	fmt.Fprintf(out, "fluxo bridge: source %s (%s), HTTP on %s, spool in %s (sync %s), core %s\n",
		sc.Source, strings.Join(node.Subscriber().Subscriptions(), " "), node.HTTPAddr(), fc.SpoolDir, fc.Spool.Sync,
		strings.Join(fc.Uplink.Brokers, ","))
	var failed error
	select {
	case <-ctx.Done():
	case failed = <-node.Failed():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	if err := node.Shutdown(sctx); err != nil && failed == nil {
		return err
	}
	return failed
}
