package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fluxo-io/fluxo/core"
	"github.com/fluxo-io/fluxo/core/acl"
)

// startSecureBroker starts a core node with the authorizer on (the
// anonymous principal of a plaintext connection is a super user) and
// returns its Kafka address.
func startSecureBroker(t *testing.T) string {
	t.Helper()
	cfg := core.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = ""
	cfg.Kafka.Authorizer = acl.NewAuthorizer([]string{acl.Anonymous})
	node, err := core.New(cfg)
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	if err := node.Start(); err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Errorf("node.Shutdown: %v", err)
		}
	})
	return node.KafkaAddr()
}

func TestIntegrationUserCommands(t *testing.T) {
	brokers := "--brokers=" + startSecureBroker(t)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	stdout, _ := mustFluxo(t, "", "user", "add", "alice", "--password-file", pw, brokers)
	if want := "added user alice (SCRAM-SHA-512, 8192 iterations)\n"; stdout != want {
		t.Errorf("add alice: got %q, want %q", stdout, want)
	}
	t.Setenv(userPasswordEnv, "from-env")
	stdout, _ = mustFluxo(t, "", "user", "add", "bob", "--mechanism", "both", "--iterations", "4096", brokers)
	if want := "added user bob (SCRAM-SHA-256, 4096 iterations)\nadded user bob (SCRAM-SHA-512, 4096 iterations)\n"; stdout != want {
		t.Errorf("add bob: got %q, want %q", stdout, want)
	}

	stdout, _ = mustFluxo(t, "", "user", "list", brokers)
	for _, re := range []string{
		`(?m)^USER\s+MECHANISM\s+ITERATIONS$`,
		`(?m)^alice\s+SCRAM-SHA-512\s+8192$`,
		`(?m)^bob\s+SCRAM-SHA-256\s+4096$`,
		`(?m)^bob\s+SCRAM-SHA-512\s+4096$`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("list: got %q, want it to match %s", stdout, re)
		}
	}

	stdout, _ = mustFluxo(t, "", "user", "delete", "bob", "--mechanism", "SCRAM-SHA-256", brokers)
	if want := "deleted user bob (SCRAM-SHA-256)\n"; stdout != want {
		t.Errorf("delete bob 256: got %q, want %q", stdout, want)
	}
	stdout, _ = mustFluxo(t, "", "user", "delete", "alice", brokers)
	if want := "deleted user alice (SCRAM-SHA-512)\n"; stdout != want {
		t.Errorf("delete alice: got %q, want %q", stdout, want)
	}
	stdout, _ = mustFluxo(t, "", "user", "list", brokers)
	if strings.Contains(stdout, "alice") || !regexp.MustCompile(`(?m)^bob\s+SCRAM-SHA-512\s+4096$`).MatchString(stdout) || strings.Contains(stdout, "SCRAM-SHA-256") {
		t.Errorf("list after delete: got %q, want only bob with SCRAM-SHA-512", stdout)
	}

	code, _, stderr := fluxo(t, context.Background(), "", "user", "delete", "alice", brokers)
	if want := "user alice: RESOURCE_NOT_FOUND: "; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("delete alice again: got exit code %d, stderr %q, want 1 and %q", code, stderr, want)
	}
	code, _, stderr = fluxo(t, context.Background(), "", "user", "list", "nobody", brokers)
	if want := "user nobody: RESOURCE_NOT_FOUND: "; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("list nobody: got exit code %d, stderr %q, want 1 and %q", code, stderr, want)
	}
}

