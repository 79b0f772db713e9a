//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kgo"
)

// mosquittoBin is Debian's Mosquitto broker (package mosquitto).
const mosquittoBin = "/usr/sbin/mosquitto"

// bridgeID is the --bridge-id (edge.id header) and the MQTT client id of
// the bridge under test.
const bridgeID = "e2e-bridge"

// TestBridgeMosquitto runs a Mosquitto broker, a fluxo core and a fluxo
// bridge subscribed to Mosquitto as three processes on 127.0.0.1.
// mosquitto_pub and a paho client publish to Mosquitto; the records reach
// the core with the edge's keys and headers, each device's in order,
// alarms on "alarms". Then the core stops, more is published, and the
// core starts again: the bridge's spool held what came meanwhile, and
// every message is in the core exactly once.
func TestBridgeMosquitto(t *testing.T) {
	t.Parallel()
	bridgeNeedMosquitto(t)
	bin := buildFluxo(t)
	mosq := startMosquitto(t)

	dir := t.TempDir()
	core := &bridgeProc{name: "fluxo core", bin: bin}
	core.http = freeAddr(t)
	kafka := freeAddr(t)
	core.args = []string{"core", "--data-dir", filepath.Join(dir, "core"), "--kafka-addr", kafka, "--http-addr", core.http,
		"--serf-addr", freeAddr(t), "--raft-addr", freeAddr(t)}
	core.ready = fmt.Sprintf("fluxo core: Kafka on %s, HTTP on %s", kafka, core.http)
	core.start(t)

	bridge := &bridgeProc{name: "fluxo bridge", bin: bin}
	bridge.http = freeAddr(t)
	bridge.args = []string{"bridge", "--source", "tcp://" + mosq, "--filter", "site/#", "--core", kafka,
		"--spool-dir", filepath.Join(dir, "spool"), "--http-addr", bridge.http, "--bridge-id", bridgeID,
		"--client-id", bridgeID, "--linger", "10ms", "--log-level", "debug"}
	bridge.ready = "fluxo bridge: source tcp://" + mosq + " (site/#), HTTP on " + bridge.http
	bridge.start(t)

	host, port, _ := net.SplitHostPort(mosq)
	pub := bridgePaho(t, "tcp://"+mosq)
	const perDevice = 50
	sent := 0
	publishRound := func(round int) {
		t.Helper()
		// mosquitto_pub -l: one connection per device, one message per
		// line, in order, at QoS 1.
		for _, dev := range []string{"d-1", "d-2"} {
			var in bytes.Buffer
			for i := range perDevice {
				fmt.Fprintf(&in, "%s %d\n", dev, round*perDevice+i)
			}
			run(t, 30*time.Second, bytes.NewReader(in.Bytes()), "mosquitto_pub", "-h", host, "-p", port,
				"-i", "pub-"+dev, "-q", "1", "-t", "site/"+dev+"/temp", "-l")
		}
		// paho: a third device.
		for i := range perDevice {
			tok := pub.Publish("site/d-3/temp", 1, false, fmt.Sprintf("d-3 %d", round*perDevice+i))
			if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
				t.Fatalf("paho publish: got %v, want acknowledged", tok.Error())
			}
		}
		run(t, 30*time.Second, nil, "mosquitto_pub", "-h", host, "-p", port, "-i", "pub-p-1", "-q", "1",
			"-t", "site/p-1/alarm/intrusion", "-m", fmt.Sprintf("p-1 %d", round))
		sent += 3*perDevice + 1
	}

	// Round 0: the core is up.
	start := time.Now()
	publishRound(0)
	recs := bridgeConsume(t, kafka, sent, 20*time.Second)
	bridgeCheck(t, recs, 1, start)
	t.Logf("round 0: %d records in the core after %v", len(recs), time.Since(start).Round(time.Millisecond))

	// Round 1: the core is down; the bridge spools and acknowledges.
	core.stop(t)
	publishRound(1)
	bridgeWaitMetric(t, bridge.http, "fluxo_bridge_spooled_total", float64(sent), 20*time.Second)
	if got := bridgeMetric(t, bridge.http, `fluxo_edge_spool_records{lane="telemetry"}`); got < 3*perDevice {
		t.Errorf("telemetry records held in the bridge's spool while the core is down: got %v, want at least %d", got, 3*perDevice)
	}
	time.Sleep(time.Second) // the uplink retries meanwhile
	restart := time.Now()
	core.start(t)
	recs = bridgeConsume(t, kafka, sent, 30*time.Second)
	bridgeCheck(t, recs, 2, start)
	t.Logf("round 1: %d records in the core %v after the core's restart", len(recs), time.Since(restart).Round(time.Millisecond))

	if got := bridgeMetric(t, bridge.http, "fluxo_bridge_redelivered_total"); got != 0 {
		t.Errorf("messages Mosquitto delivered twice: got %v, want 0", got)
	}
}

