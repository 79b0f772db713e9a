package pkitest

import (
	"crypto/tls"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Case is one way a client secures its link to the brokers: SASL_SSL
// with a mechanism, or mutual TLS.
type Case struct {
	Name       string
	ClientAuth tls.ClientAuthType // what the brokers ask of client certificates
	Method     string             // kfake's name of the mechanism; "" for no SASL
	Mech       sasl.Mechanism     // the client's side of it
	ClientCert bool               // the client presents the bundle's client certificate
}

// Cases are SASL_SSL with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (user
// edge, password s3cret), and mutual TLS.
func Cases() []Case {
	return []Case{
		{Name: "SASL_SSL PLAIN", Method: "PLAIN", Mech: plain.Auth{User: "edge", Pass: "s3cret"}.AsMechanism()},
		{Name: "SASL_SSL SCRAM-SHA-256", Method: "SCRAM-SHA-256", Mech: scram.Auth{User: "edge", Pass: "s3cret"}.AsSha256Mechanism()},
		{Name: "SASL_SSL SCRAM-SHA-512", Method: "SCRAM-SHA-512", Mech: scram.Auth{User: "edge", Pass: "s3cret"}.AsSha512Mechanism()},
		{Name: "mTLS", ClientAuth: tls.RequireAndVerifyClientCert, ClientCert: true},
	}
}

// Kfake starts a one-broker kfake cluster (franz-go's independent Kafka)
// that takes TLS only, secured as c says, with opts added, and returns
// its address; it is closed when the test ends.
func (b *Bundle) Kfake(t testing.TB, c Case, opts ...kfake.Opt) string {
	t.Helper()
	all := append([]kfake.Opt{kfake.NumBrokers(1), kfake.TLS(b.ServerTLS(t, c.ClientAuth))}, opts...)
	if c.Method != "" {
		all = append(all, kfake.EnableSASL(), kfake.Superuser(c.Method, "edge", "s3cret"))
	}
	kc, err := kfake.NewCluster(all...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc.ListenAddrs()[0]
}

// ClientOpts are a franz-go client's options to reach brokers secured
// as c says.
func (b *Bundle) ClientOpts(t testing.TB, c Case) []kgo.Opt {
	t.Helper()
	opts := []kgo.Opt{kgo.DialTLSConfig(b.ClientTLS(t, c.ClientCert))}
	if c.Mech != nil {
		opts = append(opts, kgo.SASL(c.Mech))
	}
	return opts
}
