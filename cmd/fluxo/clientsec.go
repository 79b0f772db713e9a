package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/fluxo-io/fluxo/internal/kafkaprops"
	"github.com/fluxo-io/fluxo/internal/pki"
)

// How a Kafka client of fluxo (the edge's and the bridge's uplink and
// downlink, the CLI's commands) secures its connections to the brokers:
// TLS (a CA to check the brokers with, a client certificate for mutual TLS)
// and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), from flags or from a
// librdkafka/Java properties file (--client-config) so that a kcat or
// Confluent configuration can be reused as it is. Flags win over the file.
//
// The SASL password never comes from the command line, where ps would show
// it: from --sasl-password-file, the variable FLUXO_SASL_PASSWORD (read
// directly, not through a flag) or sasl.password in the properties file.

// clientSecHelp ends the --help of the CLI's Kafka client commands.
const clientSecHelp = `Secured clusters: --tls-ca turns TLS on (--tls-cert and --tls-key add a
client certificate), --sasl-mechanism PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 with
--sasl-user turns SASL on; or --client-config names a librdkafka/Java
properties file (as kcat -F takes; flags win over it). The SASL password is
never a flag: it comes from --sasl-password-file, else from
FLUXO_SASL_PASSWORD, else from sasl.password in --client-config.`

// secFlags names the security flags of one kind of client.
type secFlags struct {
	prefix      string // "" for the CLI, "core-" for edge and bridge
	passwordEnv string // read directly: there is no password flag
	brokers     string // the flag bootstrap.servers stands in for
}

const (
	saslPasswordEnv     = envPrefix + "SASL_PASSWORD"
	coreSASLPasswordEnv = envPrefix + "CORE_SASL_PASSWORD"
	clientConfigFlag    = "client-config"
)

var (
	// cliSec is the CLI's: --tls-ca, --sasl-mechanism, ... next to --brokers.
	cliSec = secFlags{prefix: "", passwordEnv: saslPasswordEnv, brokers: "brokers"}
	// coreSec is fluxo edge's and fluxo bridge's: --core-tls-ca, ... next
	// to --core.
	coreSec = secFlags{prefix: "core-", passwordEnv: coreSASLPasswordEnv, brokers: "core"}
)

func (s secFlags) name(flag string) string { return "--" + s.prefix + flag }

// add declares the flags on f.
func (s secFlags) add(f *pflag.FlagSet) {
	f.String(s.prefix+"tls-ca", "", "CA certificates (PEM) to check the brokers' certificates with; turns TLS on (TLS without it: the system's CAs)")
	f.String(s.prefix+"tls-cert", "", "client certificate (PEM) for mutual TLS; turns TLS on (needs --"+s.prefix+"tls-key)")
	f.String(s.prefix+"tls-key", "", "private key (PEM, not encrypted) of --"+s.prefix+"tls-cert")
	f.String(s.prefix+"sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (needs --"+s.prefix+"sasl-user and a password)")
	f.String(s.prefix+"sasl-user", "", "SASL user name")
	f.String(s.prefix+"sasl-password-file", "", "file holding the SASL password (one line); the password is never a flag: else it is read from "+s.passwordEnv)
	f.String(clientConfigFlag, "", "librdkafka/Java client properties file (security.protocol, sasl.*, ssl.*, bootstrap.servers) as kcat -F takes; flags win over it")
}

// secInput is what the flags of a command hold.
type secInput struct {
	s                                    secFlags
	caFile, certFile, keyFile            string
	mechanism, user, passwordFile, props string
	brokersSet                           bool // --brokers/--core was given (flag, env or file)
}

// read returns the values of s's flags in fs; a flag fs lacks is empty.
func (s secFlags) read(fs *pflag.FlagSet) secInput {
	get := func(name string) string {
		if f := fs.Lookup(name); f != nil {
			return strings.TrimSpace(f.Value.String())
		}
		return ""
	}
	in := secInput{s: s,
		caFile: get(s.prefix + "tls-ca"), certFile: get(s.prefix + "tls-cert"), keyFile: get(s.prefix + "tls-key"),
		mechanism: get(s.prefix + "sasl-mechanism"), user: get(s.prefix + "sasl-user"),
		passwordFile: get(s.prefix + "sasl-password-file"), props: get(clientConfigFlag)}
	in.brokersSet = fs.Changed(s.brokers)
	return in
}

// clientSecurity is how a client connects: nil TLS and SASL for plaintext.
type clientSecurity struct {
	TLS  *tls.Config
	SASL sasl.Mechanism
	// Brokers is bootstrap.servers of --client-config, when --brokers
	// (--core) was not given; nil otherwise.
	Brokers []string
}

