package core

import (
	"errors"
	"fmt"
	"net"

	"github.com/xdg-go/scram"

	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/core/kafka"
	"github.com/fluxo-io/fluxo/internal/opshttp"
)

// kafkaListener is one bound Kafka listener.
type kafkaListener struct {
	ln net.Listener
	l  kafka.Listener
}

// listen binds every Kafka listener of cfg: cfg.Listeners, or the one
// PLAINTEXT listener on KafkaAddr (advertised as KafkaAdvertise). It
// returns them in order with the inter-broker one's index; on error none
// is left open.
func listen(cfg Config) (_ []kafkaListener, inter int, err error) {
	addrs := cfg.Listeners
	advertised := cfg.AdvertisedListeners
	if len(addrs) == 0 {
		addrs = []kafka.ListenerAddr{{Name: "PLAINTEXT", Protocol: kafka.Plaintext, Addr: cfg.KafkaAddr}}
		advertised = map[string]string{"PLAINTEXT": cfg.KafkaAdvertise}
	}
	interName := cfg.InterBrokerListener
	if interName == "" {
		// The first listener brokers can use: SASL is for clients.
		for _, a := range addrs {
			if !a.Protocol.SASL() {
				interName = a.Name
				break
			}
		}
		if interName == "" {
			return nil, 0, fmt.Errorf("core: no listener for the other brokers: add an SSL (or PLAINTEXT) listener, the inter-broker listener")
		}
	}
	inter = -1
	for i, a := range addrs {
		if a.Name == interName {
			inter = i
		}
		if a.Protocol.TLS() && cfg.KafkaTLS == nil {
			return nil, 0, fmt.Errorf("core: listener %s is %s: it needs a TLS certificate (--tls-cert, --tls-key)", a.Name, a.Protocol)
		}
	}
	for name := range advertised {
		if !containsListener(addrs, name) && name != "PLAINTEXT" {
			return nil, 0, fmt.Errorf("core: advertised listener %s is not a listener", name)
		}
	}
	switch {
	case inter < 0:
		return nil, 0, fmt.Errorf("core: inter-broker listener %s is not a listener", interName)
	case addrs[inter].Protocol.SASL():
		return nil, 0, fmt.Errorf("core: inter-broker listener %s is %s: brokers authenticate to each other with certificates; use an SSL (or PLAINTEXT) listener", interName, addrs[inter].Protocol)
	case addrs[inter].Protocol.TLS() && cfg.Broker.ReplicaTLS == nil:
		return nil, 0, fmt.Errorf("core: inter-broker listener %s is SSL: followers need a client TLS configuration (the broker's certificate)", interName)
	}
	var out []kafkaListener
	defer func() {
		if err != nil {
			for _, kl := range out {
				kl.ln.Close()
			}
		}
	}()
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a.Addr)
		if err != nil {
			return out, 0, fmt.Errorf("core: listener %s: cannot listen: %w", a.Name, err)
		}
		out = append(out, kafkaListener{ln: ln})
		adv, err := advertise(advertised[a.Name], ln.Addr().String())
		if err != nil {
			return out, 0, err
		}
		l := kafka.Listener{Name: a.Name, Protocol: a.Protocol, Advertised: adv}
		if a.Protocol.TLS() {
			l.TLS = cfg.KafkaTLS
		}
		out[len(out)-1].l = l
	}
	return out, inter, nil
}

func containsListener(addrs []kafka.ListenerAddr, name string) bool {
	for _, a := range addrs {
		if a.Name == name {
			return true
		}
	}
	return false
}

// endpoints are the advertised address of each listener by name, for the
// cluster's registration; nil for the single default listener, which
// brokers of earlier versions registered as KafkaAddr alone.
func endpoints(cfg Config, lns []kafkaListener) map[string]string {
	if len(cfg.Listeners) == 0 {
		return nil
	}
	m := make(map[string]string, len(lns))
	for _, kl := range lns {
		m[kl.l.Name] = kl.l.Advertised
	}
	return m
}

// scramStore serves the SCRAM credentials kept in the cluster metadata to
// the Kafka server's SASL authentication.
type scramStore struct{ cl *cluster.Cluster }

func (s scramStore) ScramCredentials(user, mechanism string) (scram.StoredCredentials, bool) {
	c, ok := s.cl.State().ScramCredential(user, mechanism)
	if !ok {
		return scram.StoredCredentials{}, false
	}
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
		StoredKey:  c.StoredKey,
		ServerKey:  c.ServerKey,
	}, true
}

// brokerEndpoint gives another broker's address on a listener, from the
// cluster metadata.
func brokerEndpoint(cl *cluster.Cluster) func(int32, string) (string, bool) {
	return func(id int32, listener string) (string, bool) {
		b, ok := cl.State().Brokers[id]
		if !ok {
			return "", false
		}
		return b.Endpoint(listener)
	}
}

// ReloadClusterTLS replaces the certificate and CA of the cluster plane
// (Raft and forwarding RPC) for new connections.
func (n *Node) ReloadClusterTLS(t cluster.TLS) error { return n.cluster.ReloadTLS(t) }

// KafkaListenerAddr is the address listener name is bound to, or "".
func (n *Node) KafkaListenerAddr(name string) string {
	for _, kl := range n.kafkaLns {
		if kl.l.Name == name {
			return kl.ln.Addr().String()
		}
	}
	return ""
}

// listenerSet closes every Kafka listener of a New that fails after
// binding them.
type listenerSet []kafkaListener

func (s listenerSet) Close() {
	for _, kl := range s {
		kl.ln.Close()
	}
}

// serveKafka serves one listener until Shutdown. A listener that fails
// otherwise (its accept cannot go on) is fatal, as a dead port must not
// hide behind a healthy /readyz: see fail.
func (n *Node) serveKafka(kl kafkaListener) {
	err := n.kafka.ServeListener(kl.ln, kl.l)
	if err == nil || errors.Is(err, kafka.ErrServerClosed) {
		return
	}
	n.fail(fmt.Errorf("core: kafka listener %s on %s: %w", kl.l.Name, kl.ln.Addr(), err))
}

// watchHTTP waits for the HTTP server to stop; a failed listener is fatal
// (see fail), a Shutdown is not.
func (n *Node) watchHTTP(hs *opshttp.Server) {
	defer n.wg.Done()
	if err, ok := <-hs.Failed(); ok {
		n.fail(fmt.Errorf("core: http listener: %w", err))
	}
}

// fail records the first fatal listener error: it is logged, /readyz
// fails from then on and Failed delivers it, so that the process stops.
// An error during shutdown is not a failure.
func (n *Node) fail(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.shutdown {
		return
	}
	n.log.Error().Err(err).Msg("listener failed")
	if n.listenErr == nil {
		n.listenErr = err
		n.failed <- err
	}
}

// Failed delivers the first fatal error of a Kafka or HTTP listener: the
// node no longer serves what it should and must be shut down.
func (n *Node) Failed() <-chan error { return n.failed }
