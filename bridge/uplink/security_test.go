package uplink

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/internal/pki/pkitest"
)

// TestSecureBrokers: the uplink forwards the spool to a Kafka cluster
// (franz-go's kfake) that takes TLS only, over SASL_SSL with each SASL
// mechanism and over mutual TLS.
func TestSecureBrokers(t *testing.T) {
	b := pkitest.New(t, "edge-1")
	for _, tc := range pkitest.Cases() {
		t.Run(tc.Name, func(t *testing.T) {
			addr := b.Kfake(t, tc, kfake.SeedTopics(4, "telemetry", "alarms"))

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
			cfg.TLS = b.ClientTLS(t, tc.ClientCert)
			cfg.SASL = tc.Mech
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

			if got := countRecords(t, addr, tel+alarms, b.ClientOpts(t, tc)...); got != tel+alarms {
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
