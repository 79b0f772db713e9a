package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fluxo-io/fluxo/core/cluster"
)

// clusterTLSFlags are the cluster plane's certificate files, as given on
// the command line.
type clusterTLSFlags struct {
	cert, key, ca string
}

func (f *clusterTLSFlags) register(fs interface {
	StringVar(p *string, name, value, usage string)
}) {
	fs.StringVar(&f.cert, "cluster-tls-cert", "", "PEM certificate signed by the cluster CA, for the Raft port's mutual TLS")
	fs.StringVar(&f.key, "cluster-tls-key", "", "PEM private key of --cluster-tls-cert")
	fs.StringVar(&f.ca, "cluster-tls-ca", "", "PEM cluster CA certificate(s) the peers' certificates must chain to")
}

// load reads the files: nil when none is set (plaintext), an error when
// only some are.
func (f *clusterTLSFlags) load() (*cluster.TLS, error) {
	return loadClusterTLS(f.cert, f.key, f.ca)
}

// loadClusterTLS reads the cluster plane's certificate, key and CA files;
// nil when none is given.
func loadClusterTLS(certFile, keyFile, caFile string) (*cluster.TLS, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, errors.New("--cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster tls: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("cluster tls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("cluster tls: %s: no PEM certificate", caFile)
	}
	return &cluster.TLS{Certificate: cert, CAs: pool}, nil
}

func newClusterKeysCmd() *cobra.Command {
	var (
		raft  string
		files clusterTLSFlags
	)
	c := &cobra.Command{
		Use:   "keys",
		Short: "List and rotate the gossip encryption keys",
		Long: `List and rotate the keys that encrypt the cluster's Serf gossip, on every
member at once (like consul keyring). Keys are base64 AES keys of 16, 24 or
32 bytes (head -c 32 /dev/urandom | base64). To rotate: install the new key,
use it, then remove the old one. Each member keeps its keyring in its data
directory (cluster/serf.keyring), which takes precedence over --serf-key
at its next start.

The operations go to the Raft port of any member (--raft): with the
cluster's TLS on, they need a certificate of the cluster CA.`,
		Example: `  fluxo cluster keys list --raft 10.0.0.11:7947 \
    --cluster-tls-cert node.pem --cluster-tls-key node.key --cluster-tls-ca ca.pem
  fluxo cluster keys install NEWKEY --raft 10.0.0.11:7947
  fluxo cluster keys use NEWKEY --raft 10.0.0.11:7947
  fluxo cluster keys remove OLDKEY --raft 10.0.0.11:7947`,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.PersistentFlags().StringVar(&raft, "raft", "127.0.0.1:7947", "Raft address of any core broker (its --raft-addr)")
	files.register(c.PersistentFlags())

	keyring := func() (*cluster.Keyring, error) {
		t, err := files.load()
		if err != nil {
			return nil, err
		}
		return cluster.RemoteKeys(raft, t)
	}
	run := func(op string, f func(*cluster.Keyring, context.Context, []byte) (cluster.KeyringStatus, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			var key []byte
			if len(args) == 1 {
				var err error
				if key, err = base64.StdEncoding.DecodeString(args[0]); err != nil {
					return fmt.Errorf("KEY: got %q, want base64: %w", args[0], err)
				}
			}
			k, err := keyring()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			st, err := f(k, ctx, key)
			printKeyErrors(cmd.ErrOrStderr(), st)
			if err != nil {
				return fmt.Errorf("keys %s: %w", op, err)
			}
			if op == "list" {
				return printKeys(cmd.OutOrStdout(), st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: done on %d of %d members\n", op, st.Responses, st.Members)
			return nil
		}
	}
	c.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List the keys and how many members hold each",
			Args:  cobra.NoArgs,
			RunE: run("list", func(k *cluster.Keyring, ctx context.Context, _ []byte) (cluster.KeyringStatus, error) {
				return k.List(ctx)
			}),
		},
		&cobra.Command{
			Use:   "install KEY",
			Short: "Add a key to every member's keyring (decrypting only)",
			Args:  cobra.ExactArgs(1),
			RunE:  run("install", (*cluster.Keyring).Install),
		},
		&cobra.Command{
			Use:   "use KEY",
			Short: "Encrypt with an installed key from now on",
			Args:  cobra.ExactArgs(1),
			RunE:  run("use", (*cluster.Keyring).Use),
		},
		&cobra.Command{
			Use:   "remove KEY",
			Short: "Remove a key that is not in use from every member",
			Args:  cobra.ExactArgs(1),
			RunE:  run("remove", (*cluster.Keyring).Remove),
		},
	)
	return c
}

func printKeys(w io.Writer, st cluster.KeyringStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tMEMBERS\tPRIMARY")
	keys := make([]string, 0, len(st.Keys))
	for k := range st.Keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%d/%d\t%d\n", k, st.Keys[k], st.Members, st.Primary[k])
	}
	return tw.Flush()
}

func printKeyErrors(w io.Writer, st cluster.KeyringStatus) {
	names := make([]string, 0, len(st.Errors))
	for n := range st.Errors {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "%s: %s\n", n, st.Errors[n])
	}
}
