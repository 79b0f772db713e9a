package deploy

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// withoutFlag returns args without the flag name, in its --name=value and
// --name value forms.
func withoutFlag(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--"+name:
			i++ // its value
		case strings.HasPrefix(a, "--"+name+"="):
		default:
			out = append(out, a)
		}
	}
	return out
}

func TestWithoutFlag(t *testing.T) {
	got := strings.Join(withoutFlag([]string{"core", "--join=a:1,b:2", "--node-id", "1", "--join", "c:3", "--joined"}, "join"), " ")
	if want := "core --node-id 1 --joined"; got != want {
		t.Errorf("withoutFlag: got %q, want %q", got, want)
	}
}

// testCluster is the brokers of one cluster, running on loopback.
type testCluster struct {
	name  string
	nodes []*process
	addrs []addrs
	tls   string // the folder of the cluster's CA and certificates
}

// startCluster starts the brokers ls describe together, each on its own
// loopback ports and joining all of them, and waits until every one is
// ready. With traces, broker i runs under strace writing traces[i].
func startCluster(t *testing.T, ls []launch, traces []string) *testCluster {
	t.Helper()
	c := &testCluster{name: ls[0].cluster, tls: t.TempDir()}
	var join []string
	for range ls {
		a := newAddrs(t)
		c.addrs = append(c.addrs, a)
		join = append(join, a.serf)
	}
	var strace string
	if traces != nil {
		var err error
		if strace, err = exec.LookPath("strace"); err != nil {
			t.Fatal(err)
		}
	}
	for i, l := range ls {
		l = l.withTLS(t, c.tls)
		// Leaving takes up to Serf's broadcast timeout (5s) when the
		// others have gone first: give the shutdown more than that.
		args := append(l.localArgs(t, t.TempDir(), c.addrs[i], "", ""), "--join", strings.Join(join, ","), "--shutdown-timeout", "20s")
		var wrapper []string
		if traces != nil {
			wrapper = []string{strace, "-f", "-qq", "-o", traces[i], "--"}
		}
		c.nodes = append(c.nodes, spawn(t, l.where, l.env, wrapper, args...))
	}
	// A broker serves once the cluster's metadata is there: the cluster
	// must have formed (or 30s have passed, which check catches).
	for i, p := range c.nodes {
		p.waitReady(t, c.addrs[i].http, 90*time.Second)
	}
	return c
}

