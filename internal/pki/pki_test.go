package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func newCA(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	c, k, err := NewCA("fluxo-ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func mustParse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := ParseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCA(t *testing.T) {
	certPEM, keyPEM := newCA(t)
	ca, key, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("got IsCA %v, key usage %b, want a CA that signs certificates", ca.IsCA, ca.KeyUsage)
	}
	if ca.Subject.CommonName != "fluxo-ca" {
		t.Fatalf("got subject %s, want CN=fluxo-ca", ca.Subject)
	}
	if _, ok := key.(*ecdsa.PrivateKey); !ok || ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("got key %T, want ECDSA", key)
	}
	if curve := key.(*ecdsa.PrivateKey).Curve; curve != elliptic.P256() {
		t.Fatalf("got curve %s, want P-256", curve.Params().Name)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("got key PEM %q, want a PKCS #8 PRIVATE KEY block", keyPEM)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Fatalf("self-signature: %v", err)
	}
	if d := time.Until(ca.NotAfter); d < 23*time.Hour || d > 25*time.Hour {
		t.Fatalf("got expiry in %s, want about 24h", d)
	}
}

func TestServerCert(t *testing.T) {
	caPEM, caKey := newCA(t)
	certPEM, keyPEM, err := NewCert(caPEM, caKey, Request{Kind: Server, Name: "core-1",
		IPs: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"core-1.example"}, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cert := mustParse(t, certPEM)
	roots := x509.NewCertPool()
	roots.AddCert(mustParse(t, caPEM))
	for _, host := range []string{"127.0.0.1", "core-1.example"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verify as server %s: got %v, want nil", host, err)
		}
	}
	// Brokers are clients of each other.
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify as client: got %v, want nil", err)
	}
	// Only the names asked for.
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err == nil {
		t.Error("verify for localhost: got nil, want an error (not asked for)")
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("key pair: %v", err)
	}
	if cert.IsCA {
		t.Fatal("got a CA, want a leaf")
	}
	// Another CA does not vouch for it.
	otherPEM, _ := newCA(t)
	other := x509.NewCertPool()
	other.AddCert(mustParse(t, otherPEM))
	if _, err := cert.Verify(x509.VerifyOptions{Roots: other, DNSName: "127.0.0.1"}); err == nil {
		t.Fatal("verify with another CA: got nil, want an error")
	}
}

func TestClientCert(t *testing.T) {
	caPEM, caKey := newCA(t)
	certPEM, _, err := NewCert(caPEM, caKey, Request{Kind: Client, Name: "edge-7", Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cert := mustParse(t, certPEM)
	roots := x509.NewCertPool()
	roots.AddCert(mustParse(t, caPEM))
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("verify as client: got %v, want nil", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("verify as server: got nil, want an error")
	}
	// Kafka's default principal is the subject's distinguished name.
	if got, want := cert.Subject.String(), "CN=edge-7"; got != want {
		t.Fatalf("got subject %s, want %s", got, want)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Fatalf("got ext key usage %v, want client auth only", cert.ExtKeyUsage)
	}
}

func TestCertValidityCutToCA(t *testing.T) {
	caPEM, caKey := newCA(t)
	certPEM, _, err := NewCert(caPEM, caKey, Request{Kind: Client, Name: "u", Validity: 1000 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mustParse(t, certPEM).NotAfter, mustParse(t, caPEM).NotAfter; got.After(want) {
		t.Fatalf("got expiry %s, want no later than the CA's %s", got, want)
	}
}

func TestNewCertErrors(t *testing.T) {
	caPEM, caKey := newCA(t)
	_, otherKey := newCA(t)
	leafPEM, leafKey, err := NewCert(caPEM, caKey, Request{Kind: Client, Name: "u", Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		caCert, caKey []byte
		req           Request
		want          string
	}{
		{"server without names", caPEM, caKey, Request{Kind: Server, Name: "s", Validity: time.Hour}, "needs at least one IP address or DNS name"},
		{"no kind", caPEM, caKey, Request{Name: "s", Validity: time.Hour}, "want server or client"},
		{"no name", caPEM, caKey, Request{Kind: Client, Validity: time.Hour}, "empty name"},
		{"no validity", caPEM, caKey, Request{Kind: Client, Name: "u"}, "want a positive duration"},
		{"key of another CA", caPEM, otherKey, Request{Kind: Client, Name: "u", Validity: time.Hour}, "not the key of"},
		{"leaf as CA", leafPEM, leafKey, Request{Kind: Client, Name: "u", Validity: time.Hour}, "is not a certificate authority"},
		{"no PEM", []byte("junk"), caKey, Request{Kind: Client, Name: "u", Validity: time.Hour}, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := NewCert(tc.caCert, tc.caKey, tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseKeyEncrypted(t *testing.T) {
	for _, block := range []*pem.Block{
		{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}},
		{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: []byte{1, 2, 3}},
	} {
		if _, err := ParseKey(pem.EncodeToMemory(block)); !errors.Is(err, ErrEncryptedKey) {
			t.Errorf("%s: got %v, want ErrEncryptedKey", block.Type, err)
		}
	}
}

// TestMutualTLSHandshake: a server and a client with certificates of the
// same CA complete a handshake in which each verifies the other.
func TestMutualTLSHandshake(t *testing.T) {
	caPEM, caKey := newCA(t)
	srvCert, srvKey, err := NewCert(caPEM, caKey, Request{Kind: Server, Name: "core-1", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cliCert, cliKey, err := NewCert(caPEM, caKey, Request{Kind: Client, Name: "edge-1", Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	sp, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := tls.X509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{sp}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			peer <- err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			peer <- err.Error()
			return
		}
		peer <- tc.ConnectionState().PeerCertificates[0].Subject.String()
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cp}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	if got := <-peer; got != "CN=edge-1" {
		t.Fatalf("server saw client %q, want CN=edge-1", got)
	}
}

// FuzzParseKey: ParseKey and ParseCert never panic on any input, and a
// key ParseKey accepts has a public key.
func FuzzParseKey(f *testing.F) {
	caPEM, caKey, err := NewCA("seed", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(caPEM)
	f.Add(caKey)
	f.Add(append(append([]byte{}, caPEM...), caKey...))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0}}))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseCert(data)
		k, err := ParseKey(data)
		if err != nil {
			return
		}
		if k.Public() == nil {
			t.Fatal("got a key without a public key")
		}
	})
}
