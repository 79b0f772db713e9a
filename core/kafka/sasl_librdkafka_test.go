package kafka

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/base64"
	"strconv"
	"testing"
)

// librdkafkaFinal builds the client-final message librdkafka sends for
// server-first s1: its own nonce followed by the whole server nonce, the
// proof computed over exactly that message. It also returns the server
// signature a correct server answers with.
func librdkafkaFinal(t *testing.T, cnonce, clientFirstBare, s1, password string) (msg, serverSig string) {
	t.Helper()
	r, salt64, iters := scramAttr(s1, 'r'), scramAttr(s1, 's'), scramAttr(s1, 'i')
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		t.Fatalf("server-first salt %q: %v", salt64, err)
	}
	n, err := strconv.Atoi(iters)
	if err != nil {
		t.Fatalf("server-first iterations %q: %v", iters, err)
	}
	salted, err := pbkdf2.Key(sha512.New, password, salt, n, sha512.Size)
	if err != nil {
		t.Fatal(err)
	}
	mac := func(key []byte, m string) []byte {
		h := hmac.New(sha512.New, key)
		h.Write([]byte(m))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	stored := sha512.Sum512(clientKey)
	withoutProof := "c=biws,r=" + cnonce + r
	auth := clientFirstBare + "," + s1 + "," + withoutProof
	sig := mac(stored[:], auth)
	for i := range sig {
		sig[i] ^= clientKey[i]
	}
	serverKey := mac(salted, "Server Key")
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(sig), "v=" + base64.StdEncoding.EncodeToString(mac(serverKey, auth))
}

// librdkafka's SCRAM client repeats its nonce in the client-final
// message; Kafka accepts it and verifies the proof over the message as
// sent, and so must we, or kcat and confluent-kafka cannot log in. A
// wrong password in the same shape is still refused.
func TestScramLibrdkafkaNonce(t *testing.T) {
	creds := newUsers(t, "alice", "alice-pw")
	s := &Server{cfg: Config{Credentials: creds}}
	for _, tc := range []struct {
		password string
		ok       bool
	}{{"alice-pw", true}, {"wrong", false}} {
		sess := s.newSASLSession(MechanismScramSHA512)
		const cnonce = `8Zj|7K5Cv3bnzQAWE1<\lqjB3N17zDOm`
		bare := "n=alice,r=" + cnonce
		s1, done, err := sess.step([]byte("n,," + bare))
		if err != nil || done {
			t.Fatalf("client-first: got done %v, error %v; want the server-first message", done, err)
		}
		final, wantSig := librdkafkaFinal(t, cnonce, bare, string(s1), tc.password)
		reply, done, err := sess.step([]byte(final))
		if !tc.ok {
			if err == nil || done {
				t.Fatalf("password %q: got done %v, error %v; want refused", tc.password, done, err)
			}
			continue
		}
		if err != nil || !done || string(reply) != wantSig || sess.user() != "alice" {
			t.Fatalf("got reply %q, done %v, error %v, user %q; want %q, done, alice", reply, done, err, sess.user(), wantSig)
		}
	}
}
