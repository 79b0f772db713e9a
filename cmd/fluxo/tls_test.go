package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxo-io/fluxo/internal/pki"
)

// TestTLSCommands: fluxo tls makes a CA, a server certificate for
// 127.0.0.1 and a client certificate, with private keys, that complete a
// mutual TLS handshake; it refuses to overwrite files without --force.
func TestTLSCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	mustFluxo(t, "", "tls", "ca", "create", "--dir", dir, "--name", "test-ca", "--days", "30")
	mustFluxo(t, "", "tls", "cert", "create", "--server", "--name", "core-1", "--ip", "127.0.0.1", "--dir", dir)
	mustFluxo(t, "", "tls", "cert", "create", "--client", "--name", "edge-7", "--dir", dir,
		"--ca", filepath.Join(dir, "ca.pem"), "--ca-key", filepath.Join(dir, "ca-key.pem"))

	for name, want := range map[string]os.FileMode{
		"ca.pem": 0o644, "ca-key.pem": 0o600,
		"core-1.pem": 0o644, "core-1-key.pem": 0o600,
		"edge-7.pem": 0o644, "edge-7-key.pem": 0o600,
	} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: got mode %o, want %o", name, got, want)
		}
	}

	// A mutual TLS handshake with the server certificate on 127.0.0.1.
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem: no certificate")
	}
	srv, err := tls.LoadX509KeyPair(filepath.Join(dir, "core-1.pem"), filepath.Join(dir, "core-1-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := tls.LoadX509KeyPair(filepath.Join(dir, "edge-7.pem"), filepath.Join(dir, "edge-7-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srv}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			peer <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			peer <- "handshake: " + err.Error()
			return
		}
		peer <- "User:" + tc.ConnectionState().PeerCertificates[0].Subject.String()
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cli}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.Close()
	if got, want := <-peer, "User:CN=edge-7"; got != want {
		t.Fatalf("server saw %q, want %q (Kafka's principal)", got, want)
	}
	// The CA vouches for the server on 127.0.0.1 only.
	leaf, err := x509.ParseCertificate(srv.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err == nil {
		t.Fatal("verify core-1.pem for localhost: got nil, want an error (not asked for)")
	}

	// Existing files are kept unless --force.
	before, err := os.ReadFile(filepath.Join(dir, "edge-7.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"tls", "ca", "create", "--dir", dir},
		{"tls", "cert", "create", "--client", "--name", "edge-7", "--dir", dir},
	} {
		code, _, stderr := fluxo(t, context.Background(), "", args...)
		if code != 1 || !strings.Contains(stderr, "exists; remove it or use --force") {
			t.Errorf("%s: got exit code %d and stderr %q, want 1 and a refusal", strings.Join(args, " "), code, stderr)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "edge-7.pem")); string(after) != string(before) {
		t.Fatal("edge-7.pem changed without --force")
	}
	if err := os.Chmod(filepath.Join(dir, "edge-7-key.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustFluxo(t, "", "tls", "cert", "create", "--client", "--name", "edge-7", "--dir", dir, "--force")
	if after, _ := os.ReadFile(filepath.Join(dir, "edge-7.pem")); string(after) == string(before) {
		t.Fatal("edge-7.pem unchanged with --force")
	}
	if st, err := os.Stat(filepath.Join(dir, "edge-7-key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("edge-7-key.pem after --force: got %v, %v, want mode 600", st.Mode().Perm(), err)
	}
	ca, err := pki.ParseCert(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Subject.CommonName != "test-ca" || time.Until(ca.NotAfter) > 31*24*time.Hour {
		t.Fatalf("got CA %s until %s, want CN=test-ca for 30 days", ca.Subject, ca.NotAfter)
	}
}

func TestTLSCommandErrors(t *testing.T) {
	dir := t.TempDir()
	mustFluxo(t, "", "tls", "ca", "create", "--dir", dir)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tls", "cert", "create", "--name", "x", "--dir", dir}, "want --server or --client"},
		{[]string{"tls", "cert", "create", "--server", "--client", "--name", "x", "--dir", dir}, "--server and --client: got both"},
		{[]string{"tls", "cert", "create", "--server", "--name", "x", "--dir", dir}, "needs at least one IP address or DNS name"},
		{[]string{"tls", "cert", "create", "--client", "--dir", dir}, "--name: want"},
		{[]string{"tls", "cert", "create", "--client", "--name", "../x", "--dir", dir}, "without path separators"},
		{[]string{"tls", "cert", "create", "--server", "--name", "x", "--ip", "1.2.3", "--dir", dir}, `--ip: got "1.2.3"`},
		{[]string{"tls", "cert", "create", "--client", "--name", "x", "--dir", filepath.Join(dir, "none")}, "--ca: open"},
		{[]string{"tls", "ca", "create", "--dir", t.TempDir(), "--days", "0"}, "--days: got 0"},
	} {
		t.Run(strings.Join(tc.args[2:], " "), func(t *testing.T) {
			code, _, stderr := fluxo(t, context.Background(), "", tc.args...)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("got exit code %d and stderr %q, want 1 and %q", code, stderr, tc.want)
			}
		})
	}
}
