// Package pkitest gives tests a CA, a server certificate for 127.0.0.1 and
// localhost, and a client certificate, made with package pki and written to
// a test's temporary directory.
package pkitest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxo-io/fluxo/internal/pki"
)

// Bundle names the files New wrote: PEM certificates and keys.
type Bundle struct {
	Dir                   string
	CA, CAKey             string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	// Client is the client certificate's common name.
	Client string
}

// New writes a CA, a server certificate (127.0.0.1, localhost) and a client
// certificate with the subject CN=client into a new temporary directory.
func New(t testing.TB, client string) *Bundle {
	t.Helper()
	dir := t.TempDir()
	b := &Bundle{
		Dir: dir, Client: client,
		CA: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca-key.pem"),
		ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
	}
	caPEM, caKey, err := pki.NewCA("fluxo-test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, srvKey, err := pki.NewCert(caPEM, caKey, pki.Request{Kind: pki.Server, Name: "localhost",
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cli, cliKey, err := pki.NewCert(caPEM, caKey, pki.Request{Kind: pki.Client, Name: client, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string][]byte{b.CA: caPEM, b.CAKey: caKey, b.ServerCert: srv, b.ServerKey: srvKey, b.ClientCert: cli, b.ClientKey: cliKey} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// ServerTLS returns a server configuration with the server certificate
// that checks client certificates against the CA as auth asks.
func (b *Bundle) ServerTLS(t testing.TB, auth tls.ClientAuthType) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(b.ServerCert, b.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: b.Pool(t), ClientAuth: auth, MinVersion: tls.VersionTLS12}
}

// ClientTLS returns a client configuration that trusts the CA and, with
// withCert, presents the client certificate.
func (b *Bundle) ClientTLS(t testing.TB, withCert bool) *tls.Config {
	t.Helper()
	tc := &tls.Config{RootCAs: b.Pool(t), MinVersion: tls.VersionTLS12}
	if withCert {
		cert, err := tls.LoadX509KeyPair(b.ClientCert, b.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc
}

// Pool returns a pool with the CA.
func (b *Bundle) Pool(t testing.TB) *x509.CertPool {
	t.Helper()
	data, err := os.ReadFile(b.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatalf("%s: no certificate", b.CA)
	}
	return pool
}
