package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/fluxo-io/fluxo/internal/testcert"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// tlsServer is a CA and a server certificate it signed for 127.0.0.1.
type tlsServer struct {
	ca   *testcert.CA
	pair testcert.Pair
}

func newTLSServer(t *testing.T) tlsServer {
	ca := testcert.NewCA(t, "fluxo test CA")
	return tlsServer{ca: ca, pair: ca.Server(t, "127.0.0.1")}
}

// listenerTLS is the server side TLS configuration for ts.
func (ts tlsServer) listenerTLS(t *testing.T, auth ClientAuth) (*tls.Config, *CertReloader) {
	t.Helper()
	cfg, r, err := ServerTLS(ts.pair.CertPEM, ts.pair.KeyPEM, ts.ca.CertPEM, auth)
	if err != nil {
		t.Fatalf("ServerTLS: got %v, want nil", err)
	}
	return cfg, r
}

// clientTLS trusts ts's CA and presents certs.
func (ts tlsServer) clientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: ts.ca.Pool(), ServerName: "127.0.0.1", Certificates: certs}
}

// forceCert makes tc present cert even when the server asks for
// certificates of another CA (Go's client then sends none), as a
// misconfigured client would.
func forceCert(tc *tls.Config, cert tls.Certificate) *tls.Config {
	tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return tc
}

// kclient is a franz-go client of addr with opts, closed when the test
// ends.
func kclient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RequestRetries(1)}, opts...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: got %v, want nil", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

func mechanisms(user, pass string) map[string]sasl.Mechanism {
	return map[string]sasl.Mechanism{
		MechanismPlain:       plain.Auth{User: user, Pass: pass}.AsMechanism(),
		MechanismScramSHA256: scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(),
		MechanismScramSHA512: scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(),
	}
}

// TestSASLSSLProduceFetch: each mechanism over SASL_SSL lets a real
// client produce and fetch back, and is counted as a success.
func TestSASLSSLProduceFetch(t *testing.T) {
	cfg := saslConfig(t)
	cfg.Broker = openBroker(t)
	s, _ := startServerWithMetrics(t, cfg, nil)
	ts := newTLSServer(t)
	tc, _ := ts.listenerTLS(t, ClientAuthNone)
	addr := startListener(t, s, Listener{Name: "SECURE", Protocol: SASLSSL, TLS: tc})

	for mech, m := range mechanisms("alice", "alice-secret") {
		t.Run(mech, func(t *testing.T) {
			ctx := ctxT(t)
			topic := "secure-" + mech
			if _, err := cfg.Broker.CreateTopic(ctx, topic, 1, 1, nil); err != nil {
				t.Fatalf("create topic %s: got %v, want nil", topic, err)
			}
			cl := kclient(t, addr, kgo.DialTLSConfig(ts.clientTLS()), kgo.SASL(m),
				kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			want := "hello over " + mech
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(want)}).FirstErr(); err != nil {
				t.Fatalf("produce: got %v, want nil", err)
			}
			var got []string
			for len(got) == 0 {
				fs := cl.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatalf("fetch: got %v, want nil", err)
				}
				fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
			}
			if len(got) != 1 || got[0] != want {
				t.Fatalf("records: got %q, want [%q]", got, want)
			}
			if n := value(t, s.metrics.authSuccesses.WithLabelValues("SECURE", mech)); n < 1 {
				t.Fatalf("auth successes{SECURE,%s}: got %v, want at least 1", mech, n)
			}
		})
	}
}

