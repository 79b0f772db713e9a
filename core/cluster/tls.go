package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// TLS is the Raft port's mutual TLS: this node's certificate and the
// cluster CA. Every member presents its certificate both when it accepts
// a connection and when it dials one, and accepts a peer whose
// certificate chains to CAs: members are identified by the cluster CA,
// not by host names (see verifyPeer).
type TLS struct {
	// Certificate is this node's certificate chain and private key. It
	// must be valid for both server and client authentication (extended
	// key usages serverAuth and clientAuth, or none).
	Certificate tls.Certificate
	// CAs holds the cluster CA(s) a peer's certificate must chain to.
	CAs *x509.CertPool
}

// validate reports what is missing.
func (t *TLS) validate() error {
	switch {
	case len(t.Certificate.Certificate) == 0 || t.Certificate.PrivateKey == nil:
		return errors.New("cluster: tls: no certificate and key")
	case t.CAs == nil:
		return errors.New("cluster: tls: no CA pool")
	}
	return nil
}

// tlsState holds the current TLS material; ReloadTLS swaps it, and every
// later handshake (accepted or dialed) uses the new one. Connections
// already open keep the certificate they were made with.
type tlsState struct {
	cur atomic.Pointer[TLS]
}

func newTLSState(t *TLS) *tlsState {
	s := &tlsState{}
	cp := *t
	s.cur.Store(&cp)
	return s
}

// serverConfig is the listener side: a client certificate is required
// and must chain to the CA pool current at the handshake.
func (s *tlsState) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			t := s.cur.Load()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{t.Certificate},
				ClientAuth:   tls.RequireAnyClientCert,
				// Verification against the pool of this handshake, with
				// the client usage; see verifyPeer.
				VerifyConnection: func(cs tls.ConnectionState) error {
					return verifyPeer(t.CAs, cs, x509.ExtKeyUsageClientAuth)
				},
			}, nil
		},
	}
}

// clientConfig is the dialing side, with this node's certificate.
//
// Go's default verification would match the server's certificate
// against the host name dialed, but members are dialed at whatever
// address they advertise (an IP, a pod name) and are identified by the
// cluster CA alone: any certificate the cluster CA signed is a member.
// So the default check is off (InsecureSkipVerify) and VerifyConnection
// verifies the chain against the CA pool with x509, without a host name.
func (s *tlsState) clientConfig() *tls.Config {
	t := s.cur.Load()
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		Certificates:       []tls.Certificate{t.Certificate},
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPeer(t.CAs, cs, x509.ExtKeyUsageServerAuth)
		},
	}
}

// errNoPeerCertificate is a peer that presented no certificate.
var errNoPeerCertificate = errors.New("cluster: tls: peer sent no certificate")

// verifyPeer checks that the peer's certificate chains to pool and may
// be used for usage. It deliberately checks no host name: membership is
// proven by the CA's signature.
func verifyPeer(pool *x509.CertPool, cs tls.ConnectionState, usage x509.ExtKeyUsage) error {
	if len(cs.PeerCertificates) == 0 {
		return errNoPeerCertificate
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return fmt.Errorf("cluster: tls: peer certificate: %w", err)
	}
	return nil
}

// dialConn opens a connection to a member's Raft port by deadline
// (through nw when it is not nil), completing the TLS handshake when ts is not nil.
func dialConn(ctx context.Context, nw Network, addr string, ts *tlsState, deadline time.Time) (net.Conn, error) {
	var conn net.Conn
	var err error
	if nw != nil {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		conn, err = nw.DialContext(dctx, "tcp", addr)
		cancel()
	} else {
		d := net.Dialer{Timeout: dialTimeout, Deadline: deadline}
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	if ts == nil {
		return conn, nil
	}
	tc := tls.Client(conn, ts.clientConfig())
	hctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cluster: tls handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// Reasons for fluxo_cluster_rpc_rejected_total.
const (
	rejectNotTLS        = "not_tls"         // no TLS ClientHello (a plaintext peer)
	rejectNoCertificate = "no_certificate"  // TLS without a client certificate
	rejectBadCert       = "bad_certificate" // a certificate the cluster CA did not sign
	rejectHandshake     = "handshake"       // any other handshake failure (timeout, protocol)
	rejectUnknownType   = "unknown_type"    // a first byte that is neither raft nor rpc
)

// rejectReason classifies a failed server handshake.
func rejectReason(err error) string {
	var rh tls.RecordHeaderError
	var cv *tls.CertificateVerificationError
	switch {
	case errors.As(err, &rh):
		return rejectNotTLS
	case errors.Is(err, errNoPeerCertificate),
		// crypto/tls's own refusal under RequireAnyClientCert, which
		// has no error value of its own.
		strings.Contains(err.Error(), "didn't provide a certificate"):
		return rejectNoCertificate
	case errors.As(err, &cv):
		return rejectBadCert
	}
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	if errors.As(err, &ua) || errors.As(err, &ci) {
		return rejectBadCert
	}
	return rejectHandshake
}

// ReloadTLS replaces the certificate and CA pool used by every later
// handshake, accepted or dialed (for a SIGHUP after the files were
// renewed). Connections already open keep theirs. It fails if the
// Cluster was opened without TLS: turning TLS on or off needs a restart.
func (c *Cluster) ReloadTLS(t TLS) error {
	if c.tls == nil {
		return errors.New("cluster: tls: not configured at open")
	}
	if err := t.validate(); err != nil {
		return err
	}
	c.tls.cur.Store(&t)
	c.log.Info().Msg("cluster tls reloaded")
	return nil
}
