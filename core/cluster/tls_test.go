package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

var serial int64

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a member certificate for both server and client use. Its
// names match nothing dialed: members are identified by the CA alone.
func (ca *testCA) issue(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name + ".cluster.invalid"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (ca *testCA) tls(t *testing.T, name string) *TLS {
	return &TLS{Certificate: ca.issue(t, name), CAs: ca.pool}
}

// victimFrame is a forwarding RPC that deletes topic "victim", as an
// attacker reaching the Raft port would write it.
func victimFrame() []byte {
	body := []byte(`{"op":"apply","type":2,"body":{"name":"victim"}}`)
	frame := []byte{connRPC}
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(body)))
	return append(frame, body...)
}

// attack writes the victim frame on conn and reports whether any answer
// came back.
func attack(conn net.Conn) bool {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write(victimFrame())
	var hdr [4]byte
	_, err := io.ReadFull(conn, hdr[:])
	return err == nil
}

// TestTLS: a 3-member cluster with mutual TLS forms, applies and
// forwards; a plaintext peer, a peer with another CA's certificate and a
// peer without a certificate are refused before any frame is read.
func TestTLS(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	regs := map[int32]*prometheus.Registry{}
	first := testConfig(t, 1, 3)
	first.TLS = ca.tls(t, "node1")
	regs[1] = prometheus.NewRegistry()
	first.Registerer = regs[1]
	nodes := []*Cluster{open(t, first)}
	for id := int32(2); id <= 3; id++ {
		cfg := testConfig(t, id, 3, nodes[0].SerfAddr())
		cfg.TLS = ca.tls(t, fmt.Sprintf("node%d", id))
		regs[id] = prometheus.NewRegistry()
		cfg.Registerer = regs[id]
		nodes = append(nodes, open(t, cfg))
	}
	ctx := ctxFor(t, 30*time.Second)
	for _, c := range nodes {
		if err := c.WaitReady(ctx); err != nil {
			t.Fatalf("node %d: %v", c.NodeID(), err)
		}
	}
	ctrl := controllerOf(t, nodes)
	var follower *Cluster
	for _, c := range nodes {
		if c != ctrl {
			follower = c
			break
		}
	}
	if _, err := follower.Apply(ctx, CreateTopic{Name: "victim", Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatalf("forwarded apply over tls: %v", err)
	}
	sameState(t, nodes, "topic victim everywhere", func(s *State) bool { return s.Topics["victim"] != nil })

	addr := ctrl.RaftAddr()
	// A plaintext peer.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if attack(conn) {
		t.Fatal("plaintext peer: got an answer, want the connection refused")
	}
	// A TLS peer whose certificate another CA signed.
	other := newTestCA(t, "another CA")
	conn, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{other.issue(t, "intruder")}})
	if err == nil {
		if attack(conn) {
			t.Fatal("peer of another CA: got an answer, want the connection refused")
		}
	}
	// A TLS peer without a client certificate.
	conn, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		if attack(conn) {
			t.Fatal("peer without a certificate: got an answer, want the connection refused")
		}
	}
	// A member dialing with no certificate of the cluster is refused too:
	// Cluster.call's client side verifies the server against its CA.
	if _, err := call(ctx, nil, addr, newTLSState(other.tls(t, "intruder")), rpcRequest{Op: opStatus}); err == nil {
		t.Fatal("call verified by another CA: got nil, want an error")
	}

	reg := regs[ctrl.NodeID()]
	for _, reason := range []string{rejectNotTLS, rejectBadCert, rejectNoCertificate} {
		testutil.EventuallyWithin(t, 5*time.Second, "rejection "+reason+" counted", func() bool {
			return labeledCounter(t, reg, "fluxo_cluster_rpc_rejected_total", "reason", reason) >= 1
		})
	}
	// Everything committed before a later command is applied: the topic
	// is still there.
	if _, err := follower.Apply(ctx, AllocateProducerIDs{N: 1}); err != nil {
		t.Fatal(err)
	}
	sameState(t, nodes, "a later command everywhere", func(s *State) bool { return s.NextProducerID > 1000 })
	for _, c := range nodes {
		if c.State().Topics["victim"] == nil {
			t.Fatalf("node %d: got topic victim deleted, want it kept", c.NodeID())
		}
	}

	// Rotation to a new CA: every member trusts both, then presents a
	// certificate of the new one; the cluster keeps working.
	next := newTestCA(t, "next CA")
	both := x509.NewCertPool()
	both.AddCert(ca.cert)
	both.AddCert(next.cert)
	for _, c := range nodes {
		if err := c.ReloadTLS(TLS{Certificate: next.issue(t, fmt.Sprint("node", c.NodeID())), CAs: both}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := follower.Apply(ctx, CreateTopic{Name: "after-reload", Partitions: 1}); err != nil {
		t.Fatalf("forwarded apply after reload: %v", err)
	}
	// The old CA alone no longer verifies the servers.
	if _, err := call(ctx, nil, addr, newTLSState(ca.tls(t, "old")), rpcRequest{Op: opStatus}); err == nil {
		t.Fatal("call trusting only the old CA after reload: got nil, want an error")
	}
}

// TestTLSPlaintextDefault: without TLS the port speaks plaintext, and
// ReloadTLS says TLS is off.
func TestTLSPlaintextDefault(t *testing.T) {
	c := open(t, testConfig(t, 1, 0))
	if err := c.WaitReady(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := call(ctxFor(t, 5*time.Second), nil, c.RaftAddr(), nil, rpcRequest{Op: opStatus})
	if err != nil || resp.Status == nil || !resp.Status.Leader {
		t.Fatalf("got %+v, %v, want the leader's status", resp, err)
	}
	// The frame TestTLS refuses is served in plaintext: what TLS guards.
	if _, err := c.Apply(ctxFor(t, 5*time.Second), CreateTopic{Name: "victim", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", c.RaftAddr())
	if err != nil {
		t.Fatal(err)
	}
	if !attack(conn) {
		t.Fatal("plaintext frame: got no answer, want one")
	}
	if c.State().Topics["victim"] != nil {
		t.Fatal("plaintext frame: got topic victim kept, want it deleted")
	}
	ca := newTestCA(t, "ca")
	if err := c.ReloadTLS(*ca.tls(t, "n")); err == nil {
		t.Fatal("ReloadTLS without TLS: got nil, want an error")
	}
}

func TestTLSValidate(t *testing.T) {
	cfg := testConfig(t, 1, 0)
	cfg.TLS = &TLS{}
	if err := cfg.Validate(); err == nil {
		t.Fatal("empty TLS: got nil, want an error")
	}
	ca := newTestCA(t, "ca")
	cfg.TLS = ca.tls(t, "n")
	cfg.TLS.CAs = nil
	if err := cfg.Validate(); err == nil {
		t.Fatal("TLS without CAs: got nil, want an error")
	}
}

// labeledCounter returns the value of counter name whose label is value.
func labeledCounter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{%s=%q} not found", name, label, value)
	return 0
}
