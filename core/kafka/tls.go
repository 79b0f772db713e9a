package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
)

// ClientAuth is whether a TLS listener asks clients for a certificate,
// as Kafka's ssl.client.auth.
type ClientAuth int

// The client certificate policies.
const (
	// ClientAuthNone asks for no client certificate.
	ClientAuthNone ClientAuth = iota
	// ClientAuthRequested asks for one; a client may send none, but one
	// it sends must be signed by the CA.
	ClientAuthRequested
	// ClientAuthRequired refuses a client without a certificate signed
	// by the CA.
	ClientAuthRequired
)

var clientAuthNames = [...]string{
	ClientAuthNone:      "none",
	ClientAuthRequested: "requested",
	ClientAuthRequired:  "required",
}

// String returns Kafka's name for a: none, requested or required.
func (a ClientAuth) String() string {
	if a < 0 || int(a) >= len(clientAuthNames) {
		return "ClientAuth(" + strconv.Itoa(int(a)) + ")"
	}
	return clientAuthNames[a]
}

// ParseClientAuth parses Kafka's ssl.client.auth values; "" is none.
func ParseClientAuth(s string) (ClientAuth, error) {
	if s == "" {
		return ClientAuthNone, nil
	}
	for a, name := range clientAuthNames {
		if strings.EqualFold(s, name) {
			return ClientAuth(a), nil
		}
	}
	return 0, fmt.Errorf("kafka: unknown ssl client auth %q (want none, requested or required)", s)
}

// ServerTLS builds the TLS configuration of an SSL or SASL_SSL listener
// from PEM bytes: the server's certificate chain and private key, and the
// CA certificates client certificates are verified against (needed unless
// clientAuth is ClientAuthNone). The returned CertReloader swaps the
// certificate and CA in place: connections accepted after Reload use the
// new ones, open connections keep theirs.
func ServerTLS(certPEM, keyPEM, caPEM []byte, clientAuth ClientAuth) (*tls.Config, *CertReloader, error) {
	if clientAuth < 0 || int(clientAuth) >= len(clientAuthNames) {
		return nil, nil, fmt.Errorf("kafka: tls: unknown client auth %d", clientAuth)
	}
	r := &CertReloader{clientAuth: clientAuth}
	if err := r.Reload(certPEM, keyPEM, caPEM); err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Each handshake takes the configuration current at that moment,
		// so that a reload changes the certificate and the CA together.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load().cfg, nil
		},
	}
	return cfg, r, nil
}

// CertReloader holds a TLS listener's current certificate and client CA.
// It is safe for concurrent use: handshakes read the current pair through
// an atomic pointer while Reload replaces it.
type CertReloader struct {
	clientAuth ClientAuth
	cur        atomic.Pointer[certState]
}

// certState is one loaded certificate and CA, with the tls.Config
// handshakes use for them.
type certState struct {
	cfg *tls.Config
}

// Reload replaces the certificate, key and client CA for connections
// accepted from now on. If the new ones do not load (a key that does not
// match the certificate, a CA that does not parse), the current ones stay
// and the error says why.
func (r *CertReloader) Reload(certPEM, keyPEM, caPEM []byte) error {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("kafka: tls: cannot load certificate and key: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return errors.New("kafka: tls: no CA certificate found in the CA PEM")
		}
		cfg.ClientCAs = pool
	}
	switch r.clientAuth {
	case ClientAuthRequested:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case ClientAuthRequired:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if r.clientAuth != ClientAuthNone && cfg.ClientCAs == nil {
		return fmt.Errorf("kafka: tls: client auth %s needs a CA to verify client certificates", r.clientAuth)
	}
	r.cur.Store(&certState{cfg: cfg})
	return nil
}

// Certificate returns the leaf certificate connections are served with
// now.
func (r *CertReloader) Certificate() *x509.Certificate {
	return r.cur.Load().cfg.Certificates[0].Leaf
}

// certPrincipal is the Kafka principal of a verified client certificate:
// User: and its subject in RFC 2253 form, as Kafka's default
// ssl.principal.mapping.rules give it (X500Principal.getName(RFC2253):
// the most specific attribute first, "CN=edge-1,OU=fleet,O=acme"). The
// subject's attributes are taken in the order the certificate holds them;
// attribute types Go does not name (emailAddress, ...) are printed as an
// OID and a hex value, as Java prints them.
func certPrincipal(cert *x509.Certificate) string {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(cert.RawSubject, &rdns); err != nil || len(rest) > 0 {
		return "User:" + cert.Subject.String()
	}
	return "User:" + rdns.String()
}
