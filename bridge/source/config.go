package source

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/bridge/route"
)

// Config configures a Subscriber.
type Config struct {
	// Source is the URL of the MQTT broker to subscribe to:
	// tcp://host:1883 (or mqtt://), ssl://host:8883 (or tls://, mqtts://),
	// ws://host:port/path or wss://host:port/path (default
	// tcp://127.0.0.1:1883).
	Source string
	// Filters are the MQTT topic filters to subscribe to (default "#":
	// every topic but $SYS).
	Filters []string
	// QoS is the maximum QoS of the subscriptions (DefaultConfig: 1). A
	// message arrives with the lower of its publish QoS and this one. At 0
	// nothing is acknowledged, so nothing is redelivered either: a message
	// the sink refuses is lost.
	QoS byte
	// ClientID is the bridge's MQTT client id (default
	// "fluxo-bridge-<host name>"). It names the persistent session on the
	// broker, which holds what was published while the bridge was away:
	// keep it stable across restarts, and distinct per bridge instance.
	ClientID string
	// Username and Password authenticate the bridge to the broker; both
	// empty: anonymous. MQTT 3.1.1 allows no password without a username.
	Username string
	Password string
	// SharedGroup, when set, subscribes every filter as
	// $share/<SharedGroup>/<filter>: bridges of one group share the
	// messages, each delivered to one of them (MQTT 5 shared
	// subscriptions; Mosquitto 1.6 and later, EMQX and HiveMQ also offer
	// them to MQTT 3.1.1 clients such as this one).
	SharedGroup string
	// TLS configures ssl:// and wss:// connections (nil: the system's
	// roots, no client certificate).
	TLS *tls.Config
	// Routes map MQTT topics to core topics, first match wins, as at the
	// edge (default: route.DefaultRoutes()). A message no route matches is
	// acknowledged, counted and dropped.
	Routes []route.Route
	// BridgeID goes in the edge.id header of every record (default: the
	// host name).
	BridgeID string
	// KeepAlive is the MQTT keep-alive interval (default 30s); a broker
	// silent for longer (plus 10s) is taken as gone.
	KeepAlive time.Duration
	// ConnectTimeout bounds one connection attempt (default 10s).
	ConnectTimeout time.Duration
	// RetryBackoff is the wait before reconnecting after a failure
	// (default 100ms); it doubles up to MaxRetryBackoff (default 10s) and
	// starts over once a connection has spooled messages again.
	RetryBackoff, MaxRetryBackoff time.Duration
	// MaxBatch is the number of messages appended to the sink in one call
	// (default 256): messages that arrive while an append runs are
	// appended together, sharing the spool's fsync.
	MaxBatch int
	// Logger receives the subscriber's logs; the zero value discards
	// them.
	Logger zerolog.Logger
}

// Defaults.
const (
	DefaultSource          = "tcp://127.0.0.1:1883"
	DefaultQoS             = 1
	DefaultKeepAlive       = 30 * time.Second
	DefaultConnectTimeout  = 10 * time.Second
	DefaultRetryBackoff    = 100 * time.Millisecond
	DefaultMaxRetryBackoff = 10 * time.Second
	DefaultMaxBatch        = 256
)

// DefaultConfig returns a configuration that subscribes to every topic of
// a broker on 127.0.0.1:1883 at QoS 1 with the default routes.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Source:          DefaultSource,
		Filters:         []string{"#"},
		QoS:             DefaultQoS,
		ClientID:        defaultClientID(host),
		Routes:          route.DefaultRoutes(),
		BridgeID:        host,
		KeepAlive:       DefaultKeepAlive,
		ConnectTimeout:  DefaultConnectTimeout,
		RetryBackoff:    DefaultRetryBackoff,
		MaxRetryBackoff: DefaultMaxRetryBackoff,
		MaxBatch:        DefaultMaxBatch,
	}
}

func defaultClientID(host string) string {
	if host == "" {
		host = "localhost"
	}
	return "fluxo-bridge-" + host
}

// withDefaults fills the settings left at their zero value, except QoS,
// whose zero is a choice.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Source == "" {
		c.Source = d.Source
	}
	if len(c.Filters) == 0 {
		c.Filters = d.Filters
	}
	if c.ClientID == "" {
		c.ClientID = d.ClientID
	}
	if len(c.Routes) == 0 {
		c.Routes = d.Routes
	}
	if c.BridgeID == "" {
		c.BridgeID = d.BridgeID
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = d.KeepAlive
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = d.ConnectTimeout
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = d.RetryBackoff
	}
	if c.MaxRetryBackoff == 0 {
		c.MaxRetryBackoff = max(d.MaxRetryBackoff, c.RetryBackoff)
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = d.MaxBatch
	}
	return c
}

// schemes are the URL schemes paho connects with.
var schemes = map[string]bool{
	"tcp": true, "mqtt": true,
	"ssl": true, "tls": true, "mqtts": true,
	"ws": true, "wss": true,
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	u, err := url.Parse(c.Source)
	switch {
	case c.Source == "":
		return errors.New("source: no source broker URL")
	case err != nil:
		return fmt.Errorf("source: source URL %q: %w", c.Source, err)
	case !schemes[u.Scheme]:
		return fmt.Errorf("source: source URL %q: got scheme %q, want tcp, mqtt, ssl, tls, mqtts, ws or wss", c.Source, u.Scheme)
	case u.Host == "":
		return fmt.Errorf("source: source URL %q: no host", c.Source)
	}
	if len(c.Filters) == 0 {
		return errors.New("source: no topic filter")
	}
	seen := make(map[string]bool, len(c.Filters))
	for _, f := range c.Filters {
		if !route.ValidFilter(f) {
			return fmt.Errorf("source: invalid topic filter %q", f)
		}
		if strings.HasPrefix(f, "$share/") {
			return fmt.Errorf("source: topic filter %q: set a shared group instead of writing $share/ in the filter", f)
		}
		if seen[f] {
			return fmt.Errorf("source: topic filter %q given twice", f)
		}
		seen[f] = true
	}
	if c.QoS > 2 {
		return fmt.Errorf("source: QoS %d: want 0, 1 or 2", c.QoS)
	}
	if c.ClientID == "" {
		return errors.New("source: empty client id: a persistent session needs a stable one")
	}
	if c.Password != "" && c.Username == "" {
		return errors.New("source: a password needs a username (MQTT 3.1.1)")
	}
	if c.SharedGroup != "" && strings.ContainsAny(c.SharedGroup, "/+#") {
		return fmt.Errorf("source: shared group %q: must not contain '/', '+' or '#'", c.SharedGroup)
	}
	if len(c.Routes) == 0 {
		return errors.New("source: no routes")
	}
	for _, r := range c.Routes {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("source: %w", err)
		}
	}
	switch {
	case c.KeepAlive < time.Second:
		return fmt.Errorf("source: keep-alive %v below 1s", c.KeepAlive)
	case c.ConnectTimeout <= 0:
		return errors.New("source: ConnectTimeout must be positive")
	case c.RetryBackoff <= 0 || c.MaxRetryBackoff < c.RetryBackoff:
		return fmt.Errorf("source: retry backoff %v up to %v: want 0 < first <= max", c.RetryBackoff, c.MaxRetryBackoff)
	case c.MaxBatch <= 0:
		return fmt.Errorf("source: MaxBatch %d: want at least 1", c.MaxBatch)
	}
	return nil
}

// subscription returns the filter as subscribed: with the $share prefix
// when a shared group is set.
func (c Config) subscription(filter string) string {
	if c.SharedGroup == "" {
		return filter
	}
	return "$share/" + c.SharedGroup + "/" + filter
}
