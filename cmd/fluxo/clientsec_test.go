package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fluxo-io/fluxo/internal/pki/pkitest"
)

// writeTemp writes data to a new file named name in dir and returns its path.
func writeTemp(t *testing.T, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestClientSecurityResolve(t *testing.T) {
	b := pkitest.New(t, "ops")
	dir := t.TempDir()
	pwFile := writeTemp(t, dir, "pw", "s3cret\n")
	emptyPW := writeTemp(t, dir, "empty", "\n")
	encKey := writeTemp(t, dir, "enc-key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})))
	props := func(s string) string { return writeTemp(t, t.TempDir(), "client.properties", s) }
	kcat := props(`# kcat -F kcat.conf
bootstrap.servers=127.0.0.1:19093,127.0.0.2:19093
security.protocol=SASL_SSL
sasl.mechanisms=SCRAM-SHA-512
sasl.username=ops
sasl.password=from-file
ssl.ca.location=` + b.CA + `
client.id=kcat
`)

	type want struct {
		err        string // an error containing this; else:
		tls        bool
		roots      bool // TLS with our CA rather than the system's
		clientCert bool
		insecure   bool   // InsecureSkipVerify
		chainOnly  bool   // VerifyConnection set
		mech       string // SASL mechanism name; "" for none
		brokers    []string
		warn       string // a log line containing this
	}
	for _, tc := range []struct {
		name string
		in   secInput
		env  map[string]string
		want want
	}{
		{name: "plaintext", in: secInput{s: cliSec}},
		{name: "CA", in: secInput{s: cliSec, caFile: b.CA}, want: want{tls: true, roots: true}},
		{name: "mTLS", in: secInput{s: cliSec, caFile: b.CA, certFile: b.ClientCert, keyFile: b.ClientKey}, want: want{tls: true, roots: true, clientCert: true}},
		{name: "cert without key", in: secInput{s: cliSec, certFile: b.ClientCert}, want: want{err: "--tls-cert: a client certificate needs --tls-key"}},
		{name: "key without cert", in: secInput{s: coreSec, keyFile: b.ClientKey}, want: want{err: "--core-tls-key: a client key needs --core-tls-cert"}},
		{name: "encrypted key", in: secInput{s: cliSec, certFile: b.ClientCert, keyFile: encKey}, want: want{err: "encrypted private keys are not supported"}},
		{name: "CA not PEM", in: secInput{s: cliSec, caFile: pwFile}, want: want{err: "--tls-ca: no PEM certificate"}},
		{name: "CA directory", in: secInput{s: cliSec, caFile: b.Dir}, want: want{tls: true, roots: true}},
		{name: "user without mechanism", in: secInput{s: cliSec, user: "ops"}, want: want{err: "--sasl-user: a SASL user needs --sasl-mechanism"}},
		{name: "core user without mechanism", in: secInput{s: coreSec, user: "ops"}, want: want{err: "--core-sasl-user: a SASL user needs --core-sasl-mechanism"}},
		{name: "password file without mechanism", in: secInput{s: cliSec, passwordFile: pwFile}, want: want{err: "--sasl-password-file: a SASL password needs --sasl-mechanism"}},
		{name: "mechanism without user", in: secInput{s: cliSec, mechanism: "PLAIN", passwordFile: pwFile}, want: want{err: "--sasl-mechanism PLAIN: needs --sasl-user"}},
		{name: "mechanism without password", in: secInput{s: cliSec, mechanism: "PLAIN", user: "ops"}, want: want{err: "--sasl-mechanism PLAIN: needs a password: --sasl-password-file, FLUXO_SASL_PASSWORD"}},
		{name: "core password from another variable", in: secInput{s: coreSec, mechanism: "PLAIN", user: "ops"}, env: map[string]string{saslPasswordEnv: "x"},
			want: want{err: "needs a password: --core-sasl-password-file, FLUXO_CORE_SASL_PASSWORD"}},
		{name: "bad mechanism", in: secInput{s: cliSec, mechanism: "MD5", user: "ops", passwordFile: pwFile}, want: want{err: `--sasl-mechanism: got "MD5"`}},
		{name: "empty password file", in: secInput{s: cliSec, mechanism: "PLAIN", user: "ops", passwordFile: emptyPW}, want: want{err: "is empty"}},
		{name: "PLAIN, password file", in: secInput{s: cliSec, mechanism: "plain", user: "ops", passwordFile: pwFile}, want: want{mech: "PLAIN"}},
		{name: "SCRAM, password variable", in: secInput{s: coreSec, mechanism: "SCRAM-SHA-256", user: "ops"}, env: map[string]string{coreSASLPasswordEnv: "x"}, want: want{mech: "SCRAM-SHA-256"}},
		{name: "kcat file", in: secInput{s: cliSec, props: kcat},
			want: want{tls: true, roots: true, mech: "SCRAM-SHA-512", brokers: []string{"127.0.0.1:19093", "127.0.0.2:19093"}, warn: `"key":"client.id"`}},
		{name: "brokers flag wins over the file", in: secInput{s: cliSec, props: kcat, brokersSet: true}, want: want{tls: true, roots: true, mech: "SCRAM-SHA-512"}},
		{name: "mechanism flag wins over the file", in: secInput{s: cliSec, props: kcat, mechanism: "PLAIN"}, want: want{tls: true, roots: true, mech: "PLAIN", brokers: []string{"127.0.0.1:19093", "127.0.0.2:19093"}}},
		{name: "CA flag wins over the file", in: secInput{s: cliSec, props: kcat, caFile: pwFile}, want: want{err: "--tls-ca: no PEM certificate"}},
		{name: "SASL_SSL without mechanism", in: secInput{s: cliSec, props: props("security.protocol=SASL_SSL\nsasl.username=u\nsasl.password=p")},
			want: want{err: "--client-config: security.protocol SASL_SSL needs sasl.mechanism (or --sasl-mechanism)"}},
		{name: "file mechanism without password", in: secInput{s: cliSec, props: props("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=u")},
			want: want{err: "sasl.mechanism in --client-config PLAIN: needs a password"}},
		{name: "file cert without key", in: secInput{s: cliSec, props: props("security.protocol=SSL\nssl.certificate.location=" + b.ClientCert)},
			want: want{err: "ssl.certificate.location in --client-config: a client certificate needs --tls-key (or ssl.key.location in --client-config)"}},
		{name: "SSL without CA: system roots", in: secInput{s: cliSec, props: props("security.protocol=SSL")}, want: want{tls: true}},
		{name: "file mTLS", in: secInput{s: cliSec, props: props("security.protocol=SSL\nssl.ca.location=" + b.CA + "\nssl.certificate.location=" + b.ClientCert + "\nssl.key.location=" + b.ClientKey)},
			want: want{tls: true, roots: true, clientCert: true}},
		{name: "no verification", in: secInput{s: cliSec, props: props("security.protocol=SSL\nenable.ssl.certificate.verification=false")}, want: want{tls: true, insecure: true, warn: "not checked"}},
		{name: "no host name check", in: secInput{s: cliSec, props: props("security.protocol=SSL\nssl.ca.location=" + b.CA + "\nssl.endpoint.identification.algorithm=none")},
			want: want{tls: true, roots: true, insecure: true, chainOnly: true}},
		{name: "plaintext file ignores sasl", in: secInput{s: cliSec, props: props("security.protocol=PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=u")}, want: want{warn: "sasl.* settings ignored"}},
		{name: "bad file", in: secInput{s: cliSec, props: props("security.protocol=TLS")}, want: want{err: "security.protocol: got \"TLS\""}},
		{name: "missing file", in: secInput{s: cliSec, props: filepath.Join(dir, "nope")}, want: want{err: "--client-config: open"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			sec, err := tc.in.resolve(func(k string) string { return tc.env[k] }, zerolog.New(&logs))
			w := tc.want
			if w.err != "" {
				if err == nil || !strings.Contains(err.Error(), w.err) {
					t.Fatalf("got error %v, want one containing %q", err, w.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if got := sec.TLS != nil; got != w.tls {
				t.Fatalf("got TLS %v, want %v", got, w.tls)
			}
			if sec.TLS != nil {
				if got := sec.TLS.RootCAs != nil; got != w.roots {
					t.Errorf("got own roots %v, want %v", got, w.roots)
				}
				if got := len(sec.TLS.Certificates) == 1; got != w.clientCert {
					t.Errorf("got client certificate %v, want %v", got, w.clientCert)
				}
				if sec.TLS.InsecureSkipVerify != w.insecure {
					t.Errorf("got InsecureSkipVerify %v, want %v", sec.TLS.InsecureSkipVerify, w.insecure)
				}
				if got := sec.TLS.VerifyConnection != nil; got != w.chainOnly {
					t.Errorf("got chain-only verification %v, want %v", got, w.chainOnly)
				}
			}
			mech := ""
			if sec.SASL != nil {
				mech = sec.SASL.Name()
			}
			if mech != w.mech {
				t.Errorf("got SASL %q, want %q", mech, w.mech)
			}
			if strings.Join(sec.Brokers, ",") != strings.Join(w.brokers, ",") {
				t.Errorf("got brokers %v, want %v", sec.Brokers, w.brokers)
			}
			if w.warn != "" && !strings.Contains(logs.String(), w.warn) {
				t.Errorf("got logs %q, want a line containing %q", logs.String(), w.warn)
			}
		})
	}
}

// TestClientSecurityFlagsThroughConfig: the security flags read from
// FLUXO_* and the YAML file like every flag, and the password variables
// are not reported as unknown.
func TestClientSecurityFlagsThroughConfig(t *testing.T) {
	dir := t.TempDir()
	yaml := writeTemp(t, dir, "fluxo.yaml", "topic:\n  sasl-mechanism: PLAIN\n")
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "env, CLI", args: []string{"topic", "list"}, env: map[string]string{"FLUXO_SASL_USER": "ops"}, want: "--sasl-user: a SASL user needs --sasl-mechanism"},
		{name: "yaml, CLI", args: []string{"--config", yaml, "topic", "list"}, want: "--sasl-mechanism PLAIN: needs --sasl-user"},
		{name: "env, produce", args: []string{"produce", "t"}, env: map[string]string{"FLUXO_TLS_CERT": "c.pem"}, want: "--tls-cert: a client certificate needs --tls-key"},
		{name: "env, edge", args: []string{"edge", "--spool-dir", filepath.Join(dir, "edge")}, env: map[string]string{"FLUXO_CORE_SASL_USER": "ops"}, want: "--core-sasl-user: a SASL user needs --core-sasl-mechanism"},
		{name: "flag, bridge", args: []string{"bridge", "--source", "tcp://127.0.0.1:1", "--spool-dir", filepath.Join(dir, "bridge"), "--core-sasl-mechanism", "SCRAM-SHA-512", "--core-sasl-user", "ops"},
			want: "--core-sasl-mechanism SCRAM-SHA-512: needs a password: --core-sasl-password-file, FLUXO_CORE_SASL_PASSWORD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stdout, &stderr); code != 1 {
				t.Fatalf("got exit code %d, want 1 (stderr %q)", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("got stderr %q, want it to contain %q", stderr.String(), tc.want)
			}
		})
	}
	t.Run("password variables are known", func(t *testing.T) {
		t.Setenv(saslPasswordEnv, "x")
		t.Setenv(coreSASLPasswordEnv, "y")
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"version"}, &stdout, &stderr); code != 0 {
			t.Fatalf("got exit code %d, want 0", code)
		}
		if strings.Contains(stderr.String(), "matches no flag") {
			t.Fatalf("got stderr %q, want no warning about the password variables", stderr.String())
		}
	})
}

