// Package nemesis builds a small private network of Linux network
// namespaces and breaks it on demand, for tests that run real fluxo
// processes under network faults (Jepsen calls the fault injector the
// nemesis).
//
// A Net is one Linux bridge on the host, with an address of its own, and
// one network namespace per node, each joined to the bridge by a veth
// pair and given an address of the same private /24 (10.77.S.0/24, S
// chosen free per run). A process started with Command runs inside its
// node's namespace and listens on the node's address; the process that
// built the Net (a test) stays outside and reaches every node through the
// bridge, so a client keeps reaching a broker that the faults cut off
// from its peers.
//
// Faults are iptables rules in the nodes' namespaces (the filter table's
// INPUT and OUTPUT chains), never on the host: Cut, DropInbound, Isolate
// and Loss add rules, Heal removes every one. Rules name node addresses
// only, so traffic between a node and the host is never dropped.
//
// Everything a Net makes carries the run's id (the process id and a
// counter), so parallel runs do not collide, and Close removes it all
// (the namespaces take their veths and rules with them). Sweep removes
// what runs that died without Close left behind. Building a Net needs
// root and the ip and iptables commands (Debian: iproute2, iptables);
// Check says which is missing.
package nemesis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Config is the shape of a Net.
type Config struct {
	// Nodes is the number of namespaces, 1 to 250.
	Nodes int
	// Subnet is S in 10.77.S.0/24; 0 picks one no other Net on this
	// host holds and no host interface uses.
	Subnet int
	// CommandTimeout bounds each ip or iptables command.
	CommandTimeout time.Duration
}

// DefaultConfig is three nodes on a free subnet.
func DefaultConfig() Config {
	return Config{Nodes: 3, CommandTimeout: 10 * time.Second}
}

// Validate checks the numbers.
func (c Config) Validate() error {
	if c.Nodes < 1 || c.Nodes > 250 {
		return fmt.Errorf("nemesis: config: nodes %d: want 1 to 250", c.Nodes)
	}
	if c.Subnet < 0 || c.Subnet > 255 {
		return fmt.Errorf("nemesis: config: subnet %d: want 0 (any) or 1 to 255", c.Subnet)
	}
	if c.CommandTimeout <= 0 {
		return fmt.Errorf("nemesis: config: command timeout %v: want it positive", c.CommandTimeout)
	}
	return nil
}

// namePrefix starts the name of every namespace and link a Net makes:
// nm<pid in hex>x<run in hex>, then b (bridge), v<i> (host veth), p<i>
// (its peer, until it moves into the namespace as eth0) or -<i>
// (namespace). Interface names are at most 15 bytes: nm + 6 + x + 2 + v +
// 3 fits.
const namePrefix = "nm"

// nameRE matches a Net's names and captures the pid that made it.
var nameRE = regexp.MustCompile(`^nm([0-9a-f]+)x[0-9a-f]+(b|[vp]\d+|-\d+)$`)

var runs atomic.Int64

// Net is a bridge and its namespaces. Its methods may be called from
// several goroutines.
type Net struct {
	cfg    Config
	log    zerolog.Logger
	id     string
	subnet int
	lock   *os.File // flock on the subnet, held until Close

	mu      sync.Mutex // guards closed and the rule commands' order
	closed  bool
	forward bool // a host FORWARD rule was added for the bridge
}

// Check reports why this process cannot build a Net: not root, or ip or
// iptables missing. nil means it can.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("nemesis: needs root (network namespaces, bridges and iptables)")
	}
	for _, c := range []struct{ cmd, pkg string }{{"ip", "iproute2"}, {"iptables", "iptables"}} {
		if _, err := exec.LookPath(c.cmd); err != nil {
			return fmt.Errorf("nemesis: %s not found (Debian package %s): %w", c.cmd, c.pkg, err)
		}
	}
	return nil
}