// bridgeRecord is a record read back from the core.
type bridgeRecord struct {
	topic   string
	key     string
	value   string
	headers map[string][]string
}

// bridgeConsume reads the core's telemetry and alarms topics from the
// start with franz-go until it has want records, then a little longer to
// catch extra ones.
func bridgeConsume(t *testing.T, kafka string, want int, timeout time.Duration) []bridgeRecord {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka), kgo.ConsumeTopics("telemetry", "alarms"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatalf("franz-go client: %v", err)
	}
	defer cl.Close()
	var out []bridgeRecord
	poll := func(ctx context.Context) {
		for _, r := range cl.PollFetches(ctx).Records() {
			br := bridgeRecord{topic: r.Topic, key: string(r.Key), value: string(r.Value), headers: map[string][]string{}}
			for _, h := range r.Headers {
				br.headers[h.Key] = append(br.headers[h.Key], string(h.Value))
			}
			out = append(out, br)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for len(out) < want && ctx.Err() == nil {
		poll(ctx)
	}
	// Any record beyond want (a duplicate) is in the same log: give it a
	// moment to show up.
	extra, cancelExtra := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelExtra()
	for extra.Err() == nil {
		poll(extra)
	}
	if len(out) != want {
		t.Fatalf("records in the core: got %d, want %d", len(out), want)
	}
	return out
}

// bridgeCheck checks the records of rounds rounds of publishRound: each
// message exactly once, per device in order, on the right topic with the
// right key and headers.
func bridgeCheck(t *testing.T, recs []bridgeRecord, rounds int, start time.Time) {
	t.Helper()
	next := map[string]int{}
	for _, r := range recs {
		dev, seqStr, ok := strings.Cut(r.value, " ")
		seq, err := strconv.Atoi(seqStr)
		if !ok || err != nil {
			t.Fatalf("record value %q: want \"DEVICE SEQ\"", r.value)
		}
		if seq != next[dev] {
			t.Fatalf("record %q of %s: got seq %d, want %d (each message once, in order)", r.value, dev, seq, next[dev])
		}
		next[dev]++
		wantTopic, mqttTopic := "telemetry", "site/"+dev+"/temp"
		if dev == "p-1" {
			wantTopic, mqttTopic = "alarms", "site/p-1/alarm/intrusion"
		}
		if r.topic != wantTopic || r.key != dev {
			t.Errorf("record %q: got topic %q key %q, want %q and %q", r.value, r.topic, r.key, wantTopic, dev)
		}
		for k, v := range map[string]string{"mqtt.topic": mqttTopic, "mqtt.qos": "1", "edge.id": bridgeID} {
			if got := r.headers[k]; len(got) != 1 || got[0] != v {
				t.Errorf("record %q: header %s: got %q, want [%q]", r.value, k, got, v)
			}
		}
		ms := r.headers["edge.received_ms"]
		if len(ms) != 1 {
			t.Errorf("record %q: header edge.received_ms: got %q, want one value", r.value, ms)
		} else if v, err := strconv.ParseInt(ms[0], 10, 64); err != nil || v < start.UnixMilli() || v > time.Now().UnixMilli() {
			t.Errorf("record %q: header edge.received_ms: got %q, want a unix time in ms since the test began", r.value, ms[0])
		}
		if got, ok := r.headers["mqtt.client"]; ok {
			t.Errorf("record %q: header mqtt.client: got %q, want none", r.value, got)
		}
	}
	for _, dev := range []string{"d-1", "d-2", "d-3"} {
		if next[dev] != rounds*50 {
			t.Errorf("records of %s: got %d, want %d", dev, next[dev], rounds*50)
		}
	}
	if next["p-1"] != rounds {
		t.Errorf("alarms of p-1: got %d, want %d", next["p-1"], rounds)
	}
}

// startMosquitto starts Mosquitto on a free port of 127.0.0.1 with a
// generated configuration (anonymous clients, no persistence) and returns
// its address. It is stopped at the end of the test.
func startMosquitto(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		conf := filepath.Join(dir, "mosquitto.conf")
		// max_queued_messages: what waits in the bridge's session while
		// it is away (default 1000).
		text := "listener " + port + " 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nlog_dest stderr\n"
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		p := &bridgeProc{name: "mosquitto", bin: mosquittoBin, args: []string{"-c", conf}, tcp: addr}
		err := p.launch(t, 10*time.Second)
		if err == nil {
			t.Cleanup(func() { p.stopAtEnd(t) })
			return addr
		}
		p.kill()
		if attempt < 5 && strings.Contains(p.logs.String(), "Address already in use") {
			continue
		}
		t.Fatalf("mosquitto: %v\n%s", err, p.logs.tail())
	}
}

