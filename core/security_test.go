package core

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/fluxo-io/fluxo/core/acl"
	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/core/kafka"
	"github.com/fluxo-io/fluxo/internal/testcert"
)

// Three brokers with mutual TLS between them (an SSL inter-broker
// listener, the cluster plane on the cluster CA) and SASL_SSL SCRAM for
// clients, the authorizer on: replication works under the brokers' own
// certificate principals, Metadata gives a client every broker's address
// on the client listener, and acks=all records written by a SCRAM user
// holding only Write on its topic are all there.
func TestClusterSecured(t *testing.T) {
	ca := testcert.NewCA(t, "fluxo test CA")
	broker := ca.Broker(t, "127.0.0.1")
	admin := ca.Client(t, pkix.Name{CommonName: "admin"})
	supers := []string{"User:CN=127.0.0.1", "User:CN=admin"}

	tc := startClusterWith(t, 3, func(i int, cfg *Config) {
		serverTLS, _, err := kafka.ServerTLS(broker.CertPEM, broker.KeyPEM, ca.CertPEM, kafka.ClientAuthRequested)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Listeners = []kafka.ListenerAddr{
			{Name: "INTERNAL", Protocol: kafka.SSL, Addr: "127.0.0.1:0"},
			{Name: "CLIENT", Protocol: kafka.SASLSSL, Addr: "127.0.0.1:0"},
		}
		cfg.InterBrokerListener = "INTERNAL"
		cfg.KafkaTLS = serverTLS
		cfg.Broker.ReplicaTLS = &tls.Config{Certificates: []tls.Certificate{broker.TLS(t)}, RootCAs: ca.Pool()}
		cfg.Kafka.SASLMechanisms = []string{kafka.MechanismScramSHA512}
		cfg.Kafka.Authorizer = acl.NewAuthorizer(supers)
		cfg.Cluster.TLS = &cluster.TLS{Certificate: broker.TLS(t), CAs: ca.Pool()}
	})
	internal := func(i int) string { return tc.nodes[i].KafkaListenerAddr("INTERNAL") }
	clientAddr := func(i int) string { return tc.nodes[i].KafkaListenerAddr("CLIENT") }

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(internal(0)),
		kgo.DialTLSConfig(&tls.Config{Certificates: []tls.Certificate{admin.TLS(t)}, RootCAs: ca.Pool()}))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ad := kadm.NewClient(adm)
	if _, err := ad.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "alice", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "alice-pw"}}); err != nil {
		t.Fatalf("add user alice: %v", err)
	}
	acls := kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kmsg.ACLOperationWrite, kmsg.ACLOperationRead).ResourcePatternType(kadm.ACLPatternLiteral)
	if res, err := ad.CreateACLs(ctx, acls); err != nil || res[0].Err != nil {
		t.Fatalf("create ACLs: %v %v", err, res)
	}
	if _, err := ad.CreateTopic(ctx, 3, 3, nil, "orders"); err != nil {
		t.Fatalf("create orders: %v", err)
	}
	tc.waitState("the ACL and user on every broker", func(st *cluster.State) bool {
		_, ok := st.ScramCredential("alice", cluster.ScramSHA512)
		return ok && len(st.ACLs) == 2
	})

	alice, err := kgo.NewClient(kgo.SeedBrokers(clientAddr(1)),
		kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool()}),
		kgo.SASL(scram.Auth{User: "alice", Pass: "alice-pw"}.AsSha512Mechanism()),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()

	// Metadata on the CLIENT listener names every broker's CLIENT port.
	md, err := kadm.NewClient(alice).BrokerMetadata(ctx)
	if err != nil {
		t.Fatalf("metadata as alice: %v", err)
	}
	want := map[int32]string{}
	for i := range tc.nodes {
		want[int32(i+1)] = clientAddr(i)
	}
	if len(md.Brokers) != 3 {
		t.Fatalf("brokers in metadata: got %v, want 3", md.Brokers)
	}
	for _, b := range md.Brokers {
		if got := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))); got != want[b.NodeID] {
			t.Errorf("broker %d: got %s, want its CLIENT listener %s", b.NodeID, got, want[b.NodeID])
		}
	}

	const n = 300
	for i := range n {
		alice.Produce(ctx, &kgo.Record{Topic: "orders", Key: []byte(strconv.Itoa(i % 10)), Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := alice.Flush(ctx); err != nil {
		t.Fatalf("produce as alice, acks=all: %v", err)
	}
	// acks=all answered: followers fetched over mutual TLS as super users.
	tc.waitState("every ISR whole", func(st *cluster.State) bool {
		for _, p := range st.Topics["orders"].Partitions {
			if len(p.ISR) != 3 {
				return false
			}
		}
		return true
	})
	ends, err := kadm.NewClient(alice).ListEndOffsets(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != n {
		t.Fatalf("records in orders: got %d, want %d", total, n)
	}
}
