package deploy

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// shippedTLSDir is where deploy/ keeps certificates: the systemd settings
// read them there, the compose services mount the volume tls there, and the
// Kubernetes pods their Secret.
const shippedTLSDir = "/etc/fluxo/tls"

var (
	// tlsRef matches a certificate or key named in shipped settings.
	tlsRef = regexp.MustCompile(`/etc/fluxo/tls/([A-Za-z0-9._-]+)\.pem`)
	// listenersKey matches the listeners setting of a YAML configuration.
	listenersKey = regexp.MustCompile(`(?m)^\s*listeners:`)
)

// configArg returns the --config file of args, or "".
func configArg(args []string) string {
	for i, a := range args {
		if a == "--config" && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			return v
		}
	}
	return ""
}

// settingsText is all that l's settings say: its arguments, its
// environment and its configuration file.
func (l launch) settingsText(t *testing.T) string {
	t.Helper()
	text := strings.Join(l.args, "\n") + "\n" + strings.Join(l.env, "\n")
	if p := configArg(l.args); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		text += "\n" + string(b)
	}
	return text
}

// usesListeners reports whether l's settings name the Kafka listeners
// (--listeners) rather than one plaintext --kafka-addr.
func (l launch) usesListeners(t *testing.T) bool {
	t.Helper()
	for _, a := range l.args {
		if a == "--listeners" || strings.HasPrefix(a, "--listeners=") {
			return true
		}
	}
	for _, e := range l.env {
		if strings.HasPrefix(e, "FLUXO_LISTENERS=") {
			return true
		}
	}
	if p := configArg(l.args); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return listenersKey.Match(b)
	}
	return false
}

