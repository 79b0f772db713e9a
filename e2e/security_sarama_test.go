//go:build e2e

package e2e

import (
	"context"
	"crypto/sha512"
	"crypto/tls"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/xdg-go/scram"
)

// saramaSCRAM is the client side of SCRAM-SHA-512 for sarama, which leaves
// the mechanism to the application (its own examples use xdg-go/scram).
type saramaSCRAM struct {
	conv *scram.ClientConversation
}

func (s *saramaSCRAM) Begin(user, pass, authzID string) error {
	cl, err := scram.HashGeneratorFcn(sha512.New).NewClient(user, pass, authzID)
	if err != nil {
		return err
	}
	s.conv = cl.NewConversation()
	return nil
}

func (s *saramaSCRAM) Step(challenge string) (string, error) { return s.conv.Step(challenge) }
func (s *saramaSCRAM) Done() bool                            { return s.conv.Done() }

// saramaGroup marks every record it reads and signals once it has n
// distinct ones.
type saramaGroup struct {
	n    int
	mu   sync.Mutex
	seen map[string]bool
	done chan struct{}
}

func (g *saramaGroup) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (g *saramaGroup) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (g *saramaGroup) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		sess.MarkMessage(m, "")
		g.mu.Lock()
		g.seen[string(m.Value)] = true
		if len(g.seen) == g.n {
			sess.Commit() // synchronous: every marked offset is committed
			close(g.done)
		}
		g.mu.Unlock()
	}
	return nil
}

// saramaRoundTrip produces n records with sarama over SASL_SSL
// SCRAM-SHA-512, reads them back in a sarama consumer group, commits, and
// checks the committed offsets through admin.
func saramaRoundTrip(t *testing.T, admin *kgo.Client, addr string, tc *tls.Config, user, pass, topic string, n int) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Net.TLS.Enable, cfg.Net.TLS.Config = true, tc
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
	cfg.Net.SASL.User, cfg.Net.SASL.Password = user, pass
	cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaSCRAM{} }
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest

	prod, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("sarama producer: %v", err)
	}
	for i := range n {
		if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(strconv.Itoa(i))}); err != nil {
			prod.Close()
			t.Fatalf("sarama produce: %v", err)
		}
	}
	prod.Close()

	grp, err := sarama.NewConsumerGroup([]string{addr}, topic, cfg)
	if err != nil {
		t.Fatalf("sarama consumer group: %v", err)
	}
	h := &saramaGroup{n: n, seen: map[string]bool{}, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	consumed := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := grp.Consume(ctx, []string{topic}, h); err != nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	select {
	case <-h.done:
	case err := <-consumed:
		t.Fatalf("sarama consume: %v", err)
	case <-ctx.Done():
		t.Fatalf("sarama consumer group: got %d distinct records, want %d", len(h.seen), n)
	}
	cancel()
	<-consumed
	if err := grp.Close(); err != nil {
		t.Fatalf("sarama close: %v", err)
	}
	checkCommitted(t, admin, topic, topic, int64(n))
}
