package deploy

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// launch is a fluxo process as a file of deploy/ starts it.
type launch struct {
	where string
	role  string   // core or edge
	args  []string // after the binary name, config paths made local
	env   []string // FLUXO_* variables with a plain value
	users string   // the users file shipped with it, if any (deploy/-relative)
	// cluster names the brokers that form one cluster and start together
	// (a StatefulSet's replicas, the compose file's core services); empty
	// for a process that runs alone.
	cluster string
}

// launches returns how deploy/ starts core and edge processes: the systemd
// units, the Kubernetes workloads, the compose services and the image's
// default command.
func launches(t *testing.T) []launch {
	t.Helper()
	var out []launch
	for _, role := range []string{"core", "edge"} {
		u, err := parseUnit(readFile(t, "systemd/fluxo-"+role+".service"))
		if err != nil {
			t.Fatal(err)
		}
		exec, _ := u.get("Service", "ExecStart")
		args := strings.Fields(exec)[1:]
		for i, a := range args {
			if a == unitConfDir+"/"+role+".yaml" {
				args[i] = deployPath("systemd/" + role + ".yaml")
			}
		}
		l := launch{where: "systemd fluxo-" + role + ".service", role: role, args: args}
		if role == "edge" {
			l.users = "systemd/users.yaml"
		}
		out = append(out, l)
	}

	m, k := readK8s(t)
	for name, pt := range m.podTemplates() {
		c := pt.Spec.Containers[0]
		cmd, _ := commandTree(t).resolve(c.Args)
		role := strings.TrimPrefix(cmd.path, "fluxo ")
		configPath := flagValues(cmd, c.Args)["config"]
		local := filepath.Join(t.TempDir(), filepath.Base(configPath))
		if err := os.WriteFile(local, mountedFile(t, name, pt, m, configPath), 0o600); err != nil {
			t.Fatal(err)
		}
		var args []string
		for _, a := range c.Args {
			args = append(args, strings.ReplaceAll(a, configPath, local))
		}
		var env []string
		for _, e := range c.Env {
			if strings.HasPrefix(e.Name, "FLUXO_") && e.ValueFrom == nil && !strings.Contains(e.Value, "$(") {
				env = append(env, e.Name+"="+e.Value)
			}
		}
		l := launch{where: "k8s " + name, role: role, args: args, env: env}
		if role == "edge" && len(k.SecretGenerator) > 0 && len(k.SecretGenerator[0].Files) > 0 {
			_, file, _ := strings.Cut(k.SecretGenerator[0].Files[0], "=")
			l.users = "k8s/" + file
		}
		sts := m.statefulSet(name)
		if sts == nil || sts.Spec.Replicas == nil || *sts.Spec.Replicas <= 1 {
			out = append(out, l)
			continue
		}
		// A StatefulSet's pods: the kubelet gives each its index as
		// FLUXO_NODE_ID (downward API), as the test does here.
		for i := range int(*sts.Spec.Replicas) {
			r := l
			r.where = fmt.Sprintf("%s pod %d", l.where, i)
			r.cluster = l.where
			r.env = append(append([]string(nil), l.env...), fmt.Sprintf("FLUXO_NODE_ID=%d", i))
			out = append(out, r)
		}
	}

	// In a container, the image's FLUXO_* variables apply too.
	img := readImage(t)
	var imageEnv []string
	for _, k := range sortedKeys(img.env) {
		if strings.HasPrefix(k, "FLUXO_") {
			imageEnv = append(imageEnv, k+"="+img.env[k])
		}
	}
	p := loadCompose(t)
	for _, name := range sortedKeys(p.Services) {
		s := p.Services[name]
		if !isFluxoService(s) {
			continue
		}
		cmd, _ := commandTree(t).resolve(s.Command)
		role := strings.TrimPrefix(cmd.path, "fluxo ")
		if role != "core" && role != "edge" {
			continue
		}
		env := append([]string(nil), imageEnv...)
		for _, k := range sortedKeys(s.Environment) {
			if v := s.Environment[k]; v != nil && strings.HasPrefix(k, "FLUXO_") {
				env = append(env, k+"="+*v)
			}
		}
		l := launch{where: "compose service " + name, role: role, args: s.Command, env: env}
		if role == "core" && flagValues(cmd, s.Command)["join"] != "" {
			l.cluster = "compose"
		}
		out = append(out, l)
	}
	out = append(out, launch{where: "Dockerfile CMD", role: "core", args: img.cmd, env: imageEnv})
	return out
}

