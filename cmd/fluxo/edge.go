package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/fluxo-io/fluxo/edge"
)

func init() { register(newEdgeCmd) }

func newEdgeCmd() *cobra.Command {
	cfg := edge.DefaultNodeConfig()
	var (
		routes       []string
		fwd          forwardFlags
		drain        string
		downlinkOn   bool
		registryOn   bool
		commandsFrom string
		shutdownWait time.Duration
		tlsCert      string
		tlsKey       string
		usersFile    string
		usersPoll    time.Duration
		clientCA     string
		clientID     string
	)
	c := &cobra.Command{
		Use:   "edge",
		Short: "Run an edge node: MQTT for devices, a disk spool, forwarding to the core",
		Long: `Run an edge node. Devices publish over MQTT (3.1.1 or 5, TCP, TLS or
WebSocket); every accepted message is appended to the spool on disk before the
device's acknowledgement goes out, and forwarded in snappy-compressed batches to
the core (or any Kafka cluster) by an idempotent producer; it leaves the spool
once the core acknowledged it. When the core is away the edge keeps accepting;
when it returns the backlog drains in order (--drain in-order) or behind the
fresh telemetry (--drain live-first). Commands on the core topic "commands"
reach the devices over MQTT.

Routing: the first rule whose MQTT filter matches the topic decides the core
topic, the lane (alarm: sent first, never evicted; telemetry) and the key (the
device level of {fleet}/{device}/{stream}, or the client id). Default rules:

  +/+/alarm/#    → alarms        (alarm lane)
  +/+/cmd/reply  → command-acks  (alarm lane)
  #              → telemetry     (telemetry lane)

--route replaces them: FILTER=TOPIC[,lane=alarm|telemetry][,key=device|clientid].

Spool durability (--spool-sync): always = fsync before the acknowledgement
(survives a power cut; devices share fsyncs, and under load telemetry waits
up to --spool-commit-delay for more to share one), batch = fsync every
--spool-sync-interval, never = the page cache, the uplink's producer state
included (survives a crash of the edge process, not of the machine; after a
reboot the uplink starts a new producer and sends what is spooled at least
once).

The connections to the core are plaintext unless TLS (--core-tls-ca, and
--core-tls-cert/--core-tls-key for mutual TLS) or SASL (--core-sasl-mechanism
PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 with --core-sasl-user) is set, or
--client-config names a librdkafka/Java properties file (as kcat -F takes;
flags win over it). The SASL password is never a flag: it comes from
--core-sasl-password-file, else from FLUXO_CORE_SASL_PASSWORD.

Devices must authenticate with --users FILE (bcrypt, per-user ACLs; see
'fluxo edge passwd') unless --allow-anonymous is given. The users file is read
again on SIGHUP and when it changes; a file that does not load keeps the users
in use (the log says why). With --mqtt-client-ca, devices on the TLS listener
may authenticate with a client certificate instead: its common name (or URI
SAN, --mqtt-client-identity uri) is the username, with or without a password;
a user listed without a password authenticates by certificate only.`,
		Example: `  # anonymous devices, forwarding to a core on this machine
  fluxo edge --allow-anonymous

  # a Pi in a depot: authenticated devices, a 4 GiB spool, a metered link
  fluxo edge --mqtt-addr 0.0.0.0:1883 --users /etc/fluxo/users.yaml \
    --core core1:9092,core2:9092 --spool-dir /var/lib/fluxo/spool \
    --spool-max-bytes 4294967296 --uplink-max-bytes-per-sec 200000

  # add a device user
  fluxo edge passwd /etc/fluxo/users.yaml sensor-17`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// SIGHUP reloads the users file; it never stops the edge.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			log := logger(cmd)
			cfg.Logger = log
			if ceiling := logFileLimit(log, "devices"); ceiling > 0 && uint64(cfg.Edge.MaxClients) > ceiling {
				log.Warn().Int("max_clients", cfg.Edge.MaxClients).Uint64("devices_max", ceiling).
					Msg("--max-clients is above what the open file limit allows: raise the hard limit (LimitNOFILE in systemd, ulimit -Hn)")
			}
			var err error
			if err = fwd.apply(cmd, &cfg.Spool, &cfg.Uplink); err != nil {
				return err
			}
			switch drain {
			case "in-order":
			case "live-first":
				cfg.Uplink.LiveFirst = true
			default:
				return fmt.Errorf("--drain %q: want in-order or live-first", drain)
			}
			if len(routes) > 0 {
				if cfg.Edge.Routes, err = parseRoutes(routes); err != nil {
					return err
				}
			}
			if cfg.Edge.TLS, err = edgeTLS(tlsCert, tlsKey); err != nil {
				return err
			}
			if clientCA != "" {
				if err := edgeClientCA(cfg.Edge.TLS, clientCA); err != nil {
					return err
				}
			}
			if cfg.Edge.CertIdentity, err = edge.ParseCertIdentity(clientID); err != nil {
				return fmt.Errorf("--mqtt-client-identity: %w", err)
			}
			if usersFile != "" {
				if cfg.Edge.Users, err = loadUsers(usersFile); err != nil {
					return err
				}
			}
			if cfg.Edge.StateDir == "" {
				cfg.Edge.StateDir = filepath.Join(cfg.SpoolDir, "mqtt")
			}
			if err := os.MkdirAll(cfg.Edge.StateDir, 0o755); err != nil {
				return err
			}
			if !downlinkOn {
				cfg.Downlink = nil
			} else {
				switch commandsFrom {
				case "end":
				case "start":
					cfg.Downlink.FromStart = true
				default:
					return fmt.Errorf("--commands-from %q: want start or end", commandsFrom)
				}
			}
			if !registryOn {
				cfg.Devices = nil
			}
			node, err := edge.NewNode(cfg)
			if err != nil {
				return err
			}
			if err := node.Start(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "fluxo edge: MQTT on %s, HTTP on %s, spool in %s (sync %s), core %s\n",
				node.MQTTAddr(), node.HTTPAddr(), cfg.SpoolDir, cfg.Spool.Sync, strings.Join(cfg.Uplink.Brokers, ","))
			ctx := cmd.Context()
			if usersFile != "" {
				go newUsersReloader(usersFile, node.Edge(), log, usersPoll).run(ctx, hup)
			} else {
				go func() {
					for {
						select {
						case <-ctx.Done():
							return
						case <-hup:
							log.Info().Msg("sighup: no users file to reload")
						}
					}
				}()
			}
			var failed error
			select {
			case <-ctx.Done():
			case failed = <-node.Failed():
				log.Error().Err(failed).Msg("http listener failed, stopping")
			case failed = <-node.Edge().Failed():
				log.Error().Err(failed).Msg("mqtt listener failed, stopping")
			}
			sctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
			defer cancel()
			if err := node.Shutdown(sctx); err != nil && failed == nil {
				return err
			}
			return failed
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Edge.MQTTAddr, "mqtt-addr", cfg.Edge.MQTTAddr, "MQTT TCP listen address")
	f.StringVar(&cfg.Edge.TLSAddr, "mqtt-tls-addr", "", "MQTT over TLS listen address (needs --tls-cert and --tls-key)")
	f.StringVar(&tlsCert, "tls-cert", "", "TLS certificate file (PEM)")
	f.StringVar(&tlsKey, "tls-key", "", "TLS key file (PEM)")
	f.StringVar(&cfg.Edge.WSAddr, "ws-addr", "", "MQTT over WebSocket listen address (optional)")
	f.StringVar(&cfg.Edge.EdgeID, "edge-id", cfg.Edge.EdgeID, "this edge's id, in every record's edge.id header")
	f.StringVar(&usersFile, "users", "", "users file (YAML: username, bcrypt password, ACL); read again on SIGHUP and when it changes")
	f.DurationVar(&usersPoll, "users-poll-interval", 2*time.Second, "how often the users file is checked for changes")
	f.StringVar(&clientCA, "mqtt-client-ca", "", "CA certificates (PEM) of device client certificates on the MQTT TLS listener: a device with one authenticates as its identity")
	f.StringVar(&clientID, "mqtt-client-identity", "cn", "which name of a device certificate is its username: cn (subject common name) or uri (first URI SAN)")
	f.BoolVar(&cfg.Edge.AllowAnonymous, "allow-anonymous", false, "let devices connect without credentials")
	f.StringArrayVar(&routes, "route", nil, "routing rule FILTER=TOPIC[,lane=alarm|telemetry][,key=device|clientid] (repeatable; replaces the defaults)")
	f.Uint32Var(&cfg.Edge.MaxPacketSize, "max-packet-size", cfg.Edge.MaxPacketSize, "largest MQTT packet accepted, in bytes")
	f.DurationVar(&cfg.Edge.MaxKeepAlive, "max-keep-alive", cfg.Edge.MaxKeepAlive, "longest MQTT 5 keep alive granted (Server Keep Alive in CONNACK); silent clients are dropped after 1.5x (negative: off)")
	f.IntVar(&cfg.Edge.MaxHeaders, "max-headers", cfg.Edge.MaxHeaders, "record headers per publish, the edge's own included (MQTT 5 user properties and properties); past it the publish is refused (0x83)")
	f.IntVar(&cfg.Edge.MaxHeaderBytes, "max-header-bytes", cfg.Edge.MaxHeaderBytes, "bytes of record header keys and values per publish; past it the publish is refused (0x83)")
	f.IntVar(&cfg.Edge.MaxClients, "max-clients", cfg.Edge.MaxClients, "devices connected at once; beyond, a device is refused (server unavailable / 0x89 server busy)")
	f.Float64Var(&cfg.Edge.MaxConnectRate, "max-connect-rate", cfg.Edge.MaxConnectRate, "new MQTT connections accepted per second, to spread a connect storm (0: no limit); beyond, a device is refused (server unavailable / 0x97 quota exceeded) and retries")
	f.IntVar(&cfg.Edge.MaxConnectBurst, "max-connect-burst", cfg.Edge.MaxConnectBurst, "connections accepted at once above --max-connect-rate (0: the rate, at least 1)")
	f.IntVar(&cfg.Edge.MaxWritesPending, "max-writes-pending", cfg.Edge.MaxWritesPending, "packets queued for writing to one device; beyond, QoS 0 messages to it are dropped and counted (fluxo_edge_writes_dropped_total), QoS 1/2 ones wait in its session")
	fwd.add(f, &cfg.SpoolDir, "spool directory (also keeps MQTT sessions and the uplink's producer state)", &cfg.Spool, &cfg.Uplink)
	f.StringVar(&drain, "drain", "in-order", "after an outage: in-order sends the backlog first; live-first sends fresh telemetry ahead of it (edge.received_ms tells them apart)")
	f.Int64Var(&cfg.Uplink.LiveFirstBacklog, "live-first-backlog", cfg.Uplink.LiveFirstBacklog, "telemetry backlog, in records, from which --drain live-first applies")
	f.BoolVar(&downlinkOn, "downlink", true, "deliver commands from the core topic to devices")
	f.StringVar(&cfg.Downlink.Topic, "commands-topic", cfg.Downlink.Topic, "core topic with commands for devices")
	f.StringVar(&cfg.Downlink.AcksTopic, "command-acks-topic", cfg.Downlink.AcksTopic, "core topic for the commands' status records (queued, delivered, acked, expired, rejected) and answers")
	f.DurationVar(&cfg.Downlink.TTL, "command-ttl", cfg.Downlink.TTL, "a command's lifetime from its record time, unless its expires_ms header says otherwise")
	f.StringVar(&commandsFrom, "commands-from", "end", "where an edge new to the core starts reading commands: end (those recorded from its first start on) or start (the whole topic)")
	f.BoolVar(&registryOn, "registry", true, "keep a device registry (spool dir/devices.db), served at /api/devices; commands wait in it for devices not subscribed yet")
	f.IntVar(&cfg.Devices.MaxDevices, "max-devices", cfg.Devices.MaxDevices, "devices the registry keeps; beyond, the least recently seen is forgotten (counted as evicted)")
	f.IntVar(&cfg.Devices.MaxPending, "max-queued-commands", cfg.Devices.MaxPending, "commands waiting at the edge for their devices, all devices together; beyond, a command is rejected")
	f.Int64Var(&cfg.Devices.MaxPendingBytes, "max-queued-command-bytes", cfg.Devices.MaxPendingBytes, "bytes of the commands waiting at the edge; beyond, a command is rejected")
	f.DurationVar(&cfg.CoreTimeout, "ready-core-timeout", cfg.CoreTimeout, "/readyz fails while a lane has records waiting and has not reached the core for longer (0: never)")
	f.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "HTTP listen address for /healthz, /readyz, /metrics and /api/devices (empty: off)")
	f.DurationVar(&shutdownWait, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight sends")
	c.AddCommand(newEdgePasswdCmd())
	return c
}