// TestSASLWrongPassword: a wrong password or an unknown user gets
// SASL_AUTHENTICATION_FAILED, counted as a failure.
func TestSASLWrongPassword(t *testing.T) {
	s, _ := startServerWithMetrics(t, saslConfig(t), nil)
	ts := newTLSServer(t)
	tc, _ := ts.listenerTLS(t, ClientAuthNone)
	addr := startListener(t, s, Listener{Name: "SECURE", Protocol: SASLSSL, TLS: tc})

	for _, who := range []struct{ user, pass string }{{"alice", "bob-secret"}, {"mallory", "alice-secret"}} {
		for mech, m := range mechanisms(who.user, who.pass) {
			t.Run(who.user+"/"+mech, func(t *testing.T) {
				before := value(t, s.metrics.authFailures.WithLabelValues("SECURE", mech))
				cl := kclient(t, addr, kgo.DialTLSConfig(ts.clientTLS()), kgo.SASL(m))
				err := cl.Ping(ctxT(t))
				if !errors.Is(err, kerr.SaslAuthenticationFailed) {
					t.Fatalf("ping: got %v, want SASL_AUTHENTICATION_FAILED", err)
				}
				if n := value(t, s.metrics.authFailures.WithLabelValues("SECURE", mech)); n <= before {
					t.Fatalf("auth failures{SECURE,%s}: got %v, want more than %v", mech, n, before)
				}
			})
		}
	}
}

// TestSASLPlaintextListener: SASL without TLS works too, and the
// connection is closed after a failed authentication, as Kafka does.
func TestSASLPlaintextListener(t *testing.T) {
	s := startServer(t, saslConfig(t), nil)
	addr := startListener(t, s, Listener{Name: "SASL", Protocol: SASLPlaintext})
	cl := kclient(t, addr, kgo.SASL(scram.Auth{User: "bob", Pass: "bob-secret"}.AsSha512Mechanism()))
	if err := cl.Ping(ctxT(t)); err != nil {
		t.Fatalf("ping: got %v, want nil", err)
	}

	c := dialAddr(t, addr, nil)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version = 1
	hs.Mechanism = MechanismPlain
	c.roundTrip(hs)
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.Version = 2
	auth.SASLAuthBytes = []byte("\x00bob\x00wrong")
	resp := c.roundTrip(auth).(*kmsg.SASLAuthenticateResponse)
	if resp.ErrorCode != kerr.SaslAuthenticationFailed.Code || resp.ErrorMessage == nil {
		t.Fatalf("SaslAuthenticate: got code %d message %v, want %d with a message", resp.ErrorCode, resp.ErrorMessage, kerr.SaslAuthenticationFailed.Code)
	}
	c.expectClosed()
}

// TestSASLHandshakeErrors: an unknown mechanism gets
// UNSUPPORTED_SASL_MECHANISM with the enabled list; SASL on a plaintext
// listener and SaslAuthenticate without a handshake get
// ILLEGAL_SASL_STATE. Each closes the connection.
func TestSASLHandshakeErrors(t *testing.T) {
	cfg := saslConfig(t)
	cfg.SASLMechanisms = []string{MechanismScramSHA512, MechanismPlain}
	s := startServer(t, cfg, nil)
	addr := startListener(t, s, Listener{Name: "SASL", Protocol: SASLPlaintext})

	t.Run("unsupported mechanism", func(t *testing.T) {
		for _, mech := range []string{"GSSAPI", MechanismScramSHA256, "plain"} {
			c := dialAddr(t, addr, nil)
			hs := kmsg.NewPtrSASLHandshakeRequest()
			hs.Version = 1
			hs.Mechanism = mech
			resp := c.roundTrip(hs).(*kmsg.SASLHandshakeResponse)
			if resp.ErrorCode != kerr.UnsupportedSaslMechanism.Code {
				t.Fatalf("%s: error code: got %d, want %d", mech, resp.ErrorCode, kerr.UnsupportedSaslMechanism.Code)
			}
			if got, want := fmt.Sprint(resp.SupportedMechanisms), fmt.Sprint(cfg.SASLMechanisms); got != want {
				t.Fatalf("%s: mechanisms: got %s, want %s", mech, got, want)
			}
			c.expectClosed()
		}
	})
	t.Run("handshake on a plaintext listener", func(t *testing.T) {
		c := dial(t, s)
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version = 1
		hs.Mechanism = MechanismPlain
		if got := c.roundTrip(hs).(*kmsg.SASLHandshakeResponse).ErrorCode; got != kerr.IllegalSaslState.Code {
			t.Fatalf("error code: got %d, want %d", got, kerr.IllegalSaslState.Code)
		}
		c.expectClosed()
	})
	t.Run("authenticate without handshake", func(t *testing.T) {
		c := dialAddr(t, addr, nil)
		auth := kmsg.NewPtrSASLAuthenticateRequest()
		auth.Version = 1
		auth.SASLAuthBytes = []byte("\x00bob\x00bob-secret")
		if got := c.roundTrip(auth).(*kmsg.SASLAuthenticateResponse).ErrorCode; got != kerr.IllegalSaslState.Code {
			t.Fatalf("error code: got %d, want %d", got, kerr.IllegalSaslState.Code)
		}
		c.expectClosed()
	})
}