// process is a running fluxo.
type process struct {
	name    string
	cmd     *exec.Cmd
	args    []string // fluxo's
	pid     int      // fluxo's: the command's, or its child's under a wrapper once ready
	wrapped bool     // pid is still the wrapper's
	log     string
	done    chan struct{}
	err     error // once done is closed
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startFluxo starts fluxo with args and waits until http://httpAddr/readyz
// answers 200. The process is stopped at the end of the test.
func startFluxo(t *testing.T, name, httpAddr string, env []string, args ...string) *process {
	t.Helper()
	return start(t, name, httpAddr, env, nil, args...)
}

// startTraced is startFluxo under strace -f, which writes the system calls
// of every thread of fluxo to traceFile.
func startTraced(t *testing.T, name, httpAddr, strace, traceFile string, args ...string) *process {
	t.Helper()
	return start(t, name, httpAddr, nil, []string{strace, "-f", "-qq", "-o", traceFile, "--"}, args...)
}

func start(t *testing.T, name, httpAddr string, env, wrapper []string, args ...string) *process {
	t.Helper()
	p := spawn(t, name, env, wrapper, args...)
	p.waitReady(t, httpAddr, 20*time.Second)
	return p
}

// spawn starts fluxo with args (under wrapper, if any) without waiting for
// it. The process is killed at the end of the test if still running.
func spawn(t *testing.T, name string, env, wrapper []string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	argv := append(append(append([]string(nil), wrapper...), fluxoBin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("%s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, pid: cmd.Process.Pid, log: logPath, done: make(chan struct{}), args: args, wrapped: wrapper != nil}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitReady waits until http://httpAddr/readyz answers 200, at most
// timeout, and then finds fluxo's pid under a wrapper.
func (p *process) waitReady(t *testing.T, httpAddr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			t.Fatalf("%s: exited before it was ready: %v\nfluxo %s\n%s", p.name, p.err, strings.Join(p.args, " "), p.output())
		default:
		}
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /readyz on %s: got %v, want 200 within %v\n%s", p.name, httpAddr, err, timeout, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p.wrapped {
		// fluxo is the wrapper's child: signals go to it.
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.pid, p.pid))
		f := strings.Fields(string(b))
		if err != nil || len(f) != 1 {
			t.Fatalf("%s: cannot find fluxo under its wrapper: %v %q", p.name, err, b)
		}
		if p.pid, err = strconv.Atoi(f[0]); err != nil {
			t.Fatal(err)
		}
		p.wrapped = false
	}
}

func (p *process) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// stop sends SIGTERM, as systemd, Docker and Kubernetes do, and checks that
// fluxo exits cleanly.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil {
		t.Errorf("%s: SIGTERM: %v", p.name, err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("%s: after SIGTERM: got %v, want exit status 0\n%s", p.name, p.err, p.output())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s: got no exit 30s after SIGTERM, want one\n%s", p.name, p.output())
	}
}

// addrs is the local addresses of a test's fluxo process.
type addrs struct {
	kafka, mqtt, http, serf, raft string
}