// New builds the bridge and the namespaces. On error it removes whatever
// it had made.
func New(cfg Config, log zerolog.Logger) (*Net, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := Check(); err != nil {
		return nil, err
	}
	n := &Net{cfg: cfg, log: log.With().Str("part", "nemesis").Logger(),
		id: fmt.Sprintf("%s%xx%x", namePrefix, os.Getpid(), runs.Add(1)%256)}
	if err := n.pickSubnet(); err != nil {
		return nil, err
	}
	if err := n.build(); err != nil {
		if cerr := n.Close(); cerr != nil {
			n.log.Error().Err(cerr).Msg("cleaning up after a failed build")
		}
		return nil, err
	}
	n.log.Info().Str("bridge", n.Bridge()).Str("subnet", n.Prefix().String()).Int("nodes", cfg.Nodes).Msg("network up")
	return n, nil
}

// pickSubnet takes cfg.Subnet, or the first free S from one derived from
// the pid, holding an flock on /run/lock/fluxo-nemesis-S.lock so that a
// parallel run picks another.
func (n *Net) pickSubnet() error {
	used, err := n.usedSubnets()
	if err != nil {
		return err
	}
	candidates := []int{n.cfg.Subnet}
	if n.cfg.Subnet == 0 {
		candidates = candidates[:0]
		start := 16 + os.Getpid()%200
		for k := range 200 {
			candidates = append(candidates, 16+(start-16+k)%200)
		}
	}
	dir := "/run/lock"
	if _, err := os.Stat(dir); err != nil {
		dir = os.TempDir()
	}
	for _, s := range candidates {
		if used[s] {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("fluxo-nemesis-%d.lock", s)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return fmt.Errorf("nemesis: subnet lock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		n.subnet, n.lock = s, f
		return nil
	}
	return fmt.Errorf("nemesis: no free subnet in 10.77.0.0/16 (wanted %d)", n.cfg.Subnet)
}

// usedSubnets is every S of 10.77.S.x on a host interface.
func (n *Net) usedSubnets() (map[int]bool, error) {
	out, err := n.run(context.Background(), "ip", "-4", "-o", "addr", "show")
	if err != nil {
		return nil, err
	}
	used := map[int]bool{}
	for _, m := range regexp.MustCompile(`inet 10\.77\.(\d+)\.`).FindAllStringSubmatch(out, -1) {
		s, _ := strconv.Atoi(m[1])
		used[s] = true
	}
	return used, nil
}

func (n *Net) build() error {
	ctx := context.Background()
	br := n.Bridge()
	steps := [][]string{
		{"ip", "link", "add", br, "type", "bridge"},
		{"ip", "addr", "add", n.HostAddr().String() + "/24", "dev", br},
		{"ip", "link", "set", br, "up"},
	}
	for i := 1; i <= n.cfg.Nodes; i++ {
		ns, hv, peer := n.Namespace(i), fmt.Sprintf("%sv%d", n.id, i), fmt.Sprintf("%sp%d", n.id, i)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "link", "add", hv, "type", "veth", "peer", "name", peer},
			[]string{"ip", "link", "set", peer, "netns", ns},
			[]string{"ip", "link", "set", hv, "master", br},
			[]string{"ip", "link", "set", hv, "up"},
			[]string{"ip", "-n", ns, "link", "set", peer, "name", "eth0"},
			[]string{"ip", "-n", ns, "addr", "add", n.Addr(i).String() + "/24", "dev", "eth0"},
			[]string{"ip", "-n", ns, "link", "set", "eth0", "up"},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if _, err := n.run(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	// A host whose bridged traffic goes through iptables
	// (br_netfilter) with a FORWARD policy other than ACCEPT would drop
	// node-to-node packets: let the bridge's own traffic through.
	if b, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables"); err == nil && strings.TrimSpace(string(b)) == "1" {
		out, err := n.run(ctx, "iptables", "-S", "FORWARD")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "-P FORWARD ACCEPT") {
			if _, err := n.run(ctx, "iptables", n.forwardRule("-I")...); err != nil {
				return err
			}
			n.forward = true
		}
	}
	return nil
}

func (n *Net) forwardRule(op string) []string {
	return []string{op, "FORWARD", "-i", n.Bridge(), "-o", n.Bridge(), "-j", "ACCEPT"}
}

// Close removes the namespaces (with their veths and rules), the bridge
// and any host rule. Processes still running in a namespace keep running
// but lose their network: stop them first.
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	ctx := context.Background()
	var errs []error
	for i := 1; i <= n.cfg.Nodes; i++ {
		ns := n.Namespace(i)
		if n.exists("netns", ns) {
			if _, err := n.run(ctx, "ip", "netns", "del", ns); err != nil {
				errs = append(errs, err)
			}
		}
		// The namespace took the veth pair with it, or is about to: a
		// host end still listed may be gone by the time it is deleted.
		if hv := fmt.Sprintf("%sv%d", n.id, i); n.exists("link", hv) {
			if _, err := n.run(ctx, "ip", "link", "del", hv); err != nil && n.exists("link", hv) {
				errs = append(errs, err)
			}
		}
	}
	if n.forward {
		if _, err := n.run(ctx, "iptables", n.forwardRule("-D")...); err != nil {
			errs = append(errs, err)
		}
	}
	if n.exists("link", n.Bridge()) {
		if _, err := n.run(ctx, "ip", "link", "del", n.Bridge()); err != nil {
			errs = append(errs, err)
		}
	}
	if n.lock != nil {
		n.lock.Close() // releases the flock
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	n.log.Info().Str("bridge", n.Bridge()).Msg("network removed")
	return nil
}

// exists reports whether ip knows the namespace or link name.
func (n *Net) exists(kind, name string) bool {
	if kind == "netns" {
		_, err := os.Stat(filepath.Join("/run/netns", name))
		return err == nil
	}
	_, err := n.run(context.Background(), "ip", "link", "show", name)
	return err == nil
}

// Sweep removes the namespaces and bridges that Nets of processes no
// longer running left behind (a test binary killed before its cleanup),
// and returns their names.
func Sweep(log zerolog.Logger) ([]string, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	n := &Net{cfg: DefaultConfig(), log: log}
	dead := func(name string) bool {
		m := nameRE.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, err := strconv.ParseInt(m[1], 16, 64)
		if err != nil {
			return false
		}
		_, err = os.Stat(fmt.Sprintf("/proc/%d", pid))
		return errors.Is(err, os.ErrNotExist)
	}
	var removed []string
	var errs []error
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if dead(e.Name()) {
			if _, err := n.run(context.Background(), "ip", "netns", "del", e.Name()); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, e.Name())
		}
	}
	out, err := n.run(context.Background(), "ip", "-o", "link", "show")
	if err != nil {
		return removed, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if dead(name) && strings.HasSuffix(name, "b") {
			if _, err := n.run(context.Background(), "ip", "link", "del", name); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, name)
		}
	}
	return removed, errors.Join(errs...)
}

