//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// mqttjsDir installs the pinned MQTT.js (npm ci, from the package lock)
// into a copy of testdata/mqttjs and returns it.
func mqttjsDir(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found: .ci/run installs nodejs and npm", tool)
			}
			t.Skipf("%s not found (apt-get install nodejs npm)", tool)
		}
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "publish.js"} {
		b, err := os.ReadFile(filepath.Join("testdata", "mqttjs", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, 3*time.Minute, nil, "npm", "ci", "--prefix", dir, "--no-audit", "--no-fund", "--loglevel", "error")
	return dir
}

// TestMQTTjsPublishesWithProperties: MQTT.js 5 (Node-RED's MQTT client)
// publishes 1,000 QoS 1 and 1,000 QoS 2 messages with user properties
// through the edge over MQTT 5, and every publish completes (it refuses a
// PUBACK whose reason code is not one of MQTT 5's); the core topic then
// holds each message once with its user properties as headers, in order.
func TestMQTTjsPublishesWithProperties(t *testing.T) {
	t.Parallel()
	const n = 1000
	dir := mqttjsDir(t)
	bin := buildFluxo(t)
	core := startCoreProc(t, bin)
	edge := startEdgeProc(t, bin, core.kafka)

	out := run(t, 2*time.Minute, nil, "node", filepath.Join(dir, "publish.js"),
		"--url", "mqtt://"+edge.mqtt, "--topic", "fleet/js-1/temp", "--count", strconv.Itoa(n), "--timeout-ms", "90000")
	var s struct {
		Acked  map[string]int `json:"acked"`
		Errors []string       `json:"errors"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &s); err != nil {
		t.Fatalf("publish.js: cannot parse %q: %v", out, err)
	}
	if len(s.Errors) > 0 || s.Acked["1"] != n || s.Acked["2"] != n {
		t.Fatalf("MQTT.js: got %v acknowledged by QoS, errors %q; want %d at QoS 1 and 2, no error", s.Acked, s.Errors, n)
	}

	edge.waitSpoolEmpty(t, 30*time.Second)
	recs := readCore(t, core.kafka, "telemetry")["telemetry"]
	if len(recs) != 2*n {
		t.Fatalf("telemetry records: got %d, want %d", len(recs), 2*n)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		var names []string
		var trace string
		for _, h := range r.Headers {
			switch h.Key {
			case "unit", "schema", "trace":
				names = append(names, h.Key)
				if h.Key == "trace" {
					trace = string(h.Value)
				}
			}
		}
		if len(names) != 3 || names[0] != "unit" || names[1] != "schema" || names[2] != "trace" {
			t.Fatalf("record %s/%d@%d: user property headers %v, want unit, schema, trace in order", r.Topic, r.Partition, r.Offset, names)
		}
		if seen[trace] {
			t.Fatalf("message %s stored twice", trace)
		}
		seen[trace] = true
	}
}
