// Command kfakecmd runs franz-go's fake Kafka cluster (kfake) as a
// process of its own, one broker advertising the newest Kafka versions
// (Produce v13 and topic ids, as Apache Kafka 4.x), for end-to-end tests
// of fluxo's Kafka clients against something that is not fluxo's core.
// Tests build it with go build and stop it with SIGTERM.
//
//	kfakecmd [--listen 127.0.0.1:0] [--seed-topic NAME:PARTITIONS]... [--data-dir DIR]
//	         [--tls-cert FILE --tls-key FILE [--tls-ca FILE]]
//	         [--sasl-user USER --sasl-password PASSWORD]
//
// It prints "listening on HOST:PORT" on stdout once it accepts
// connections. --tls-ca verifies client certificates against that CA
// when a client presents one. --data-dir keeps the cluster's state and
// logs on disk there (kfake.DataDir; without it, in memory), as the
// benchmarks compare it with fluxo's disk-backed core. --sasl-user makes
// SASL required, the user a superuser for PLAIN, SCRAM-SHA-256 and
// SCRAM-SHA-512.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

// topics collects repeated --seed-topic NAME:PARTITIONS flags.
type topics []kfake.Opt

func (t *topics) String() string { return "" }

func (t *topics) Set(v string) error {
	name, parts, ok := strings.Cut(v, ":")
	n, err := strconv.ParseInt(parts, 10, 32)
	if !ok || name == "" || err != nil || n <= 0 {
		return fmt.Errorf("got %q, want NAME:PARTITIONS", v)
	}
	*t = append(*t, kfake.SeedTopics(int32(n), name))
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kfakecmd:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on, HOST:PORT")
	cert := flag.String("tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve TLS")
	key := flag.String("tls-key", "", "TLS private key file (PEM)")
	ca := flag.String("tls-ca", "", "CA file (PEM) to verify client certificates against, when a client presents one")
	user := flag.String("sasl-user", "", "require SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) with this superuser")
	pass := flag.String("sasl-password", "", "the SASL user's password")
	dataDir := flag.String("data-dir", "", "keep the cluster's logs and state in this directory (default: in memory)")
	var seeds topics
	flag.Var(&seeds, "seed-topic", "topic to create at start, NAME:PARTITIONS (repeatable)")
	flag.Parse()

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, *listen) }),
	}
	opts = append(opts, seeds...)
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	if (*cert == "") != (*key == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if *cert != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		if *ca != "" {
			pem, err := os.ReadFile(*ca)
			if err != nil {
				return fmt.Errorf("tls: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("tls: %s: no certificate", *ca)
			}
			tc.ClientCAs, tc.ClientAuth = pool, tls.VerifyClientCertIfGiven
		}
		opts = append(opts, kfake.TLS(tc))
	} else if *ca != "" {
		return errors.New("--tls-ca needs --tls-cert and --tls-key")
	}
	if *user != "" {
		opts = append(opts, kfake.EnableSASL())
		for _, m := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
			opts = append(opts, kfake.Superuser(m, *user, *pass))
		}
	}

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("listening on %s\n", c.ListenAddrs()[0])

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	return nil
}
