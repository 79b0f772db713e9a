//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// binDir holds the fluxo binary the tests share; TestMain removes it.
var binDir string

// TestMain gives the tests one directory for the binary buildFluxo builds
// once, and removes it when they are done.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fluxo-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var build struct {
	once sync.Once
	bin  string
	err  error
}

// buildFluxo builds the binary once per test binary run and returns its
// path; every test that calls it gets the same binary.
func buildFluxo(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		bin := filepath.Join(binDir, "fluxo")
		cmd := exec.Command("go", "build", "-o", bin, "../cmd/fluxo")
		cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		build.bin = bin
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// TestDemoCrashRecovery runs `fluxo demo crash` as a real process several times
// (each a different random power cut): the writer child is SIGKILLed, its
// unsynced tail damaged, and the demo's own checks must pass.
func TestDemoCrashRecovery(t *testing.T) {
	t.Parallel()
	bin := buildFluxo(t)
	intact := regexp.MustCompile(`all (\d+) fsynced records intact`)
	next := regexp.MustCompile(`the next append got offset (\d+)`)
	for _, seed := range []string{"1", "2", "3", "42", "1000"} {
		out, err := exec.Command(bin, "demo", "crash", "--seed", seed, "--records", "3000", "--sync-every", "7").CombinedOutput()
		if err != nil {
			t.Fatalf("seed %s: fluxo demo: %v\n%s", seed, err, out)
		}
		s := string(out)
		if !strings.Contains(s, "SIGKILL") || !intact.MatchString(s) || !next.MatchString(s) {
			t.Fatalf("seed %s: output lacks the recovery checks:\n%s", seed, s)
		}
		if n := intact.FindStringSubmatch(s)[1]; n == "0" {
			t.Fatalf("seed %s: nothing was fsynced before the kill:\n%s", seed, s)
		}
	}
}

// TestDemoCore runs `fluxo demo core` as a real process: a broker, an
// idempotent producer, a consumer group and a restart, all checked by the
// demo itself.
func TestDemoCore(t *testing.T) {
	t.Parallel()
	bin := buildFluxo(t)
	out, err := exec.Command(bin, "demo", "core", "--records", "5000").CombinedOutput()
	if err != nil {
		t.Fatalf("fluxo demo: %v\n%s", err, out)
	}
	for _, want := range []string{"produced 5000 readings", "read 5000 readings", "all 5000 acknowledged readings are there"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestDemo runs `fluxo demo`, the main job, as a real process: simulated
// devices → edge → core → consumer for a few seconds. Every message the
// edge accepted must have been delivered and read by the consumer.
func TestDemo(t *testing.T) {
	t.Parallel()
	bin := buildFluxo(t)
	out, err := exec.Command(bin, "demo", "--duration", "5s", "--cars", "10", "--sensors", "10", "--panels", "5").CombinedOutput()
	if err != nil {
		t.Fatalf("fluxo demo: %v\n%s", err, out)
	}
	s := string(out)
	num := func(re string) int {
		m := regexp.MustCompile(re).FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("output lacks %q:\n%s", re, s)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	sent := num(`devices sent (\d+) messages`)
	acked := num(`(\d+) acknowledged by the edge`)
	telAccepted := num(`edge spool telemetry: accepted (\d+)`)
	telDelivered := num(`edge spool telemetry: accepted \d+, delivered (\d+)`)
	alarmAccepted := num(`edge spool alarm:\s+accepted (\d+)`)
	readTel := num(`consumer read telemetry (\d+)`)
	if sent == 0 || acked != sent {
		t.Fatalf("devices sent %d, edge acknowledged %d: want all, and more than none", sent, acked)
	}
	if telAccepted+alarmAccepted != acked {
		t.Fatalf("edge accepted %d+%d, devices saw %d acknowledged", telAccepted, alarmAccepted, acked)
	}
	if telDelivered != telAccepted || readTel != telDelivered {
		t.Fatalf("telemetry accepted %d, delivered %d, read %d: want all equal", telAccepted, telDelivered, readTel)
	}
}
