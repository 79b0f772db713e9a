package downlink

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/fluxo-io/fluxo/internal/pki/pkitest"
)

// chanPublisher hands what the downlink publishes to a channel.
type chanPublisher chan string

func (c chanPublisher) Publish(topic string, payload []byte, _ byte, _ bool) error {
	c <- topic + " " + string(payload)
	return nil
}

// TestSecureBrokers: the downlink consumes commands from a Kafka cluster
// (franz-go's kfake) that takes TLS only, over SASL_SSL with each SASL
// mechanism and over mutual TLS.
func TestSecureBrokers(t *testing.T) {
	b := pkitest.New(t, "edge-1")
	for _, tc := range []struct {
		name       string
		clientAuth tls.ClientAuthType
		method     string // kfake's name of the mechanism; "" for no SASL
		mech       sasl.Mechanism
		clientCert bool
	}{
		{name: "SASL_SSL PLAIN", method: "PLAIN", mech: plain.Auth{User: "edge", Pass: "s3cret"}.AsMechanism()},
		{name: "SASL_SSL SCRAM-SHA-256", method: "SCRAM-SHA-256", mech: scram.Auth{User: "edge", Pass: "s3cret"}.AsSha256Mechanism()},
		{name: "SASL_SSL SCRAM-SHA-512", method: "SCRAM-SHA-512", mech: scram.Auth{User: "edge", Pass: "s3cret"}.AsSha512Mechanism()},
		{name: "mTLS", clientAuth: tls.RequireAndVerifyClientCert, clientCert: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []kfake.Opt{kfake.NumBrokers(1), kfake.TLS(b.ServerTLS(t, tc.clientAuth)),
				kfake.SeedTopics(1, "commands"), kfake.GroupMinSessionTimeout(time.Second)}
			if tc.method != "" {
				opts = append(opts, kfake.EnableSASL(), kfake.Superuser(tc.method, "edge", "s3cret"))
			}
			kc, err := kfake.NewCluster(opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer kc.Close()
			addr := kc.ListenAddrs()[0]

			cfg := DefaultConfig()
			cfg.Brokers = []string{addr}
			cfg.FromStart = true
			cfg.TLS = b.ClientTLS(t, tc.clientCert)
			cfg.SASL = tc.mech
			got := make(chanPublisher, 1)
			d, err := New(cfg, got, func(string) (string, bool) { return "cars", true })
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { d.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()

			popts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.DialTLSConfig(b.ClientTLS(t, tc.clientCert))}
			if tc.mech != nil {
				popts = append(popts, kgo.SASL(tc.mech))
			}
			p, err := kgo.NewClient(popts...)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer pcancel()
			if err := p.ProduceSync(pctx, &kgo.Record{Topic: "commands", Key: []byte("c-0001"), Value: []byte(`{"id":"1"}`)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				if want := `cars/c-0001/cmd {"id":"1"}`; m != want {
					t.Fatalf("got %q, want %q", m, want)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("got no command in 30s, want one")
			}
		})
	}
}
