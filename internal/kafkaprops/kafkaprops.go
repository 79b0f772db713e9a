// Package kafkaprops reads the client configuration files of librdkafka
// (kcat -F, confluent-kafka) and of the Java Kafka client: properties, one
// "key=value" per line, so that a configuration that already works with
// those clients works with fluxo's as it is.
//
// The format, as far as those files use it:
//
//	# a comment (also "! a comment"); blank lines are skipped
//	bootstrap.servers=broker-1:9093,broker-2:9093
//	security.protocol = SASL_SSL
//	sasl.mechanism: SCRAM-SHA-512
//
// The key ends at the first "=" or ":"; key and value are trimmed of
// white space. Java's backslash escapes and continuation lines are not
// interpreted. A key given twice takes its last value.
//
// ParseClient keeps the settings a client needs to reach a cluster
// (bootstrap servers, TLS, SASL) and lists the keys it does not use, for
// the caller to warn about: such files carry many other settings.
package kafkaprops

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Property is one "key=value" line.
type Property struct {
	Key, Value string
	// Line is the line's number, from 1.
	Line int
}

// Parse returns the properties of data, in file order. A line that is
// neither blank, a comment nor "key=value" is an error naming the line.
func Parse(data []byte) ([]Property, error) {
	var props []Property
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		sep := strings.IndexAny(line, "=:")
		if sep < 0 {
			return nil, fmt.Errorf("kafkaprops: line %d: got %q, want key=value", i+1, truncate(line))
		}
		key := strings.TrimSpace(line[:sep])
		if key == "" {
			return nil, fmt.Errorf("kafkaprops: line %d: empty key", i+1)
		}
		props = append(props, Property{Key: key, Value: strings.TrimSpace(line[sep+1:]), Line: i + 1})
	}
	return props, nil
}

