package kafka

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"

	"github.com/xdg-go/scram"
	"github.com/xdg-go/stringprep"
)

// The SASL mechanisms the server implements, by Kafka's names.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// Credentials looks users up for SASL authentication. Implementations are
// called concurrently from every connection's goroutine.
type Credentials interface {
	// ScramCredentials looks up SCRAM credentials; mechanism is
	// "SCRAM-SHA-256" or "SCRAM-SHA-512". ok is false when user has none
	// for mechanism.
	ScramCredentials(user, mechanism string) (scram.StoredCredentials, bool)
}

// validateSASL checks Config.SASLMechanisms and Config.Credentials.
func validateSASL(mechanisms []string, creds Credentials) error {
	for i, m := range mechanisms {
		switch m {
		case MechanismPlain, MechanismScramSHA256, MechanismScramSHA512:
		default:
			return fmt.Errorf("kafka: unknown sasl mechanism %q (want %s, %s or %s)", m, MechanismPlain, MechanismScramSHA256, MechanismScramSHA512)
		}
		if slices.Contains(mechanisms[:i], m) {
			return fmt.Errorf("kafka: sasl mechanism %s listed twice", m)
		}
	}
	if len(mechanisms) > 0 && creds == nil {
		return errors.New("kafka: sasl mechanisms need credentials")
	}
	return nil
}

// errBadCredentials is a SASL exchange that failed on the user's
// credentials rather than on a malformed message.
var errBadCredentials = errors.New("invalid credentials")

// saslSession is one SASL exchange on a connection, from SaslHandshake to
// success or failure. Its methods run on the connection's goroutine.
type saslSession interface {
	// step takes the client's next token and returns the server's reply.
	// done is true once the client is authenticated; an error fails the
	// exchange and wraps errBadCredentials when the credentials were
	// wrong.
	step(token []byte) (reply []byte, done bool, err error)
	// user is the authenticated user once done.
	user() string
}

// newSASLSession starts an exchange for mechanism, which must be one of
// Config.SASLMechanisms.
func (s *Server) newSASLSession(mechanism string) saslSession {
	switch mechanism {
	case MechanismPlain:
		return &plainSession{creds: s.cfg.Credentials}
	case MechanismScramSHA256:
		return &scramSession{conv: newScramServer(scram.SHA256, mechanism, s.cfg.Credentials).NewConversation(),
			hash: sha256.New, mechanism: mechanism, creds: s.cfg.Credentials}
	case MechanismScramSHA512:
		return &scramSession{conv: newScramServer(scram.SHA512, mechanism, s.cfg.Credentials).NewConversation(),
			hash: sha512.New, mechanism: mechanism, creds: s.cfg.Credentials}
	}
	panic(fmt.Sprintf("kafka: sasl: mechanism %q not validated", mechanism))
}

// plainSession is a PLAIN exchange (RFC 4616): one message, no reply.
type plainSession struct {
	creds Credentials
	name  string
}

func (p *plainSession) step(token []byte) ([]byte, bool, error) {
	if p.name != "" {
		return nil, false, errors.New("plain: unexpected message after authentication")
	}
	_, user, pass, err := parsePlain(token)
	if err != nil {
		return nil, false, err
	}
	if !verifyPlain(p.creds, user, pass) {
		return nil, false, fmt.Errorf("plain: user %q: %w", user, errBadCredentials)
	}
	p.name = user
	return []byte{}, true, nil
}

func (p *plainSession) user() string { return p.name }

// parsePlain parses a PLAIN message, authzid NUL authcid NUL passwd
// (RFC 4616). As in Kafka, the authorization id must be empty or the
// user's own, and the user and password must not be empty.
func parsePlain(msg []byte) (authzid, user, pass string, err error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("plain: message has %d NUL-separated fields, want 3", len(parts))
	}
	authzid, user, pass = string(parts[0]), string(parts[1]), string(parts[2])
	switch {
	case user == "":
		return "", "", "", errors.New("plain: empty user name")
	case pass == "":
		return "", "", "", errors.New("plain: empty password")
	case authzid != "" && authzid != user:
		return "", "", "", errors.New("plain: authorization id is not the user name")
	}
	return authzid, user, pass, nil
}

// verifyPlain checks a PLAIN password against the user's SCRAM
// credentials, SHA-512 first then SHA-256, as Redpanda does: the salted
// password is derived with the stored salt and iterations, and its
// StoredKey compared in constant time.
func verifyPlain(creds Credentials, user, pass string) bool {
	prepped, err := stringprep.SASLprep.Prepare(pass)
	if err != nil {
		return false
	}
	for _, m := range []struct {
		name string
		h    func() hash.Hash
	}{{MechanismScramSHA512, sha512.New}, {MechanismScramSHA256, sha256.New}} {
		sc, ok := creds.ScramCredentials(user, m.name)
		if !ok || sc.Iters <= 0 {
			continue
		}
		salted, err := pbkdf2.Key(m.h, prepped, []byte(sc.Salt), sc.Iters, m.h().Size())
		if err != nil {
			continue
		}
		mac := hmac.New(m.h, salted)
		mac.Write([]byte("Client Key"))
		h := m.h()
		h.Write(mac.Sum(nil))
		if hmac.Equal(h.Sum(nil), sc.StoredKey) {
			return true
		}
	}
	return false
}

