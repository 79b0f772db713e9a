package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

// shutdownListener finds this process's listening TCP socket on port and
// shuts it down, as a failing network stack would: its accept fails for
// good (EINVAL) from then on. It reports whether it found the socket.
func shutdownListener(port int) bool {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return false
	}
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			continue
		}
		in4, ok := sa.(*unix.SockaddrInet4)
		if !ok || in4.Port != port {
			continue
		}
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
			continue
		}
		return unix.Shutdown(fd, unix.SHUT_RD) == nil
	}
	return false
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestCoreExitsWhenKafkaListenerFails: `fluxo core` whose Kafka listener
// can no longer accept logs the error and exits non-zero, instead of
// running on with a dead port.
func TestCoreExitsWhenKafkaListenerFails(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	dir := t.TempDir()
	go func() {
		// The node's parts log from several goroutines, as to a real
		// stderr: the buffer takes them one at a time.
		var stdout, stderr lockedBuffer
		code := run(ctx, []string{"core", "--node-id", "1", "--data-dir", dir,
			"--kafka-addr", "127.0.0.1:" + strconv.Itoa(port), "--http-addr", "127.0.0.1:0",
			"--serf-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0"}, &stdout, &stderr)
		done <- result{code, stderr.String()}
	}()
	testutil.Eventually(t, "the Kafka listener to be found and shut down", func() bool { return shutdownListener(port) })
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		t.Fatal("fluxo core still runs with a failed Kafka listener, want it to exit")
	}
	if res.code == 0 {
		t.Fatalf("got exit code 0, want non-zero; stderr:\n%s", res.stderr)
	}
	for _, want := range []string{"listener failed", "kafka listener PLAINTEXT"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("got stderr without %q:\n%s", want, res.stderr)
		}
	}
}
