package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/fluxo-io/fluxo/devices"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// startMQTT starts a bare mochi MQTT server that lets every client in, on a
// loopback port, and returns its URL.
func startMQTT(t *testing.T) string {
	t.Helper()
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return "tcp://" + l.Address()
}

// countMessages subscribes a client to every topic of broker at QoS 1 and
// returns the number of messages it has received so far.
func countMessages(t *testing.T, broker string) func() int64 {
	t.Helper()
	var n atomic.Int64
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("counter"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("cannot connect to %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe("#", 1, func(mqtt.Client, mqtt.Message) { n.Add(1) })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("cannot subscribe: %v", tok.Error())
	}
	return n.Load
}

// summaryValue returns the number after label at the start of a line of the
// summary.
func summaryValue(t *testing.T, out, label string) int64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + label + ` +(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("got no %q line in\n%s", label, out)
	}
	v, _ := strconv.ParseInt(m[1], 10, 64)
	return v
}

func TestDevicesCommand(t *testing.T) {
	broker := startMQTT(t)
	seen := countMessages(t, broker)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"devices", "--broker", broker,
		"--sensors", "2", "--cars", "1", "--panels", "1", "--rate", "20", "--panel-rate", "5",
		"--duration", "500ms", "--seed", "7", "--alarm-rate", "4", "--qos", "1"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("got exit code %d, want 0 (stderr %q)", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"fluxo devices: 2 sensors, 1 car and 1 panel publishing to " + broker + " at QoS 1 for 500ms\n",
		"devices            4 (4 connected), seed 7\n",
		"fleet    devices  sent",
		"\nsensors  2 ",
		"\ncars     1 ",
		"\npanels   1 ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("got stdout\n%s\nwant it to contain %q", out, want)
		}
	}
	if strings.Contains(out, "\r") {
		t.Errorf("got a status line on stdout that is not a terminal: %q", out)
	}
	sent, acked := summaryValue(t, out, "sent"), summaryValue(t, out, "acknowledged")
	if sent < 10 || acked != sent {
		t.Errorf("got sent %d, acknowledged %d, want at least 10, all acknowledged", sent, acked)
	}
	testutil.EventuallyNoError(t, "every message sent at the broker", func() error {
		if got := seen(); got != sent {
			return fmt.Errorf("got %d messages at the broker, want %d (sent)", got, sent)
		}
		return nil
	})
}

func TestDevicesSummaryOnInterrupt(t *testing.T) {
	broker := startMQTT(t)
	seen := countMessages(t, broker)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for seen() < 5 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel() // as Ctrl-C does
	}()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"devices", "--broker", broker, "--sensors", "1", "--cars", "1", "--panels", "0", "--rate", "50"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("got exit code %d, want 0 (stderr %q)", code, stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "until Ctrl-C") {
		t.Errorf("got stdout\n%s\nwant it to say it runs until Ctrl-C", out)
	}
	if sent := summaryValue(t, out, "sent"); sent < 5 {
		t.Errorf("got sent %d in the summary, want at least 5", sent)
	}
}

func TestDevicesNoBroker(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"devices", "--broker", "tcp://" + addr, "--sensors", "1", "--cars", "0", "--panels", "0",
		"--connect-timeout", "300ms"}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("got exit code %d, want 1", code)
	}
	if want := "fluxo: devices: no device could connect to tcp://" + addr; !strings.Contains(stderr.String(), want) {
		t.Errorf("got stderr %q, want it to contain %q", stderr.String(), want)
	}
	if !strings.Contains(stdout.String(), "(0 connected)") {
		t.Errorf("got stdout\n%s\nwant a summary with 0 connected", stdout.String())
	}
}

func TestDevicesFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{name: "help", args: []string{"devices", "--help"}, wantStdout: "Examples:\n  # ten sensors"},
		{name: "help lists flags", args: []string{"devices", "--help"}, wantStdout: "--alarm-rate float"},
		{name: "bad qos", args: []string{"devices", "--qos", "3"}, wantCode: 1, wantStderr: "fluxo: devices: qos 3: want 0, 1 or 2\n"},
		{name: "qos from the environment", args: []string{"devices"}, env: map[string]string{"FLUXO_QOS": "7"}, wantCode: 1, wantStderr: "devices: qos 7"},
		{name: "zero rate", args: []string{"devices", "--rate", "0"}, wantCode: 1, wantStderr: "devices: rate 0:"},
		{name: "no devices", args: []string{"devices", "--sensors", "0", "--cars", "0", "--panels", "0"}, wantCode: 1, wantStderr: "devices: no devices"},
		{name: "bad broker", args: []string{"devices", "--broker", "http://x:1"}, wantCode: 1, wantStderr: `unknown scheme "http"`},
		{name: "bad duration", args: []string{"devices", "--duration", "soon"}, wantCode: 1, wantStderr: `invalid argument "soon" for "--duration"`},
		{name: "extra argument", args: []string{"devices", "now"}, wantCode: 1, wantStderr: `unknown command "now" for "fluxo devices"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
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

func TestStatusLine(t *testing.T) {
	connecting := devices.Stats{Devices: 30, Connected: 12}
	if got, want := statusLine(connecting, devices.Stats{}), "connecting: 12 of 30 devices"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	prev := devices.Stats{Devices: 30, Online: 30, Elapsed: 11 * time.Second, Counts: devices.Counts{Sent: 1000}}
	st := devices.Stats{Devices: 30, Online: 29, Elapsed: 12 * time.Second, Reconnects: 1,
		Counts: devices.Counts{Sent: 1300, Acked: 1290, Errors: 2, Dropped: 3, Alarms: 4}}
	want := "12s  online 29/30  sent 1300  acked 1290  300 msg/s  alarms 4  errors 2  dropped 3  reconnects 1"
	if got := statusLine(st, prev); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
