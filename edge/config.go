package edge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/bridge/registry"
	"github.com/fluxo-io/fluxo/bridge/route"
)

// Config configures an Edge.
type Config struct {
	// MQTTAddr is the plain TCP listener's address (default
	// 127.0.0.1:1883). Port 0 picks a free port (see Edge.Addr). Empty
	// disables the listener.
	MQTTAddr string
	// TLSAddr is the MQTT-over-TLS listener's address; empty disables it.
	// It needs TLS.
	TLSAddr string
	// TLS is the TLS listener's server configuration, with its
	// certificate (Certificates or GetCertificate). The edge uses a copy
	// with at least TLS 1.2. With ClientCAs (and ClientAuth
	// VerifyClientCertIfGiven or RequireAndVerifyClientCert), devices
	// may authenticate with a client certificate: see CertIdentity.
	TLS *tls.Config
	// CertIdentity is the name of a verified client certificate that
	// becomes the device's username (default: the common name). A
	// device with a certificate is that user: a CONNECT username, if
	// any, must be the same, and a password, if any, must be the user's.
	// With a users file the identity must be a user there (one without a
	// password is certificate only); it gets that user's ACL.
	CertIdentity CertIdentity
	// WSAddr is the MQTT-over-WebSocket listener's address (any path,
	// subprotocol "mqtt"); empty disables it.
	WSAddr string

	// EdgeID names this edge in the edge.id header of every record
	// (default: the host name).
	EdgeID string

	// Users are the device users, bcrypt passwords and ACLs (see
	// users.go; ParseUsers reads a users file). Edge.SetUsers replaces
	// them while the edge runs.
	Users *Users
	// AllowAnonymous lets clients connect without a username, with full
	// access. With Users too, clients that send a username are still
	// checked against them. With neither, New refuses to start.
	AllowAnonymous bool

	// Routes map MQTT topics to core topics, first match wins (default:
	// route.DefaultRoutes). A publish that no route matches is refused.
	Routes []route.Route

	// StateDir keeps persistent sessions, their subscriptions and queued
	// messages, and retained messages across restarts (StateDir/mqtt.db).
	// Empty keeps them in memory only.
	StateDir string

	// MaxPacketSize is the largest MQTT packet accepted, in bytes
	// (default 256 KiB); a client sending a larger one is disconnected.
	MaxPacketSize uint32
	// MaxSessionExpiry caps how long a disconnected persistent session
	// is kept (default 7 days); it is also the expiry of MQTT 3.1.1
	// sessions with clean session off.
	MaxSessionExpiry time.Duration
	// MaxMessageExpiry caps how long a retained message or a message
	// queued for a client is kept (default 24 hours).
	MaxMessageExpiry time.Duration
	// MaxClients is the number of connected clients beyond which a new
	// connection is refused (default 10000).
	MaxClients int
	// MaxInflight is the number of QoS 1/2 messages queued per client on
	// their way to it, offline sessions included (default 1024); beyond
	// it messages to that client are dropped.
	MaxInflight uint16
	// MaxWritesPending is the length of each connected client's queue of
	// packets waiting to be written to it (default 128): a QoS 0 message
	// to a client whose queue is full (a client that does not read) is
	// dropped and counted in fluxo_edge_writes_dropped_total; a QoS 1/2
	// message waits in its session (MaxInflight). Every
	// connection holds its queue, 8 bytes a packet, whether it is used
	// or not: mochi's default, 8192, would cost 64 KiB a device.
	MaxWritesPending int
	// MaxConnectRate is the number of new connections per second the
	// edge accepts (default 0: no limit), with MaxConnectBurst (default:
	// MaxConnectRate, at least 1) of them at once. A connection beyond
	// it is refused with a CONNACK "server busy" (MQTT 5) or "server
	// unavailable" (MQTT 3.1.1) and counted in
	// fluxo_edge_connections_refused_total{reason="rate"}; the device
	// retries later. It spreads a connect storm (every device coming
	// back after an edge restart) over time, so that the edge keeps
	// serving those already connected.
	MaxConnectRate  float64
	MaxConnectBurst int
	// ReceiveMaximum is the number of QoS 1/2 publishes a client may
	// have unacknowledged towards the edge (default 128; MQTT 5 Receive
	// Maximum).
	ReceiveMaximum uint16
	// MaxHeaders is the number of record headers a publish may make,
	// the edge's own (mqtt.topic, edge.id, ...) included (default 64);
	// MaxHeaderBytes caps the sum of their keys' and values' lengths
	// (default 16 KiB). An MQTT 5 publish past either is refused with
	// reason code 0x83 and a reason string, an MQTT 3.1.1 one (which
	// can only exceed them with a long topic) by closing the connection.
	MaxHeaders     int
	MaxHeaderBytes int
	// MaxKeepAlive caps the keep alive of MQTT 5 clients (default 10
	// minutes, whole seconds up to 65535 s; negative: no cap). A client
	// that asks for none (0) or a longer one is given this one in its
	// CONNACK (Server Keep Alive), and is disconnected once silent for
	// 1.5 times it. MQTT 3.1.1 has no way to tell a client, so its own
	// keep alive stands.
	MaxKeepAlive time.Duration

	// Registry, when set, is fed the devices' connections,
	// subscriptions and publishes (see bridge/registry), and matches
	// their answers to commands. Nil: no registry.
	Registry *registry.Registry

	// Logger receives the edge's logs and mochi's; the zero value
	// discards them.
	Logger zerolog.Logger
	// Registerer receives the edge's metrics; nil means no metrics.
	Registerer prometheus.Registerer
}