// bridgeProc is a process a test starts, may stop and start again with the
// same arguments, and stops at its end: SIGTERM, exit status 0 wanted
// within 15s, else SIGKILL and a failure.
type bridgeProc struct {
	name  string
	bin   string
	args  []string
	ready string // a line printed once it serves, if any
	http  string // the address of /readyz, if any
	tcp   string // an address accepting TCP connections once it serves, if any

	cmd     *exec.Cmd
	logs    *syncBuffer
	exited  chan struct{}
	waitErr error
	cleanup bool
}

// start launches the process and waits until it is ready.
func (p *bridgeProc) start(t *testing.T) {
	t.Helper()
	if err := p.launch(t, 15*time.Second); err != nil {
		p.kill()
		t.Fatalf("%s: %v\n%s", p.name, err, p.logs.tail())
	}
	if !p.cleanup {
		p.cleanup = true
		t.Cleanup(func() { p.stopAtEnd(t) })
	}
}

func (p *bridgeProc) launch(t *testing.T, timeout time.Duration) error {
	p.logs = &syncBuffer{}
	p.exited = make(chan struct{})
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	exited := p.exited
	go func() {
		p.waitErr = p.cmd.Wait()
		close(exited)
	}()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("exited before it was ready: %v", p.waitErr)
		default:
		}
		if p.isReady(client) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %v", timeout)
}

func (p *bridgeProc) isReady(client *http.Client) bool {
	if p.ready != "" && !strings.Contains(p.logs.String(), p.ready) {
		return false
	}
	if p.tcp != "" {
		c, err := net.DialTimeout("tcp", p.tcp, time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	if p.http != "" {
		resp, err := client.Get("http://" + p.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	return true
}

func (p *bridgeProc) running() bool {
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

// stop sends SIGTERM and wants exit status 0 within 15s.
func (p *bridgeProc) stop(t *testing.T) {
	t.Helper()
	if !p.running() {
		t.Errorf("%s exited before it was stopped: %v\n%s", p.name, p.waitErr, p.logs.tail())
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Errorf("%s after SIGTERM: got %v, want exit status 0\n%s", p.name, p.waitErr, p.logs.tail())
		}
	case <-time.After(15 * time.Second):
		p.kill()
		t.Errorf("%s after SIGTERM: got no exit within 15s, want exit status 0 (killed it)\n%s", p.name, p.logs.tail())
	}
}

// stopAtEnd stops the process if it runs, and shows its output if the
// test failed.
func (p *bridgeProc) stopAtEnd(t *testing.T) {
	if p.running() {
		p.stop(t)
	}
	if t.Failed() {
		t.Logf("%s output:\n%s", p.name, p.logs.tail())
	}
}

// kill SIGKILLs the process and waits for it.
func (p *bridgeProc) kill() {
	if p.running() {
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// bridgePaho connects a paho publisher, disconnected at the end of the
// test.
func bridgePaho(t *testing.T, url string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("pub-d-3").SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("paho connect to %s: got %v, want connected", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(250) })
	return c
}

// bridgeMetric returns the value of one sample of the Prometheus text at
// http://addr/metrics, named with its labels as exposed; -1 if absent.
func bridgeMetric(t *testing.T, addr, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && name == sample {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("/metrics %s: cannot parse %q: %v", sample, value, err)
			}
			return v
		}
	}
	return -1
}

// bridgeWaitMetric waits until a sample reaches want.
func bridgeWaitMetric(t *testing.T, addr, sample string, want float64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := bridgeMetric(t, addr, sample)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics %s: got %v after %v, want %v", sample, got, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func bridgeNeedMosquitto(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(mosquittoBin); err != nil {
		t.Fatalf("%s: got %v, want it installed (apt-get install mosquitto; .ci/run does it)", mosquittoBin, err)
	}
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		t.Fatalf("mosquitto_pub: got %v, want it installed (apt-get install mosquitto-clients; .ci/run does it)", err)
	}
}
