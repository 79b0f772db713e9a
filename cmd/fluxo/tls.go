package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fluxo-io/fluxo/internal/pki"
)

func init() { register(newTLSCmd) }

// Modes of the files fluxo tls writes: keys are private to their owner.
const (
	certFileMode = 0o644
	keyFileMode  = 0o600
)

func newTLSCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "tls",
		Short: "Make a private CA and the certificates of brokers and clients",
		Long: `Make a small private PKI for the Kafka traffic of a cluster: a certificate
authority (fluxo tls ca create), then certificates it signs for the brokers
and the clients (fluxo tls cert create). Keys are ECDSA P-256, written as
PKCS #8 PEM (which Go, librdkafka and Java's PEM key stores read) with mode
0600; certificates are PEM with mode 0644. Existing files are never
overwritten unless --force is given.

A server certificate is for a broker: it can authenticate as a server and as
a client (brokers are clients of each other) and names exactly the --ip and
--dns given (add 127.0.0.1 and localhost yourself if you want them). A
client certificate has the subject CN=NAME, so a Kafka broker's principal for
it is User:CN=NAME.`,
		Example: `  fluxo tls ca create --dir /etc/fluxo/tls
  fluxo tls cert create --server --name core-1 --ip 10.0.0.11 --dns core-1.example.net --dir /etc/fluxo/tls
  fluxo tls cert create --client --name edge-7 --dir /etc/fluxo/tls`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	ca := &cobra.Command{Use: "ca", Short: "Make a certificate authority", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	ca.AddCommand(newTLSCACreateCmd())
	cert := &cobra.Command{Use: "cert", Short: "Make certificates signed by the CA", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	cert.AddCommand(newTLSCertCreateCmd())
	c.AddCommand(ca, cert)
	return c
}

func newTLSCACreateCmd() *cobra.Command {
	var (
		dir, name string
		days      int
		force     bool
	)
	c := &cobra.Command{
		Use:   "create",
		Short: "Make a CA: ca.pem and ca-key.pem",
		Long: `Make a self-signed certificate authority with the subject CN=--name and write
its certificate to DIR/ca.pem and its key to DIR/ca-key.pem (mode 0600). Keep
ca-key.pem off the brokers: it is only needed to make certificates.`,
		Example: `  fluxo tls ca create
  fluxo tls ca create --dir /etc/fluxo/tls --name acme-fluxo-ca --days 3650`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days <= 0 {
				return fmt.Errorf("--days: got %d, want 1 or more", days)
			}
			certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
			if err := checkWritable(force, certPath, keyPath); err != nil {
				return err
			}
			certPEM, keyPEM, err := pki.NewCA(name, time.Duration(days)*24*time.Hour)
			if err != nil {
				return err
			}
			if err := writePair(dir, certPath, certPEM, keyPath, keyPEM, force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s and %s (CA CN=%s, %d days)\n", certPath, keyPath, name, days)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&dir, "dir", ".", "directory to write ca.pem and ca-key.pem to")
	f.StringVar(&name, "name", "fluxo-ca", "common name of the CA")
	f.IntVar(&days, "days", 1825, "validity in days")
	f.BoolVar(&force, "force", false, "overwrite existing files")
	return c
}

func newTLSCertCreateCmd() *cobra.Command {
	var (
		dir, name, caFile, caKey string
		ips, dnsNames            []string
		server, client, force    bool
		days                     int
	)
	c := &cobra.Command{
		Use:   "create",
		Short: "Make a server or client certificate: NAME.pem and NAME-key.pem",
		Long: `Make a certificate signed by the CA and write it to DIR/NAME.pem and its key to
DIR/NAME-key.pem (mode 0600).

--server: for a broker; server and client authentication; the subject
alternative names are exactly --ip and --dns (at least one; 127.0.0.1 and
localhost only if given). --client: for a client; client authentication;
subject CN=NAME, which Kafka brokers see as the principal User:CN=NAME.

The CA is --ca and --ca-key, by default ca.pem and ca-key.pem in --dir. The
certificate expires after --days, or with the CA if that is sooner.`,
		Example: `  fluxo tls cert create --server --name core-1 --ip 10.0.0.11 --ip 127.0.0.1 --dns core-1.example.net
  fluxo tls cert create --client --name edge-7 --ca /secure/ca.pem --ca-key /secure/ca-key.pem --dir .`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := pki.Request{Name: name, DNSNames: dnsNames, Validity: time.Duration(days) * 24 * time.Hour}
			switch {
			case server && client:
				return errors.New("--server and --client: got both, want one")
			case server:
				req.Kind = pki.Server
			case client:
				req.Kind = pki.Client
			default:
				return errors.New("want --server or --client")
			}
			switch {
			case name == "":
				return errors.New("--name: want the certificate's name (a host for --server, a user for --client)")
			case strings.ContainsAny(name, `/\`) || name == "." || name == "..":
				return fmt.Errorf("--name: got %q, want a name without path separators (it names the files)", name)
			case days <= 0:
				return fmt.Errorf("--days: got %d, want 1 or more", days)
			}
			for _, s := range ips {
				ip := net.ParseIP(strings.TrimSpace(s))
				if ip == nil {
					return fmt.Errorf("--ip: got %q, want an IP address", s)
				}
				req.IPs = append(req.IPs, ip)
			}
			if caFile == "" {
				caFile = filepath.Join(dir, "ca.pem")
			}
			if caKey == "" {
				caKey = filepath.Join(dir, "ca-key.pem")
			}
			caPEM, err := os.ReadFile(caFile)
			if err != nil {
				return fmt.Errorf("--ca: %w (make one with 'fluxo tls ca create')", err)
			}
			caKeyPEM, err := os.ReadFile(caKey)
			if err != nil {
				return fmt.Errorf("--ca-key: %w", err)
			}
			certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
			if err := checkWritable(force, certPath, keyPath); err != nil {
				return err
			}
			certPEM, keyPEM, err := pki.NewCert(caPEM, caKeyPEM, req)
			if err != nil {
				return err
			}
			if err := writePair(dir, certPath, certPEM, keyPath, keyPEM, force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s and %s (%s certificate CN=%s)\n", certPath, keyPath, req.Kind, name)
			return nil
		},
	}
	f := c.Flags()
	f.BoolVar(&server, "server", false, "a broker's certificate (server and client authentication)")
	f.BoolVar(&client, "client", false, "a client's certificate (client authentication, principal User:CN=NAME)")
	f.StringVar(&name, "name", "", "common name; also names the files NAME.pem and NAME-key.pem")
	f.StringSliceVar(&ips, "ip", nil, "IP address the certificate is valid for (repeatable)")
	f.StringSliceVar(&dnsNames, "dns", nil, "DNS name the certificate is valid for (repeatable)")
	f.StringVar(&caFile, "ca", "", "CA certificate (default: ca.pem in --dir)")
	f.StringVar(&caKey, "ca-key", "", "CA private key (default: ca-key.pem in --dir)")
	f.IntVar(&days, "days", 365, "validity in days")
	f.StringVar(&dir, "dir", ".", "directory to write the files to")
	f.BoolVar(&force, "force", false, "overwrite existing files")
	return c
}

// checkWritable refuses, unless force, to touch a file that exists.
func checkWritable(force bool, paths ...string) error {
	if force {
		return nil
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists; remove it or use --force", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writePair writes a certificate and its key into dir (made if missing).
func writePair(dir, certPath string, certPEM []byte, keyPath string, keyPEM []byte, force bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeFile(keyPath, keyPEM, keyFileMode, force); err != nil {
		return err
	}
	return writeFile(certPath, certPEM, certFileMode, force)
}

// writeFile writes data to path with exactly mode, whatever the umask;
// without force an existing file is an error.
func writeFile(path string, data []byte, mode os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; remove it or use --force", path)
	}
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil { // an overwritten file keeps its old mode otherwise
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
