package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxo-io/fluxo/core"
)

// TestClusterCommands: `fluxo cluster members` lists a running broker as
// alive, the Raft leader and the controller; `fluxo cluster remove` of an
// unknown broker, or of the broker asked, fails with the broker's answer.
func TestClusterCommands(t *testing.T) {
	cfg := core.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.NodeID = 4
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	node, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		node.Shutdown(ctx)
	})
	out, _ := mustFluxo(t, "", "cluster", "members", "--http", node.HTTPAddr())
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("got %q, want a header and one broker", out)
	}
	for _, want := range []string{"4 ", "alive", "leader (controller)", "false", node.KafkaAddr()} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("got %q, want it to contain %q", lines[1], want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, _, stderr := fluxo(t, ctx, "", "cluster", "remove", "9", "--brokers", node.KafkaAddr())
	if code == 0 || !strings.Contains(stderr, "BROKER_ID_NOT_REGISTERED") {
		t.Errorf("remove of an unknown broker: got exit %d, stderr %q; want a failure naming BROKER_ID_NOT_REGISTERED", code, stderr)
	}
	code, _, stderr = fluxo(t, ctx, "", "cluster", "remove", "4", "--brokers", node.KafkaAddr())
	if code == 0 || !strings.Contains(stderr, "INVALID_REQUEST") {
		t.Errorf("remove of the broker asked: got exit %d, stderr %q; want a failure naming INVALID_REQUEST", code, stderr)
	}
	code, _, stderr = fluxo(t, ctx, "", "cluster", "remove", "x", "--brokers", node.KafkaAddr())
	if code == 0 || !strings.Contains(stderr, "NODE-ID") {
		t.Errorf("remove x: got exit %d, stderr %q; want a usage error", code, stderr)
	}
}

func TestParseReplicas(t *testing.T) {
	tests := []struct {
		in   string
		want []int32
		ok   bool
	}{
		{"1,2,3", []int32{1, 2, 3}, true},
		{" 4 , 2", []int32{4, 2}, true},
		{"0", []int32{0}, true},
		{"", nil, false},
		{"1,,2", nil, false},
		{"1,1", nil, false},
		{"-1", nil, false},
		{"a", nil, false},
	}
	for _, tt := range tests {
		got, err := parseReplicas(tt.in)
		if (err == nil) != tt.ok || (tt.ok && !slices.Equal(got, tt.want)) {
			t.Errorf("parseReplicas(%q): got %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
