//go:build e2e

package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// buildFluxo builds the binary once per test binary run.
func buildFluxo(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fluxo")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/fluxo")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestDemoCrashRecovery runs `fluxo demo crash` as a real process several times
// (each a different random power cut): the writer child is SIGKILLed, its
// unsynced tail damaged, and the demo's own checks must pass.
func TestDemoCrashRecovery(t *testing.T) {
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

// TestDemo runs `fluxo demo`, the main job, as a real process: a broker,
// an idempotent producer, a consumer group and a restart, all checked by
// the demo itself.
func TestDemo(t *testing.T) {
	bin := buildFluxo(t)
	out, err := exec.Command(bin, "demo", "--records", "5000").CombinedOutput()
	if err != nil {
		t.Fatalf("fluxo demo: %v\n%s", err, out)
	}
	for _, want := range []string{"produced 5000 readings", "read 5000 readings", "all 5000 acknowledged readings are there"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
}
