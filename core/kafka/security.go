package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"time"
)

// principalAnonymous is the principal of a connection that proved no
// identity on a listener that does not ask for one, as Kafka names it.
const principalAnonymous = "User:ANONYMOUS"

// mechanismSSL labels client certificate authentication in the
// fluxo_kafka_auth_* metrics.
const mechanismSSL = "SSL"

// secure runs the TLS handshake of an SSL or SASL_SSL connection and sets
// the principal its listener gives before any request: on PLAINTEXT and
// SSL listeners the connection is authenticated at once (by its client
// certificate, or as User:ANONYMOUS); on SASL listeners it waits for
// SASL. It returns false when the connection must be closed.
func (c *Conn) secure() bool {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		if !c.l.Protocol.SASL() {
			c.SetAuthenticated(principalAnonymous)
		}
		return true
	}
	timeout := c.s.cfg.HandshakeTimeout
	if timeout == 0 {
		timeout = c.s.cfg.IdleTimeout
	}
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		if c.ctx.Err() != nil {
			c.log.Debug().Msg("connection closed by server during tls handshake")
			return false
		}
		c.s.metrics.tlsHandshakeFailures.WithLabelValues(c.l.Name).Inc()
		var cve *tls.CertificateVerificationError
		if errors.As(err, &cve) {
			c.s.metrics.authFailures.WithLabelValues(c.l.Name, mechanismSSL).Inc()
			c.log.Info().Err(err).Msg("client certificate refused, closing connection")
			return false
		}
		c.log.Info().Err(err).Dur("timeout", timeout).Msg("tls handshake failed, closing connection")
		return false
	}
	// The handshake's deadline came from ctx; requests set their own.
	_ = c.nc.SetDeadline(time.Time{})
	if c.l.Protocol.SASL() {
		return true
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) > 0 && len(st.PeerCertificates) > 0 {
		c.SetAuthenticated(certPrincipal(st.PeerCertificates[0]))
		c.s.metrics.authSuccesses.WithLabelValues(c.l.Name, mechanismSSL).Inc()
		c.log.Debug().Str("principal", c.principal).Msg("client certificate authenticated")
		return true
	}
	c.SetAuthenticated(principalAnonymous)
	return true
}