// Defaults.
const (
	DefaultMQTTAddr         = "127.0.0.1:1883"
	DefaultMaxPacketSize    = 256 << 10
	DefaultMaxSessionExpiry = 7 * 24 * time.Hour
	DefaultMaxMessageExpiry = 24 * time.Hour
	DefaultMaxClients       = 10000
	DefaultMaxInflight      = 1024
	DefaultMaxWritesPending = 128
	DefaultReceiveMaximum   = 128
	DefaultMaxHeaders       = 64
	DefaultMaxHeaderBytes   = 16 << 10
	DefaultMaxKeepAlive     = 10 * time.Minute
)

// DefaultConfig returns a configuration that listens on 127.0.0.1:1883
// with the default routes and limits. It has no authentication: set
// Users or AllowAnonymous.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		MQTTAddr:         DefaultMQTTAddr,
		EdgeID:           host,
		Routes:           route.DefaultRoutes(),
		MaxPacketSize:    DefaultMaxPacketSize,
		MaxSessionExpiry: DefaultMaxSessionExpiry,
		MaxMessageExpiry: DefaultMaxMessageExpiry,
		MaxClients:       DefaultMaxClients,
		MaxInflight:      DefaultMaxInflight,
		MaxWritesPending: DefaultMaxWritesPending,
		ReceiveMaximum:   DefaultReceiveMaximum,
		MaxHeaders:       DefaultMaxHeaders,
		MaxHeaderBytes:   DefaultMaxHeaderBytes,
		MaxKeepAlive:     DefaultMaxKeepAlive,
	}
}

// minHeaders is the number of headers the edge itself may write on a
// record (mqtt.topic, mqtt.qos, mqtt.client, edge.id, edge.received_ms,
// mqtt.will and the five MQTT 5 property headers).
const minHeaders = 11

// ErrNoAuth is returned by Validate when neither users nor anonymous
// access are configured.
var ErrNoAuth = errors.New("edge: no device authentication configured: set a users file (--users FILE) or allow anonymous access (--allow-anonymous)")

