package devices

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Config configures a fleet for Run.
type Config struct {
	// Broker is the URL of the MQTT server: tcp://host:port (or mqtt://),
	// ssl://host:port (or tls://, mqtts://), ws://host:port/path or
	// wss://host:port/path. A bare host:port means tcp://.
	Broker string
	// Username and Password, when Username is set, authenticate every
	// device. A Password without a Username is an error.
	Username, Password string
	// TLS configures ssl:// and wss:// connections; nil means Go's
	// defaults (the system's root certificates).
	TLS *tls.Config

	// Sensors, Cars and Panels are how many devices of each kind to run,
	// numbered from 1 (s-0001, c-0001, p-0001). At least one in all.
	Sensors, Cars, Panels int
	// Rate is how many telemetry messages each sensor and each car
	// publishes per second: 0.5 is one every two seconds.
	Rate float64
	// PanelRate is how many status heartbeats each alarm panel publishes
	// per second.
	PanelRate float64
	// AlarmRate is how many alarms per second the whole fleet raises,
	// roughly, on top of the sensors' own battery-low alarms. 0: none.
	AlarmRate float64
	// QoS is the MQTT quality of service of telemetry, status and alarm
	// messages: 0, 1 or 2. Command replies are always sent with QoS 1.
	QoS byte
	// Duration is how long to publish, from the moment the fleet is
	// connected; 0 means until the context given to Run is done.
	Duration time.Duration
	// Seed seeds the random walks, jitter and alarms: the same seed and
	// fleet give the same readings, timing aside. 0 picks one at random.
	Seed uint64

	// ConnectTimeout bounds each connection attempt, and how long Run
	// waits for the whole fleet to connect before it starts publishing
	// with the devices that did. If none did, Run returns ErrNoConnection.
	ConnectTimeout time.Duration
	// MaxReconnectInterval caps the exponential backoff between attempts
	// to reconnect a device (Paho starts at one second, or at this value
	// if it is smaller, and doubles). It is also the interval between the
	// attempts of a device's first connection.
	MaxReconnectInterval time.Duration
	// MaxPending is how many messages one device may have waiting for an
	// acknowledgement; a reading beyond it is dropped and counted.
	MaxPending int
	// DrainTimeout is how long Run waits, once it stops publishing, for
	// the acknowledgements still due before it disconnects.
	DrainTimeout time.Duration
	// ReportInterval is how often Run calls its Observer.
	ReportInterval time.Duration

	// Logger receives connection events. Zero value: no logs.
	Logger zerolog.Logger
}

// DefaultConfig returns a fleet of ten sensors and ten cars publishing one
// message per second each, and five alarm panels, to a broker on this
// machine, until the context is done.
func DefaultConfig() Config {
	return Config{
		Broker:               "tcp://127.0.0.1:1883",
		Sensors:              10,
		Cars:                 10,
		Panels:               5,
		Rate:                 1,
		PanelRate:            0.1,
		AlarmRate:            0.2,
		QoS:                  1,
		ConnectTimeout:       10 * time.Second,
		MaxReconnectInterval: 10 * time.Second,
		MaxPending:           1000,
		DrainTimeout:         2 * time.Second,
		ReportInterval:       time.Second,
		Logger:               zerolog.Nop(),
	}
}

// maxRate bounds Rate and PanelRate: one message per millisecond per device.
const maxRate = 1000

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	if err := checkBroker(c.Broker); err != nil {
		return err
	}
	switch {
	case c.Password != "" && c.Username == "":
		return errors.New("devices: a password needs a username")
	case c.Sensors < 0 || c.Cars < 0 || c.Panels < 0:
		return fmt.Errorf("devices: negative device count (sensors %d, cars %d, panels %d)", c.Sensors, c.Cars, c.Panels)
	case c.Sensors+c.Cars+c.Panels == 0:
		return errors.New("devices: no devices: want at least one sensor, car or panel")
	case c.Sensors+c.Cars > 0 && !(c.Rate > 0 && c.Rate <= maxRate):
		return fmt.Errorf("devices: rate %v: want more than 0 and at most %d messages per second", c.Rate, maxRate)
	case c.Panels > 0 && !(c.PanelRate > 0 && c.PanelRate <= maxRate):
		return fmt.Errorf("devices: panel rate %v: want more than 0 and at most %d messages per second", c.PanelRate, maxRate)
	case !(c.AlarmRate >= 0) || c.AlarmRate > 1e6:
		return fmt.Errorf("devices: alarm rate %v: want 0 or more alarms per second", c.AlarmRate)
	case c.QoS > 2:
		return fmt.Errorf("devices: qos %d: want 0, 1 or 2", c.QoS)
	case c.Duration < 0:
		return fmt.Errorf("devices: negative duration %v", c.Duration)
	case c.ConnectTimeout <= 0:
		return errors.New("devices: ConnectTimeout must be positive")
	case c.MaxReconnectInterval <= 0:
		return errors.New("devices: MaxReconnectInterval must be positive")
	case c.MaxPending < 1 || c.MaxPending > 65000:
		return fmt.Errorf("devices: MaxPending %d: want 1 to 65000 (MQTT packet ids)", c.MaxPending)
	case c.DrainTimeout < 0:
		return errors.New("devices: negative DrainTimeout")
	case c.ReportInterval <= 0:
		return errors.New("devices: ReportInterval must be positive")
	}
	return nil
}

// schemes are the broker URL schemes Paho can dial.
var schemes = map[string]bool{
	"tcp": true, "mqtt": true,
	"ssl": true, "tls": true, "mqtts": true, "mqtt+ssl": true, "tcps": true,
	"ws": true, "wss": true,
}

// brokerURL returns broker as Paho reads it: tcp:// when there is no
// scheme, 127.0.0.1 when there is no host.
func brokerURL(broker string) string {
	if strings.HasPrefix(broker, ":") {
		broker = "127.0.0.1" + broker
	}
	if !strings.Contains(broker, "://") {
		return "tcp://" + broker
	}
	return broker
}

func checkBroker(broker string) error {
	if broker == "" {
		return errors.New("devices: no broker: want a URL such as tcp://127.0.0.1:1883")
	}
	u, err := url.Parse(brokerURL(broker))
	if err != nil {
		return fmt.Errorf("devices: broker %q: %w", broker, err)
	}
	if !schemes[u.Scheme] {
		return fmt.Errorf("devices: broker %q: unknown scheme %q: want tcp, ssl, ws or wss", broker, u.Scheme)
	}
	websocket := u.Scheme == "ws" || u.Scheme == "wss"
	if u.Hostname() == "" || (u.Port() == "" && !websocket) {
		return fmt.Errorf("devices: broker %q: want host and port, as in tcp://127.0.0.1:1883", broker)
	}
	return nil
}