func newEdgePasswdCmd() *cobra.Command {
	var fromStdin bool
	c := &cobra.Command{
		Use:   "passwd FILE USER",
		Short: "Add a device user to a users file, or change its password",
		Long: `Add USER to the users file FILE (created if missing), or change its password.
The password is read from the terminal (twice), or from one line of standard
input with --stdin. Only a bcrypt hash is stored. A new user may publish and
subscribe under {fleet}/USER/...: edit its acl in the file to change that.`,
		Example: `  fluxo edge passwd /etc/fluxo/users.yaml s-0017
  echo "$SECRET" | fluxo edge passwd --stdin users.yaml c-0042`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd, fromStdin)
			if err != nil {
				return err
			}
			if err := setPassword(args[0], args[1], pw); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "password set for %s in %s\n", args[1], args[0])
			return nil
		},
	}
	c.Flags().BoolVar(&fromStdin, "stdin", false, "read the password from one line of standard input")
	return c
}

func readPassword(cmd *cobra.Command, fromStdin bool) (string, error) {
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && !fromStdin && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(cmd.ErrOrStderr(), "password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		fmt.Fprint(cmd.ErrOrStderr(), "again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", fmt.Errorf("the passwords differ")
		}
		if len(a) == 0 {
			return "", fmt.Errorf("empty password")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		if err != nil {
			return "", fmt.Errorf("no password on standard input: %w", err)
		}
		return "", fmt.Errorf("empty password")
	}
	return line, nil
}