// TestSASLHandshakeV0Raw: after SaslHandshake v0 the client sends bare
// SASL tokens and gets bare tokens back, then speaks Kafka.
func TestSASLHandshakeV0Raw(t *testing.T) {
	principals := make(chan string, 1)
	s := startServer(t, saslConfig(t), func(s *Server) {
		s.handle(kmsg.SyncGroup, 0, 5, func(_ context.Context, cc *Conn, req kmsg.Request) (kmsg.Response, error) {
			principals <- cc.Principal()
			return req.ResponseKind(), nil
		})
	})
	addr := startListener(t, s, Listener{Name: "SASL", Protocol: SASLPlaintext})

	c := dialAddr(t, addr, nil)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = MechanismPlain
	if got := c.roundTrip(hs).(*kmsg.SASLHandshakeResponse).ErrorCode; got != 0 {
		t.Fatalf("SaslHandshake v0 error code: got %d, want 0", got)
	}
	c.write(frame([]byte("\x00bob\x00bob-secret")))
	token, err := c.readFrame()
	if err != nil || len(token) != 0 {
		t.Fatalf("PLAIN reply: got %q, %v, want an empty token", token, err)
	}
	c.roundTrip(kmsg.NewPtrSyncGroupRequest())
	if p := <-principals; p != "User:bob" {
		t.Fatalf("principal: got %q, want %q", p, "User:bob")
	}

	bad := dialAddr(t, addr, nil)
	bad.roundTrip(hs)
	bad.write(frame([]byte("\x00bob\x00nope")))
	bad.expectClosed()
}

// TestPlaintextClientOnTLSListener: a client that does not speak TLS
// gets nothing from an SSL listener, and the failed handshake is counted.
func TestPlaintextClientOnTLSListener(t *testing.T) {
	s := startServer(t, testConfig(t), nil)
	ts := newTLSServer(t)
	tc, _ := ts.listenerTLS(t, ClientAuthNone)
	addr := startListener(t, s, Listener{Name: "SSL", Protocol: SSL, TLS: tc})

	cl := kclient(t, addr)
	if err := cl.Ping(ctxT(t)); err == nil {
		t.Fatalf("plaintext ping of a TLS listener: got nil error, want a failure")
	}
	testutil.EventuallyWithin(t, waitFor, "tls handshake failure counted", func() bool {
		return value(t, s.metrics.tlsHandshakeFailures.WithLabelValues("SSL")) >= 1
	})
	// The same listener serves a TLS client.
	if err := kclient(t, addr, kgo.DialTLSConfig(ts.clientTLS())).Ping(ctxT(t)); err != nil {
		t.Fatalf("TLS ping: got %v, want nil", err)
	}
}

