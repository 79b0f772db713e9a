package downlink

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

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
	for _, tc := range pkitest.Cases() {
		t.Run(tc.Name, func(t *testing.T) {
			addr := b.Kfake(t, tc, kfake.SeedTopics(1, "commands"), kfake.GroupMinSessionTimeout(time.Second))

			cfg := DefaultConfig()
			cfg.Brokers = []string{addr}
			cfg.FromStart = true
			cfg.TLS = b.ClientTLS(t, tc.ClientCert)
			cfg.SASL = tc.Mech
			got := make(chanPublisher, 1)
			d, err := New(cfg, got, func(string) (string, bool) { return "cars", true })
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { d.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()

			p, err := kgo.NewClient(append(b.ClientOpts(t, tc), kgo.SeedBrokers(addr))...)
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