func TestUserCommandUsageErrors(t *testing.T) {
	t.Setenv(userPasswordEnv, "")
	tests := []struct {
		args       []string
		wantStderr string
	}{
		{args: []string{"user", "add"}, wantStderr: "accepts 1 arg(s), received 0"},
		{args: []string{"user", "add", "a", "--mechanism", "PLAIN"}, wantStderr: `--mechanism: got "PLAIN"`},
		{args: []string{"user", "add", "a", "--iterations", "100"}, wantStderr: "--iterations: got 100, want 4096 to 16384"},
		{args: []string{"user", "add", "a"}, wantStderr: "no password: give --password-file or set FLUXO_USER_PASSWORD"},
		{args: []string{"user", "add", "a", "--password-file", "/does/not/exist"}, wantStderr: "--password-file: "},
		{args: []string{"user", "delete"}, wantStderr: "accepts 1 arg(s), received 0"},
		{args: []string{"acl", "add", "--operation", "read", "--topic", "t"}, wantStderr: "--principal: required"},
		{args: []string{"acl", "add", "--principal", "User:a", "--topic", "t"}, wantStderr: "--operation: required"},
		{args: []string{"acl", "add", "--principal", "User:a", "--operation", "read"}, wantStderr: "no resource"},
		{args: []string{"acl", "add", "--principal", "alice", "--operation", "read", "--topic", "t"}, wantStderr: `--principal: got "alice", want Type:name`},
		{args: []string{"acl", "add", "--principal", "User:a", "--operation", "fly", "--topic", "t"}, wantStderr: `--operation: got "fly"`},
		{args: []string{"acl", "add", "--principal", "User:a", "--operation", "any", "--topic", "t"}, wantStderr: `--operation: got "any"`},
		{args: []string{"acl", "list", "--pattern", "regex"}, wantStderr: `--pattern: got "regex"`},
		{args: []string{"acl", "list", "--permission", "maybe"}, wantStderr: `--permission: got "maybe"`},
		{args: []string{"acl", "delete"}, wantStderr: "no filter: give --principal"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, stderr := fluxo(t, context.Background(), "", append(tt.args, "--brokers", "127.0.0.1:1")...)
			if code != 1 {
				t.Errorf("got exit code %d, want 1", code)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("got stderr %q, want it to contain %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestSecurityCommandsHaveExamples(t *testing.T) {
	for _, args := range [][]string{
		{"user"}, {"user", "add"}, {"user", "list"}, {"user", "delete"},
		{"acl"}, {"acl", "add"}, {"acl", "list"}, {"acl", "delete"},
	} {
		code, stdout, stderr := fluxo(t, context.Background(), "", append(args, "--help")...)
		if code != 0 {
			t.Errorf("%s --help: got exit code %d, want 0 (stderr %q)", strings.Join(args, " "), code, stderr)
		}
		if want := "fluxo " + strings.Join(args, " ") + " "; !strings.Contains(stdout, "Examples:\n") || !strings.Contains(stdout, want) {
			t.Errorf("%s --help: got %q, want examples containing %q", strings.Join(args, " "), stdout, want)
		}
	}
}

func TestIntegrationACLCommands(t *testing.T) {
	brokers := "--brokers=" + startSecureBroker(t)

	stdout, _ := mustFluxo(t, "", "acl", "add", "--principal", "User:alice", "--operation", "read,write", "--topic", "orders", brokers)
	for _, want := range []string{
		"added acl (principal=User:alice, host=*, operation=READ, permission=ALLOW) on TOPIC:LITERAL:orders\n",
		"added acl (principal=User:alice, host=*, operation=WRITE, permission=ALLOW) on TOPIC:LITERAL:orders\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("add: got %q, want it to contain %q", stdout, want)
		}
	}
	mustFluxo(t, "", "acl", "add", "--principal", "User:alice", "--operation", "read", "--group", "billing-", "--prefixed", brokers)
	mustFluxo(t, "", "acl", "add", "--principal", "User:bob", "--operation", "all", "--topic", "*", "--deny", "--host", "10.0.0.7", brokers)
	mustFluxo(t, "", "acl", "add", "--principal", "User:ingest", "--operation", "idempotent_write", "--cluster", brokers)

	stdout, _ = mustFluxo(t, "", "acl", "list", brokers)
	for _, re := range []string{
		`(?m)^RESOURCE\s+PATTERN\s+NAME\s+PRINCIPAL\s+HOST\s+OPERATION\s+PERMISSION$`,
		`(?m)^TOPIC\s+LITERAL\s+orders\s+User:alice\s+\*\s+READ\s+ALLOW$`,
		`(?m)^TOPIC\s+LITERAL\s+orders\s+User:alice\s+\*\s+WRITE\s+ALLOW$`,
		`(?m)^TOPIC\s+LITERAL\s+\*\s+User:bob\s+10\.0\.0\.7\s+ALL\s+DENY$`,
		`(?m)^GROUP\s+PREFIXED\s+billing-\s+User:alice\s+\*\s+READ\s+ALLOW$`,
		`(?m)^CLUSTER\s+LITERAL\s+kafka-cluster\s+User:ingest\s+\*\s+IDEMPOTENT_WRITE\s+ALLOW$`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("list: got %q, want it to match %s", stdout, re)
		}
	}
	if got := strings.Count(stdout, "\n"); got != 6 {
		t.Errorf("list: got %d lines, want a header and 5 acls:\n%s", got, stdout)
	}

	// Filters: what applies to group billing-eu; alice's; the denials.
	stdout, _ = mustFluxo(t, "", "acl", "list", "--group", "billing-eu", "--pattern", "match", brokers)
	if got := strings.Count(stdout, "\n"); got != 2 || !strings.Contains(stdout, "billing-") {
		t.Errorf("list match billing-eu: got %q, want the prefixed group acl only", stdout)
	}
	stdout, _ = mustFluxo(t, "", "acl", "list", "--principal", "User:alice", brokers)
	if got := strings.Count(stdout, "\n"); got != 4 || strings.Contains(stdout, "bob") {
		t.Errorf("list alice: got %q, want her 3 acls", stdout)
	}
	stdout, _ = mustFluxo(t, "", "acl", "list", "--permission", "deny", brokers)
	if got := strings.Count(stdout, "\n"); got != 2 || !strings.Contains(stdout, "User:bob") {
		t.Errorf("list deny: got %q, want bob's denial only", stdout)
	}

	stdout, _ = mustFluxo(t, "", "acl", "delete", "--topic", "orders", "--operation", "write", brokers)
	if want := "deleted acl (principal=User:alice, host=*, operation=WRITE, permission=ALLOW) on TOPIC:LITERAL:orders\n"; stdout != want {
		t.Errorf("delete: got %q, want %q", stdout, want)
	}
	stdout, _ = mustFluxo(t, "", "acl", "delete", "--principal", "User:nobody", brokers)
	if want := "no acl matched\n"; stdout != want {
		t.Errorf("delete nobody: got %q, want %q", stdout, want)
	}
	stdout, _ = mustFluxo(t, "", "acl", "delete", "--all", brokers)
	if got := strings.Count(stdout, "deleted acl "); got != 4 {
		t.Errorf("delete --all: got %q, want 4 acls deleted", stdout)
	}
	stdout, _ = mustFluxo(t, "", "acl", "list", brokers)
	if got := strings.Count(stdout, "\n"); got != 1 {
		t.Errorf("list after delete --all: got %q, want the header only", stdout)
	}
}