func newAddrs(t *testing.T) addrs {
	return addrs{
		kafka: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		mqtt:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		http:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		serf:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		raft:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
}

// localArgs returns l's arguments followed by flags that keep the process
// on loopback and in dir: on the command line they win over the file, the
// environment and the earlier flags.
func (l launch) localArgs(t *testing.T, dir string, a addrs, core, users string) []string {
	t.Helper()
	args := append([]string(nil), l.args...)
	args = append(args, "--http-addr", a.http, "--shutdown-timeout", "5s")
	switch l.role {
	case "core":
		// The cluster's addresses too: the names of a compose network or
		// of a Kubernetes namespace do not resolve here. --join is set
		// by the caller for a cluster (given twice, it would add up).
		// Settings with Kafka listeners get their one SSL listener
		// here; the others their plaintext --kafka-addr.
		args = append(withoutFlag(args, "join"), "--data-dir", filepath.Join(dir, "core"),
			"--serf-addr", a.serf, "--serf-advertise", a.serf, "--raft-addr", a.raft, "--raft-advertise", a.raft)
		if l.usesListeners(t) {
			args = append(withoutFlag(withoutFlag(args, "listeners"), "advertised-listeners"),
				"--listeners", "SSL://"+a.kafka, "--advertised-listeners", "SSL://"+a.kafka)
		} else {
			args = append(args, "--kafka-addr", a.kafka, "--kafka-advertise", a.kafka)
		}
	case "edge":
		args = append(args, "--mqtt-addr", a.mqtt, "--spool-dir", filepath.Join(dir, "spool"), "--core", core)
		if users != "" {
			args = append(args, "--users", users)
		}
	}
	return args
}

// deviceUsers makes a users file for the test's simulated fleet from a users
// file shipped in deploy/: "fluxo edge passwd" adds the user fleet to a copy
// (so the shipped file must be one it reads), whose ACL is then widened to
// every device of the fleet.
func deviceUsers(t *testing.T, shipped string) (path, user, password string) {
	t.Helper()
	user, password = "fleet", "deploy-test-secret"
	path = filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, readFile(t, shipped), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fluxoBin, "edge", "passwd", "--stdin", path, user)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fluxo edge passwd on a copy of %s: %v\n%s", shipped, err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	widened := strings.NewReplacer(`publish: ["+/%u/#"]`, `publish: ["#"]`, `subscribe: ["+/%u/cmd/#"]`, `subscribe: ["+/+/cmd/#"]`).Replace(string(b))
	if widened == string(b) {
		t.Fatalf("users file written by fluxo edge passwd: got\n%s\nwant the default ACL to widen", b)
	}
	if err := os.WriteFile(path, []byte(widened), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, user, password
}

// Every core and edge that deploy/ describes starts with its settings (on
// loopback, in a temporary folder), becomes ready and stops cleanly on
// SIGTERM, with the certificates its settings name made by fluxo tls. The
// brokers of a cluster (a StatefulSet's replicas, the compose file's core
// services) start together, each joining the others, form the cluster they
// describe, secured as described (TLS only, client certificates, ACLs): an
// edge of the same files forwards through TLS, and clients without a
// certificate or an ACL are refused. Then they stop together.
func TestProcessesStart(t *testing.T) {
	clusters := make(map[string][]launch)
	for _, l := range launches(t) {
		if l.cluster != "" {
			clusters[l.cluster] = append(clusters[l.cluster], l)
			continue
		}
		t.Run(l.where, func(t *testing.T) {
			t.Parallel()
			l := l.withTLS(t, t.TempDir())
			a := newAddrs(t)
			var users string
			if l.users != "" {
				users, _, _ = deviceUsers(t, l.users)
			}
			p := startFluxo(t, l.where, a.http, l.env, l.localArgs(t, t.TempDir(), a, fmt.Sprintf("127.0.0.1:%d", freePort(t)), users)...)
			p.stop(t)
		})
	}
	for name, ls := range clusters {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, ls, nil)
			c.check(t)
			switch {
			case name == "compose":
				secureCompose(t, c)
			case strings.HasPrefix(name, "k8s "):
				names := certNames(ls[0].settingsText(t))
				if len(names) != 1 {
					t.Fatalf("%s: got certificates %v, want the brokers' one", name, names)
				}
				secureK8s(t, c, names[0])
			}
			c.stop(t)
		})
	}
}
