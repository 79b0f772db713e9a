package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/fluxo-io/fluxo/core"
	"github.com/fluxo-io/fluxo/core/acl"
	"github.com/fluxo-io/fluxo/core/kafka"
)

// coreSecurityFlags are the listener, TLS, SASL, authorization and
// cluster-plane flags of fluxo core, named as Kafka names the settings.
type coreSecurityFlags struct {
	listeners           string
	advertisedListeners string
	interBroker         string
	tlsCert, tlsKey     string
	tlsCA               string
	tlsClientAuth       string
	saslMechanisms      []string
	authorizer          bool
	superUsers          string
	cluster             clusterTLSFlags
}

func (sf *coreSecurityFlags) add(f *pflag.FlagSet) {
	f.StringVar(&sf.listeners, "listeners", "", "Kafka listeners, NAME://HOST:PORT,... with PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL as names (Kafka's listeners; default: PLAINTEXT on --kafka-addr)")
	f.StringVar(&sf.advertisedListeners, "advertised-listeners", "", "addresses given to clients per listener, NAME://HOST:PORT,... (Kafka's advertised.listeners; default: each listener's address)")
	f.StringVar(&sf.interBroker, "inter-broker-listener", "", "listener followers replicate from: PLAINTEXT or SSL, whose client certificate is this broker's (default: the first PLAINTEXT or SSL listener)")
	f.StringVar(&sf.tlsCert, "tls-cert", "", "PEM certificate of the SSL and SASL_SSL listeners (also this broker's client certificate towards other brokers); SIGHUP reloads it")
	f.StringVar(&sf.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&sf.tlsCA, "tls-ca", "", "PEM CA certificates that client certificates must chain to (and that other brokers' certificates are checked against)")
	f.StringVar(&sf.tlsClientAuth, "tls-client-auth", "none", "client certificates on SSL listeners: none, requested or required (Kafka's ssl.client.auth); a verified one names the principal User:<subject DN>")
	f.StringSliceVar(&sf.saslMechanisms, "sasl-mechanisms", nil, "SASL mechanisms of SASL_PLAINTEXT and SASL_SSL listeners: SCRAM-SHA-512, SCRAM-SHA-256, PLAIN (users: fluxo user add)")
	f.BoolVar(&sf.authorizer, "authorizer", false, "check every request against the cluster's ACLs (fluxo acl); denied unless an ACL allows it")
	f.StringVar(&sf.superUsers, "super-users", "", "principals allowed everything, Kafka's super.users form: 'User:admin;User:CN=broker-1'")
	sf.cluster.register(f)
}

// apply fills cfg from the flags and returns what SIGHUP reloads.
func (sf *coreSecurityFlags) apply(cfg *core.Config, kafkaAddrSet bool) (*reloader, error) {
	r := &reloader{sf: sf}
	if sf.listeners != "" {
		if kafkaAddrSet {
			return nil, errors.New("--listeners and --kafka-addr: give one (--kafka-addr is the shorthand for one PLAINTEXT listener)")
		}
		ls, err := kafka.ParseListeners(sf.listeners)
		if err != nil {
			return nil, fmt.Errorf("--listeners: %w", err)
		}
		cfg.Listeners = ls
	}
	if sf.advertisedListeners != "" {
		ads, err := kafka.ParseListeners(sf.advertisedListeners)
		if err != nil {
			return nil, fmt.Errorf("--advertised-listeners: %w", err)
		}
		cfg.AdvertisedListeners = map[string]string{}
		for _, a := range ads {
			cfg.AdvertisedListeners[a.Name] = a.Addr
		}
	}
	cfg.InterBrokerListener = strings.ToUpper(sf.interBroker)

	auth, err := kafka.ParseClientAuth(sf.tlsClientAuth)
	if err != nil {
		return nil, fmt.Errorf("--tls-client-auth: %w", err)
	}
	switch {
	case (sf.tlsCert == "") != (sf.tlsKey == ""):
		return nil, errors.New("--tls-cert and --tls-key go together")
	case sf.tlsCert == "" && sf.tlsCA != "":
		return nil, errors.New("--tls-ca needs --tls-cert and --tls-key")
	case sf.tlsCert != "":
		cert, key, ca, err := sf.readTLS()
		if err != nil {
			return nil, err
		}
		cfg.KafkaTLS, r.kafka, err = kafka.ServerTLS(cert, key, ca, auth)
		if err != nil {
			return nil, err
		}
		// Towards other brokers' SSL listeners, this broker presents the
		// same certificate: its principal there is User:<subject DN>.
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert: %w", err)
		}
		rt := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		if len(ca) > 0 {
			rt.RootCAs = x509.NewCertPool()
			rt.RootCAs.AppendCertsFromPEM(ca)
		}
		cfg.Broker.ReplicaTLS = rt
	}
	cfg.Kafka.SASLMechanisms = sf.saslMechanisms
	if sf.superUsers != "" && !sf.authorizer {
		return nil, errors.New("--super-users: only with --authorizer")
	}
	if sf.authorizer {
		supers, err := acl.ParseSuperUsers(sf.superUsers)
		if err != nil {
			return nil, fmt.Errorf("--super-users: %w", err)
		}
		cfg.Kafka.Authorizer = acl.NewAuthorizer(supers)
	}
	ct, err := sf.cluster.load()
	if err != nil {
		return nil, err
	}
	cfg.Cluster.TLS = ct
	return r, nil
}

func (sf *coreSecurityFlags) readTLS() (cert, key, ca []byte, err error) {
	if cert, err = os.ReadFile(sf.tlsCert); err != nil {
		return nil, nil, nil, fmt.Errorf("--tls-cert: %w", err)
	}
	if key, err = os.ReadFile(sf.tlsKey); err != nil {
		return nil, nil, nil, fmt.Errorf("--tls-key: %w", err)
	}
	if sf.tlsCA != "" {
		if ca, err = os.ReadFile(sf.tlsCA); err != nil {
			return nil, nil, nil, fmt.Errorf("--tls-ca: %w", err)
		}
	}
	return cert, key, ca, nil
}

// reloader re-reads the certificate files on SIGHUP.
type reloader struct {
	sf    *coreSecurityFlags
	kafka *kafka.CertReloader
}

// run reloads on every SIGHUP until ctx ends. A file that does not load
// keeps the certificates in use and is logged.
func (r *reloader) run(ctx context.Context, node *core.Node, log zerolog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if r.kafka != nil {
			cert, key, ca, err := r.sf.readTLS()
			if err == nil {
				err = r.kafka.Reload(cert, key, ca)
			}
			if err != nil {
				log.Error().Err(err).Msg("cannot reload the kafka listeners' certificate; keeping the current one")
			} else {
				log.Info().Msg("kafka listeners' certificate reloaded")
			}
		}
		if r.sf.cluster.cert != "" {
			ct, err := r.sf.cluster.load()
			if err == nil {
				err = node.ReloadClusterTLS(*ct)
			}
			if err != nil {
				log.Error().Err(err).Msg("cannot reload the cluster certificate; keeping the current one")
			} else {
				log.Info().Msg("cluster certificate reloaded")
			}
		}
	}
}
