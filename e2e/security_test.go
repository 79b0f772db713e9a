//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// sitePKI is a site's certificates, made with fluxo tls: one CA, a broker
// certificate for 127.0.0.1 and client certificates by name.
type sitePKI struct {
	dir string
}

func (p sitePKI) ca() string                        { return filepath.Join(p.dir, "ca.pem") }
func (p sitePKI) cert(name string) (string, string) { return p.certFile(name), p.keyFile(name) }
func (p sitePKI) certFile(name string) string       { return filepath.Join(p.dir, name+".pem") }
func (p sitePKI) keyFile(name string) string        { return filepath.Join(p.dir, name+"-key.pem") }

// makePKI creates a CA in a new directory and, with it, a server
// certificate named server for 127.0.0.1 and a client certificate per
// name in clients.
func makePKI(t *testing.T, bin, server string, clients ...string) sitePKI {
	t.Helper()
	p := sitePKI{dir: t.TempDir()}
	run(t, 30*time.Second, nil, bin, "tls", "ca", "create", "--dir", p.dir)
	ca, caKey := p.ca(), filepath.Join(p.dir, "ca-key.pem")
	if server != "" {
		run(t, 30*time.Second, nil, bin, "tls", "cert", "create", "--server", "--name", server,
			"--ip", "127.0.0.1", "--dns", "localhost", "--ca", ca, "--ca-key", caKey, "--dir", p.dir)
	}
	for _, c := range clients {
		run(t, 30*time.Second, nil, bin, "tls", "cert", "create", "--client", "--name", c,
			"--ca", ca, "--ca-key", caKey, "--dir", p.dir)
	}
	for _, f := range []string{caKey, p.keyFile(server)} {
		if server == "" && f != caKey {
			continue
		}
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: got mode %v, want 0600", filepath.Base(f), st.Mode().Perm())
		}
	}
	return p
}

