package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxo-io/fluxo/core"
	"github.com/fluxo-io/fluxo/core/cluster"
)

// writeClusterPKI makes a CA and a member certificate signed by it, writes
// them as PEM files in dir, and returns the paths and the loaded TLS.
func writeClusterPKI(t *testing.T, dir string) (certFile, keyFile, caFile string, ct *cluster.TLS) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fluxo cluster CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "member"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, caFile = filepath.Join(dir, "member.pem"), filepath.Join(dir, "member.key"), filepath.Join(dir, "ca.pem")
	for path, block := range map[string]*pem.Block{
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
		caFile:   {Type: "CERTIFICATE", Bytes: caDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return certFile, keyFile, caFile, &cluster.TLS{Certificate: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, CAs: pool}
}

// TestClusterKeysCommand: `fluxo cluster keys` rotates a broker's gossip
// key through its Raft port with the cluster's TLS, and is refused
// without a cluster certificate.
func TestClusterKeysCommand(t *testing.T) {
	certFile, keyFile, caFile, ct := writeClusterPKI(t, t.TempDir())
	keyA, keyB := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	b64A, b64B := base64.StdEncoding.EncodeToString(keyA), base64.StdEncoding.EncodeToString(keyB)
	cfg := core.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = ""
	cfg.Cluster.SerfKey = keyA
	cfg.Cluster.TLS = ct
	node, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		node.Shutdown(ctx)
	})
	raft := node.ClusterStatus().Members[0].RaftAddr
	tlsArgs := []string{"--raft", raft, "--cluster-tls-cert", certFile, "--cluster-tls-key", keyFile, "--cluster-tls-ca", caFile}
	keys := func(args ...string) string {
		t.Helper()
		out, _ := mustFluxo(t, "", append(append([]string{"cluster", "keys"}, args...), tlsArgs...)...)
		return out
	}
	if out := keys("list"); !strings.Contains(out, b64A) || strings.Contains(out, b64B) {
		t.Fatalf("list: got %q, want key A only", out)
	}
	keys("install", b64B)
	keys("use", b64B)
	keys("remove", b64A)
	out := keys("list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], b64B) || !strings.Contains(lines[1], "1/1") {
		t.Fatalf("list after rotation: got %q, want key B on 1/1 members", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if code, _, stderr := fluxo(t, ctx, "", "cluster", "keys", "list", "--raft", raft); code == 0 {
		t.Errorf("list without a cluster certificate: got exit 0, want a failure (stderr %q)", stderr)
	}
	if code, _, stderr := fluxo(t, ctx, "", "cluster", "keys", "list", "--raft", raft, "--cluster-tls-cert", certFile); code == 0 || !strings.Contains(stderr, "go together") {
		t.Errorf("list with a certificate alone: got exit %d, stderr %q, want a usage error", code, stderr)
	}
	if code, _, stderr := fluxo(t, ctx, "", append([]string{"cluster", "keys", "install", "not base64!"}, tlsArgs...)...); code == 0 || !strings.Contains(stderr, "base64") {
		t.Errorf("install of a bad key: got exit %d, stderr %q, want a base64 error", code, stderr)
	}
}
