package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxo-io/fluxo/internal/testcert"
)

// TestEdgePasswdFile: fluxo edge passwd creates the users file with mode
// 0600, keeps the mode of an existing one, replaces it atomically (no
// file left behind) and writes what --users reads back.
func TestEdgePasswdFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users.yaml")
	if err := setPassword(path, "dev-1", "one"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode of a new file: got %v, want 0600", fi.Mode().Perm())
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := setPassword(path, "dev-2", "two"); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode: got %v, want 0640 (kept)", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory: got %d entries, want only the users file", len(entries))
	}
	u, err := loadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ user, pw string }{{"dev-1", "one"}, {"dev-2", "two"}} {
		if _, ok := u.Authenticate(c.user, []byte(c.pw)); !ok {
			t.Errorf("%s/%s: got refused, want accepted", c.user, c.pw)
		}
	}
	if err := os.WriteFile(path, []byte("users: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := setPassword(path, "dev-3", "three"); err == nil {
		t.Errorf("broken users file: got no error, want one")
	}
	if _, err := loadUsers(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "--users") {
		t.Errorf("missing users file: got %v, want a --users error", err)
	}
}

func TestEdgeTLS(t *testing.T) {
	if tc, err := edgeTLS("", ""); tc != nil || err != nil {
		t.Errorf("no files: got %v, %v, want nil, nil", tc, err)
	}
	if _, err := edgeTLS("c.pem", ""); err == nil {
		t.Errorf("cert without key: got no error, want one")
	}
	dir := t.TempDir()
	p := testcert.NewCA(t, "edge test CA").Server(t, "127.0.0.1")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, p.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, p.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	tc, err := edgeTLS(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(tc.Certificates) != 1 {
		t.Errorf("got %d certificates, want 1", len(tc.Certificates))
	}
}
