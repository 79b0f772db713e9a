package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// unitFile is a parsed systemd unit: section → key → values in order.
type unitFile map[string]map[string][]string

// parseUnit reads the [Section] and Key=Value lines of a unit file.
func parseUnit(b []byte) (unitFile, error) {
	u := make(unitFile)
	var section string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = make(map[string][]string)
			}
		case strings.HasSuffix(line, `\`):
			return nil, fmt.Errorf("line %d: continuation lines are not supported here", n)
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("line %d: got %q, want Key=Value in a section", n, line)
			}
			u[section][key] = append(u[section][key], value)
		}
	}
	return u, sc.Err()
}

// get returns the last value of a key, as systemd applies it.
func (u unitFile) get(section, key string) (string, bool) {
	v := u[section][key]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

const (
	unitBinary  = "/usr/local/bin/fluxo" // where install.sh puts the binary
	unitDataDir = "/var/lib/fluxo"
	unitConfDir = "/etc/fluxo"
)

func TestSystemdUnits(t *testing.T) {
	for _, role := range []string{"core", "edge"} {
		t.Run(role, func(t *testing.T) {
			name := "systemd/fluxo-" + role + ".service"
			u, err := parseUnit(readFile(t, name))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, want := range []struct{ section, key, value string }{
				{"Service", "User", "fluxo"},
				{"Service", "Group", "fluxo"},
				{"Service", "Restart", "on-failure"},
				{"Service", "StateDirectory", "fluxo"},
				{"Service", "ReadWritePaths", unitDataDir},
				{"Service", "StandardOutput", "journal"},
				{"Service", "StandardError", "journal"},
				{"Service", "NoNewPrivileges", "yes"},
				{"Service", "ProtectSystem", "strict"},
				{"Service", "ProtectHome", "yes"},
				{"Service", "PrivateTmp", "yes"},
				{"Service", "PrivateDevices", "yes"},
				{"Service", "CapabilityBoundingSet", ""},
				{"Service", "AmbientCapabilities", ""},
				{"Service", "RestrictSUIDSGID", "yes"},
				{"Service", "MemoryDenyWriteExecute", "yes"},
				{"Install", "WantedBy", "multi-user.target"},
			} {
				got, ok := u.get(want.section, want.key)
				if !ok || got != want.value {
					t.Errorf("%s: [%s] %s: got %q (set: %v), want %q", name, want.section, want.key, got, ok, want.value)
				}
			}
			if got := u["Service"]["ReadWritePaths"]; len(got) != 1 {
				t.Errorf("%s: ReadWritePaths: got %q, want only %s", name, got, unitDataDir)
			}

			exec, _ := u.get("Service", "ExecStart")
			args := strings.Fields(exec)
			if len(args) == 0 || args[0] != unitBinary {
				t.Fatalf("%s: ExecStart: got %q, want %s ...", name, exec, unitBinary)
			}
			cmd, problems := commandTree(t).resolve(args[1:])
			for _, p := range problems {
				t.Errorf("%s: ExecStart: %s", name, p)
			}
			if got, want := cmd.path, "fluxo "+role; got != want {
				t.Errorf("%s: ExecStart runs %q, want %q", name, got, want)
			}
			configPath := unitConfDir + "/" + role + ".yaml"
			if !strings.Contains(exec, "--config "+configPath) {
				t.Errorf("%s: ExecStart: got %q, want --config %s (what install.sh installs)", name, exec, configPath)
			}

			// The configuration next to the unit: known keys, and every path
			// fluxo writes to within ReadWritePaths.
			config := "systemd/" + role + ".yaml"
			values := checkConfig(t, config, readFile(t, config), role)
			writes := map[string]string{"core": "data-dir", "edge": "spool-dir"}[role]
			dir, _ := values[writes].(string)
			if !strings.HasPrefix(dir, unitDataDir+"/") {
				t.Errorf("%s: %s: got %q, want a folder under %s (the unit's only writable path)", config, writes, dir, unitDataDir)
			}
			if role == "edge" {
				if got, want := values["users"], unitConfDir+"/users.yaml"; got != want {
					t.Errorf("%s: users: got %v, want %s (what install.sh installs)", config, got, want)
				}
			}

			// Stopping waits --shutdown-timeout (30s unless set), then
			// flushes: systemd must wait longer before it kills.
			shutdown := 30 * time.Second
			if s, ok := values["shutdown-timeout"].(string); ok {
				if shutdown, err = time.ParseDuration(s); err != nil {
					t.Fatalf("%s: shutdown-timeout: %v", config, err)
				}
			}
			stop, _ := u.get("Service", "TimeoutStopSec")
			stopAfter, err := time.ParseDuration(stop)
			if err != nil || stopAfter <= shutdown {
				t.Errorf("%s: TimeoutStopSec: got %q, want a duration longer than the shutdown timeout %v", name, stop, shutdown)
			}
		})
	}
}

// systemd-analyze verify and security, on the units installed in a scratch
// root with the fluxo binary where ExecStart expects it. Where systemd is
// not installed the test is skipped; nothing here needs a running systemd.
func TestSystemdAnalyze(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (apt-get install systemd)")
	}
	const hostUnits = "/usr/lib/systemd/system"
	if _, err := os.Stat(filepath.Join(hostUnits, "multi-user.target")); err != nil {
		t.Skipf("no %s/multi-user.target to verify against: %v", hostUnits, err)
	}
	root := t.TempDir()
	copyTree(t, hostUnits, filepath.Join(root, hostUnits))
	copyFile(t, fluxoBin, filepath.Join(root, unitBinary), 0o755)
	for _, role := range []string{"core", "edge"} {
		unit := "fluxo-" + role + ".service"
		copyFile(t, deployPath("systemd/"+unit), filepath.Join(root, "etc/systemd/system", unit), 0o644)
	}

	for _, role := range []string{"core", "edge"} {
		unit := "/etc/systemd/system/fluxo-" + role + ".service"
		t.Run("verify "+role, func(t *testing.T) {
			out, err := exec.Command(analyze, "verify", "--man=no", "--generators=no", "--root="+root, unit).CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("systemd-analyze verify %s: got %v and\n%s\nwant success and no output", unit, err, out)
			}
		})
		t.Run("security "+role, func(t *testing.T) {
			// The exposure level, 0 (locked down) to 10 (none of systemd's
			// sandboxing): the threshold is 10 times the level.
			const threshold = 20
			out, err := exec.Command(analyze, "security", "--offline=true", "--root="+root,
				fmt.Sprintf("--threshold=%d", threshold), unit).CombinedOutput()
			last := lastLine(out)
			if err != nil {
				t.Errorf("systemd-analyze security %s: %v: got %q, want an exposure level below %.1f", unit, err, last, threshold/10.0)
				return
			}
			t.Log(last)
		})
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

func copyFile(t *testing.T, src, dst string, mode fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies the regular files and symbolic links under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("cannot copy %s: %v", src, err)
	}
}

// install.sh with DESTDIR: installs everything, then, run again, changes
// nothing and keeps an edited configuration.
func TestInstallScript(t *testing.T) {
	script := deployPath("systemd/install.sh")
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n install.sh: %v\n%s", err, out)
	}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		if out, err := exec.Command(sc, script).CombinedOutput(); err != nil {
			t.Errorf("shellcheck install.sh: got %v and\n%s\nwant no finding", err, out)
		}
	} else {
		t.Log("shellcheck not installed (apt-get install shellcheck): not linting install.sh")
	}

	dest := t.TempDir()
	run := func() string {
		t.Helper()
		cmd := exec.Command("bash", script, "-b", fluxoBin, "edge", "core")
		cmd.Env = append(os.Environ(), "DESTDIR="+dest)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("DESTDIR=%s install.sh: %v\n%s", dest, err, out)
		}
		return string(out)
	}
	run()
	for path, mode := range map[string]fs.FileMode{
		"usr/local/bin/fluxo":                   0o755,
		"etc/systemd/system/fluxo-edge.service": 0o644,
		"etc/systemd/system/fluxo-core.service": 0o644,
		"etc/fluxo/edge.yaml":                   0o640,
		"etc/fluxo/core.yaml":                   0o640,
		"etc/fluxo/users.yaml":                  0o640,
		"etc/fluxo":                             fs.ModeDir | fs.ModeSetgid | 0o750,
		"etc/fluxo/tls":                         fs.ModeDir | fs.ModeSetgid | 0o750,
		"var/lib/fluxo":                         fs.ModeDir | 0o750,
	} {
		fi, err := os.Stat(filepath.Join(dest, path))
		if err != nil {
			t.Errorf("after install.sh: %v", err)
			continue
		}
		if got := fi.Mode() & (fs.ModeDir | fs.ModeSetgid | fs.ModePerm); got != mode {
			t.Errorf("/%s: mode got %v, want %v", path, got, mode)
		}
	}
	edited := filepath.Join(dest, "etc/fluxo/edge.yaml")
	mine := append(readFile(t, "systemd/edge.yaml"), "# edited by the operator\n"...)
	if err := os.WriteFile(edited, mine, 0o640); err != nil {
		t.Fatal(err)
	}

	second := run()
	for _, word := range []string{"installed", "updated", "created"} {
		if strings.Contains(second, word) {
			t.Errorf("install.sh run again: got %q in\n%s\nwant nothing changed", word, second)
		}
	}
	if got, _ := os.ReadFile(edited); !bytes.Equal(got, mine) {
		t.Errorf("install.sh run again: /etc/fluxo/edge.yaml got overwritten, want the operator's edit kept")
	}
}

// install.sh for real, as root, in a private mount namespace where /etc,
// /usr/local/bin, /var/lib, /var/log and /run/systemd are scratch copies:
// it creates the user fluxo and installs with the right owners. Skipped
// unless run as root where unshare(1) works.
func TestInstallScriptAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare not installed")
	}
	if out, err := exec.Command(unshare, "--mount", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare --mount: %v: %s", err, out)
	}
	scratch := t.TempDir()
	if out, err := exec.Command("cp", "-a", "/etc", filepath.Join(scratch, "etc")).CombinedOutput(); err != nil {
		t.Fatalf("cp -a /etc: %v\n%s", err, out)
	}
	for _, dir := range []string{"bin", "lib", "log", "run-systemd"} {
		if err := os.Mkdir(filepath.Join(scratch, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := `set -euo pipefail
s=$1 bin=$2 install=$3
mount --bind "$s/etc" /etc
mount --bind "$s/bin" /usr/local/bin
mount --bind "$s/lib" /var/lib
mount --bind "$s/log" /var/log
if [[ -d /run/systemd ]]; then mount --bind "$s/run-systemd" /run/systemd; fi
"$install" -b "$bin" edge core
"$install" -b "$bin" edge core
echo "user: $(id -un fluxo):$(id -gn fluxo)"
stat -c '%U:%G %a %n' /etc/fluxo /etc/fluxo/tls /etc/fluxo/*.yaml /var/lib/fluxo /usr/local/bin/fluxo
echo secret | /usr/local/bin/fluxo edge passwd --stdin /etc/fluxo/users.yaml s-0001 >/dev/null
stat -c 'after passwd: %U:%G %a %n' /etc/fluxo/users.yaml
`
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "bash", "-c", script, "bash",
		scratch, fluxoBin, deployPath("systemd/install.sh"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh as root: %v\n%s", err, out)
	}
	for _, want := range []string{
		"user: fluxo:fluxo",
		"root:fluxo 2750 /etc/fluxo\n",
		"root:fluxo 2750 /etc/fluxo/tls\n",
		"root:fluxo 640 /etc/fluxo/edge.yaml",
		"root:fluxo 640 /etc/fluxo/core.yaml",
		"root:fluxo 640 /etc/fluxo/users.yaml",
		"fluxo:fluxo 750 /var/lib/fluxo",
		"root:root 755 /usr/local/bin/fluxo",
		// The setgid folder keeps a rewritten users file readable by the
		// service.
		"after passwd: root:fluxo 640 /etc/fluxo/users.yaml",
		"kept /etc/fluxo/edge.yaml",
		"unchanged /usr/local/bin/fluxo",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("install.sh as root: got\n%s\nwant %q in it", out, want)
		}
	}
}

// syscallGroups expands systemd's system call groups ("@system-service")
// with systemd-analyze syscall-filter.
type syscallGroups struct {
	analyze string
	cache   map[string][]string
}

func (g *syscallGroups) expand(t *testing.T, name string) []string {
	t.Helper()
	if !strings.HasPrefix(name, "@") {
		return []string{name}
	}
	if calls, ok := g.cache[name]; ok {
		return calls
	}
	out, err := exec.Command(g.analyze, "syscall-filter", name).Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter %s: %v", name, err)
	}
	var calls []string
	for i, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if i == 0 || line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		calls = append(calls, g.expand(t, line)...)
	}
	g.cache[name] = calls
	return calls
}

// allowedSyscalls returns the system calls a unit's SystemCallFilter lets
// through, or nil if it sets none.
func allowedSyscalls(t *testing.T, analyze string, u unitFile) map[string]bool {
	t.Helper()
	g := &syscallGroups{analyze: analyze, cache: make(map[string][]string)}
	var allowed map[string]bool
	for _, v := range u["Service"]["SystemCallFilter"] {
		deny := strings.HasPrefix(v, "~")
		if allowed == nil {
			allowed = make(map[string]bool)
			if deny {
				t.Fatalf("SystemCallFilter=%s first: a deny list alone is not checked here", v)
			}
		}
		for _, name := range strings.Fields(strings.TrimPrefix(v, "~")) {
			for _, call := range g.expand(t, name) {
				allowed[call] = !deny
			}
		}
	}
	return allowed
}

var (
	tracedCall   = regexp.MustCompile(`(?m)^\d+\s+([a-z0-9_]+)\(`)
	tracedSocket = regexp.MustCompile(`socket\((AF_[A-Z0-9]+)`)
)

// checkSandbox checks that what fluxo did under strace (traceFile) is
// allowed by the unit's SystemCallFilter and RestrictAddressFamilies: under
// systemd, a call outside the filter fails with EPERM and a socket of
// another family cannot be made.
func checkSandbox(t *testing.T, analyze, unit, traceFile string) {
	t.Helper()
	u, err := parseUnit(readFile(t, "systemd/"+unit))
	if err != nil {
		t.Fatal(err)
	}
	trace, err := os.ReadFile(traceFile)
	if err != nil {
		t.Fatal(err)
	}
	allowed := allowedSyscalls(t, analyze, u)
	used := make(map[string]bool)
	for _, m := range tracedCall.FindAllStringSubmatch(string(trace), -1) {
		used[m[1]] = true
	}
	if len(used) < 20 {
		t.Fatalf("%s: got %d system calls in the trace, want more: has strace's output changed?", unit, len(used))
	}
	for _, call := range sortedKeys(used) {
		if call == "execve" {
			continue // strace starting fluxo; systemd checks from fluxo's first instruction
		}
		if !allowed[call] {
			t.Errorf("%s: system call %s: got it used by fluxo, want it allowed by SystemCallFilter (else it fails with EPERM)", unit, call)
		}
	}
	families, _ := u.get("Service", "RestrictAddressFamilies")
	sockets := make(map[string]bool)
	for _, m := range tracedSocket.FindAllStringSubmatch(string(trace), -1) {
		sockets[m[1]] = true
	}
	for _, family := range sortedKeys(sockets) {
		if !slices.Contains(strings.Fields(families), family) {
			t.Errorf("%s: socket family %s: got it used by fluxo, want it in RestrictAddressFamilies=%s", unit, family, families)
		}
	}
	t.Logf("%s: %d system calls used, checked against its SystemCallFilter", unit, len(used))
}
