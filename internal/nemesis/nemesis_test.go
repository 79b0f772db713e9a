package nemesis

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// The test binary doubles as the program run inside the namespaces:
// NEMESIS_LISTEN=ADDR makes it a TCP server that answers each
// connection with its address; NEMESIS_DIAL=ADDR makes it dial once,
// print the answer and exit 0, or exit 1 after a short timeout.
func TestMain(m *testing.M) {
	if addr := os.Getenv("NEMESIS_LISTEN"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("listening")
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(2)
			}
			fmt.Fprintln(c, addr)
			c.Close()
		}
	}
	if addr := os.Getenv("NEMESIS_DIAL"); addr != "" {
		answer, err := dial(addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Print(answer)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// dial connects to addr with a short timeout and reads one line.
func dial(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		ok  bool
	}{
		{DefaultConfig(), true},
		{Config{Nodes: 0, CommandTimeout: time.Second}, false},
		{Config{Nodes: 251, CommandTimeout: time.Second}, false},
		{Config{Nodes: 3, Subnet: 256, CommandTimeout: time.Second}, false},
		{Config{Nodes: 3}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: got %v, want ok %v", c.cfg, err, c.ok)
		}
	}
}

// TestNetFaults builds three nodes with a server in each, and checks
// every fault against real connections: from the host (never cut) and
// from node to node.
func TestNetFaults(t *testing.T) {
	if err := Check(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	n, err := New(DefaultConfig(), zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		for i := 1; i <= 3; i++ {
			if _, err := os.Stat(filepath.Join("/run/netns", n.Namespace(i))); err == nil {
				t.Errorf("namespace %s: got it still there after Close, want it gone", n.Namespace(i))
			}
		}
		if err := exec.Command("ip", "link", "show", n.Bridge()).Run(); err == nil {
			t.Errorf("bridge %s: got it still there after Close, want it gone", n.Bridge())
		}
	})
	addr := func(i int) string { return net.JoinHostPort(n.Addr(i).String(), "7000") }
	for i := 1; i <= 3; i++ {
		cmd := n.Command(i, os.Args[0])
		cmd.Env = append(os.Environ(), "NEMESIS_LISTEN="+addr(i))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "listening\n" {
			t.Fatalf("server in node %d: got %q, %v, want listening", i, line, err)
		}
	}
	// reach reports whether node from (0: the host) reaches node to.
	reach := func(from, to int) bool {
		t.Helper()
		if from == 0 {
			got, err := dial(addr(to))
			if err == nil && got != addr(to)+"\n" {
				t.Fatalf("host to node %d: got %q, want %q", to, got, addr(to))
			}
			return err == nil
		}
		cmd := n.Command(from, os.Args[0])
		cmd.Env = append(os.Environ(), "NEMESIS_DIAL="+addr(to))
		out, err := cmd.Output()
		if err == nil && string(out) != addr(to)+"\n" {
			t.Fatalf("node %d to node %d: got %q, want %q", from, to, out, addr(to))
		}
		return err == nil
	}
	check := func(what string, want map[[2]int]bool) {
		t.Helper()
		for from := 0; from <= 3; from++ {
			for to := 1; to <= 3; to++ {
				if from == to {
					continue
				}
				w, ok := want[[2]int{from, to}]
				if !ok {
					w = true
				}
				if got := reach(from, to); got != w {
					t.Errorf("%s: %d reaches %d: got %v, want %v", what, from, to, got, w)
				}
			}
		}
	}
	check("healthy", nil)

	if err := n.Isolate(1); err != nil {
		t.Fatal(err)
	}
	check("node 1 isolated", map[[2]int]bool{{1, 2}: false, {1, 3}: false, {2, 1}: false, {3, 1}: false})
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	check("healed", nil)

	if err := n.Cut(1, 3); err != nil {
		t.Fatal(err)
	}
	check("1 and 3 cut", map[[2]int]bool{{1, 3}: false, {3, 1}: false})
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}

	// One way: node 2 drops what comes from 3. A TCP connection either
	// way needs both directions, so both fail, but the rules are only in
	// node 2.
	if err := n.DropInbound(2, 3); err != nil {
		t.Fatal(err)
	}
	check("2 drops from 3", map[[2]int]bool{{2, 3}: false, {3, 2}: false})
	for i, want := range map[int]bool{1: false, 2: true, 3: false} {
		rules, err := n.Rules(i)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(rules, "-j DROP"); got != want {
			t.Errorf("node %d rules: got a DROP %v, want %v:\n%s", i, got, want, rules)
		}
	}
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := n.Loss(0.3); err != nil {
		t.Fatal(err)
	}
	rules, err := n.Rules(1)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(rules, "-m statistic --mode random --probability 0.29"); got != 2 {
		t.Errorf("node 1 loss rules: got %d, want 2:\n%s", got, rules)
	}
	if err := n.Loss(1); err == nil {
		t.Errorf("loss 1: got no error, want one")
	}
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	check("healed again", nil)
}

// TestParallelNets: two Nets at once get different names and subnets.
func TestParallelNets(t *testing.T) {
	if err := Check(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	cfg := DefaultConfig()
	cfg.Nodes = 1
	a, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Prefix() == b.Prefix() || a.Bridge() == b.Bridge() || a.Namespace(1) == b.Namespace(1) {
		t.Fatalf("got %v %s %s and %v %s %s, want different subnets and names", a.Prefix(), a.Bridge(), a.Namespace(1), b.Prefix(), b.Bridge(), b.Namespace(1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "-n", a.Namespace(1), "addr", "show", "eth0").CombinedOutput(); err != nil || !strings.Contains(string(out), a.Addr(1).String()) {
		t.Fatalf("ip -n %s addr: got %v\n%s, want %v on eth0", a.Namespace(1), err, out, a.Addr(1))
	}
}

// TestSweep: Sweep removes the namespace and bridge of a process that is
// gone, and leaves those of a running one (this test's) alone.
func TestSweep(t *testing.T) {
	if err := Check(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	dead := 0
	for pid := 4_000_000; pid > 3_000_000; pid-- {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			dead = pid
			break
		}
	}
	if dead == 0 {
		t.Fatal("found no unused pid to name a dead run after")
	}
	deadNS, deadBr := fmt.Sprintf("nm%xxff-1", dead), fmt.Sprintf("nm%xxffb", dead)
	liveNS := fmt.Sprintf("nm%xxfe-1", os.Getpid())
	for _, args := range [][]string{{"netns", "add", deadNS}, {"link", "add", deadBr, "type", "bridge"}, {"netns", "add", liveNS}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", deadNS).Run()
		exec.Command("ip", "link", "del", deadBr).Run()
		exec.Command("ip", "netns", "del", liveNS).Run()
	})
	removed, err := Sweep(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{deadNS, deadBr} {
		if !slices.Contains(removed, name) {
			t.Errorf("got removed %v, want %s among them", removed, name)
		}
	}
	if slices.Contains(removed, liveNS) {
		t.Errorf("got %s removed, want it kept: its process runs", liveNS)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", liveNS)); err != nil {
		t.Errorf("namespace %s of a running process: got %v, want it there", liveNS, err)
	}
	if err := exec.Command("ip", "link", "show", deadBr).Run(); err == nil {
		t.Errorf("bridge %s: got it still there, want it gone", deadBr)
	}
}