// opts returns the franz-go options that apply sec, logging a refused
// SASL authentication to log.
func (sec clientSecurity) opts(log zerolog.Logger) []kgo.Opt {
	var opts []kgo.Opt
	if sec.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(sec.TLS))
	}
	if sec.SASL != nil {
		opts = append(opts, kgo.SASL(sec.SASL), kgo.WithHooks(&saslClosedHook{log: log, mech: sec.SASL.Name()}))
	}
	return opts
}

// saslClosedHook logs, once, when a broker closes the connection while
// the client authenticates: Kafka before SaslAuthenticate v1 (and some
// brokers still) refuse credentials that way, and the request that needed
// the connection then fails with a bare EOF.
type saslClosedHook struct {
	log  zerolog.Logger
	mech string
	once sync.Once
}

// OnBrokerRead implements kgo.HookBrokerRead.
func (h *saslClosedHook) OnBrokerRead(meta kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err == nil || (key != kmsg.SASLAuthenticate.Int16() && key != kmsg.SASLHandshake.Int16()) {
		return
	}
	h.once.Do(func() {
		h.log.Error().Err(err).Str("broker", net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))).Str("mechanism", h.mech).
			Msg("sasl: the broker closed the connection during authentication: check the user, the password and the mechanism")
	})
}

// clientSecurityOf returns the security of s's flags in cmd, reading the
// password variable from the environment and logging to cmd's logger.
func clientSecurityOf(cmd *cobra.Command, s secFlags) (clientSecurity, error) {
	return s.read(cmd.Flags()).resolve(os.Getenv, logger(cmd))
}

// setting is one value and where it came from, for error messages.
type setting struct{ value, from string }

// pick returns the flag's value if set, else the file's if use.
func (in secInput) pick(flag, flagValue string, use bool, key, fileValue string) setting {
	if flagValue != "" {
		return setting{flagValue, in.s.name(flag)}
	}
	if use && fileValue != "" {
		return setting{fileValue, key + " in --" + clientConfigFlag}
	}
	return setting{}
}