// TestClientCertificates: with ssl.client.auth=required, a certificate
// from another CA or none is refused; one from the CA authenticates the
// connection as its subject; with requested, no certificate is
// anonymous; on SASL_SSL only SASL names the principal.
func TestClientCertificates(t *testing.T) {
	cfg := saslConfig(t)
	principals := make(chan string, 1)
	s, _ := startServerWithMetrics(t, cfg, func(s *Server) {
		s.handle(kmsg.SyncGroup, 0, 5, func(_ context.Context, cc *Conn, req kmsg.Request) (kmsg.Response, error) {
			principals <- cc.Principal()
			return req.ResponseKind(), nil
		})
	})
	ts := newTLSServer(t)
	required, _ := ts.listenerTLS(t, ClientAuthRequired)
	requested, _ := ts.listenerTLS(t, ClientAuthRequested)
	reqAddr := startListener(t, s, Listener{Name: "MTLS", Protocol: SSL, TLS: required})
	optAddr := startListener(t, s, Listener{Name: "TLS", Protocol: SSL, TLS: requested})
	saslAddr := startListener(t, s, Listener{Name: "SASL_SSL", Protocol: SASLSSL, TLS: required})

	edge := ts.ca.Client(t, pkix.Name{CommonName: "edge-1", OrganizationalUnit: []string{"fleet"}, Organization: []string{"acme"}})
	other := testcert.NewCA(t, "another CA").Client(t, pkix.Name{CommonName: "edge-1"})

	principal := func(c *rawConn) string {
		t.Helper()
		c.roundTrip(kmsg.NewPtrSyncGroupRequest())
		return <-principals
	}

	t.Run("certificate from another CA", func(t *testing.T) {
		before := value(t, s.metrics.authFailures.WithLabelValues("MTLS", mechanismSSL))
		cl := kclient(t, reqAddr, kgo.DialTLSConfig(forceCert(ts.clientTLS(), other.TLS(t))))
		if err := cl.Ping(ctxT(t)); err == nil {
			t.Fatalf("ping with a foreign certificate: got nil error, want a failure")
		}
		testutil.EventuallyWithin(t, waitFor, "client certificate failure counted", func() bool {
			return value(t, s.metrics.authFailures.WithLabelValues("MTLS", mechanismSSL)) > before
		})
	})
	t.Run("no certificate", func(t *testing.T) {
		cl := kclient(t, reqAddr, kgo.DialTLSConfig(ts.clientTLS()))
		if err := cl.Ping(ctxT(t)); err == nil {
			t.Fatalf("ping without a certificate: got nil error, want a failure")
		}
	})
	t.Run("principal is the subject", func(t *testing.T) {
		if err := kclient(t, reqAddr, kgo.DialTLSConfig(ts.clientTLS(edge.TLS(t)))).Ping(ctxT(t)); err != nil {
			t.Fatalf("ping with the CA's certificate: got %v, want nil", err)
		}
		c := dialAddr(t, reqAddr, ts.clientTLS(edge.TLS(t)))
		if got, want := principal(c), "User:CN=edge-1,OU=fleet,O=acme"; got != want {
			t.Fatalf("principal: got %q, want %q", got, want)
		}
		if n := value(t, s.metrics.authSuccesses.WithLabelValues("MTLS", mechanismSSL)); n < 1 {
			t.Fatalf("auth successes{MTLS,SSL}: got %v, want at least 1", n)
		}
	})
	t.Run("requested without certificate is anonymous", func(t *testing.T) {
		c := dialAddr(t, optAddr, ts.clientTLS())
		if got := principal(c); got != principalAnonymous {
			t.Fatalf("principal: got %q, want %q", got, principalAnonymous)
		}
	})
	t.Run("SASL_SSL principal comes from SASL", func(t *testing.T) {
		c := dialAddr(t, saslAddr, ts.clientTLS(edge.TLS(t)))
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version = 1
		hs.Mechanism = MechanismPlain
		c.roundTrip(hs)
		auth := kmsg.NewPtrSASLAuthenticateRequest()
		auth.SASLAuthBytes = []byte("\x00alice\x00alice-secret")
		if got := c.roundTrip(auth).(*kmsg.SASLAuthenticateResponse).ErrorCode; got != 0 {
			t.Fatalf("SaslAuthenticate: got code %d, want 0", got)
		}
		if got := principal(c); got != "User:alice" {
			t.Fatalf("principal: got %q, want %q", got, "User:alice")
		}
	})
}