// edgeTLS loads the certificate of the MQTT TLS listener; nil when
// neither file is given (edge.Config.Validate then refuses a TLS address).
func edgeTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// edgeClientCA makes the MQTT TLS listener verify device certificates
// issued by the CAs in file; devices without one still connect with a
// password.
func edgeClientCA(tc *tls.Config, file string) error {
	if tc == nil {
		return errors.New("--mqtt-client-ca needs the TLS listener (--mqtt-tls-addr, --tls-cert, --tls-key)")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--mqtt-client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("--mqtt-client-ca: %s: no PEM certificate", file)
	}
	tc.ClientCAs = pool
	tc.ClientAuth = tls.VerifyClientCertIfGiven
	return nil
}

// loadUsers reads and checks a users file.
func loadUsers(path string) (*edge.Users, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--users: %w", err)
	}
	u, err := edge.ParseUsers(b)
	if err != nil {
		return nil, fmt.Errorf("--users: %s: %w", path, err)
	}
	return u, nil
}

// setPassword sets a user's password in a users file, created (mode
// 0600) when missing; the file keeps its mode, comments, other users and
// ACLs, and is replaced atomically.
func setPassword(path, username, password string) error {
	mode := os.FileMode(0o600)
	doc, err := os.ReadFile(path)
	switch {
	case err == nil:
		if fi, err := os.Stat(path); err == nil {
			mode = fi.Mode().Perm()
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return fmt.Errorf("cannot read users file: %w", err)
	}
	doc, err = edge.SetPassword(doc, username, password)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return writeFileAtomic(path, doc, mode)
}

// writeFileAtomic replaces path with data: temporary file in the same
// directory, fsync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
