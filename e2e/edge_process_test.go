//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// edgeID is the --edge-id of every edge these tests start: the value of
// the edge.id header.
const edgeID = "e2e-edge"

// fluxoProc is one fluxo process (core or edge) that a test stops, kills
// and starts again with the same arguments: the same ports and the same
// directories. Cleanup stops it if it runs.
type fluxoProc struct {
	name  string // "fluxo core" or "fluxo edge", for messages
	bin   string
	args  []string
	ready string // the line the process prints once it listens
	http  string // its HTTP address, for /readyz and /metrics

	cmd     *exec.Cmd
	logs    *syncBuffer   // this run's output
	history *syncBuffer   // every run's output
	exited  chan struct{} // closed when cmd.Wait returned
	waitErr error         // cmd.Wait's result, set before exited closes
	starts  int
}

// coreProc is a fluxo core with its addresses.
type coreProc struct {
	*fluxoProc
	kafka   string
	dataDir string
}

// edgeProc is a fluxo edge with its addresses.
type edgeProc struct {
	*fluxoProc
	mqtt     string // 127.0.0.1:port
	spoolDir string
}

// newCoreProc prepares a fluxo core on free ports of 127.0.0.1 with a
// temporary data directory and 3 partitions per auto-created topic,
// without starting it.
func newCoreProc(t *testing.T, bin string) *coreProc {
	t.Helper()
	c := &coreProc{fluxoProc: &fluxoProc{name: "fluxo core", bin: bin, history: &syncBuffer{}}, dataDir: t.TempDir()}
	c.pickPorts(t)
	t.Cleanup(func() { c.stopAtEnd(t) })
	return c
}

func (c *coreProc) pickPorts(t *testing.T) {
	c.kafka, c.http = freeAddr(t), freeAddr(t)
	c.args = []string{"core", "--data-dir", c.dataDir, "--kafka-addr", c.kafka, "--http-addr", c.http,
		"--serf-addr", freeAddr(t), "--raft-addr", freeAddr(t), "--default-partitions", "3", "--log-level", "info"}
	c.ready = fmt.Sprintf("fluxo core: Kafka on %s, HTTP on %s", c.kafka, c.http)
}

// startCoreProc starts a fluxo core on free ports (trying other ports if
// one was taken meanwhile) and waits until it is ready.
func startCoreProc(t *testing.T, bin string) *coreProc {
	t.Helper()
	c := newCoreProc(t, bin)
	for attempt := 1; ; attempt++ {
		err := c.start()
		if err == nil {
			return c
		}
		if attempt < 5 && strings.Contains(c.logs.String(), "address already in use") {
			c.pickPorts(t)
			continue
		}
		t.Fatalf("%s: %v\n%s", c.name, err, c.history.tail())
	}
}

// startEdgeProc starts a fluxo edge forwarding to core, on free ports with
// a temporary spool directory, anonymous devices and an fsync before every
// acknowledgement, and waits until it is ready. extra flags are appended.
func startEdgeProc(t *testing.T, bin, core string, extra ...string) *edgeProc {
	t.Helper()
	e := &edgeProc{fluxoProc: &fluxoProc{name: "fluxo edge", bin: bin, history: &syncBuffer{}}, spoolDir: t.TempDir()}
	t.Cleanup(func() { e.stopAtEnd(t) })
	for attempt := 1; ; attempt++ {
		e.mqtt, e.http = freeAddr(t), freeAddr(t)
		e.args = append([]string{"edge", "--mqtt-addr", e.mqtt, "--http-addr", e.http, "--core", core,
			"--spool-dir", e.spoolDir, "--allow-anonymous", "--spool-sync", "always", "--edge-id", edgeID,
			"--shutdown-timeout", "10s", "--log-level", "info"}, extra...)
		e.ready = fmt.Sprintf("fluxo edge: MQTT on %s, HTTP on %s", e.mqtt, e.http)
		err := e.start()
		if err == nil {
			return e
		}
		if attempt < 5 && strings.Contains(e.logs.String(), "address already in use") {
			continue
		}
		t.Fatalf("%s: %v\n%s", e.name, err, e.history.tail())
	}
}

// broker is the edge's MQTT address as paho wants it.
func (e *edgeProc) broker() string { return "tcp://" + e.mqtt }

// hostPort splits the edge's MQTT address for mosquitto_pub and
// mosquitto_sub.
func (e *edgeProc) hostPort(t *testing.T) (string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(e.mqtt)
	if err != nil {
		t.Fatalf("split %q: %v", e.mqtt, err)
	}
	return host, port
}