func TestClientSecurityFlagsDeclared(t *testing.T) {
	root := newRootCmd()
	for _, tc := range []struct {
		path  []string
		flags []string
	}{
		{[]string{"edge"}, []string{"core-tls-ca", "core-tls-cert", "core-tls-key", "core-sasl-mechanism", "core-sasl-user", "core-sasl-password-file", "client-config"}},
		{[]string{"bridge"}, []string{"core-tls-ca", "core-tls-cert", "core-tls-key", "core-sasl-mechanism", "core-sasl-user", "core-sasl-password-file", "client-config"}},
		{[]string{"topic", "list"}, []string{"tls-ca", "tls-cert", "tls-key", "sasl-mechanism", "sasl-user", "sasl-password-file", "client-config"}},
		{[]string{"produce"}, []string{"tls-ca", "sasl-mechanism", "client-config"}},
		{[]string{"consume"}, []string{"tls-ca", "sasl-mechanism", "client-config"}},
	} {
		cmd, _, err := root.Find(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range tc.flags {
			if cmd.Flags().Lookup(name) == nil && cmd.PersistentFlags().Lookup(name) == nil && cmd.InheritedFlags().Lookup(name) == nil {
				t.Errorf("%s: got no --%s, want one", strings.Join(tc.path, " "), name)
			}
		}
		if f := cmd.Flags().Lookup("sasl-password"); f != nil {
			t.Errorf("%s: got a --sasl-password flag, want none (passwords are not flags)", strings.Join(tc.path, " "))
		}
	}
}

// startKfake starts franz-go's kfake on 127.0.0.1 with TLS from b and, when
// method is not empty, SASL with the superuser ops/s3cret; topic "t" exists.
func startKfake(t *testing.T, b *pkitest.Bundle, auth tls.ClientAuthType, method string) string {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.TLS(b.ServerTLS(t, auth)), kfake.SeedTopics(1, "t")}
	if method != "" {
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser(method, "ops", "s3cret"))
	}
	kc, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc.ListenAddrs()[0]
}

