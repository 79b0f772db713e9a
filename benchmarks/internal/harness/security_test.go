package harness

import (
	"crypto/tls"
	"net"
	"os"
	"testing"
)

// TestSecurityHandshake: a server with the certificate and key NewSecurity
// wrote completes a TLS handshake with ClientTLS for 127.0.0.1, and the
// key file is private.
func TestSecurityHandshake(t *testing.T) {
	s, err := NewSecurity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(s.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: got %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	done := make(chan error, 1)
	go func() {
		done <- tls.Server(sc, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake()
	}()
	cfg := s.ClientTLS()
	cfg.ServerName = "127.0.0.1"
	if err := tls.Client(cc, cfg).Handshake(); err != nil {
		t.Fatalf("client handshake: got %v, want nil", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server handshake: got %v, want nil", err)
	}
	if got := s.CoreArgs("127.0.0.1:1", "127.0.0.1:2")[1]; got != "PLAINTEXT://127.0.0.1:1,SASL_SSL://127.0.0.1:2" {
		t.Errorf("listeners: got %q, want PLAINTEXT://127.0.0.1:1,SASL_SSL://127.0.0.1:2", got)
	}
}
