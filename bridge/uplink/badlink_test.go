package uplink

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/core"
	"github.com/fluxo-io/fluxo/internal/faultlink"
)

// startCoreBehind starts a core whose clients reach it only through a
// fault-injecting link (it advertises the link's address) and returns
// the link.
func startCoreBehind(t *testing.T) (*core.Node, *faultlink.Link) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	link, err := faultlink.Start(addr, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(link.Close)
	cfg := core.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr, cfg.KafkaAdvertise = addr, link.Addr()
	cfg.HTTPAddr = ""
	cfg.Broker.DefaultPartitions = 1
	n, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	return n, link
}

// TestSendLongerThanRequestTimeout: over a link so slow that one window
// takes longer to send than RequestTimeout, the lane lengthens its
// timeout after a send timed out, instead of sending the same saved
// window again and again into the same timeout; everything arrives once.
func TestSendLongerThanRequestTimeout(t *testing.T) {
	_, link := startCoreBehind(t)
	dir := t.TempDir()
	sp := openSpool(t, dir)
	cfg := testConfig(dir, link.Addr())
	cfg.RequestTimeout = time.Second
	cfg.MaxBatchBytes = 32 << 10
	// A linger far longer than appending the records takes, so they go as
	// one window however slowly this machine appends them.
	cfg.Linger = 3 * time.Second
	// The first send carries the producer id and metadata: start the
	// lane over a fast link, then slow it down.
	u := newUplinkConfig(t, sp, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		u.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	appendNoise(t, sp, 0, 1)
	waitDrained(t, sp)
	// About 29 kB of incompressible records at 16 kB/s: a window takes
	// nearly twice the request timeout.
	if err := link.Bandwidth(16_000); err != nil {
		t.Fatal(err)
	}
	appendNoise(t, sp, 1, 24)
	waitDrained(t, sp)
	if err := link.Clear(); err != nil {
		t.Fatal(err)
	}
	consume(t, link.Addr(), "telemetry", 25)
	for _, s := range u.Stats() {
		if s.Lane == spool.Telemetry && s.Retries == 0 {
			t.Errorf("telemetry retries: got 0, want some (sends timed out before the timeout grew)")
		}
	}
}

// appendNoise spools n telemetry records of about 1 KiB that snappy
// cannot compress, seqs from, device c-0000.
func appendNoise(t *testing.T, sp *spool.Spool, from, n int) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(from), 9))
	for i := from; i < from+n; i++ {
		noise := make([]byte, 1200)
		for j := range noise {
			noise[j] = byte('!' + r.IntN(90))
		}
		v := fmt.Appendf(nil, `{"device":"c-0000","seq":%d,"noise":"`, i)
		v = append(append(v, noise...), '"', '}')
		m := spool.Message{Lane: spool.Telemetry, Topic: "telemetry", Key: []byte("c-0000"), Value: v,
			Headers: []kmsg.Header{{Key: "mqtt.topic", Value: []byte("cars/c-0000/telemetry")}}, Time: time.Now()}
		if err := sp.Append(m); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNextTimeout(t *testing.T) {
	const base = time.Second
	for _, c := range []struct {
		name          string
		timeout, took time.Duration
		ok, timedOut  bool
		want          time.Duration
	}{
		{"fast success stays at base", base, 100 * time.Millisecond, true, false, base},
		{"timed out doubles", base, base, false, true, 2 * base},
		{"doubling stops at the cap", 6 * base, 6 * base, false, true, maxTimeoutFactor * base},
		{"slow success keeps twice its time", 4 * base, 3 * base, true, false, 6 * base},
		{"success after a long timeout shrinks back", 8 * base, 200 * time.Millisecond, true, false, base},
		{"other failure keeps the timeout", 4 * base, 10 * time.Millisecond, false, false, 4 * base},
	} {
		if got := nextTimeout(base, c.timeout, c.took, c.ok, c.timedOut); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestMaxRetryBackoff(t *testing.T) {
	for _, c := range []struct {
		name        string
		lane        spool.Lane
		retry, max  time.Duration
		alarm, want time.Duration
	}{
		{"telemetry keeps the cap", spool.Telemetry, 100 * time.Millisecond, 5 * time.Second, time.Second, 5 * time.Second},
		{"alarms retry sooner", spool.Alarm, 100 * time.Millisecond, 5 * time.Second, time.Second, time.Second},
		{"alarm cap unset", spool.Alarm, 100 * time.Millisecond, 5 * time.Second, 0, 5 * time.Second},
		{"alarm cap above the cap", spool.Alarm, 100 * time.Millisecond, 5 * time.Second, 10 * time.Second, 5 * time.Second},
		{"alarm cap below the first backoff", spool.Alarm, 100 * time.Millisecond, 5 * time.Second, time.Millisecond, 100 * time.Millisecond},
	} {
		l := &lane{id: c.lane, u: &Uplink{cfg: Config{RetryBackoff: c.retry, MaxRetryBackoff: c.max, AlarmMaxRetryBackoff: c.alarm}}}
		if got := l.maxRetryBackoff(); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}
