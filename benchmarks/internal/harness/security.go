package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/fluxo-io/fluxo/internal/pki"
)

// Security is what the secured benchmark runs share: a certificate
// authority and a server certificate for 127.0.0.1 made with internal/pki
// (as `fluxo tls` makes them), written as PEM files, and one SCRAM-SHA-512
// user holding ACLs on the benchmark's topics.
//
// The core it describes has two listeners in one process: PLAINTEXT, whose
// clients are all User:ANONYMOUS and made super users (the open baseline,
// and the way in to create the SCRAM user), and SASL_SSL with
// SCRAM-SHA-512, whose user holds only the ACLs AddUser grants, so that
// every secured request goes through the authorizer's checks as well as
// through TLS.
type Security struct {
	CAFile, CertFile, KeyFile string
	CAPEM, CertPEM, KeyPEM    []byte

	// User and Password are the SCRAM-SHA-512 credentials AddUser creates.
	User, Password string
}

// Principal of the SCRAM user.
func (s *Security) Principal() string { return "User:" + s.User }

// NewSecurity makes a CA and a server certificate for 127.0.0.1 (ECDSA
// P-256, as `fluxo tls` makes them) and writes them into dir.
func NewSecurity(dir string) (*Security, error) {
	caPEM, caKey, err := pki.NewCA("fluxo benchmark CA", 24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("harness: ca: %w", err)
	}
	certPEM, keyPEM, err := pki.NewCert(caPEM, caKey, pki.Request{
		Kind: pki.Server, Name: "127.0.0.1", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: 24 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("harness: server certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Security{
		CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "core.pem"), KeyFile: filepath.Join(dir, "core.key"),
		CAPEM: caPEM, CertPEM: certPEM, KeyPEM: keyPEM,
		User: "bench", Password: "bench-secret",
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{s.CAFile, caPEM, 0o644}, {s.CertFile, certPEM, 0o644}, {s.KeyFile, keyPEM, 0o600}} {
		if err := os.WriteFile(f.name, f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// CoreArgs are the `fluxo core` flags of the two listeners: PLAINTEXT on
// plainAddr and SASL_SSL (SCRAM-SHA-512) on secureAddr, the authorizer on,
// User:ANONYMOUS a super user.
func (s *Security) CoreArgs(plainAddr, secureAddr string) []string {
	return []string{
		"--listeners", "PLAINTEXT://" + plainAddr + ",SASL_SSL://" + secureAddr,
		"--tls-cert", s.CertFile,
		"--tls-key", s.KeyFile,
		"--tls-ca", s.CAFile,
		"--sasl-mechanisms", "SCRAM-SHA-512",
		"--authorizer",
		"--super-users", "User:ANONYMOUS",
	}
}

// ClientTLS is a client's TLS configuration: the benchmark CA as roots,
// no client certificate.
func (s *Security) ClientTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// SASL is the SCRAM-SHA-512 mechanism of the user.
func (s *Security) SASL() sasl.Mechanism {
	return scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism()
}

// ClientOpts are the kgo options of a client of the SASL_SSL listener.
func (s *Security) ClientOpts() []kgo.Opt {
	return []kgo.Opt{kgo.DialTLSConfig(s.ClientTLS()), kgo.SASL(s.SASL())}
}

// AddUser creates the SCRAM-SHA-512 user through the PLAINTEXT listener
// at plainAddr and allows it Describe, Read and Write on every topic
// whose name starts with one of topicPrefixes, and IdempotentWrite on the
// cluster; then it waits until the user can authenticate on secureAddr.
func (s *Security) AddUser(ctx context.Context, plainAddr, secureAddr string, topicPrefixes ...string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(plainAddr))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
		User: s.User, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: s.Password,
	}})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		return fmt.Errorf("harness: add SCRAM user %s: %w", s.User, err)
	}
	topics := kadm.NewACLs().Allow(s.Principal()).Topics(topicPrefixes...).
		ResourcePatternType(kadm.ACLPatternPrefixed).
		Operations(kmsg.ACLOperationDescribe, kmsg.ACLOperationRead, kmsg.ACLOperationWrite)
	cluster := kadm.NewACLs().Allow(s.Principal()).Clusters().
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kmsg.ACLOperationIdempotentWrite)
	for _, b := range []*kadm.ACLBuilder{topics, cluster} {
		results, err := adm.CreateACLs(ctx, b)
		if err != nil {
			return fmt.Errorf("harness: create ACLs: %w", err)
		}
		for _, r := range results {
			if r.Err != nil {
				return fmt.Errorf("harness: create ACL: %w", r.Err)
			}
		}
	}
	// The user and ACLs go through the cluster's Raft log: wait until the
	// secured listener authenticates the user.
	for {
		sc, err := kgo.NewClient(append(s.ClientOpts(), kgo.SeedBrokers(secureAddr))...)
		if err != nil {
			return err
		}
		_, err = kadm.NewClient(sc).BrokerMetadata(ctx)
		sc.Close()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("harness: SCRAM user %s cannot authenticate: %w", s.User, errors.Join(err, ctx.Err()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
