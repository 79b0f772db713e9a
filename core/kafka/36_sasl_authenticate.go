package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslAuthenticate v0-v2, registered when Config.SASLMechanisms is not
// empty.
//
// Behavior:
//   - Each request carries the client's next token of the exchange the
//     SaslHandshake v1 started; SCRAM takes two, PLAIN one. The response
//     carries the server's token; once the exchange succeeds the
//     connection is authenticated as User:<name>.
//   - Wrong credentials or a malformed token: SASL_AUTHENTICATION_FAILED
//     with a message, and the connection is closed after the response,
//     as Kafka does.
//   - Without a handshake, or after authentication: ILLEGAL_SASL_STATE,
//     and the connection is closed.
//   - Re-authentication (KIP-368) is not offered: SessionLifetimeMillis
//     is 0.
func (s *Server) handleSASLAuthenticate(_ context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.SASLAuthenticateRequest)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if cc.sasl == nil || cc.authenticated {
		msg := "SaslAuthenticate without SaslHandshake v1"
		if cc.authenticated {
			msg = "already authenticated: re-authentication is not supported"
		}
		resp.ErrorCode = kerr.IllegalSaslState.Code
		resp.ErrorMessage = &msg
		cc.closeAfter = true
		cc.log.Info().Msg("sasl authenticate out of place, closing connection")
		return resp, nil
	}
	reply, msg, ok := cc.saslStep(req.SASLAuthBytes)
	if !ok {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = &msg
		cc.closeAfter = true
		return resp, nil
	}
	resp.SASLAuthBytes = reply
	return resp, nil
}

// saslStep runs the next step of the connection's SASL exchange. On
// failure it returns ok false and the message for the client, counts and
// logs the failure, and ends the exchange; on success it authenticates
// the connection.
func (c *Conn) saslStep(token []byte) (reply []byte, failure string, ok bool) {
	m := c.saslMechanism
	reply, done, err := c.sasl.step(token)
	if err != nil {
		c.sasl = nil
		c.s.metrics.authFailures.WithLabelValues(c.l.Name, m).Inc()
		c.log.Info().Err(err).Str("mechanism", m).Msg("sasl authentication failed")
		if errors.Is(err, errBadCredentials) {
			return nil, "Authentication failed: invalid credentials with SASL mechanism " + m, false
		}
		return nil, "Authentication failed: malformed " + m + " message", false
	}
	if done {
		principal := "User:" + c.sasl.user()
		c.sasl = nil
		c.saslRaw = false
		c.SetAuthenticated(principal)
		c.s.metrics.authSuccesses.WithLabelValues(c.l.Name, m).Inc()
		c.log.Debug().Str("mechanism", m).Str("principal", principal).Msg("sasl authenticated")
	}
	return reply, "", true
}

// handleRawSASL serves one bare SASL token sent after SaslHandshake v0:
// the reply goes back as a bare length-prefixed token. A failure closes
// the connection without a reply, as Kafka does in this flow. It returns
// false when the connection must be closed.
func (c *Conn) handleRawSASL(token []byte) bool {
	reply, _, ok := c.saslStep(token)
	if !ok {
		return false
	}
	buf := binary.BigEndian.AppendUint32(c.wbuf[:0], uint32(len(reply)))
	buf = append(buf, reply...)
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout)); err != nil {
		return false
	}
	if _, err := c.nc.Write(buf); err != nil {
		c.log.Debug().Err(err).Msg("cannot write sasl token, closing connection")
		return false
	}
	return true
}