// roundTrip produces two lines to topic t and consumes them back with the
// CLI, with the connection flags sec.
func roundTrip(t *testing.T, sec ...string) {
	t.Helper()
	mustFluxo(t, "one\ntwo\n", append([]string{"produce", "t"}, sec...)...)
	out, _ := mustFluxo(t, "", append([]string{"consume", "t", "--from-beginning", "--count", "2", "--timeout", "20s"}, sec...)...)
	if out != "one\ntwo\n" {
		t.Fatalf("consumed %q, want %q", out, "one\ntwo\n")
	}
	out, _ = mustFluxo(t, "", append([]string{"topic", "list"}, sec...)...)
	if !strings.Contains(out, "t ") && !strings.Contains(out, "t\t") {
		t.Fatalf("topic list: got %q, want topic t", out)
	}
}

// TestIntegrationSecureClients: the CLI's commands reach a Kafka cluster
// (franz-go's kfake) over SASL_SSL with each mechanism, over mutual TLS, and
// with a kcat properties file; a wrong password fails clearly.
func TestIntegrationSecureClients(t *testing.T) {
	b := pkitest.New(t, "ops")
	pw := writeTemp(t, t.TempDir(), "pw", "s3cret\n")
	for _, method := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run("SASL_SSL "+method, func(t *testing.T) {
			addr := startKfake(t, b, tls.NoClientCert, method)
			roundTrip(t, "--brokers", addr, "--tls-ca", b.CA, "--sasl-mechanism", method, "--sasl-user", "ops", "--sasl-password-file", pw)
		})
	}
	t.Run("password from the environment", func(t *testing.T) {
		addr := startKfake(t, b, tls.NoClientCert, "SCRAM-SHA-256")
		t.Setenv(saslPasswordEnv, "s3cret")
		roundTrip(t, "--brokers", addr, "--tls-ca", b.CA, "--sasl-mechanism", "SCRAM-SHA-256", "--sasl-user", "ops")
	})
	t.Run("mTLS", func(t *testing.T) {
		addr := startKfake(t, b, tls.RequireAndVerifyClientCert, "")
		roundTrip(t, "--brokers", addr, "--tls-ca", b.CA, "--tls-cert", b.ClientCert, "--tls-key", b.ClientKey)
	})
	t.Run("kcat properties", func(t *testing.T) {
		addr := startKfake(t, b, tls.RequireAndVerifyClientCert, "SCRAM-SHA-512")
		conf := writeTemp(t, t.TempDir(), "kcat.conf", `# as for: kcat -F kcat.conf -L
bootstrap.servers=`+addr+`
security.protocol=SASL_SSL
sasl.mechanisms=SCRAM-SHA-512
sasl.username=ops
sasl.password=s3cret
ssl.ca.location=`+b.CA+`
ssl.certificate.location=`+b.ClientCert+`
ssl.key.location=`+b.ClientKey+`
ssl.endpoint.identification.algorithm=https
enable.ssl.certificate.verification=true
api.version.request=true
`)
		roundTrip(t, "--client-config", conf)
		_, stderr := mustFluxo(t, "", "topic", "list", "--client-config", conf)
		if !strings.Contains(stderr, "api.version.request") {
			t.Fatalf("got stderr %q, want a warning naming api.version.request", stderr)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		addr := startKfake(t, b, tls.NoClientCert, "SCRAM-SHA-512")
		t.Setenv(saslPasswordEnv, "wrong")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		code, _, stderr := fluxo(t, ctx, "", "topic", "list", "--brokers", addr, "--tls-ca", b.CA, "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "ops")
		if code != 1 {
			t.Fatalf("got exit code %d, want 1", code)
		}
		// kfake closes the connection on bad credentials, as Kafka did
		// before SaslAuthenticate v1; Kafka now answers
		// SASL_AUTHENTICATION_FAILED, which franz-go logs and returns.
		if !strings.Contains(stderr, "closed the connection during authentication: check the user, the password and the mechanism") {
			t.Fatalf("got stderr %q, want the refused authentication explained", stderr)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		addr := startKfake(t, b, tls.RequireAndVerifyClientCert, "")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		code, _, stderr := fluxo(t, ctx, "", "topic", "list", "--brokers", addr, "--tls-ca", b.CA)
		if code != 1 {
			t.Fatalf("got exit code %d, want 1 (stderr %q)", code, stderr)
		}
	})
}
