package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/internal/logadapt"
)

// The Kafka client commands (fluxo topic, produce, consume) share what is in
// this file: the --brokers flag and how a franz-go client is built (its log
// lines go to the command's logger through internal/logadapt).

const (
	defaultBrokers = "127.0.0.1:9092"

	// clientDialTimeout bounds one connection attempt: the brokers are
	// usually on the same network, and a command line should not hang for
	// kgo's default of 10s per attempt when nothing listens.
	clientDialTimeout = 3 * time.Second

	// clientRetryTimeout bounds how long an admin request (create, list,
	// describe, delete) is retried before the command gives up.
	clientRetryTimeout = 15 * time.Second

	// clientID names the command-line client in the brokers' logs.
	clientID = "fluxo-cli"
)

// brokersFlag adds the persistent --brokers flag to c, with the flags that
// secure the connections (--tls-ca, --tls-cert, --tls-key, --sasl-mechanism,
// --sasl-user, --sasl-password-file, --client-config; see clientsec.go), and
// returns where the value of --brokers lands. newClient applies them all.
func brokersFlag(c *cobra.Command) *[]string {
	brokers := new([]string)
	c.PersistentFlags().StringSliceVar(brokers, "brokers", []string{defaultBrokers},
		"seed brokers to bootstrap from, HOST:PORT[,HOST:PORT...]; not given: bootstrap.servers of --client-config if it has one")
	cliSec.add(c.PersistentFlags())
	return brokers
}

// newClient returns a franz-go client bootstrapped from brokers, secured as
// the command's TLS and SASL flags say, logging to the command's logger at
// warn level, with opts applied after the defaults.
func newClient(cmd *cobra.Command, brokers []string, opts ...kgo.Opt) (*kgo.Client, error) {
	sec, err := clientSecurityOf(cmd, cliSec)
	if err != nil {
		return nil, err
	}
	if sec.Brokers != nil {
		brokers = sec.Brokers
	}
	var seeds []string
	for _, b := range brokers {
		if b = strings.TrimSpace(b); b != "" {
			seeds = append(seeds, b)
		}
	}
	if len(seeds) == 0 {
		return nil, errors.New("--brokers: got no broker, want HOST:PORT[,HOST:PORT...]")
	}
	all := append(append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(clientDialTimeout),
		kgo.ClientID(clientID),
		kgo.WithLogger(logadapt.Kgo(logger(cmd), kgo.LogLevelWarn)),
	}, sec.opts(logger(cmd))...), opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return nil, fmt.Errorf("cannot create kafka client: %w", err)
	}
	return cl, nil
}

// brokerError formats a broker's answer for one item (a topic, a user,
// an ACL) as "WHAT: CODE: message", preferring the broker's own message
// to the generic description of the code.
func brokerError(what string, err error, brokerMsg string) error {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		msg := brokerMsg
		if msg == "" {
			msg = ke.Description
		}
		return fmt.Errorf("%s: %s: %s", what, ke.Message, msg)
	}
	if brokerMsg != "" {
		return fmt.Errorf("%s: %w: %s", what, err, brokerMsg)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// topicError is brokerError for a topic: "topic NAME: CODE: message".
func topicError(topic string, err error, brokerMsg string) error {
	return brokerError("topic "+topic, err, brokerMsg)
}

// plural returns "1 record", "2 records".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// parseKeyValue splits s, given to flag, at its first "=". The key may not
// be empty; the value may.
func parseKeyValue(flag, s string) (key, value string, err error) {
	key, value, ok := strings.Cut(s, "=")
	if !ok || key == "" {
		return "", "", fmt.Errorf("--%s: got %q, want KEY=VALUE", flag, s)
	}
	return key, value, nil
}