// certNames returns the certificates (NAME of NAME.pem, the CA's aside)
// that l's settings name under shippedTLSDir.
func certNames(text string) []string {
	var names []string
	for _, m := range tlsRef.FindAllStringSubmatch(text, -1) {
		name := strings.TrimSuffix(m[1], "-key")
		if name != "ca" && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// runFluxo runs the fluxo binary with args (and env) and returns its
// output; it gives up after a minute.
func runFluxo(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, fluxoBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustFluxo(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runFluxo(t, nil, args...)
	if err != nil {
		t.Fatalf("fluxo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// makeCerts makes, with "fluxo tls" as deploy/README.md does, a CA in dir
// if it has none and a certificate for every name that dir lacks: a
// broker's (server) valid for 127.0.0.1, where the test runs it, or a
// client's.
func makeCerts(t *testing.T, dir string, server bool, names ...string) {
	t.Helper()
	if !exists(filepath.Join(dir, "ca.pem")) {
		mustFluxo(t, "tls", "ca", "create", "--dir", dir)
	}
	for _, name := range names {
		if exists(filepath.Join(dir, name+".pem")) {
			continue
		}
		args := []string{"tls", "cert", "create", "--name", name, "--dir", dir}
		if server {
			args = append(args, "--server", "--ip", "127.0.0.1", "--dns", "localhost")
		} else {
			args = append(args, "--client")
		}
		mustFluxo(t, args...)
	}
}

// withTLS returns l with the certificates its settings name made in dir
// (see makeCerts) and every path under shippedTLSDir moved to dir, in its
// arguments, environment and a copy of its configuration file.
func (l launch) withTLS(t *testing.T, dir string) launch {
	t.Helper()
	names := certNames(l.settingsText(t))
	if len(names) == 0 {
		return l
	}
	makeCerts(t, dir, l.role == "core", names...)
	move := strings.NewReplacer(shippedTLSDir+"/", dir+"/")
	r := l
	r.args, r.env = nil, nil
	config := configArg(l.args)
	local := ""
	if config != "" {
		b, err := os.ReadFile(config)
		if err != nil {
			t.Fatal(err)
		}
		local = filepath.Join(t.TempDir(), filepath.Base(config))
		if err := os.WriteFile(local, []byte(move.Replace(string(b))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range l.args {
		if config != "" {
			a = strings.ReplaceAll(a, config, local)
		}
		r.args = append(r.args, move.Replace(a))
	}
	for _, e := range l.env {
		r.env = append(r.env, move.Replace(e))
	}
	return r
}

// clientFlags returns the flags of a fluxo client command that reaches the
// cluster c with the client certificate name, made in the cluster's TLS
// folder.
func (c *testCluster) clientFlags(t *testing.T, name string) []string {
	t.Helper()
	makeCerts(t, c.tls, false, name)
	return []string{"--brokers", c.brokers(), "--tls-ca", filepath.Join(c.tls, "ca.pem"),
		"--tls-cert", filepath.Join(c.tls, name+".pem"), "--tls-key", filepath.Join(c.tls, name+"-key.pem")}
}

// brokers returns the cluster's Kafka addresses, HOST:PORT,...
func (c *testCluster) brokers() string {
	var out []string
	for _, a := range c.addrs {
		out = append(out, a.kafka)
	}
	return strings.Join(out, ",")
}

// edgeACLs are the ACLs an edge needs, as deploy/README.md adds them: write
// (and create) its topics, read commands, and its downlink's consumer group
// (fluxo-edge-EDGE_ID-downlink).
var edgeACLs = [][]string{
	{"--operation", "write,create", "--topic", "telemetry", "--topic", "alarms", "--topic", "command-acks"},
	{"--operation", "read", "--topic", "commands"},
	{"--operation", "read", "--group", "fluxo-edge-", "--prefixed"},
}

// grantEdge adds edgeACLs for principal, as the admin.
func grantEdge(t *testing.T, admin []string, principal string) {
	t.Helper()
	for _, acl := range edgeACLs {
		mustFluxo(t, append(append(append([]string{"acl", "add"}, admin...), "--principal", principal), acl...)...)
	}
}

// checkRefused checks that the secured cluster c turns away a plaintext
// client, a TLS client without a certificate, and a client whose
// certificate the CA signed but that no ACL allows to write.
func (c *testCluster) checkRefused(t *testing.T) {
	t.Helper()
	first := c.addrs[0].kafka
	if out, err := runFluxo(t, nil, "topic", "list", "--brokers", first); err == nil {
		t.Errorf("%s: fluxo topic list in plaintext: got success\n%s\nwant it refused", c.name, out)
	}
	if out, err := runFluxo(t, nil, "topic", "list", "--brokers", first, "--tls-ca", filepath.Join(c.tls, "ca.pem")); err == nil || !strings.Contains(out, "certificate required") {
		t.Errorf("%s: fluxo topic list over TLS without a client certificate: got %v\n%s\nwant it refused (certificate required)", c.name, err, out)
	}
	cmd := exec.Command(fluxoBin, append([]string{"produce", "alarms"}, c.clientFlags(t, "intruder")...)...)
	cmd.Stdin = strings.NewReader("let me in\n")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "TOPIC_AUTHORIZATION_FAILED") {
		t.Errorf("%s: fluxo produce as User:CN=intruder (no ACL): got %v\n%s\nwant TOPIC_AUTHORIZATION_FAILED", c.name, err, out)
	}
}

// checkEdgeForwards starts the edge l with its client certificate (made in
// the cluster's TLS folder) towards the secured cluster c, publishes
// alarms to it with simulated devices and reads them back with consume
// (fluxo consume arguments after the topic, brokers and certificates
// included).
func (c *testCluster) checkEdgeForwards(t *testing.T, l launch, consume []string) {
	t.Helper()
	l = l.withTLS(t, c.tls)
	a := newAddrs(t)
	var users, user, password string
	if l.users != "" {
		users, user, password = deviceUsers(t, l.users)
	}
	edge := startFluxo(t, "edge for "+c.name, a.http, l.env, l.localArgs(t, t.TempDir(), a, c.brokers(), users)...)
	devices := exec.Command(fluxoBin, "devices", "--broker", "tcp://"+a.mqtt, "--sensors", "2", "--cars", "0", "--panels", "1",
		"--rate", "5", "--alarm-rate", "4", "--duration", "2s")
	if user != "" {
		devices.Args = append(devices.Args, "--username", user)
		devices.Env = append(os.Environ(), "FLUXO_PASSWORD="+password)
	}
	if out, err := devices.CombinedOutput(); err != nil {
		t.Fatalf("fluxo devices: %v\n%s\nedge:\n%s", err, out, edge.output())
	}
	args := append(append([]string{"consume", "alarms"}, consume...), "--from-beginning", "--count", "1", "--timeout", "30s")
	out, err := runFluxo(t, nil, args...)
	if err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("%s: fluxo %s: got %v and %q, want an alarm the edge forwarded over TLS\nedge:\n%s", c.name, strings.Join(args, " "), err, out, edge.output())
	}
	edge.stop(t)
}

// composeScript returns the shell script of a one-shot compose service
// (the image's tools stage runs its command with sh -ec).
func composeScript(t *testing.T, service string) string {
	t.Helper()
	p := loadCompose(t)
	s, ok := p.Services[service]
	if !ok {
		t.Fatalf("docker/compose.yaml: got no service %s, want one", service)
	}
	if s.Build == nil || s.Build.Target != "tools" || len(s.Command) != 1 {
		t.Fatalf("docker/compose.yaml: service %s: got build %+v and command %q, want the tools stage running one script", service, s.Build, s.Command)
	}
	return s.Command[0]
}

// runScript runs a compose service's script with sh, fluxo on the PATH,
// and dirs (container path → local path) moved.
func runScript(t *testing.T, script string, moves ...string) string {
	t.Helper()
	cmd := exec.Command("sh", "-ec", strings.NewReplacer(moves...).Replace(script))
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(fluxoBin)+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("compose script: %v\n%s", err, out)
	}
	return string(out)
}

// The compose service certs makes, with fluxo tls, the CA (its key in a
// volume of its own) and every certificate the other services name, each
// broker's for its service name; run again, it keeps them all.
func TestComposeCerts(t *testing.T) {
	script := composeScript(t, "certs")
	root := t.TempDir()
	ca, tlsDir := filepath.Join(root, "ca"), filepath.Join(root, "tls")
	for _, d := range []string{ca, tlsDir} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	moves := []string{"/etc/fluxo/ca", ca, shippedTLSDir, tlsDir}
	runScript(t, script, moves...)
	first := make(map[string][]byte)
	entries, _ := os.ReadDir(tlsDir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(tlsDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		first[e.Name()] = b
		fi, _ := e.Info()
		if strings.HasSuffix(e.Name(), "-key.pem") && fi.Mode().Perm() != 0o600 {
			t.Errorf("tls volume: %s: mode got %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
	if _, ok := first["ca-key.pem"]; ok {
		t.Errorf("tls volume: got ca-key.pem, want the CA's key only in the certs service's own volume")
	}
	if _, ok := first["ca.pem"]; !ok {
		t.Errorf("tls volume: got no ca.pem, want the CA certificate")
	}

	// Every file a service names is there; a broker's certificate names
	// its service.
	p := loadCompose(t)
	for _, name := range sortedKeys(p.Services) {
		s := p.Services[name]
		for _, m := range tlsRef.FindAllStringSubmatch(strings.Join(s.Command, " "), -1) {
			if _, ok := first[m[1]+".pem"]; !ok {
				t.Errorf("service %s: names %s, got no such file from the certs service", name, m[0])
			}
		}
		if !isFluxoService(s) || len(s.Command) == 0 || s.Command[0] != "core" {
			continue
		}
		block, _ := pem.Decode(first[name+".pem"])
		if block == nil {
			t.Errorf("service %s: got no certificate %s.pem, want one", name, name)
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(cert.DNSNames, name) || cert.Subject.CommonName != name {
			t.Errorf("service %s: certificate got CN %q and DNS names %v, want CN and a DNS name %s", name, cert.Subject.CommonName, cert.DNSNames, name)
		}
	}

	runScript(t, script, moves...)
	entries, _ = os.ReadDir(tlsDir)
	if len(entries) != len(first) {
		t.Errorf("certs run again: got %d files, want the %d of the first run", len(entries), len(first))
	}
	for name, b := range first {
		if again, _ := os.ReadFile(filepath.Join(tlsDir, name)); !bytes.Equal(again, b) {
			t.Errorf("certs run again: %s changed, want it kept", name)
		}
	}
}

// composeBrokers replaces in a compose script the brokers' service names
// and Kafka port with the test's addresses of them (sorted by service
// name, as launches are).
func composeBrokers(t *testing.T, c *testCluster) []string {
	t.Helper()
	p := loadCompose(t)
	var moves []string
	var i int
	for _, name := range sortedKeys(p.Services) {
		s := p.Services[name]
		if !isFluxoService(s) || len(s.Command) == 0 || s.Command[0] != "core" {
			continue
		}
		cmd, _ := commandTree(t).resolve(s.Command)
		adv := flagValues(cmd, s.Command)["advertised-listeners"]
		_, hostPort, _ := strings.Cut(adv, "://")
		moves = append(moves, hostPort, c.addrs[i].kafka)
		i++
	}
	if i != len(c.addrs) {
		t.Fatalf("compose: got %d core services, want %d", i, len(c.addrs))
	}
	return moves
}

// secureCompose checks the compose cluster c as the site runs it: the
// bootstrap service's ACLs, added as the admin, let the edge (with its
// client certificate) forward alarms that the alarm consumer reads with
// its own; the others are refused.
func secureCompose(t *testing.T, c *testCluster) {
	t.Helper()
	c.checkRefused(t)
	makeCerts(t, c.tls, false, "admin")
	moves := append(composeBrokers(t, c), shippedTLSDir, c.tls)
	runScript(t, composeScript(t, "bootstrap"), moves...)

	p := loadCompose(t)
	s := p.Services["alarm-consumer"]
	cmd, _ := commandTree(t).resolve(s.Command)
	var consume []string
	for _, a := range withoutFlag(s.Command[2:], "brokers") {
		consume = append(consume, strings.ReplaceAll(a, shippedTLSDir, c.tls))
	}
	consume = append(consume, "--brokers", c.brokers())
	makeCerts(t, c.tls, false, certNames(strings.Join(s.Command, " "))...)
	if flagValues(cmd, s.Command)["tls-cert"] == "" {
		t.Errorf("compose service alarm-consumer: got no --tls-cert, want its client certificate")
	}
	for _, l := range launches(t) {
		if l.where == "compose service edge" {
			c.checkEdgeForwards(t, l, consume)
		}
	}
}

// secureK8s checks the Kubernetes cluster c: the edge Deployment, with
// the ACLs of deploy/README.md added with the brokers' own certificate (a
// super user), forwards alarms over TLS; the others are refused.
func secureK8s(t *testing.T, c *testCluster, brokerCert string) {
	t.Helper()
	c.checkRefused(t)
	var edge launch
	for _, l := range launches(t) {
		if l.role == "edge" && strings.HasPrefix(l.where, "k8s ") {
			edge = l
		}
	}
	names := certNames(edge.settingsText(t))
	if len(names) != 1 {
		t.Fatalf("k8s edge: got certificates %v, want its client certificate", names)
	}
	admin := c.clientFlags(t, brokerCert)
	grantEdge(t, admin, "User:CN="+names[0])
	c.checkEdgeForwards(t, edge, admin)
}

func TestCertNames(t *testing.T) {
	got := certNames("--tls-cert=/etc/fluxo/tls/core-1.pem --tls-key /etc/fluxo/tls/core-1-key.pem\ntls-ca: /etc/fluxo/tls/ca.pem\n/etc/fluxo/tls/edge.pem")
	if want := []string{"core-1", "edge"}; !slices.Equal(got, want) {
		t.Errorf("certNames: got %v, want %v", got, want)
	}
	if got := fmt.Sprint(certNames("data-dir: /var/lib/fluxo")); got != "[]" {
		t.Errorf("certNames without TLS: got %s, want []", got)
	}
}
