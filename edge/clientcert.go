package edge

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
)

// CertIdentity says which name of a device's client certificate is its
// identity, the username its ACLs see (%u).
type CertIdentity int

const (
	// IdentityCN is the subject's common name.
	IdentityCN CertIdentity = iota
	// IdentityURI is the first URI subject alternative name, whole (for
	// example spiffe://fleet/dev-17).
	IdentityURI
)

// String returns "cn" or "uri".
func (c CertIdentity) String() string {
	switch c {
	case IdentityCN:
		return "cn"
	case IdentityURI:
		return "uri"
	}
	return fmt.Sprintf("CertIdentity(%d)", int(c))
}

// ParseCertIdentity reads "cn" or "uri".
func ParseCertIdentity(s string) (CertIdentity, error) {
	switch s {
	case "cn":
		return IdentityCN, nil
	case "uri":
		return IdentityURI, nil
	}
	return 0, fmt.Errorf("edge: certificate identity %q: want cn or uri", s)
}

// name returns the identity of cert, "" if it has none.
func (c CertIdentity) name(cert *x509.Certificate) string {
	switch c {
	case IdentityCN:
		return cert.Subject.CommonName
	case IdentityURI:
		if len(cert.URIs) > 0 {
			return cert.URIs[0].String()
		}
	}
	return ""
}

// unwrapper is a connection wrapping another (ackConn, guarded's).
type unwrapper interface{ Unwrap() net.Conn }

// peerCertificate returns the verified client certificate of a TLS
// connection, found under the edge's wrappers; nil for a connection
// without TLS or without a client certificate. Certificates are verified
// by the TLS handshake (Config.TLS's ClientCAs), which is over once the
// CONNECT packet has been read.
func peerCertificate(c net.Conn) *x509.Certificate {
	for c != nil {
		switch v := c.(type) {
		case *tls.Conn:
			st := v.ConnectionState()
			if !st.HandshakeComplete || len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
				return nil
			}
			return st.PeerCertificates[0]
		case unwrapper:
			c = v.Unwrap()
		default:
			return nil
		}
	}
	return nil
}
