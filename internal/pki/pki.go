// Package pki makes the certificates of a small private PKI for fluxo's
// Kafka and cluster traffic: a self-signed certificate authority, and
// server and client certificates it signs, all with ECDSA P-256 keys.
//
// Certificates and keys travel as PEM: certificates as "CERTIFICATE"
// blocks, private keys as PKCS #8 "PRIVATE KEY" blocks, which Go, OpenSSL
// (librdkafka) and the Java Kafka client's PEM key stores all read.
//
// A server certificate carries the server and the client extended key
// usages, since brokers are also clients of each other, and exactly the IP
// addresses and DNS names asked for. A client certificate carries the client
// usage and the subject CN=NAME only, so that a Kafka broker's default
// principal builder names it User:CN=NAME.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Kind is what a certificate is for.
type Kind int

const (
	// Server certificates are presented by brokers: server and client
	// authentication.
	Server Kind = iota + 1
	// Client certificates are presented by clients: client authentication.
	Client
)

// String returns "server" or "client".
func (k Kind) String() string {
	switch k {
	case Server:
		return "server"
	case Client:
		return "client"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Request describes a certificate for NewCert to make.
type Request struct {
	// Kind is Server or Client.
	Kind Kind
	// Name is the subject's common name: a host name for a server, the
	// user for a client (Kafka's principal User:CN=Name).
	Name string
	// IPs and DNSNames are the subject alternative names of a server
	// certificate (at least one is needed: Go and librdkafka check the
	// host name against them, not against the common name). A client
	// certificate may carry them too.
	IPs      []net.IP
	DNSNames []string
	// Validity is how long the certificate is valid from now. It is cut
	// to the CA's own expiry.
	Validity time.Duration
}

// clockSkew backdates NotBefore, so that a certificate is valid at once on
// a machine whose clock is a little behind.
const clockSkew = 5 * time.Minute

// NewCA returns a self-signed certificate authority with the subject
// CN=name, valid for validity from now, and its private key, both as PEM.
func NewCA(name string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if name == "" {
		return nil, nil, errors.New("pki: ca: empty name")
	}
	if validity <= 0 {
		return nil, nil, fmt.Errorf("pki: ca: validity %s, want a positive duration", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: ca: cannot generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // it signs leaf certificates only
		// SubjectKeyId: x509.CreateCertificate derives it for a CA, and
		// copies it into what the CA signs as AuthorityKeyId.
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: ca: cannot sign: %w", err)
	}
	return encode(der, key)
}

// NewCert returns a certificate for req signed by the CA given as PEM
// (certificate and private key), and its new private key, both as PEM.
func NewCert(caCertPEM, caKeyPEM []byte, req Request) (certPEM, keyPEM []byte, err error) {
	if req.Name == "" {
		return nil, nil, errors.New("pki: cert: empty name")
	}
	if req.Validity <= 0 {
		return nil, nil, fmt.Errorf("pki: cert %s: validity %s, want a positive duration", req.Name, req.Validity)
	}
	var usage []x509.ExtKeyUsage
	switch req.Kind {
	case Server:
		if len(req.IPs) == 0 && len(req.DNSNames) == 0 {
			return nil, nil, fmt.Errorf("pki: cert %s: a server certificate needs at least one IP address or DNS name", req.Name)
		}
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	case Client:
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		return nil, nil, fmt.Errorf("pki: cert %s: %s, want server or client", req.Name, req.Kind)
	}
	ca, caKey, err := ParseCA(caCertPEM, caKeyPEM)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: cert %s: cannot generate key: %w", req.Name, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	notAfter := now.Add(req.Validity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.Name},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
		IPAddresses:           req.IPs,
		DNSNames:              req.DNSNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: cert %s: cannot sign: %w", req.Name, err)
	}
	return encode(der, key)
}

// ParseCA parses a CA certificate and its private key from PEM, and checks
// that the certificate is a CA's and that the key is its own.
func ParseCA(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: ca certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("pki: ca certificate: %s is not a certificate authority", cert.Subject)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: ca key: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("pki: ca key: not the key of %s", cert.Subject)
	}
	return cert, key, nil
}

// ParseCert parses the first PEM certificate in data.
func ParseCert(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// ErrEncryptedKey is returned by ParseKey for a password-protected key.
var ErrEncryptedKey = errors.New("the private key is encrypted")

// ParseKey parses the first PEM private key in data: PKCS #8, SEC 1 (EC) or
// PKCS #1 (RSA). An encrypted key returns ErrEncryptedKey.
func ParseKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM private key")
		}
		switch {
		case b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] == "4,ENCRYPTED":
			return nil, ErrEncryptedKey
		case b.Type == "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, err
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("unsupported private key type %T", k)
			}
			return s, nil
		case b.Type == "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(b.Bytes)
		case b.Type == "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(b.Bytes)
		}
	}
}

func encode(der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: cannot encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), nil
}

// newSerial returns a random 128-bit serial number.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("pki: cannot draw a serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // never 0
}