// Nodes is the number of namespaces.
func (n *Net) Nodes() int { return n.cfg.Nodes }

// Bridge is the host bridge's name.
func (n *Net) Bridge() string { return n.id + "b" }

// Namespace is node i's namespace name (i from 1).
func (n *Net) Namespace(i int) string { return fmt.Sprintf("%s-%d", n.id, i) }

// Prefix is the network, 10.77.S.0/24.
func (n *Net) Prefix() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, byte(n.subnet), 0}), 24)
}

// Addr is node i's address (i from 1), 10.77.S.i.
func (n *Net) Addr(i int) netip.Addr {
	n.node(i)
	return netip.AddrFrom4([4]byte{10, 77, byte(n.subnet), byte(i)})
}

// HostAddr is the bridge's address, 10.77.S.254: where the nodes see the
// host's connections come from.
func (n *Net) HostAddr() netip.Addr {
	return netip.AddrFrom4([4]byte{10, 77, byte(n.subnet), 254})
}

// node panics on a node number out of range: a broken test.
func (n *Net) node(i int) {
	if i < 1 || i > n.cfg.Nodes {
		panic(fmt.Sprintf("nemesis: node %d of %d", i, n.cfg.Nodes))
	}
}

// Command is name with args run inside node i's namespace (ip netns exec,
// which execs it: the process is name itself, and signals reach it).
func (n *Net) Command(i int, name string, args ...string) *exec.Cmd {
	n.node(i)
	return exec.Command("ip", append([]string{"netns", "exec", n.Namespace(i), name}, args...)...)
}

