package faultlink

import (
	"bytes"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// echoServer accepts connections on 127.0.0.1 and echoes what it reads;
// it stops with the test.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func startLink(t *testing.T) *Link {
	t.Helper()
	l, err := Start(echoServer(t), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func dial(t *testing.T, l *Link) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads as many bytes back.
func roundTrip(t *testing.T, c net.Conn, msg []byte) []byte {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read back %d bytes: %v", len(msg), err)
	}
	return got
}

func TestLinkForwardsAndCounts(t *testing.T) {
	l := startLink(t)
	c := dial(t, l)
	msg := bytes.Repeat([]byte("fluxo "), 10000)
	if got := roundTrip(t, c, msg); !bytes.Equal(got, msg) {
		t.Fatalf("echo: got %d bytes (equal: false), want the %d sent", len(got), len(msg))
	}
	if got := l.Bytes(Up); got != int64(len(msg)) {
		t.Errorf("bytes up: got %d, want %d", got, len(msg))
	}
	if got := l.Bytes(Down); got != int64(len(msg)) {
		t.Errorf("bytes down: got %d, want %d", got, len(msg))
	}
}

// TestLinkCutHoldsData: nothing crosses a cut link, and what was sent
// during the cut arrives once it heals, nothing lost.
func TestLinkCutHoldsData(t *testing.T) {
	l := startLink(t)
	c := dial(t, l)
	roundTrip(t, c, []byte("before"))
	if err := l.Cut(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("during the cut")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("read during the cut: got %q, want nothing", buf[:n])
	}
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	got := make([]byte, len("during the cut"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "during the cut" {
		t.Fatalf("after heal: got %q, %v, want %q", got, err, "during the cut")
	}
	if got := roundTrip(t, c, []byte("after")); string(got) != "after" {
		t.Fatalf("after heal: got %q, want %q", got, "after")
	}
}

// TestLinkLimitData: a connection closes after the limit, having passed
// exactly that many bytes; Clear lifts it for new connections.
func TestLinkLimitData(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	received := make(chan int, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				received <- int(n)
			}()
		}
	}()
	l, err := Start(ln.Addr().String(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	if err := l.LimitData(Up, 1000); err != nil {
		t.Fatal(err)
	}
	c := dial(t, l)
	c.Write(bytes.Repeat([]byte{'x'}, 5000))
	select {
	case n := <-received:
		if n != 1000 {
			t.Fatalf("received through a 1000-byte limit: got %d bytes, want 1000", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the limited connection did not end within 30s")
	}
	if err := l.Clear(); err != nil {
		t.Fatal(err)
	}
	c = dial(t, l)
	c.Write(bytes.Repeat([]byte{'y'}, 5000))
	c.Close()
	select {
	case n := <-received:
		if n != 5000 {
			t.Fatalf("after Clear: received %d bytes, want 5000", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the connection after Clear did not end within 30s")
	}
}

// TestLinkReset: open connections end, new ones work on the same address.
func TestLinkReset(t *testing.T) {
	l := startLink(t)
	c := dial(t, l)
	roundTrip(t, c, []byte("ping"))
	addr := l.Addr()
	if err := l.Reset(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := c.Read(make([]byte, 8)); err == nil {
		t.Fatalf("read on a reset connection: got %d bytes, want an error", n)
	}
	if l.Addr() != addr {
		t.Fatalf("address after reset: got %s, want %s", l.Addr(), addr)
	}
	if got := roundTrip(t, dial(t, l), []byte("pong")); string(got) != "pong" {
		t.Fatalf("new connection after reset: got %q, want pong", got)
	}
}

// TestBucketShared: bookings at one rate follow each other, whoever
// books, so two connections share the rate instead of each having it.
func TestBucketShared(t *testing.T) {
	var b bucket
	start := time.Now()
	var last time.Time
	for range 10 {
		last = b.book(1000, 10000) // 100 ms each
	}
	if got, want := last.Sub(start), time.Second-burst; got < want {
		t.Fatalf("10 bookings of 100 ms: the last ends %v after the first began, want at least %v", got, want)
	}
}

// TestBandwidthShared: two connections through a capped link together
// take at least as long as their sum at the cap (a lower bound only: a
// busy machine makes it slower, never faster).
func TestBandwidthShared(t *testing.T) {
	l := startLink(t)
	const rate = 200_000
	if err := l.Bandwidth(rate); err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte{'z'}, 100_000)
	start := time.Now()
	done := make(chan struct{}, 2)
	for range 2 {
		c := dial(t, l)
		go func() {
			c.Write(msg)
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			io.ReadFull(c, make([]byte, len(msg)))
			done <- struct{}{}
		}()
	}
	<-done
	<-done
	// Up: 200 kB at 200 kB/s, shared; a per-connection cap would take half.
	if got, want := time.Since(start), time.Second-2*burst; got < want {
		t.Fatalf("2 × 100 kB through a shared 200 kB/s: got %v, want at least %v", got, want)
	}
	if got := l.Bytes(Down); got != 2*int64(len(msg)) {
		t.Errorf("bytes down: got %d, want %d", got, 2*len(msg))
	}
}

// TestNotInTheBinary: the fluxo binary does not link toxiproxy (nor this
// package): faults are for tests and benchmarks only.
func TestNotInTheBinary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/fluxo-io/fluxo/cmd/fluxo").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "toxiproxy") || strings.HasSuffix(dep, "/internal/faultlink") {
			t.Errorf("cmd/fluxo depends on %s, want no fault injection in the binary", dep)
		}
	}
}
