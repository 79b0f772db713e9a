package route

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fluxo-io/fluxo/bridge/spool"
)

// KeySource says where the record key of a routed message comes from.
type KeySource uint8

const (
	// KeyDevice takes the device id, the second level of a topic that
	// follows {fleet}/{device}/{stream} (three levels or more, second level
	// not empty), and falls back to the client id for any other topic.
	KeyDevice KeySource = iota
	// KeyClientID takes the MQTT client id.
	KeyClientID
)

func (k KeySource) String() string {
	switch k {
	case KeyDevice:
		return "device"
	case KeyClientID:
		return "clientid"
	}
	return "unknown"
}

// ParseKeySource is the inverse of KeySource.String.
func ParseKeySource(s string) (KeySource, error) {
	switch s {
	case "device":
		return KeyDevice, nil
	case "clientid":
		return KeyClientID, nil
	}
	return 0, fmt.Errorf("route: unknown key source %q: want device or clientid", s)
}

// Route maps the MQTT topics matched by Filter to a core topic. Routes are
// tried in order; the first whose filter matches wins.
type Route struct {
	Filter string     // MQTT topic filter, wildcards allowed
	Topic  string     // core (Kafka) topic
	Lane   spool.Lane // spool lane
	Key    KeySource  // where the record key comes from
}

// StateTopic is the core topic of the default state route: each device
// publishes its current state on {fleet}/{device}/state and the record is
// keyed by device id, so on a compacted topic (the core creates "state"
// with cleanup.policy=compact) a reader from the start gets the latest
// state of every device.
const StateTopic = "state"

// DefaultRoutes returns the routes used when Config.Routes is empty:
//
//	+/+/alarm/#    → alarms        (alarm lane)
//	+/+/cmd/reply  → command-acks  (alarm lane: answers are small and awaited)
//	+/+/state      → state         (telemetry lane; compacted by device id)
//	#              → telemetry     (telemetry lane)
func DefaultRoutes() []Route {
	return []Route{
		{Filter: "+/+/alarm/#", Topic: "alarms", Lane: spool.Alarm},
		{Filter: "+/+/cmd/reply", Topic: "command-acks", Lane: spool.Alarm},
		{Filter: "+/+/state", Topic: StateTopic, Lane: spool.Telemetry},
		{Filter: "#", Topic: "telemetry", Lane: spool.Telemetry},
	}
}

// ParseRoute parses the flag form of a route:
//
//	FILTER=TOPIC[,lane=alarm|telemetry][,key=device|clientid]
//
// The lane defaults to telemetry and the key to device. A core topic never
// contains '=' or ',', so the filter may contain both: the options are
// taken from the end and the topic after the last '='.
func ParseRoute(s string) (Route, error) {
	var r Route
	parts := strings.Split(s, ",")
	n := len(parts)
	var lane, key string
options:
	for n > 1 {
		p := parts[n-1]
		switch {
		case strings.HasPrefix(p, "lane=") && lane == "":
			lane = strings.TrimPrefix(p, "lane=")
			if lane == "" {
				return r, fmt.Errorf("route: route %q: empty lane", s)
			}
		case strings.HasPrefix(p, "key=") && key == "":
			key = strings.TrimPrefix(p, "key=")
			if key == "" {
				return r, fmt.Errorf("route: route %q: empty key", s)
			}
		default:
			break options
		}
		n--
	}
	head := strings.Join(parts[:n], ",")
	eq := strings.LastIndexByte(head, '=')
	if eq < 0 {
		return r, fmt.Errorf("route: route %q: want FILTER=TOPIC[,lane=alarm|telemetry][,key=device|clientid]", s)
	}
	r.Filter, r.Topic = head[:eq], head[eq+1:]
	if lane != "" {
		l, err := spool.ParseLane(lane)
		if err != nil {
			return Route{}, fmt.Errorf("route: route %q: %w", s, err)
		}
		r.Lane = l
	}
	if key != "" {
		k, err := ParseKeySource(key)
		if err != nil {
			return Route{}, fmt.Errorf("route: route %q: %w", s, err)
		}
		r.Key = k
	}
	if err := r.Validate(); err != nil {
		return Route{}, err
	}
	return r, nil
}

// String returns the flag form of the route, which ParseRoute reads back.
func (r Route) String() string {
	return r.Filter + "=" + r.Topic + ",lane=" + r.Lane.String() + ",key=" + r.Key.String()
}

// MarshalText returns the flag form, so routes read and write as strings in
// configuration files.
func (r Route) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses the flag form (see ParseRoute).
func (r *Route) UnmarshalText(b []byte) error {
	v, err := ParseRoute(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Validate checks the filter, the core topic name (Kafka's rules: 1 to 249
// characters of [a-zA-Z0-9._-], not "." or ".."), the lane and the key.
func (r Route) Validate() error {
	if !ValidFilter(r.Filter) {
		return fmt.Errorf("route: route %q: invalid topic filter %q", r.String(), r.Filter)
	}
	if err := validCoreTopic(r.Topic); err != nil {
		return fmt.Errorf("route: route %q: %w", r.String(), err)
	}
	if r.Lane != spool.Telemetry && r.Lane != spool.Alarm {
		return fmt.Errorf("route: route %q: unknown lane %d", r.String(), r.Lane)
	}
	if r.Key != KeyDevice && r.Key != KeyClientID {
		return fmt.Errorf("route: route %q: unknown key source %d", r.String(), r.Key)
	}
	return nil
}

func validCoreTopic(t string) error {
	if t == "" {
		return errors.New("empty core topic")
	}
	if len(t) > 249 {
		return fmt.Errorf("core topic %q longer than 249 characters", t)
	}
	if t == "." || t == ".." {
		return fmt.Errorf("core topic %q not allowed", t)
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("core topic %q: character %q not allowed (want [a-zA-Z0-9._-])", t, c)
		}
	}
	return nil
}

// Router maps MQTT messages to records: it picks the first route whose
// filter matches the topic and builds the spool message (see Message).
// It is immutable once built and safe for concurrent use.
type Router struct {
	routes []Route
	origin string // the edge.id header
}

// NewRouter returns a router over a copy of routes (tried in order) that
// names origin (the edge's or the bridge's id) in the edge.id header of
// every record. The routes are not validated here: see Route.Validate.
func NewRouter(routes []Route, origin string) *Router {
	return &Router{routes: append([]Route(nil), routes...), origin: origin}
}

// Routes returns the routes, in order. The caller must not modify them.
func (rt *Router) Routes() []Route { return rt.routes }

// Match returns the first route matching the MQTT topic and the record
// key for a message published on it by clientID; ok is false when no
// route matches.
func (rt *Router) Match(topic, clientID string) (r Route, key string, ok bool) {
	for _, r := range rt.routes {
		if MatchFilter(r.Filter, topic) {
			return r, recordKey(r.Key, topic, clientID), true
		}
	}
	return Route{}, "", false
}

// recordKey derives the record key of a message (see KeySource).
func recordKey(src KeySource, topic, clientID string) string {
	if src == KeyDevice {
		// {fleet}/{device}/{stream}...: the second level, if there are
		// at least three.
		if i := strings.IndexByte(topic, '/'); i >= 0 {
			rest := topic[i+1:]
			if j := strings.IndexByte(rest, '/'); j > 0 {
				return rest[:j]
			}
		}
	}
	return clientID
}