// truncate shortens a line quoted in an error.
func truncate(s string) string {
	const max = 40
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// Protocol is security.protocol: how a client talks to the brokers.
type Protocol int

// The values of security.protocol.
const (
	Plaintext Protocol = iota
	SSL
	SASLPlaintext
	SASLSSL
)

// String returns the protocol's name in the properties: PLAINTEXT, SSL,
// SASL_PLAINTEXT or SASL_SSL.
func (p Protocol) String() string {
	switch p {
	case Plaintext:
		return "PLAINTEXT"
	case SSL:
		return "SSL"
	case SASLPlaintext:
		return "SASL_PLAINTEXT"
	case SASLSSL:
		return "SASL_SSL"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// TLS reports whether the protocol encrypts the connection.
func (p Protocol) TLS() bool { return p == SSL || p == SASLSSL }

// SASL reports whether the protocol authenticates with SASL.
func (p Protocol) SASL() bool { return p == SASLPlaintext || p == SASLSSL }

// ParseProtocol parses a security.protocol value, in any case.
func ParseProtocol(s string) (Protocol, error) {
	for p := Plaintext; p <= SASLSSL; p++ {
		if strings.EqualFold(s, p.String()) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("got %q, want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", s)
}

// Mechanisms are the SASL mechanisms a client can use, in their Kafka
// names.
var Mechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// ParseMechanism returns the Kafka name of a SASL mechanism given in any
// case, or an error for a mechanism fluxo's clients do not speak.
func ParseMechanism(s string) (string, error) {
	for _, m := range Mechanisms {
		if strings.EqualFold(s, m) {
			return m, nil
		}
	}
	switch strings.ToUpper(s) {
	case "GSSAPI", "OAUTHBEARER":
		return "", fmt.Errorf("%s is not supported, want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", strings.ToUpper(s))
	}
	return "", fmt.Errorf("got %q, want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s)
}

// Client is what a client configuration says about reaching the cluster.
type Client struct {
	// BootstrapServers is bootstrap.servers (librdkafka's
	// metadata.broker.list too), split at commas.
	BootstrapServers []string
	// Protocol is security.protocol; PLAINTEXT when the key is absent,
	// as in librdkafka and Java.
	Protocol Protocol
	// SASLMechanism is sasl.mechanism (librdkafka: sasl.mechanisms), in
	// its Kafka name; empty when not set.
	SASLMechanism string
	// SASLUsername and SASLPassword are sasl.username and sasl.password,
	// else the username and password of a Java sasl.jaas.config.
	SASLUsername, SASLPassword string
	// CALocation, CertificateLocation and KeyLocation are the PEM files
	// of ssl.ca.location, ssl.certificate.location and
	// ssl.key.location; KeyPassword is ssl.key.password.
	CALocation, CertificateLocation, KeyLocation, KeyPassword string
	// VerifyCertificate is enable.ssl.certificate.verification (default
	// true): check the brokers' certificates against the CAs.
	VerifyCertificate bool
	// VerifyHostname is whether ssl.endpoint.identification.algorithm is
	// https (the default) rather than none (or empty, in Java): check that
	// a broker's certificate names the host dialled.
	VerifyHostname bool
	// Unknown lists the keys ParseClient does not use, in file order.
	Unknown []string
}

// jaasField matches key="value" in a Java sasl.jaas.config.
var jaasField = regexp.MustCompile(`\b(username|password)\s*=\s*"([^"]*)"`)

// ParseClient parses a client configuration. Keys it does not use are
// listed in Unknown; a known key with a value it cannot use is an error
// naming the line and the key.
func ParseClient(data []byte) (Client, error) {
	props, err := Parse(data)
	if err != nil {
		return Client{}, err
	}
	c := Client{VerifyCertificate: true, VerifyHostname: true}
	var jaasUser, jaasPass string
	var errs []error
	for _, p := range props {
		bad := func(err error) { errs = append(errs, fmt.Errorf("kafkaprops: line %d: %s: %w", p.Line, p.Key, err)) }
		switch p.Key {
		case "bootstrap.servers", "metadata.broker.list":
			c.BootstrapServers = nil
			for _, s := range strings.Split(p.Value, ",") {
				if s = strings.TrimSpace(s); s != "" {
					c.BootstrapServers = append(c.BootstrapServers, s)
				}
			}
		case "security.protocol":
			if c.Protocol, err = ParseProtocol(p.Value); err != nil {
				bad(err)
			}
		case "sasl.mechanism", "sasl.mechanisms":
			if c.SASLMechanism, err = ParseMechanism(p.Value); err != nil {
				bad(err)
			}
		case "sasl.username":
			c.SASLUsername = p.Value
		case "sasl.password":
			c.SASLPassword = p.Value
		case "sasl.jaas.config":
			for _, m := range jaasField.FindAllStringSubmatch(p.Value, -1) {
				if m[1] == "username" {
					jaasUser = m[2]
				} else {
					jaasPass = m[2]
				}
			}
		case "ssl.ca.location":
			c.CALocation = p.Value
		case "ssl.certificate.location":
			c.CertificateLocation = p.Value
		case "ssl.key.location":
			c.KeyLocation = p.Value
		case "ssl.key.password":
			c.KeyPassword = p.Value
		case "enable.ssl.certificate.verification":
			if c.VerifyCertificate, err = parseBool(p.Value); err != nil {
				bad(err)
			}
		case "ssl.endpoint.identification.algorithm":
			switch strings.ToLower(p.Value) {
			case "https":
				c.VerifyHostname = true
			case "none", "":
				c.VerifyHostname = false
			default:
				bad(fmt.Errorf("got %q, want https or none", p.Value))
			}
		default:
			c.Unknown = append(c.Unknown, p.Key)
		}
	}
	if c.SASLUsername == "" && c.SASLPassword == "" {
		c.SASLUsername, c.SASLPassword = jaasUser, jaasPass
	}
	if len(errs) > 0 {
		return Client{}, errors.Join(errs...)
	}
	return c, nil
}

// parseBool parses librdkafka's booleans: true, false, 1, 0 (any case).
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("got %q, want true or false", s)
}