// tlsConfig is a client TLS configuration trusting p's CA, presenting the
// client certificate name unless it is "".
func (p sitePKI) tlsConfig(t *testing.T, name string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(p.ca())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate", p.ca())
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if name != "" {
		cert, err := tls.LoadX509KeyPair(p.cert(name))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// secureCore is a fluxo core with three client listeners (SASL_SSL, SSL
// with client certificates, SASL_PLAINTEXT), the authorizer on, and its
// Raft port behind the cluster's mutual TLS.
type secureCore struct {
	*fluxoProc
	saslSSL, ssl, saslPlain string // Kafka listeners
	raft                    string
}

const (
	secAdmin    = "admin" // client certificate CN of the super user
	secPassword = "alice-secret-1"
	carolPass   = "carol-secret-1"
)

func startSecureCore(t *testing.T, bin string, p sitePKI) *secureCore {
	t.Helper()
	c := &secureCore{fluxoProc: &fluxoProc{name: "fluxo core", bin: bin, history: &syncBuffer{}}}
	t.Cleanup(func() { c.stopAtEnd(t) })
	dataDir := t.TempDir()
	cert, key := p.cert("broker")
	for attempt := 1; ; attempt++ {
		c.saslSSL, c.ssl, c.saslPlain, c.raft, c.http = freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
		c.args = []string{"core", "--data-dir", dataDir, "--http-addr", c.http,
			"--listeners", "SASL_SSL://" + c.saslSSL + ",SSL://" + c.ssl + ",SASL_PLAINTEXT://" + c.saslPlain,
			"--serf-addr", freeAddr(t), "--raft-addr", c.raft,
			"--tls-cert", cert, "--tls-key", key, "--tls-ca", p.ca(), "--tls-client-auth", "requested",
			"--sasl-mechanisms", "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
			"--authorizer", "--super-users", "User:CN=" + secAdmin + ";User:CN=broker",
			"--cluster-tls-cert", cert, "--cluster-tls-key", key, "--cluster-tls-ca", p.ca(),
			"--default-partitions", "3", "--log-level", "info"}
		c.ready = "fluxo core: Kafka on " + c.saslSSL
		err := c.start()
		if err == nil {
			return c
		}
		if attempt < 5 && strings.Contains(c.logs.String(), "address already in use") {
			continue
		}
		t.Fatalf("%s: %v\n%s", c.name, err, c.history.tail())
	}
}

// fluxoCLI runs a fluxo client command as the super user (client
// certificate over the SSL listener).
func (c *secureCore) fluxoCLI(t *testing.T, p sitePKI, args ...string) []byte {
	t.Helper()
	cert, key := p.cert(secAdmin)
	args = append(args, "--brokers", c.ssl, "--tls-ca", p.ca(), "--tls-cert", cert, "--tls-key", key)
	return run(t, 30*time.Second, nil, c.bin, args...)
}

func scramClient(t *testing.T, addr string, tc *tls.Config, mech, user, pass string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	auth := scram.Auth{User: user, Pass: pass}
	m := auth.AsSha512Mechanism()
	if mech == "SCRAM-SHA-256" {
		m = auth.AsSha256Mechanism()
	}
	all := []kgo.Opt{kgo.SeedBrokers(addr), kgo.SASL(m), kgo.DialTimeout(5 * time.Second), kgo.RetryTimeout(10 * time.Second)}
	if tc != nil {
		all = append(all, kgo.DialTLSConfig(tc))
	}
	cl, err := kgo.NewClient(append(all, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestSecureLinks runs real clients against a secured core: each of kcat
// (SASL_SSL SCRAM-SHA-512, and SSL with a client certificate),
// confluent-kafka (SASL_SSL PLAIN), kafka-python (SASL_PLAINTEXT
// SCRAM-SHA-256) and franz-go (SCRAM over TLS) produces, consumes in a
// group and commits; then every denied case of the authorization rules.
func TestSecureLinks(t *testing.T) {
	t.Parallel()
	bin := buildFluxo(t)
	p := makePKI(t, bin, "broker", secAdmin, "bob")
	core := startSecureCore(t, bin, p)

	// Users and ACLs, managed with fluxo user and fluxo acl over the
	// Kafka protocol as the super user.
	pwFile := filepath.Join(t.TempDir(), "alice.pw")
	carolFile := filepath.Join(t.TempDir(), "carol.pw")
	os.WriteFile(pwFile, []byte(secPassword+"\n"), 0o600)
	os.WriteFile(carolFile, []byte(carolPass+"\n"), 0o600)
	core.fluxoCLI(t, p, "user", "add", "alice", "--mechanism", "SCRAM-SHA-512", "--password-file", pwFile)
	core.fluxoCLI(t, p, "user", "add", "alice", "--mechanism", "SCRAM-SHA-256", "--password-file", pwFile)
	core.fluxoCLI(t, p, "user", "add", "carol", "--mechanism", "SCRAM-SHA-512", "--password-file", carolFile)
	if out := core.fluxoCLI(t, p, "user", "list"); !bytes.Contains(out, []byte("alice")) || !bytes.Contains(out, []byte("carol")) {
		t.Fatalf("fluxo user list: got %q, want alice and carol", out)
	}
	for _, principal := range []string{"User:alice", "User:CN=bob"} {
		core.fluxoCLI(t, p, "acl", "add", "--principal", principal, "--operation", "all", "--topic", "sec-", "--prefixed")
		core.fluxoCLI(t, p, "acl", "add", "--principal", principal, "--operation", "read", "--group", "sec-", "--prefixed")
	}
	// carol may read and describe one topic, nothing else.
	core.fluxoCLI(t, p, "acl", "add", "--principal", "User:carol", "--operation", "read", "--topic", "sec-carol")
	if out := core.fluxoCLI(t, p, "acl", "list"); !bytes.Contains(out, []byte("User:CN=bob")) {
		t.Fatalf("fluxo acl list: got %q, want the bindings of User:CN=bob", out)
	}

	admin := adminClient(t, core, p)
	for _, topic := range []string{"sec-carol", "sec-victim"} {
		if _, err := kadm.NewClient(admin).CreateTopic(context.Background(), 1, 1, nil, topic); err != nil {
			t.Fatalf("create %s as the super user: %v", topic, err)
		}
	}

	t.Run("franz-go SCRAM-SHA-512 over TLS", func(t *testing.T) {
		cl := scramClient(t, core.saslSSL, p.tlsConfig(t, ""), "SCRAM-SHA-512", "alice", secPassword)
		groupRoundTrip(t, admin, cl, "sec-franz", 200)
	})
	t.Run("kcat SASL_SSL SCRAM-SHA-512", func(t *testing.T) {
		needKcat(t)
		kcatRoundTrip(t, admin, core.saslSSL, "sec-kcat-scram",
			"-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
			"-X", "sasl.username=alice", "-X", "sasl.password="+secPassword, "-X", "ssl.ca.location="+p.ca())
	})
	t.Run("kcat SSL client certificate", func(t *testing.T) {
		needKcat(t)
		cert, key := p.cert("bob")
		kcatRoundTrip(t, admin, core.ssl, "sec-kcat-ssl",
			"-X", "security.protocol=SSL", "-X", "ssl.ca.location="+p.ca(),
			"-X", "ssl.certificate.location="+cert, "-X", "ssl.key.location="+key)
	})
	t.Run("confluent-kafka SASL_SSL PLAIN", func(t *testing.T) {
		needConfluentKafka(t)
		const n = 2000
		out := run(t, 90*time.Second, nil, python, "testdata/confluent_group.py",
			"--bootstrap", core.saslSSL, "--topic", "sec-confluent", "--group", "sec-confluent",
			"--records", strconv.Itoa(n), "--partitions", "3", "--timeout", "60",
			"--config", "security.protocol=SASL_SSL", "--config", "sasl.mechanisms=PLAIN",
			"--config", "sasl.username=alice", "--config", "sasl.password="+secPassword,
			"--config", "ssl.ca.location="+p.ca())
		var s groupSummary
		if err := json.Unmarshal(bytes.TrimSpace(out), &s); err != nil {
			t.Fatalf("cannot parse the summary: %v\n%s", err, out)
		}
		if s.Error != "" || !s.Done || s.Produced != n || s.Unique != n || s.CommittedTotal != n {
			t.Fatalf("got error %q, done %v, produced %d, consumed %d distinct, committed %d; want no error, done, %d of each",
				s.Error, s.Done, s.Produced, s.Unique, s.CommittedTotal, n)
		}
	})
	t.Run("kafka-python SASL_PLAINTEXT SCRAM-SHA-256", func(t *testing.T) {
		kpyNeedModule(t)
		const n = 1000
		out := run(t, 60*time.Second, nil, python, "testdata/kafka_python_group.py",
			"--bootstrap", core.saslPlain, "--topic", "sec-kpy", "--group", "sec-kpy",
			"--records", strconv.Itoa(n), "--partitions", "2", "--api-version", "2.4.0", "--timeout", "40",
			"--config", "security_protocol=SASL_PLAINTEXT", "--config", "sasl_mechanism=SCRAM-SHA-256",
			"--config", "sasl_plain_username=alice", "--config", "sasl_plain_password="+secPassword)
		var s kpySummary
		if err := json.Unmarshal(bytes.TrimSpace(out), &s); err != nil {
			t.Fatalf("cannot parse the summary: %v\n%s", err, out)
		}
		if s.Error != "" || !s.Done || s.Produced != n || s.Unique != n || s.CommittedTotal != n {
			t.Fatalf("got error %q, done %v, produced %d, consumed %d distinct, committed %d; want no error, done, %d of each",
				s.Error, s.Done, s.Produced, s.Unique, s.CommittedTotal, n)
		}
	})
	t.Run("sarama SCRAM-SHA-512 over TLS", func(t *testing.T) {
		saramaRoundTrip(t, admin, core.saslSSL, p.tlsConfig(t, ""), "alice", secPassword, "sec-sarama", 100)
	})

	t.Run("denied", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()

		// A wrong password.
		bad := scramClient(t, core.saslSSL, p.tlsConfig(t, ""), "SCRAM-SHA-512", "alice", "wrong")
		if err := bad.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("wrong password: got %v, want SASL_AUTHENTICATION_FAILED", err)
		}
		// A plaintext client on a TLS listener.
		plain := scramClient(t, core.saslSSL, nil, "SCRAM-SHA-512", "alice", secPassword, kgo.RetryTimeout(2*time.Second))
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		if err := plain.Ping(pctx); err == nil {
			t.Error("plaintext client on the SASL_SSL listener: got a working connection, want none")
		}
		pcancel()
		// A client certificate from another CA.
		other := makePKI(t, bin, "", secAdmin)
		tc := other.tlsConfig(t, secAdmin)
		tc.RootCAs = p.tlsConfig(t, "").RootCAs // trusts the broker; the broker must not trust it
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", core.ssl, tc)
		if err == nil {
			// TLS 1.3: the server's verdict on the client certificate
			// arrives with the first read.
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("client certificate of another CA: got %v, want the handshake refused", err)
		}

		carol := scramClient(t, core.saslSSL, p.tlsConfig(t, ""), "SCRAM-SHA-512", "carol", carolPass)
		// Produce without Write.
		plainCarol := scramClient(t, core.saslSSL, p.tlsConfig(t, ""), "SCRAM-SHA-512", "carol", carolPass, kgo.DisableIdempotentWrite())
		res := plainCarol.ProduceSync(ctx, &kgo.Record{Topic: "sec-carol", Value: []byte("x")})
		if err := res.FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("produce without Write: got %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		// A group read without Read on the group.
		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.CoordinatorKey, fc.CoordinatorKeys = "carol-group", []string{"carol-group"}
		if resp, err := fc.RequestWith(ctx, carol); err != nil {
			t.Errorf("find coordinator: %v", err)
		} else if code := findCoordinatorCode(resp); code != kerr.GroupAuthorizationFailed.Code {
			t.Errorf("group without Read: got %v, want GROUP_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
		}
		// CreateTopics without Create.
		if _, err := kadm.NewClient(carol).CreateTopic(ctx, 1, 1, nil, "carol-new"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("create without Create: got %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		// Metadata hides topics carol may not describe.
		topics, err := kadm.NewClient(carol).ListTopics(ctx)
		if err != nil {
			t.Fatalf("list topics as carol: %v", err)
		}
		if names := topics.Names(); !slices.Equal(names, []string{"sec-carol"}) {
			t.Errorf("topics carol sees: got %v, want [sec-carol]", names)
		}
		// UnregisterBroker without Alter on the cluster.
		ub := kmsg.NewPtrUnregisterBrokerRequest()
		ub.BrokerID = 1
		if resp, err := ub.RequestWith(ctx, carol); err != nil {
			t.Errorf("unregister broker: %v", err)
		} else if resp.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
			t.Errorf("unregister broker without Alter: got %v, want CLUSTER_AUTHORIZATION_FAILED", kerr.ErrorForCode(resp.ErrorCode))
		}
		// The Raft-port frame that deleted a topic, from a peer without a
		// certificate: refused, and the topic is still there.
		raftDelete(t, core.raft, "sec-victim")
		time.Sleep(500 * time.Millisecond) // the command, had it been taken, commits in milliseconds
		td, err := kadm.NewClient(admin).ListTopics(ctx, "sec-victim")
		if err != nil || !td.Has("sec-victim") || td["sec-victim"].Err != nil {
			t.Errorf("topic sec-victim after a Raft frame from a peer without a certificate: got %v, %v; want it still there", td, err)
		}
	})
}

func findCoordinatorCode(resp *kmsg.FindCoordinatorResponse) int16 {
	if len(resp.Coordinators) > 0 {
		return resp.Coordinators[0].ErrorCode
	}
	return resp.ErrorCode
}

// raftDelete writes the forwarding RPC that applies DeleteTopic to a
// Raft port, as a plain TCP peer.
func raftDelete(t *testing.T, addr, topic string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial the raft port: %v", err)
	}
	defer conn.Close()
	body := fmt.Sprintf(`{"op":"apply","type":2,"body":{"name":%q}}`, topic)
	frame := append([]byte{0x02}, binary.BigEndian.AppendUint32(nil, uint32(len(body)))...)
	frame = append(frame, body...)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write(frame)
	conn.Read(make([]byte, 64)) // whatever comes back, if anything
}

// adminClient is a franz-go client of the super user, by client
// certificate over the SSL listener.
func adminClient(t *testing.T, core *secureCore, p sitePKI) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(core.ssl), kgo.DialTLSConfig(p.tlsConfig(t, secAdmin)), kgo.RetryTimeout(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// groupRoundTrip produces n records to topic with cl, reads them back in
// group topic with a second client on the same settings, commits, and
// checks through admin that the group committed every record.
func groupRoundTrip(t *testing.T, admin, cl *kgo.Client, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	var produceErr atomic.Value
	for i := range n {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i % 7)), Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				produceErr.Store(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err, _ := produceErr.Load().(error); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cons, err := kgo.NewClient(append(cl.Opts(), kgo.ConsumerGroup(topic), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]bool{}
	for len(seen) < n && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		for _, e := range fs.Errors() {
			t.Fatalf("consume %s: %v", topic, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	if len(seen) != n {
		t.Fatalf("consumed %d distinct records, want %d", len(seen), n)
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	checkCommitted(t, admin, topic, topic, int64(n))
}

// checkCommitted checks that group's committed offsets on topic add up to
// want.
func checkCommitted(t *testing.T, admin *kgo.Client, group, topic string, want int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(admin).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			sum += o.At
		}
	})
	if sum != want {
		t.Fatalf("group %s: committed offsets add up to %d, want %d", group, sum, want)
	}
}

// kcatRoundTrip produces 100 lines with kcat and reads them back with a
// kcat group consumer, which commits as it closes.
func kcatRoundTrip(t *testing.T, admin *kgo.Client, addr, topic string, sec ...string) {
	t.Helper()
	const n = 100
	var in bytes.Buffer
	for i := range n {
		fmt.Fprintf(&in, "line-%d\n", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	run(t, 30*time.Second, bytes.NewReader(in.Bytes()), kcatBin, append([]string{"-b", addr, "-P", "-t", topic}, sec...)...)
	out := run(t, 60*time.Second, nil, kcatBin, append([]string{"-b", addr, "-G", topic, "-o", "beginning", "-c", strconv.Itoa(n),
		"-f", "%s\n", topic}, sec...)...)
	lines := strings.Fields(string(out))
	slices.Sort(lines)
	if len(slices.Compact(lines)) != n {
		t.Fatalf("kcat group consumer: got %d distinct lines, want %d", len(lines), n)
	}
	checkCommitted(t, admin, topic, topic, n)
}

// SIGHUP reloads the listeners' certificate: a new connection is served
// with the new one, the process keeps running, and a broken file keeps
// the old certificate in use.
func TestCertReloadSIGHUP(t *testing.T) {
	t.Parallel()
	bin := buildFluxo(t)
	p := makePKI(t, bin, "broker", secAdmin)
	core := startSecureCore(t, bin, p)
	peerCN := func() string {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", core.ssl, p.tlsConfig(t, secAdmin))
		if err != nil {
			t.Fatalf("dial %s: %v", core.ssl, err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := peerCN(); cn != "broker" {
		t.Fatalf("certificate before reload: got CN %q, want broker", cn)
	}
	run(t, 30*time.Second, nil, bin, "tls", "cert", "create", "--server", "--name", "broker-2",
		"--ip", "127.0.0.1", "--dir", p.dir)
	cert, key := p.cert("broker")
	for src, dst := range map[string]string{p.certFile("broker-2"): cert, p.keyFile("broker-2"): key} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := core.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for peerCN() != "broker-2" {
		if time.Now().After(deadline) {
			t.Fatalf("certificate after SIGHUP: got CN %q, want broker-2\n%s", peerCN(), core.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A key that does not match: refused, the current certificate stays.
	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	core.cmd.Process.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(core.logs.String(), "cannot reload the kafka listeners' certificate") {
		if time.Now().After(deadline) {
			t.Fatalf("no error logged for a broken key after SIGHUP\n%s", core.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if cn := peerCN(); cn != "broker-2" || !core.running() {
		t.Fatalf("after a failed reload: got CN %q, running %v; want broker-2, running", cn, core.running())
	}
}