// TestCertReload: after Reload, new connections get the new certificate
// and their client certificates are checked against the new CA; open
// connections are untouched; a bad pair keeps the current one.
func TestCertReload(t *testing.T) {
	s := startServer(t, testConfig(t), nil)
	ts := newTLSServer(t)
	tc, r := ts.listenerTLS(t, ClientAuthRequired)
	addr := startListener(t, s, Listener{Name: "SSL", Protocol: SSL, TLS: tc})

	next := newTLSServer(t)
	oldClient := ts.ca.Client(t, pkix.Name{CommonName: "old"}).TLS(t)
	newClient := next.ca.Client(t, pkix.Name{CommonName: "new"}).TLS(t)
	serverSerial := func(c *rawConn) string {
		return c.nc.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
	}

	before := dialAddr(t, addr, ts.clientTLS(oldClient))
	oldSerial := serverSerial(before)
	refused := kclient(t, addr, kgo.DialTLSConfig(forceCert(ts.clientTLS(), newClient)))
	if err := refused.Ping(ctxT(t)); err == nil {
		t.Fatalf("ping with a certificate of the next CA before reload: got nil error, want a failure")
	}

	if err := r.Reload(next.pair.CertPEM, ts.pair.KeyPEM, next.ca.CertPEM); err == nil {
		t.Fatalf("Reload with a key of another certificate: got nil error, want one")
	}
	if err := r.Reload(next.pair.CertPEM, next.pair.KeyPEM, []byte("not a CA")); err == nil {
		t.Fatalf("Reload with a bad CA: got nil error, want one")
	}
	if got := serverSerial(dialAddr(t, addr, ts.clientTLS(oldClient))); got != oldSerial {
		t.Fatalf("after failed reloads: got certificate %s, want the old %s", got, oldSerial)
	}

	if err := r.Reload(next.pair.CertPEM, next.pair.KeyPEM, next.ca.CertPEM); err != nil {
		t.Fatalf("Reload: got %v, want nil", err)
	}
	after := dialAddr(t, addr, next.clientTLS(newClient))
	if got := serverSerial(after); got == oldSerial {
		t.Fatalf("after reload: got the old certificate %s, want the new one", got)
	}
	after.apiVersions()
	before.apiVersions()

	// The old client certificate is no longer accepted.
	cl := kclient(t, addr, kgo.DialTLSConfig(forceCert(next.clientTLS(), oldClient)))
	if err := cl.Ping(ctxT(t)); err == nil {
		t.Fatalf("ping with a certificate of the old CA: got nil error, want a failure")
	}
}

// TestTLSHandshakeTimeout: a client that opens a TCP connection to a TLS
// listener and never handshakes is closed after HandshakeTimeout, and
// meanwhile the listener accepts and serves others.
func TestTLSHandshakeTimeout(t *testing.T) {
	cfg := testConfig(t)
	cfg.HandshakeTimeout = 100 * time.Millisecond
	s := startServer(t, cfg, nil)
	ts := newTLSServer(t)
	tc, _ := ts.listenerTLS(t, ClientAuthNone)
	addr := startListener(t, s, Listener{Name: "SSL", Protocol: SSL, TLS: tc})

	nc, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatalf("dial: got %v, want nil", err)
	}
	defer nc.Close()
	silent := &rawConn{t: t, nc: nc}
	dialAddr(t, addr, ts.clientTLS()).apiVersions()
	silent.expectClosed()
	testutil.EventuallyWithin(t, waitFor, "handshake timeout counted", func() bool {
		return value(t, s.metrics.tlsHandshakeFailures.WithLabelValues("SSL")) >= 1
	})
}

// TestMetadataPerListener: Metadata and FindCoordinator give a client
// this broker's address on the listener it came on.
func TestMetadataPerListener(t *testing.T) {
	cfg := testConfig(t)
	cfg.Broker = openBroker(t)
	cfg.Advertised = "plain.example:19092"
	s := startServer(t, cfg, nil)
	client := startListener(t, s, Listener{Name: "CLIENT", Protocol: Plaintext, Advertised: "client.example:29092"})
	internal := startListener(t, s, Listener{Name: "INTERNAL", Protocol: Plaintext})

	for _, tc := range []struct {
		addr string
		want string
	}{
		{s.Addr().String(), "plain.example:19092"},
		{client, "client.example:29092"},
		{internal, internal},
	} {
		c := dialAddr(t, tc.addr, nil)
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 12
		resp := c.roundTrip(req).(*kmsg.MetadataResponse)
		if len(resp.Brokers) != 1 {
			t.Fatalf("metadata via %s: got %d brokers, want 1", tc.addr, len(resp.Brokers))
		}
		b := resp.Brokers[0]
		if got := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))); got != tc.want {
			t.Fatalf("metadata via %s: got broker at %s, want %s", tc.addr, got, tc.want)
		}
	}
}