// running reports whether the process was started and has not exited.
func (p *fluxoProc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// start starts the process with its arguments and waits up to 15s until
// it has printed its ready line and /readyz answers 200. On failure the
// process is killed.
func (p *fluxoProc) start() error {
	if p.running() {
		return fmt.Errorf("already running")
	}
	p.starts++
	p.logs = &syncBuffer{}
	fmt.Fprintf(p.history, "=== start %d: %s %s\n", p.starts, p.name, strings.Join(p.args, " "))
	p.cmd = exec.Command(p.bin, p.args...)
	out := io.MultiWriter(p.logs, p.history)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.exited = make(chan struct{})
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	exited, cmd := p.exited, p.cmd
	go func() {
		p.waitErr = cmd.Wait()
		close(exited)
	}()
	if err := p.waitReady(15 * time.Second); err != nil {
		p.kill()
		return err
	}
	return nil
}

func (p *fluxoProc) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("exited before it was ready: %v", p.waitErr)
		default:
		}
		if strings.Contains(p.logs.String(), p.ready) {
			resp, err := client.Get("http://" + p.http + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %v", timeout)
}

// mustStart starts the process again (same ports, same directories) and
// fails the test if it does not become ready.
func (p *fluxoProc) mustStart(t *testing.T) {
	t.Helper()
	if err := p.start(); err != nil {
		t.Fatalf("%s, start %d on the same ports and directories: got %v, want it ready\n%s", p.name, p.starts, err, p.history.tail())
	}
}

// stop sends SIGTERM and wants exit status 0 within 15s; after that it
// kills the process and fails the test.
func (p *fluxoProc) stop(t *testing.T) {
	t.Helper()
	if !p.running() {
		if p.cmd != nil && p.waitErr != nil {
			t.Errorf("%s exited on its own: %v\n%s", p.name, p.waitErr, p.history.tail())
		}
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Errorf("%s after SIGTERM: got %v, want exit status 0\n%s", p.name, p.waitErr, p.history.tail())
		}
	case <-time.After(15 * time.Second):
		// SIGQUIT makes a Go program print every goroutine's stack: where
		// it hangs.
		p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.exited:
		case <-time.After(2 * time.Second):
			p.kill()
		}
		t.Errorf("%s after SIGTERM: got no exit within 15s, want exit status 0 (sent SIGQUIT for the stacks, then SIGKILL)\n%s", p.name, p.history.tail())
	}
}

// kill SIGKILLs the process and waits until it is gone.
func (p *fluxoProc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// stopAtEnd is the cleanup: stop the process if it still runs, and show
// its output if the test failed.
func (p *fluxoProc) stopAtEnd(t *testing.T) {
	if p.running() {
		p.stop(t)
	}
	if t.Failed() && p.history != nil {
		t.Logf("%s output:\n%s", p.name, p.history.tail())
	}
}

// metrics scrapes /metrics into a map from series (as printed, e.g.
// `fluxo_edge_spool_records{lane="alarm"}`) to value.
func (p *fluxoProc) metrics() (map[string]float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + p.http + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: status %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// mustMetrics is metrics, failing the test on an error.
func (p *fluxoProc) mustMetrics(t *testing.T) map[string]float64 {
	t.Helper()
	m, err := p.metrics()
	if err != nil {
		t.Fatalf("%s /metrics: %v", p.name, err)
	}
	return m
}

// Edge metric series the tests read.
func spoolRecords(lane string) string {
	return `fluxo_edge_spool_records{lane="` + lane + `"}`
}

func laneMessages(lane, outcome string) string {
	return `fluxo_edge_messages_total{lane="` + lane + `",outcome="` + outcome + `"}`
}

// waitSpoolEmpty waits until the edge's spool holds no record in either
// lane and every lane's accounting has caught up: as many messages
// delivered, evicted or expired as were accepted since the process
// started (more after a restart: the records recovered from the spool).
// Then everything accepted was acknowledged by the core (or evicted).
func (e *edgeProc) waitSpoolEmpty(t *testing.T, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	var last map[string]float64
	for time.Since(start) < timeout {
		m, err := e.metrics()
		if err == nil {
			last = m
			if spoolDrained(m) {
				t.Logf("edge spool drained in %v", time.Since(start).Round(time.Millisecond))
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	var s []string
	for _, lane := range []string{"alarm", "telemetry"} {
		s = append(s, fmt.Sprintf("%s: spooled %v, accepted %v, delivered %v, evicted %v, expired %v", lane,
			last[spoolRecords(lane)], last[laneMessages(lane, "accepted")], last[laneMessages(lane, "delivered")],
			last[laneMessages(lane, "evicted")], last[laneMessages(lane, "expired")]))
	}
	t.Fatalf("edge spool after %v: got %s; want 0 spooled and accepted = delivered + evicted + expired in each lane",
		timeout, strings.Join(s, "; "))
}

func spoolDrained(m map[string]float64) bool {
	for _, lane := range []string{"alarm", "telemetry"} {
		n, ok := m[spoolRecords(lane)]
		if !ok || n != 0 {
			return false
		}
		done := m[laneMessages(lane, "delivered")] + m[laneMessages(lane, "evicted")] + m[laneMessages(lane, "expired")]
		if done < m[laneMessages(lane, "accepted")] {
			return false
		}
	}
	return true
}