// newScramServer is xdg-go/scram's server for one mechanism over creds.
func newScramServer(h scram.HashGeneratorFcn, mechanism string, creds Credentials) *scram.Server {
	srv, err := h.NewServer(func(user string) (scram.StoredCredentials, error) {
		sc, ok := creds.ScramCredentials(user, mechanism)
		if !ok {
			return scram.StoredCredentials{}, fmt.Errorf("scram: user %q: %w", user, errBadCredentials)
		}
		return sc, nil
	})
	if err != nil {
		panic(fmt.Sprintf("kafka: sasl: scram server: %v", err)) // NewServer never fails
	}
	return srv
}

// scramSession is a SCRAM exchange (RFC 5802): client-first, then
// client-final, each answered by the server. xdg-go/scram runs it, but
// for one quirk of librdkafka that Kafka accepts (see librdkafkaFinal).
type scramSession struct {
	conv      *scram.ServerConversation
	hash      func() hash.Hash
	mechanism string
	creds     Credentials

	// The exchange so far, kept for librdkafkaFinal.
	clientFirstBare string
	serverFirst     string
	nonce           string // the server-first nonce: client's + server's
	name            string // set once librdkafkaFinal authenticated
}

func (s *scramSession) step(token []byte) ([]byte, bool, error) {
	msg := string(token)
	if s.serverFirst != "" {
		if reply, done, ok, err := s.librdkafkaFinal(msg); ok {
			return reply, done, err
		}
	}
	reply, err := s.conv.Step(msg)
	if err == nil && s.serverFirst == "" {
		// Kept to check the client-final message against.
		if _, bare, ok := strings.Cut(strings.TrimPrefix(msg, "n,"), ","); ok {
			s.clientFirstBare = bare
		}
		s.serverFirst = reply
		s.nonce = scramAttr(reply, 'r')
	}
	if err != nil {
		if strings.HasPrefix(reply, "e=invalid-proof") || strings.HasPrefix(reply, "e=unknown-user") {
			return nil, false, fmt.Errorf("scram: %w", errBadCredentials)
		}
		return nil, false, fmt.Errorf("scram: %w", err)
	}
	return []byte(reply), s.conv.Done() && s.conv.Valid(), nil
}

func (s *scramSession) user() string {
	if s.name != "" {
		return s.name
	}
	return s.conv.Username()
}

// librdkafkaFinal verifies a client-final message whose nonce is the
// client's nonce followed by the whole server-first nonce, which is what
// librdkafka (kcat, confluent-kafka, every client on it) sends: RFC 5802
// wants the server-first nonce alone, and xdg-go/scram refuses anything
// else, but Apache Kafka only checks that the nonce ends with its own and
// verifies the proof over the message as sent. So does this, for that
// shape only (ok false: any other message is xdg-go/scram's to judge):
//
//	AuthMessage     = client-first-bare "," server-first "," client-final-without-proof
//	ClientSignature = HMAC(StoredKey, AuthMessage)
//	ClientKey       = proof XOR ClientSignature; H(ClientKey) must be StoredKey
//	ServerSignature = HMAC(ServerKey, AuthMessage), sent back as v=
func (s *scramSession) librdkafkaFinal(msg string) (reply []byte, done, ok bool, err error) {
	got := scramAttr(msg, 'r')
	if s.nonce == "" || got == s.nonce || !strings.HasSuffix(got, s.nonce) {
		return nil, false, false, nil
	}
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, false, true, errors.New("scram: client-final message without a proof")
	}
	proof, perr := base64.StdEncoding.DecodeString(msg[i+len(",p="):])
	name := s.conv.Username()
	sc, found := s.creds.ScramCredentials(name, s.mechanism)
	if perr != nil || !found || len(proof) != s.hash().Size() {
		return nil, false, true, fmt.Errorf("scram: %w", errBadCredentials)
	}
	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + msg[:i]
	mac := func(key []byte, m string) []byte {
		h := hmac.New(s.hash, key)
		h.Write([]byte(m))
		return h.Sum(nil)
	}
	clientKey := mac(sc.StoredKey, authMessage)
	for j := range clientKey {
		clientKey[j] ^= proof[j]
	}
	h := s.hash()
	h.Write(clientKey)
	if !hmac.Equal(h.Sum(nil), sc.StoredKey) {
		return nil, false, true, fmt.Errorf("scram: %w", errBadCredentials)
	}
	s.name = name
	return []byte("v=" + base64.StdEncoding.EncodeToString(mac(sc.ServerKey, authMessage))), true, true, nil
}

// scramAttr returns the value of attribute key in a SCRAM message
// ("r=...,s=...,i=..."), or "".
func scramAttr(msg string, key byte) string {
	for _, f := range strings.Split(msg, ",") {
		if len(f) >= 2 && f[0] == key && f[1] == '=' {
			return f[2:]
		}
	}
	return ""
}
