package edge

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fluxo-io/fluxo/internal/testcert"
)

// certEdge starts an edge whose TLS listener verifies client certificates
// of ca, with users (nil: anonymous) and the identity.
func certEdge(t *testing.T, ca *testcert.CA, users *Users, id CertIdentity) (*Edge, *recSink) {
	t.Helper()
	srv := ca.Server(t, "127.0.0.1")
	cfg := testConfig(t)
	cfg.TLSAddr = "127.0.0.1:0"
	cfg.TLS = &tls.Config{
		Certificates: []tls.Certificate{srv.TLS(t)},
		ClientCAs:    ca.Pool(),
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}
	cfg.CertIdentity = id
	if users != nil {
		cfg.Users, cfg.AllowAnonymous = users, false
	}
	sink := &recSink{}
	return startEdge(t, cfg, sink), sink
}

// connectCert connects over TLS with the client certificate (nil: none),
// username and password (empty: none).
func connectCert(t *testing.T, e *Edge, ca *testcert.CA, cert *testcert.Pair, clientID, user, pass string) (paho.Client, error) {
	u := (&url.URL{Scheme: "ssl", Host: e.TLSAddr()}).String()
	return connect3(t, u, clientID, func(o *paho.ClientOptions) {
		tc := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
		if cert != nil {
			// Sent whatever CAs the server names, so that the server's
			// verification is what refuses one from another CA.
			c := cert.TLS(t)
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
		}
		o.SetTLSConfig(tc)
		if user != "" {
			o.SetUsername(user)
		}
		if pass != "" {
			o.SetPassword(pass)
		}
	})
}

// TestClientCertAuth: with a users file, a device with a valid
// certificate connects as the user its common name names, without a
// password, and its ACL applies to that name (%u); a certificate from
// another CA, an expired one, one naming no user, a CONNECT username that
// is not the certificate's, and a wrong password are refused.
func TestClientCertAuth(t *testing.T) {
	ca := testcert.NewCA(t, "device CA")
	users := testUsers(t,
		User{Username: "dev-1", Password: hash(t, "pw-1"), ACL: DefaultUserACL()},
	)
	e, sink := certEdge(t, ca, users, IdentityCN)

	valid := ca.Client(t, pkix.Name{CommonName: "dev-1"})
	c, err := connectCert(t, e, ca, &valid, "c-1", "", "")
	if err != nil {
		t.Fatalf("valid certificate: got %v, want connected", err)
	}
	if err := publish3(t, c, "fleet/dev-1/temp", 1, false, "21.5"); err != nil {
		t.Fatalf("publish under the identity's ACL: got %v, want accepted", err)
	}
	if m := sink.waitMsgs(t, 1)[0]; string(m.Key) != "dev-1" {
		t.Errorf("got key %q, want dev-1", m.Key)
	}
	// The ACL is the identity's: another device's topic is refused (3.1.1
	// closes the connection on a refused QoS 1 publish).
	if err := publish3(t, c, "fleet/dev-2/temp", 1, false, "x"); err == nil {
		t.Errorf("publish on another device's topic: got accepted, want refused")
	}
	if _, err := connectCert(t, e, ca, &valid, "c-1b", "dev-1", "pw-1"); err != nil {
		t.Errorf("certificate with the user's own name and password: got %v, want connected", err)
	}

	other := testcert.NewCA(t, "another CA").Client(t, pkix.Name{CommonName: "dev-1"})
	expired := ca.ClientCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "dev-1"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	stranger := ca.Client(t, pkix.Name{CommonName: "dev-9"})
	for _, c := range []struct {
		name       string
		cert       testcert.Pair
		user, pass string
	}{
		{"from another CA", other, "", ""},
		{"expired", expired, "", ""},
		{"naming no user", stranger, "", ""},
		{"with another username", valid, "dev-2", ""},
		{"with a wrong password", valid, "dev-1", "wrong"},
	} {
		if _, err := connectCert(t, e, ca, &c.cert, "c-x", c.user, c.pass); err == nil {
			t.Errorf("certificate %s: got connected, want refused", c.name)
		}
	}
	// Without a certificate, the password still works on the TLS listener.
	if _, err := connectCert(t, e, ca, nil, "c-2", "dev-1", "pw-1"); err != nil {
		t.Errorf("password without a certificate: got %v, want connected", err)
	}
}

// TestClientCertOnlyUser: a user without a password in the users file
// connects with its certificate only; with a password it cannot.
func TestClientCertOnlyUser(t *testing.T) {
	ca := testcert.NewCA(t, "device CA")
	users, err := ParseUsers([]byte("users:\n  - username: dev-7\n    acl:\n      publish: [\"+/%u/#\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, sink := certEdge(t, ca, users, IdentityCN)
	cert := ca.Client(t, pkix.Name{CommonName: "dev-7"})
	c, err := connectCert(t, e, ca, &cert, "c-7", "", "")
	if err != nil {
		t.Fatalf("certificate-only user: got %v, want connected", err)
	}
	if err := publish3(t, c, "fleet/dev-7/t", 1, false, "v"); err != nil {
		t.Fatal(err)
	}
	sink.waitMsgs(t, 1)
	if _, err := connectCert(t, e, ca, nil, "c-7b", "dev-7", "anything"); err == nil {
		t.Errorf("certificate-only user with a password: got connected, want refused")
	}
	if _, ok := users.Authenticate("dev-7", nil); ok {
		t.Errorf("Authenticate of a certificate-only user with no password: got ok, want refused")
	}
}

// TestClientCertURIIdentity: with IdentityURI the first URI SAN is the
// username; a certificate without a URI is refused, even when its common
// name is that user.
func TestClientCertURIIdentity(t *testing.T) {
	ca := testcert.NewCA(t, "device CA")
	uri, _ := url.Parse("spiffe://fleet/dev-3")
	users, err := ParseUsers([]byte("users:\n  - username: \"spiffe://fleet/dev-3\"\n    acl:\n      publish: [\"fleet/dev-3/#\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, sink := certEdge(t, ca, users, IdentityURI)
	cert := ca.ClientCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "ignored"}, URIs: []*url.URL{uri}})
	c, err := connectCert(t, e, ca, &cert, "c-3", "", "")
	if err != nil {
		t.Fatalf("URI identity: got %v, want connected", err)
	}
	if err := publish3(t, c, "fleet/dev-3/t", 1, false, "v"); err != nil {
		t.Fatal(err)
	}
	sink.waitMsgs(t, 1)
	noURI := ca.Client(t, pkix.Name{CommonName: "spiffe://fleet/dev-3"})
	if _, err := connectCert(t, e, ca, &noURI, "c-3b", "", ""); err == nil {
		t.Errorf("certificate without a URI: got connected, want refused")
	}
}

func TestParseCertIdentity(t *testing.T) {
	for _, s := range []string{"cn", "uri"} {
		id, err := ParseCertIdentity(s)
		if err != nil || id.String() != s {
			t.Errorf("ParseCertIdentity(%q): got %v, %v, want %s", s, id, err, s)
		}
	}
	if _, err := ParseCertIdentity("dn"); err == nil {
		t.Errorf("ParseCertIdentity(dn): got no error, want one")
	}
}
