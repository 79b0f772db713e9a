package kafka

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// SecurityProtocol is how a listener secures its connections, as Kafka
// names it in listener.security.protocol.map.
type SecurityProtocol int

// The security protocols, in Kafka's order.
const (
	// Plaintext: no encryption, every client is User:ANONYMOUS.
	Plaintext SecurityProtocol = iota
	// SSL: TLS; a client with a verified certificate is User:<its DN>,
	// any other User:ANONYMOUS.
	SSL
	// SASLPlaintext: SASL authentication without encryption.
	SASLPlaintext
	// SASLSSL: SASL authentication over TLS.
	SASLSSL
)

var protocolNames = [...]string{
	Plaintext:     "PLAINTEXT",
	SSL:           "SSL",
	SASLPlaintext: "SASL_PLAINTEXT",
	SASLSSL:       "SASL_SSL",
}

// String returns Kafka's name for p: PLAINTEXT, SSL, SASL_PLAINTEXT or
// SASL_SSL.
func (p SecurityProtocol) String() string {
	if p < 0 || int(p) >= len(protocolNames) {
		return "SecurityProtocol(" + strconv.Itoa(int(p)) + ")"
	}
	return protocolNames[p]
}

// ParseSecurityProtocol parses Kafka's name of a security protocol; case
// does not matter, as in Kafka.
func ParseSecurityProtocol(s string) (SecurityProtocol, error) {
	for p, name := range protocolNames {
		if strings.EqualFold(s, name) {
			return SecurityProtocol(p), nil
		}
	}
	return 0, fmt.Errorf("kafka: unknown security protocol %q", s)
}

// TLS reports whether connections with p start with a TLS handshake.
func (p SecurityProtocol) TLS() bool { return p == SSL || p == SASLSSL }

// SASL reports whether connections with p must authenticate with SASL
// before anything but ApiVersions, SaslHandshake and SaslAuthenticate.
func (p SecurityProtocol) SASL() bool { return p == SASLPlaintext || p == SASLSSL }

// Listener is one of the broker's Kafka listeners (Kafka's listeners and
// advertised.listeners). Give it to ServeListener with the net.Listener
// that accepts its connections.
type Listener struct {
	// Name is the listener's name, as in Kafka's listeners setting:
	// "PLAINTEXT", "CLIENT", "INTERNAL"... Metadata looks other brokers'
	// addresses up by it (Config.BrokerEndpoint).
	Name string
	// Protocol secures the listener's connections.
	Protocol SecurityProtocol
	// TLS is the server side TLS configuration (see ServerTLS): required
	// for SSL and SASL_SSL, nil otherwise.
	TLS *tls.Config
	// Advertised is the host:port Metadata and FindCoordinator give
	// clients connected to this listener for this broker. Empty: the
	// address the listener is bound to.
	Advertised string
}

// validate reports what makes l unusable.
func (l Listener) validate() error {
	switch {
	case l.Name == "":
		return fmt.Errorf("kafka: listener has no name")
	case l.Protocol < 0 || int(l.Protocol) >= len(protocolNames):
		return fmt.Errorf("kafka: listener %s: unknown security protocol %d", l.Name, l.Protocol)
	case l.Protocol.TLS() && l.TLS == nil:
		return fmt.Errorf("kafka: listener %s: %s needs a TLS configuration", l.Name, l.Protocol)
	case !l.Protocol.TLS() && l.TLS != nil:
		return fmt.Errorf("kafka: listener %s: %s takes no TLS configuration", l.Name, l.Protocol)
	}
	if l.Advertised != "" {
		if _, _, err := splitListenerHostPort(l.Advertised); err != nil {
			return fmt.Errorf("kafka: listener %s: advertised address: %w", l.Name, err)
		}
	}
	return nil
}

// ListenerAddr is one entry of a listeners string: a listener name, its
// protocol, and the host:port it names.
type ListenerAddr struct {
	Name     string
	Protocol SecurityProtocol
	Addr     string // host:port; host may be empty (every interface)
}

// DefaultProtocolMap is Kafka's default listener.security.protocol.map:
// each protocol name maps to itself.
func DefaultProtocolMap() map[string]SecurityProtocol {
	m := make(map[string]SecurityProtocol, len(protocolNames))
	for p, name := range protocolNames {
		m[name] = SecurityProtocol(p)
	}
	return m
}

// ParseListeners parses Kafka's listeners (or advertised.listeners) syntax,
// a comma-separated list of NAME://host:port, such as
// "PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093" or
// "CLIENT://:9093,INTERNAL://[::1]:9094". Each name's protocol comes from
// protocolMap (Kafka's listener.security.protocol.map, names matched
// without regard to case); without one, DefaultProtocolMap. Names are
// upper-cased as Kafka does. Duplicate names or ports, unknown names and
// malformed host:port are errors. The result keeps the input's order.
func ParseListeners(s string, protocolMap ...map[string]SecurityProtocol) ([]ListenerAddr, error) {
	pm := DefaultProtocolMap()
	if len(protocolMap) > 0 && protocolMap[0] != nil {
		pm = make(map[string]SecurityProtocol, len(protocolMap[0]))
		for name, p := range protocolMap[0] {
			pm[strings.ToUpper(name)] = p
		}
	}
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("kafka: listeners: empty")
	}
	var out []ListenerAddr
	names := map[string]bool{}
	ports := map[int]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		name, addr, ok := strings.Cut(item, "://")
		if !ok || name == "" {
			return nil, fmt.Errorf("kafka: listeners: %q is not NAME://host:port", item)
		}
		name = strings.ToUpper(name)
		p, ok := pm[name]
		if !ok {
			return nil, fmt.Errorf("kafka: listeners: %q: no security protocol for listener %s", item, name)
		}
		if p < 0 || int(p) >= len(protocolNames) {
			return nil, fmt.Errorf("kafka: listeners: %q: unknown security protocol %d", item, p)
		}
		if names[name] {
			return nil, fmt.Errorf("kafka: listeners: listener %s named twice", name)
		}
		_, port, err := splitListenerHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("kafka: listeners: %q: %w", item, err)
		}
		if other, dup := ports[port]; dup && port != 0 {
			return nil, fmt.Errorf("kafka: listeners: %s and %s both use port %d", other, name, port)
		}
		names[name] = true
		ports[port] = name
		out = append(out, ListenerAddr{Name: name, Protocol: p, Addr: addr})
	}
	return out, nil
}

// splitListenerHostPort checks addr is host:port with a port in
// [0, 65535] and a host without spaces or slashes.
func splitListenerHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("bad host:port %q: %w", addr, err)
	}
	if strings.ContainsAny(host, " /,") {
		return "", 0, fmt.Errorf("bad host in %q", addr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 || p == "" || p[0] == '+' || p[0] == '-' {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, port, nil
}
