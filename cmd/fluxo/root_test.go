package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
)

func TestRunExitCode(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{name: "no command prints help", args: nil, wantCode: 0, wantStdout: "Usage:\n  fluxo [command]"},
		{name: "help", args: []string{"--help"}, wantCode: 0, wantStdout: "Examples:\n"},
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: "fluxo "},
		{name: "version help", args: []string{"version", "--help"}, wantCode: 0, wantStdout: "Examples:\n  fluxo version\n"},
		{name: "unknown command", args: []string{"nope"}, wantCode: 1, wantStderr: `fluxo: unknown command "nope" for "fluxo"`},
		{name: "unknown flag", args: []string{"version", "--nope"}, wantCode: 1, wantStderr: "fluxo: unknown flag: --nope\nRun 'fluxo version --help' for usage\n"},
		{name: "bad flag value", args: []string{"--log-level", "loud", "version"}, wantCode: 1, wantStderr: `want debug, info, warn or error`},
		{name: "core help", args: []string{"core", "--help"}, wantCode: 0, wantStdout: "--transaction-state-partitions int32"},
		{name: "core help timeout", args: []string{"core", "--help"}, wantCode: 0, wantStdout: "--transaction-max-timeout duration"},
		{name: "core bad partitions", args: []string{"core", "--transaction-state-partitions", "0"}, wantCode: 1, wantStderr: "--transaction-state-partitions: got 0, want at least 1"},
		{name: "core bad timeout", args: []string{"core", "--transaction-max-timeout", "0s"}, wantCode: 1, wantStderr: "--transaction-max-timeout: got 0s, want a positive duration"},
		{name: "core help id expiration", args: []string{"core", "--help"}, wantCode: 0, wantStdout: "--transactional-id-expiration duration"},
		{name: "core bad id expiration", args: []string{"core", "--transactional-id-expiration", "-1h"}, wantCode: 1, wantStderr: "--transactional-id-expiration: got -1h0m0s, want a positive duration"},
		{name: "extra argument", args: []string{"version", "extra"}, wantCode: 1, wantStderr: `fluxo: unknown command "extra" for "fluxo version"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("got exit code %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("got stdout %q, want it to contain %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("got stderr %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

func TestBuiltinCommandsIgnoreConfig(t *testing.T) {
	t.Setenv("FLUXO_LOG_LEVEL", "loud")
	for _, args := range [][]string{{"help"}, {"help", "version"}, {"completion", "bash"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Errorf("fluxo %s: got exit code %d, want 0 (stderr %q)", strings.Join(args, " "), code, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &stdout, &stderr); code != 1 {
		t.Errorf("fluxo version: got exit code %d, want 1", code)
	}
}

func TestLoggerLevelAndFormat(t *testing.T) {
	tests := []struct {
		level      string
		wantLevels []string
	}{
		{"debug", []string{"debug", "info", "warn", "error"}},
		{"info", []string{"info", "warn", "error"}},
		{"warn", []string{"warn", "error"}},
		{"error", []string{"error"}},
		{"WARN", []string{"warn", "error"}},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			root := newRootCmd()
			root.AddCommand(&cobra.Command{
				Use: "emit",
				Run: func(cmd *cobra.Command, _ []string) {
					log := logger(cmd)
					log.Debug().Msg("debug message")
					log.Info().Msg("info message")
					log.Warn().Msg("warn message")
					log.Error().Msg("error message")
				},
			})
			var stderr bytes.Buffer
			root.SetArgs([]string{"emit", "--log-level", tt.level})
			root.SetOut(&bytes.Buffer{})
			root.SetErr(&stderr)
			if err := root.ExecuteContext(context.Background()); err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			var gotLevels []string
			for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
				var entry struct {
					Level, Message, Time string
				}
				if err := json.Unmarshal([]byte(line), &entry); err != nil {
					t.Fatalf("got log line %q, want JSON: %v", line, err)
				}
				if entry.Message != entry.Level+" message" || entry.Time == "" {
					t.Errorf("got log line %q, want message %q and a time", line, entry.Level+" message")
				}
				gotLevels = append(gotLevels, entry.Level)
			}
			if strings.Join(gotLevels, ",") != strings.Join(tt.wantLevels, ",") {
				t.Errorf("got levels %v, want %v", gotLevels, tt.wantLevels)
			}
		})
	}
}

func TestLevelFlag(t *testing.T) {
	var l levelFlag
	for _, s := range []string{"debug", "info", "warn", "error"} {
		if err := l.Set(s); err != nil {
			t.Errorf("Set(%q): got error %v, want none", s, err)
		}
		if got := l.String(); got != s {
			t.Errorf("Set(%q): got String() %q, want %q", s, got, s)
		}
	}
	for _, s := range []string{"", "trace", "fatal", "panic", "disabled", "verbose"} {
		if err := l.Set(s); err == nil {
			t.Errorf("Set(%q): got no error, want one", s)
		}
	}
	if got, want := zerolog.Level(l), zerolog.ErrorLevel; got != want {
		t.Errorf("after rejected values: got level %v, want %v", got, want)
	}
}

func TestIsTerminal(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Errorf("isTerminal(bytes.Buffer): got true, want false")
	}
}