// iptables runs iptables with args in node i's namespace.
func (n *Net) iptables(i int, args ...string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("nemesis: network closed")
	}
	_, err := n.run(context.Background(), "ip", append([]string{"netns", "exec", n.Namespace(i), "iptables", "-w"}, args...)...)
	return err
}

// DropInbound makes node i drop every packet from the nodes in from: a
// one-way partition (i still sends to them; what needs their answers, TCP
// included, breaks).
func (n *Net) DropInbound(i int, from ...int) error {
	for _, f := range from {
		if err := n.iptables(i, "-A", "INPUT", "-s", n.Addr(f).String(), "-j", "DROP"); err != nil {
			return err
		}
	}
	n.log.Info().Int("node", i).Ints("from", from).Msg("drop inbound")
	return nil
}

// Cut drops every packet between nodes a and b, both ways, on both sides.
func (n *Net) Cut(a, b int) error {
	for _, p := range [][2]int{{a, b}, {b, a}} {
		if err := n.iptables(p[0], "-A", "INPUT", "-s", n.Addr(p[1]).String(), "-j", "DROP"); err != nil {
			return err
		}
		if err := n.iptables(p[0], "-A", "OUTPUT", "-d", n.Addr(p[1]).String(), "-j", "DROP"); err != nil {
			return err
		}
	}
	n.log.Info().Int("a", a).Int("b", b).Msg("cut")
	return nil
}

// Isolate cuts node i from every other node; the host still reaches it.
func (n *Net) Isolate(i int) error {
	for j := 1; j <= n.cfg.Nodes; j++ {
		if j != i {
			if err := n.Cut(i, j); err != nil {
				return err
			}
		}
	}
	return nil
}

// Loss makes every node drop each packet from every other node with
// probability p (iptables statistic match): about p of the packets each
// way between two nodes are lost. Traffic with the host is untouched.
func (n *Net) Loss(p float64) error {
	if p <= 0 || p >= 1 {
		return fmt.Errorf("nemesis: loss %v: want between 0 and 1", p)
	}
	for i := 1; i <= n.cfg.Nodes; i++ {
		for j := 1; j <= n.cfg.Nodes; j++ {
			if j == i {
				continue
			}
			if err := n.iptables(i, "-A", "INPUT", "-s", n.Addr(j).String(), "-m", "statistic",
				"--mode", "random", "--probability", strconv.FormatFloat(p, 'f', 4, 64), "-j", "DROP"); err != nil {
				return err
			}
		}
	}
	n.log.Info().Float64("p", p).Msg("random loss between nodes")
	return nil
}

// Heal removes every fault: it flushes the INPUT and OUTPUT chains of
// every namespace.
func (n *Net) Heal() error {
	var errs []error
	for i := 1; i <= n.cfg.Nodes; i++ {
		errs = append(errs, n.iptables(i, "-F", "INPUT"), n.iptables(i, "-F", "OUTPUT"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	n.log.Info().Msg("healed")
	return nil
}

// Rules is node i's filter rules as iptables -S prints them, for logs and
// tests.
func (n *Net) Rules(i int) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.run(context.Background(), "ip", "netns", "exec", n.Namespace(i), "iptables", "-w", "-S")
}

// run runs a command with the configured timeout and returns its output;
// the error names the command and carries its standard error.
func (n *Net) run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("nemesis: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
