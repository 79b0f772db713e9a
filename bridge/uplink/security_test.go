package uplink

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

// TestSecureBrokers: the uplink forwards the spool to a Kafka cluster
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
				kfake.SeedTopics(4, "telemetry", "alarms")}
			if tc.method != "" {
				opts = append(opts, kfake.EnableSASL(), kfake.Superuser(tc.method, "edge", "s3cret"))
			}
			kc, err := kfake.NewCluster(opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer kc.Close()
			addr := kc.ListenAddrs()[0]

			dir := t.TempDir()
			sp := openSpool(t, dir)
			tel, alarms := spoolMessages(t, sp, 3, 10, 0)
			cfg := DefaultConfig()
			cfg.Brokers = []string{addr}
			cfg.StateDir = dir
			cfg.Linger = 5 * time.Millisecond
			cfg.RetryBackoff = 20 * time.Millisecond
			cfg.MaxRetryBackoff = 200 * time.Millisecond
			cfg.RequestTimeout = 5 * time.Second
			cfg.TLS = b.ClientTLS(t, tc.clientCert)
			cfg.SASL = tc.mech
			u, err := New(cfg, sp)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { u.Run(ctx); close(done) }()
			waitDrained(t, sp)
			cancel()
			<-done

			copts := []kgo.Opt{kgo.DialTLSConfig(b.ClientTLS(t, tc.clientCert))}
			if tc.mech != nil {
				copts = append(copts, kgo.SASL(tc.mech))
			}
			if got := countRecords(t, addr, tel+alarms, copts...); got != tel+alarms {
				t.Fatalf("got %d records, want %d", got, tel+alarms)
			}
		})
	}
}

// countRecords reads telemetry and alarms from the start until want
// records arrived or 20s passed, and returns how many it read.
func countRecords(t *testing.T, addr string, want int, opts ...kgo.Opt) int {
	t.Helper()
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(addr), kgo.ConsumeTopics("telemetry", "alarms"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := 0
	for got < want && ctx.Err() == nil {
		got += cl.PollFetches(ctx).NumRecords()
	}
	return got
}