// resolve merges the flags and the properties file into a client
// security, checking that the settings go together.
func (in secInput) resolve(getenv func(string) string, log zerolog.Logger) (clientSecurity, error) {
	var sec clientSecurity
	props := kafkaprops.Client{VerifyCertificate: true, VerifyHostname: true}
	if in.props != "" {
		data, err := os.ReadFile(in.props)
		if err != nil {
			return sec, fmt.Errorf("--%s: %w", clientConfigFlag, err)
		}
		if props, err = kafkaprops.ParseClient(data); err != nil {
			return sec, fmt.Errorf("--%s %s: %w", clientConfigFlag, in.props, err)
		}
		for _, key := range props.Unknown {
			log.Warn().Str("file", in.props).Str("key", key).Msg("client config key not used")
		}
		if !props.Protocol.TLS() && (props.CALocation != "" || props.CertificateLocation != "" || props.KeyLocation != "") {
			log.Warn().Str("file", in.props).Stringer("security.protocol", props.Protocol).Msg("ssl.* settings ignored: the security protocol does not use TLS")
		}
		if !props.Protocol.SASL() && (props.SASLMechanism != "" || props.SASLUsername != "") {
			log.Warn().Str("file", in.props).Stringer("security.protocol", props.Protocol).Msg("sasl.* settings ignored: the security protocol does not use SASL")
		}
		if !in.brokersSet {
			sec.Brokers = props.BootstrapServers
		}
	}
	fileTLS, fileSASL := props.Protocol.TLS(), props.Protocol.SASL()

	// SASL.
	mech := in.pick("sasl-mechanism", in.mechanism, fileSASL, "sasl.mechanism", props.SASLMechanism)
	user := in.pick("sasl-user", in.user, fileSASL, "sasl.username", props.SASLUsername)
	var password setting
	switch {
	case in.passwordFile != "":
		data, err := os.ReadFile(in.passwordFile)
		if err != nil {
			return sec, fmt.Errorf("%s: %w", in.s.name("sasl-password-file"), err)
		}
		password = setting{strings.TrimRight(string(data), "\r\n"), in.s.name("sasl-password-file")}
		if password.value == "" {
			return sec, fmt.Errorf("%s: %s is empty", in.s.name("sasl-password-file"), in.passwordFile)
		}
	case getenv(in.s.passwordEnv) != "":
		password = setting{getenv(in.s.passwordEnv), in.s.passwordEnv}
	case fileSASL && props.SASLPassword != "":
		password = setting{props.SASLPassword, "sasl.password in --" + clientConfigFlag}
	}
	orFile := func(key string) string { return " (or " + key + " in --" + clientConfigFlag + ")" }
	switch {
	case mech.value == "" && fileSASL:
		return sec, fmt.Errorf("--%s: security.protocol %s needs sasl.mechanism (or %s)", clientConfigFlag, props.Protocol, in.s.name("sasl-mechanism"))
	case mech.value == "" && user.value != "":
		return sec, fmt.Errorf("%s: a SASL user needs %s%s", user.from, in.s.name("sasl-mechanism"), orFile("sasl.mechanism"))
	case mech.value == "" && in.passwordFile != "":
		return sec, fmt.Errorf("%s: a SASL password needs %s%s", in.s.name("sasl-password-file"), in.s.name("sasl-mechanism"), orFile("sasl.mechanism"))
	case mech.value != "" && user.value == "":
		return sec, fmt.Errorf("%s %s: needs %s%s", mech.from, mech.value, in.s.name("sasl-user"), orFile("sasl.username"))
	case mech.value != "" && password.value == "":
		return sec, fmt.Errorf("%s %s: needs a password: %s, %s%s", mech.from, mech.value, in.s.name("sasl-password-file"), in.s.passwordEnv, orFile("sasl.password"))
	}
	if mech.value != "" {
		m, err := kafkaprops.ParseMechanism(mech.value)
		if err != nil {
			return sec, fmt.Errorf("%s: %w", mech.from, err)
		}
		switch m {
		case "PLAIN":
			sec.SASL = plain.Auth{User: user.value, Pass: password.value}.AsMechanism()
		case "SCRAM-SHA-256":
			sec.SASL = scram.Auth{User: user.value, Pass: password.value}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			sec.SASL = scram.Auth{User: user.value, Pass: password.value}.AsSha512Mechanism()
		}
	}

	// TLS.
	ca := in.pick("tls-ca", in.caFile, fileTLS, "ssl.ca.location", props.CALocation)
	cert := in.pick("tls-cert", in.certFile, fileTLS, "ssl.certificate.location", props.CertificateLocation)
	key := in.pick("tls-key", in.keyFile, fileTLS, "ssl.key.location", props.KeyLocation)
	switch {
	case cert.value != "" && key.value == "":
		return sec, fmt.Errorf("%s: a client certificate needs %s%s", cert.from, in.s.name("tls-key"), orFile("ssl.key.location"))
	case key.value != "" && cert.value == "":
		return sec, fmt.Errorf("%s: a client key needs %s%s", key.from, in.s.name("tls-cert"), orFile("ssl.certificate.location"))
	}
	if !fileTLS && ca.value == "" && cert.value == "" {
		return sec, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca.value != "" && ca.value != "probe" { // librdkafka's probe: the system's CAs
		pool, err := loadCAs(ca.value)
		if err != nil {
			return sec, fmt.Errorf("%s: %w", ca.from, err)
		}
		tc.RootCAs = pool
	}
	if cert.value != "" {
		pair, err := loadKeyPair(cert, key)
		if err != nil {
			return sec, err
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	switch {
	case !props.VerifyCertificate:
		log.Warn().Str("file", in.props).Msg("TLS: the brokers' certificates are not checked (enable.ssl.certificate.verification=false)")
		tc.InsecureSkipVerify = true
	case !props.VerifyHostname:
		// The chain is checked, not the host name.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = verifyChainOnly(tc.RootCAs)
	}
	sec.TLS = tc
	return sec, nil
}

// loadCAs reads the PEM certificates of a file, or of every file in a
// directory (librdkafka takes both).
func loadCAs(path string) (*x509.CertPool, error) {
	files := []string{path}
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if st.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		files = files[:0]
		for _, e := range entries {
			if !e.IsDir() {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	pool := x509.NewCertPool()
	found := false
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		found = pool.AppendCertsFromPEM(data) || found
	}
	if !found {
		return nil, fmt.Errorf("no PEM certificate in %s", path)
	}
	return pool, nil
}

// loadKeyPair reads a client certificate and its key; an encrypted key is
// refused with the way out.
func loadKeyPair(cert, key setting) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(cert.value)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", cert.from, err)
	}
	keyPEM, err := os.ReadFile(key.value)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: %w", key.from, err)
	}
	if _, err := pki.ParseKey(keyPEM); errors.Is(err, pki.ErrEncryptedKey) {
		return tls.Certificate{}, fmt.Errorf("%s %s: encrypted private keys are not supported; decrypt it with 'openssl pkey -in %s -out KEY.pem' and keep that file private", key.from, key.value, key.value)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s and %s: %w", cert.from, key.from, err)
	}
	return pair, nil
}

// verifyChainOnly checks the broker's certificate chain against roots
// (nil: the system's) without checking the host name, as librdkafka does
// with ssl.endpoint.identification.algorithm=none.
func verifyChainOnly(roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tls: the broker sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		return err
	}
}
