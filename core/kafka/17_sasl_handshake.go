package kafka

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslHandshake v0-v1, registered when Config.SASLMechanisms is not
// empty.
//
// Behavior:
//   - On a SASL_PLAINTEXT or SASL_SSL connection not yet authenticated,
//     an enabled mechanism starts its exchange; the response lists the
//     enabled mechanisms.
//   - An unknown or disabled mechanism gets UNSUPPORTED_SASL_MECHANISM
//     with the enabled list; a handshake on a PLAINTEXT or SSL listener,
//     a second handshake or one after authentication get
//     ILLEGAL_SASL_STATE. Either closes the connection after the
//     response, as Kafka does.
//   - v1 is followed by SaslAuthenticate requests. After v0 the client
//     sends its SASL tokens bare, each with a 4-byte length prefix and
//     no request header, and gets the server's tokens the same way
//     (Kafka's legacy flow; see handleRawSASL).
func (s *Server) handleSASLHandshake(_ context.Context, cc *Conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.SASLHandshakeRequest)
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = slices.Clone(s.cfg.SASLMechanisms)
	switch {
	case !cc.l.Protocol.SASL() || cc.authenticated || cc.sasl != nil:
		resp.ErrorCode = kerr.IllegalSaslState.Code
		cc.closeAfter = true
		cc.log.Info().Str("mechanism", req.Mechanism).Bool("authenticated", cc.authenticated).Msg("sasl handshake out of place, closing connection")
	case !slices.Contains(s.cfg.SASLMechanisms, req.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		cc.closeAfter = true
		s.metrics.authFailures.WithLabelValues(cc.l.Name, "unsupported").Inc()
		cc.log.Info().Str("mechanism", req.Mechanism).Msg("unsupported sasl mechanism, closing connection")
	default:
		cc.sasl = s.newSASLSession(req.Mechanism)
		cc.saslMechanism = req.Mechanism
		cc.saslRaw = req.Version == 0
	}
	return resp, nil
}