// Validate checks the configuration. Zero limits are errors here; New
// fills them with the defaults before validating.
func (c Config) Validate() error {
	if c.MQTTAddr == "" && c.TLSAddr == "" && c.WSAddr == "" {
		return errors.New("edge: no listener configured: set an MQTT, TLS or WebSocket address")
	}
	for _, a := range []struct{ name, addr string }{{"mqtt", c.MQTTAddr}, {"tls", c.TLSAddr}, {"websocket", c.WSAddr}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("edge: %s address %q: %w", a.name, a.addr, err)
		}
	}
	if c.TLSAddr != "" && (c.TLS == nil || len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetConfigForClient == nil) {
		return errors.New("edge: the TLS listener needs a certificate and its key")
	}
	if c.TLSAddr == "" && c.TLS != nil {
		return errors.New("edge: a TLS configuration is set but no TLS address")
	}
	if c.EdgeID == "" {
		return errors.New("edge: empty edge id")
	}
	if c.Users == nil && !c.AllowAnonymous {
		return ErrNoAuth
	}
	if len(c.Routes) == 0 {
		return errors.New("edge: no routes")
	}
	for _, r := range c.Routes {
		if err := r.Validate(); err != nil {
			return err
		}
	}
	switch {
	case c.MaxPacketSize < 64:
		return fmt.Errorf("edge: max packet size %d below 64 bytes", c.MaxPacketSize)
	case c.MaxPacketSize > 268435455+5:
		return fmt.Errorf("edge: max packet size %d above MQTT's 256 MiB", c.MaxPacketSize)
	case c.MaxSessionExpiry < time.Second || c.MaxSessionExpiry > math.MaxUint32*time.Second:
		return fmt.Errorf("edge: max session expiry %s out of range (1s to %d s)", c.MaxSessionExpiry, uint32(math.MaxUint32))
	case c.MaxMessageExpiry < time.Second:
		return fmt.Errorf("edge: max message expiry %s below 1s", c.MaxMessageExpiry)
	case c.MaxClients < 1:
		return fmt.Errorf("edge: max clients %d below 1", c.MaxClients)
	case c.MaxInflight < 1:
		return errors.New("edge: max inflight below 1")
	case c.MaxWritesPending < 1 || c.MaxWritesPending > 1<<20:
		return fmt.Errorf("edge: max writes pending %d out of range (1 to %d)", c.MaxWritesPending, 1<<20)
	case c.MaxConnectRate < 0 || math.IsNaN(c.MaxConnectRate) || math.IsInf(c.MaxConnectRate, 0):
		return fmt.Errorf("edge: max connect rate %v below 0", c.MaxConnectRate)
	case c.MaxConnectBurst < 0:
		return fmt.Errorf("edge: max connect burst %d below 0", c.MaxConnectBurst)
	case c.ReceiveMaximum < 1:
		return errors.New("edge: receive maximum below 1")
	case c.MaxHeaders < minHeaders:
		return fmt.Errorf("edge: max headers %d below %d (the edge's own headers)", c.MaxHeaders, minHeaders)
	case c.MaxHeaderBytes < 256:
		return fmt.Errorf("edge: max header bytes %d below 256", c.MaxHeaderBytes)
	case c.MaxKeepAlive > 0 && (c.MaxKeepAlive < time.Second || c.MaxKeepAlive > math.MaxUint16*time.Second):
		return fmt.Errorf("edge: max keep alive %s out of range (1s to %d s)", c.MaxKeepAlive, math.MaxUint16)
	}
	return nil
}

// withDefaults fills zero fields with the defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.EdgeID == "" {
		c.EdgeID = d.EdgeID
	}
	if len(c.Routes) == 0 {
		c.Routes = d.Routes
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = d.MaxPacketSize
	}
	if c.MaxSessionExpiry == 0 {
		c.MaxSessionExpiry = d.MaxSessionExpiry
	}
	if c.MaxMessageExpiry == 0 {
		c.MaxMessageExpiry = d.MaxMessageExpiry
	}
	if c.MaxClients == 0 {
		c.MaxClients = d.MaxClients
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = d.MaxInflight
	}
	if c.MaxWritesPending == 0 {
		c.MaxWritesPending = d.MaxWritesPending
	}
	if c.ReceiveMaximum == 0 {
		c.ReceiveMaximum = d.ReceiveMaximum
	}
	if c.MaxHeaders == 0 {
		c.MaxHeaders = d.MaxHeaders
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if c.MaxKeepAlive == 0 {
		c.MaxKeepAlive = d.MaxKeepAlive
	}
	return c
}