// check checks that every broker sees all of them alive and that exactly one
// is the controller: with "fluxo cluster members", as deploy/README.md shows
// it, and on the metrics the alerts use.
func (c *testCluster) check(t *testing.T) {
	t.Helper()
	n := len(c.nodes)
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command(fluxoBin, "cluster", "members", "--http", c.addrs[0].http).CombinedOutput()
		alive, controllers := 0, 0
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[1] == "alive" {
				alive++
			}
			controllers += strings.Count(line, "(controller)")
		}
		if err == nil && alive == n && controllers == 1 {
			break
		}
		last = fmt.Sprintf("%v\n%s", err, out)
		if time.Now().After(deadline) {
			t.Fatalf("%s: fluxo cluster members: got\n%s\nwant %d brokers alive and one controller\n%s", c.name, last, n, c.nodes[0].output())
		}
		time.Sleep(500 * time.Millisecond)
	}
	for {
		var controllers float64
		var problems []string
		for i := range c.nodes {
			_, samples := scrape(t, "http://"+c.addrs[i].http+"/metrics")
			controllers += samples["fluxo_cluster_is_controller"]
			if got := samples[`fluxo_cluster_members{status="alive"}`]; got != float64(n) {
				problems = append(problems, fmt.Sprintf("%s: fluxo_cluster_members{status=\"alive\"} got %v, want %d", c.nodes[i].name, got, n))
			}
			if got := samples[`fluxo_cluster_brokers{state="live"}`]; got != float64(n) {
				problems = append(problems, fmt.Sprintf("%s: fluxo_cluster_brokers{state=\"live\"} got %v, want %d", c.nodes[i].name, got, n))
			}
		}
		if controllers != 1 {
			problems = append(problems, fmt.Sprintf("sum of fluxo_cluster_is_controller got %v, want 1", controllers))
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: metrics:\n%s", c.name, strings.Join(problems, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// stop sends SIGTERM to every broker at once, as a "docker compose down" or
// a StatefulSet's deletion does, and checks that each exits cleanly.
func (c *testCluster) stop(t *testing.T) {
	t.Helper()
	for _, p := range c.nodes {
		if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil {
			t.Errorf("%s: SIGTERM: %v", p.name, err)
		}
	}
	for _, p := range c.nodes {
		select {
		case <-p.done:
			if p.err != nil {
				t.Errorf("%s: after SIGTERM: got %v, want exit status 0\n%s", p.name, p.err, p.output())
			}
		case <-time.After(40 * time.Second):
			t.Errorf("%s: got no exit 40s after SIGTERM, want one\n%s", p.name, p.output())
		}
	}
}

const (
	threeBegin = "# --- cluster of three ---"
	threeEnd   = "# --- end of cluster of three ---"
)

// serverAddr matches the example servers' private addresses in
// systemd/core.yaml: 10.0.0.11 for server 1, 10.0.0.12, 10.0.0.13.
var serverAddr = regexp.MustCompile(`10\.0\.0\.1([1-9])`)

// threeServers returns the settings of systemd/core.yaml for server i of
// three, made as its comments say: the lines between the "cluster of three"
// marks uncommented in place of the single-node ones, node-id i and the
// server's own address in serf-addr and raft-addr, its own name (core1,
// core2, core3) in its certificate's files and advertised listener, a
// gossip key in place of KEY.
func threeServers(t *testing.T, gossipKey string) [][]byte {
	t.Helper()
	text := string(readFile(t, "systemd/core.yaml"))
	begin, end := strings.Index(text, threeBegin), strings.Index(text, threeEnd)
	if begin < 0 || end < begin {
		t.Fatalf("systemd/core.yaml: got no lines between %q and %q, want the three-server settings", threeBegin, threeEnd)
	}
	commented := text[strings.Index(text[begin:], "\n")+begin+1 : strings.LastIndex(text[:end], "\n")+1]
	replaced := make(map[string]bool)
	var block []string
	var marked bool
	for _, line := range strings.Split(strings.TrimSuffix(commented, "\n"), "\n") {
		indent, rest, ok := strings.Cut(line, "# ")
		if !ok || strings.TrimSpace(indent) != "" {
			t.Fatalf("systemd/core.yaml: line %q between the marks: got no commented setting, want one", line)
		}
		if strings.HasPrefix(rest, "serf-key: KEY") {
			rest = strings.Replace(rest, "KEY", gossipKey, 1)
			marked = true
		}
		block = append(block, indent+rest)
		key, _, _ := strings.Cut(rest, ":")
		replaced[key] = true
	}
	// The single-node lines those replace.
	var kept []string
	for _, line := range strings.Split(text, "\n") {
		key, _, _ := strings.Cut(strings.TrimSpace(line), ":")
		if strings.HasPrefix(line, "  ") && !strings.HasPrefix(strings.TrimSpace(line), "#") && replaced[key] {
			continue
		}
		kept = append(kept, line)
		if strings.Contains(line, threeEnd) {
			kept = append(kept, block...)
		}
	}
	base := strings.Join(kept, "\n")
	if !marked {
		t.Fatalf("systemd/core.yaml: got no \"serf-key: KEY\" among the three-server settings, want the key's place marked")
	}
	var out [][]byte
	for i := 1; i <= 3; i++ {
		var lines []string
		for _, line := range strings.Split(base, "\n") {
			trimmed := strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(trimmed, "node-id:"):
				line = regexp.MustCompile(`node-id: \d+`).ReplaceAllString(line, fmt.Sprintf("node-id: %d", i))
			case strings.HasPrefix(trimmed, "serf-addr:"), strings.HasPrefix(trimmed, "raft-addr:"):
				line = serverAddr.ReplaceAllString(line, fmt.Sprintf("10.0.0.1%d", i))
			case strings.HasPrefix(trimmed, "advertised-listeners:"), strings.HasPrefix(trimmed, "tls-cert:"), strings.HasPrefix(trimmed, "tls-key:"),
				strings.HasPrefix(trimmed, "cluster-tls-cert:"), strings.HasPrefix(trimmed, "cluster-tls-key:"):
				// Each server its own name and certificate.
				line = strings.ReplaceAll(line, "core1", fmt.Sprintf("core%d", i))
			}
			lines = append(lines, line)
		}
		out = append(out, []byte(strings.Join(lines, "\n")))
	}
	return out
}

// The three-server settings of systemd/core.yaml (deploy/README.md, "Three
// brokers on servers") are fluxo's, consistent (each server joins the three,
// bootstrap-expect is three, every address an IP that Serf can advertise),
// and three brokers started with them form a cluster. Where strace and
// systemd-analyze are installed they run traced, and what they did (gossip
// over UDP and TCP included) is checked against fluxo-core.service's
// sandbox.
func TestCoreClusterOnServers(t *testing.T) {
	keyBytes := make([]byte, 32)
	copy(keyBytes, "deploy-test-gossip-key-32-bytes!")
	key := base64.StdEncoding.EncodeToString(keyBytes)
	configs := threeServers(t, key)
	dir := t.TempDir()
	var ls []launch
	ids := make(map[string]bool)
	for i, content := range configs {
		where := fmt.Sprintf("systemd/core.yaml, server %d of three", i+1)
		v := checkConfig(t, where, content, "core")
		ids[valueString(v["node-id"])] = true
		serf, raft := valueString(v["serf-addr"]), valueString(v["raft-addr"])
		for flag, addr := range map[string]string{"serf-addr": serf, "raft-addr": raft} {
			host, _, err := net.SplitHostPort(addr)
			if ip := net.ParseIP(host); err != nil || ip == nil || ip.IsUnspecified() || ip.IsLoopback() {
				t.Errorf("%s: %s got %q, want this server's IP address (advertised as it is; Serf takes no host name, and 0.0.0.0 makes it list interfaces through netlink, which the unit refuses)", where, flag, addr)
			}
		}
		if sh, _, _ := net.SplitHostPort(serf); !strings.HasPrefix(raft, sh+":") {
			t.Errorf("%s: raft-addr got %q, want the address of serf-addr %q", where, raft, serf)
		}
		join := strings.Split(valueString(v["join"]), ",")
		var mine bool
		for _, j := range join {
			mine = mine || j == serf
		}
		if !mine || len(join) != 3 {
			t.Errorf("%s: join got %v, want the Serf addresses of the three servers, %s among them", where, join, serf)
		}
		if got := valueString(v["bootstrap-expect"]); got != "3" {
			t.Errorf("%s: bootstrap-expect got %s, want 3", where, got)
		}
		if got := valueString(v["serf-key"]); got != key {
			t.Errorf("%s: serf-key got %q, want the key", where, got)
		}
		path := filepath.Join(dir, fmt.Sprintf("core-%d.yaml", i+1))
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, launch{where: fmt.Sprintf("server %d", i+1), role: "core", args: []string{"core", "--config", path}, cluster: "systemd three servers"})
	}
	if len(ids) != 3 {
		t.Errorf("systemd/core.yaml, three servers: node ids got %v, want three different ones", sortedKeys(ids))
	}
	if t.Failed() {
		return
	}

	strace, errStrace := exec.LookPath("strace")
	analyze, errAnalyze := exec.LookPath("systemd-analyze")
	var traces []string
	if errStrace == nil && errAnalyze == nil && strace != "" {
		for i := range ls {
			traces = append(traces, filepath.Join(dir, fmt.Sprintf("core-%d.trace", i+1)))
		}
	} else {
		t.Log("strace or systemd-analyze not installed: not checking the unit's sandbox against a cluster")
	}
	c := startCluster(t, ls, traces)
	c.check(t)
	c.stop(t)
	for i, tr := range traces {
		if b, err := os.ReadFile(tr); err != nil || !bytes.Contains(b, []byte("SOCK_DGRAM")) {
			t.Errorf("server %d: got no UDP socket in its trace, want Serf's (%v)", i+1, err)
		}
		checkSandbox(t, analyze, "fluxo-core.service", tr)
	}
}
