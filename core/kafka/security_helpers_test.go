package kafka

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"net"
	"path/filepath"
	"testing"

	"github.com/xdg-go/scram"

	"github.com/fluxo-io/fluxo/core/broker"
	"github.com/fluxo-io/fluxo/core/cluster"
)

// users is an in-memory Credentials: user → mechanism → credentials.
type users map[string]map[string]scram.StoredCredentials

func (u users) ScramCredentials(user, mechanism string) (scram.StoredCredentials, bool) {
	sc, ok := u[user][mechanism]
	return sc, ok
}

// newUsers derives SCRAM-SHA-256 and SCRAM-SHA-512 credentials for each
// user, password pair, each with its own random salt, as a client-side
// SCRAM implementation does.
func newUsers(t testing.TB, userPass ...string) users {
	t.Helper()
	u := users{}
	for i := 0; i+1 < len(userPass); i += 2 {
		user, pass := userPass[i], userPass[i+1]
		u[user] = map[string]scram.StoredCredentials{}
		for mech, h := range map[string]scram.HashGeneratorFcn{MechanismScramSHA256: scram.SHA256, MechanismScramSHA512: scram.SHA512} {
			cl, err := h.NewClient(user, pass, "")
			if err != nil {
				t.Fatalf("scram client: got %v, want nil", err)
			}
			salt := make([]byte, 16)
			rand.Read(salt)
			sc, err := cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: 4096})
			if err != nil {
				t.Fatalf("stored credentials: got %v, want nil", err)
			}
			u[user][mech] = sc
		}
	}
	return u
}

// saslConfig is testConfig with every SASL mechanism enabled over
// alice/alice-secret and bob/bob-secret.
func saslConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.SASLMechanisms = []string{MechanismPlain, MechanismScramSHA256, MechanismScramSHA512}
	cfg.Credentials = newUsers(t, "alice", "alice-secret", "bob", "bob-secret")
	return cfg
}

// startListener serves l on a new loopback port of s and returns its
// address.
func startListener(t *testing.T, s *Server, l Listener) string {
	t.Helper()
	addr, err := s.StartListener("127.0.0.1:0", l)
	if err != nil {
		t.Fatalf("StartListener %s: got %v, want nil", l.Name, err)
	}
	return addr.String()
}

// dialAddr is dial for a given address, over TLS when tc is not nil; the
// TLS handshake is done before it returns.
func dialAddr(t *testing.T, addr string, tc *tls.Config) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatalf("dial: got error %v, want nil", err)
	}
	t.Cleanup(func() { nc.Close() })
	if tc != nil {
		c := tls.Client(nc, tc)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := c.HandshakeContext(ctx); err != nil {
			t.Fatalf("tls handshake: got %v, want nil", err)
		}
		nc = c
	}
	return &rawConn{t: t, nc: nc}
}

// openBroker opens a broker with id 1 on a real single-voter cluster in
// a temporary directory, closed when the test ends.
func openBroker(t testing.TB) *broker.Broker {
	t.Helper()
	dir := t.TempDir()
	cl, err := cluster.Open(cluster.Config{
		NodeID:    1,
		DataDir:   filepath.Join(dir, "cluster"),
		SerfAddr:  "127.0.0.1:0",
		RaftAddr:  "127.0.0.1:0",
		KafkaAddr: "127.0.0.1:9092",
		Timers:    cluster.FastTimers(),
	})
	if err != nil {
		t.Fatalf("cluster.Open: got %v, want nil", err)
	}
	t.Cleanup(func() { cl.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := cl.WaitReady(ctx); err != nil {
		t.Fatalf("cluster WaitReady: got %v, want nil", err)
	}
	bcfg := broker.DefaultConfig()
	bcfg.NodeID = 1
	bcfg.DataDir = filepath.Join(dir, "data")
	b, err := broker.Open(bcfg, cl)
	if err != nil {
		t.Fatalf("broker.Open: got %v, want nil", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
