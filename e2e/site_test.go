//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// secureSite is a core cluster run as a site runs it: TLS between
// brokers (an SSL inter-broker listener, the Raft port on mutual TLS,
// the brokers super users by their certificate), SASL_SSL SCRAM for
// clients, the authorizer on, certificates made with fluxo tls.
type secureSite struct {
	pki      sitePKI
	procs    []*coreProc          // kafka: each broker's SASL_SSL address
	internal map[*coreProc]string // each broker's SSL address
}

// startSecureSite starts n brokers of a secured site.
func startSecureSite(t *testing.T, bin string, n int) *secureSite {
	t.Helper()
	p := makePKI(t, bin, "broker", secAdmin)
	cert, key := p.cert("broker")
	s := &secureSite{pki: p, internal: map[*coreProc]string{}}
	s.procs = startCoreClusterWith(t, bin, n, func(c *coreProc) []string {
		s.internal[c] = freeAddr(t)
		return []string{"--listeners", "SASL_SSL://" + c.kafka + ",SSL://" + s.internal[c],
			"--tls-cert", cert, "--tls-key", key, "--tls-ca", p.ca(), "--tls-client-auth", "requested",
			"--sasl-mechanisms", "SCRAM-SHA-512", "--authorizer", "--super-users", "User:CN=broker;User:CN=" + secAdmin,
			"--cluster-tls-cert", cert, "--cluster-tls-key", key, "--cluster-tls-ca", p.ca()}
	})
	return s
}

// seeds are the brokers' SASL_SSL addresses.
func (s *secureSite) seeds() []string {
	var out []string
	for _, c := range s.procs {
		out = append(out, c.kafka)
	}
	return out
}

// admin is a super user's client (client certificate) on broker c's SSL
// listener, or on every broker's when c is nil.
func (s *secureSite) admin(t *testing.T, c *coreProc) *kgo.Client {
	t.Helper()
	var seeds []string
	for _, p := range s.procs {
		if c == nil || p == c {
			seeds = append(seeds, s.internal[p])
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DialTLSConfig(s.pki.tlsConfig(t, secAdmin)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopics creates topics as the super user.
func (s *secureSite) createTopics(t *testing.T, partitions int32, rf int16, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := kadm.NewClient(s.admin(t, nil)).CreateTopics(ctx, partitions, rf, nil, topics...)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("create %v: %v", topics, err)
	}
}

// addUser adds SCRAM-SHA-512 user with every operation on the topics and
// groups named (literal names), waits until every broker has applied
// them, and returns what the user's clients need.
func (s *secureSite) addUser(t *testing.T, user, pass string, topics, groups []string) clusterSecurity {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(s.admin(t, nil))
	if _, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: user, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: pass}}); err != nil {
		t.Fatalf("add user %s: %v", user, err)
	}
	acls := kadm.NewACLs().Allow("User:" + user).Topics(topics...).Groups(groups...).
		Operations(kmsg.ACLOperationAll).ResourcePatternType(kadm.ACLPatternLiteral)
	res, err := adm.CreateACLs(ctx, acls)
	if err == nil {
		for _, r := range res {
			if r.Err != nil {
				err = r.Err
			}
		}
	}
	if err != nil {
		t.Fatalf("ACLs for %s: %v", user, err)
	}
	// Every broker applies the metadata on its own: wait until each
	// knows the user and its ACLs before clients pick one at random.
	want := len(topics) + len(groups)
	for _, c := range s.procs {
		one := kadm.NewClient(s.admin(t, c))
		deadline := time.Now().Add(20 * time.Second)
		for {
			users, uerr := one.DescribeUserSCRAMs(ctx, user)
			described, aerr := one.DescribeACLs(ctx, kadm.NewACLs().Allow("User:"+user).AllowHosts().
				AnyResource().Operations(kmsg.ACLOperationAny).ResourcePatternType(kadm.ACLPatternAny))
			if uerr == nil && users.Error() == nil && aerr == nil && len(described) == 1 && len(described[0].Described) == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: user %s and its %d ACLs not there after 20s: %v %v %v", c.name, user, want, uerr, aerr, described)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return clusterSecurity{tls: s.pki.tlsConfig(t, ""), user: user, pass: pass}
}
