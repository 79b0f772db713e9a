package edge

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

var idleProfile = flag.String("idleprofile", "", "BenchmarkIdleConnections: write a heap profile of the open connections to this file")

// BenchmarkIdleConnections opens 2,000 MQTT 3.1.1 connections (clean
// session, keep-alive 300 s) to an edge in this process, bare net.Conns
// on the client side, and reports what they hold once silent, after a
// GC: heap and goroutine stacks per connection (both ends of each
// connection are in this process: the client's is a net.TCPConn) and
// goroutines per connection. Run with -benchtime 1x.
func BenchmarkIdleConnections(b *testing.B) {
	const n = 2000
	if *idleProfile != "" {
		runtime.MemProfileRate = 512
		defer func() { runtime.MemProfileRate = 512 * 1024 }()
	}
	for range b.N {
		b.StopTimer()
		cfg := DefaultConfig()
		cfg.MQTTAddr = "127.0.0.1:0"
		cfg.EdgeID = "edge-bench"
		cfg.AllowAnonymous = true
		cfg.Logger = zerolog.Nop()
		cfg.MaxClients = n + 10
		e, err := New(cfg, &recSink{})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Start(); err != nil {
			b.Fatal(err)
		}
		before := idleMem()
		b.StartTimer()
		conns := make([]net.Conn, 0, n)
		for i := range n {
			c, err := net.Dial("tcp", e.Addr())
			if err != nil {
				b.Fatal(err)
			}
			vh := append(str("MQTT"), 4, 0x02, 300>>8, 300&0xff)
			if _, err := c.Write(packet(0x10, vh, str(fmt.Sprintf("idle-%05d", i)))); err != nil {
				b.Fatal(err)
			}
			var ack [4]byte
			if _, err := io.ReadFull(c, ack[:]); err != nil || ack[0] != 0x20 || ack[3] != 0 {
				b.Fatalf("connack: %v %v", ack, err)
			}
			conns = append(conns, c)
		}
		b.StopTimer()
		if e.poller != nil {
			testutil.Eventually(b, "all parked", func() bool { return e.poller.parked.Load() == n })
		}
		after := idleMem()
		b.ReportMetric(float64(after.heap-before.heap)/n, "heap-B/conn")
		b.ReportMetric(float64(after.stack-before.stack)/n, "stack-B/conn")
		b.ReportMetric(float64(after.goroutines-before.goroutines)/n, "goroutines/conn")
		if *idleProfile != "" {
			f, err := os.Create(*idleProfile)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.WriteHeapProfile(f); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		for _, c := range conns {
			c.Close()
		}
		e.Close()
	}
}

type memFigures struct{ heap, stack, goroutines int64 }

func idleMem() memFigures {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memFigures{heap: int64(m.HeapAlloc), stack: int64(m.StackInuse), goroutines: int64(runtime.NumGoroutine())}
}

// BenchmarkIngestParking measures what parking a connection's reader
// between packets costs a busy connection: QoS 1 publishes (256 B) into
// a real spool (SyncNever: the CPU path), over one connection to an edge
// that parks (as shipped) and one to an edge without mochi's ParkFn
// (reader blocked in Read), in alternating chunks within the same run.
// window is the number of publishes in flight: 1 parks the reader after
// every publish. It reports both rates and their ratio (parked/blocked).
func BenchmarkIngestParking(b *testing.B) {
	for _, window := range []int{1, 16} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) { benchIngestParking(b, window) })
	}
}

func benchIngestParking(b *testing.B, window int) {
	type target struct {
		w *bufio.Writer
		r *bufio.Reader
	}
	open := func(park bool) target {
		e := newSpoolEdge(b, spool.SyncNever)
		if !park {
			e.srv.Options.ParkFn = nil
		}
		if err := e.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { e.Close() })
		c, err := net.Dial("tcp", e.Addr())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		r := bufio.NewReader(c)
		if _, err := c.Write(connectPacket(4, "bench-1", "", "")); err != nil {
			b.Fatal(err)
		}
		if first, body, err := readRaw(r); err != nil || first != 0x20 || body[1] != 0 {
			b.Fatalf("connack: got %#x %v %v, want success", first, body, err)
		}
		return target{w: bufio.NewWriter(c), r: r}
	}
	parked, blocked := open(true), open(false)

	payload := strings.Repeat("x", 256)
	pks := make([][]byte, window)
	for i := range window {
		pks[i] = publishPacket(1, uint16(i+1), "fleet/dev-1/telemetry", payload, false)
	}
	run := func(t target, n int) time.Duration {
		start := time.Now()
		sent, acked := 0, 0
		for acked < n {
			for sent < n && sent-acked < window {
				if _, err := t.w.Write(pks[sent%window]); err != nil {
					b.Fatal(err)
				}
				sent++
			}
			if err := t.w.Flush(); err != nil {
				b.Fatal(err)
			}
			for first := true; first || t.r.Buffered() > 0; first = false {
				typ, _, err := readRaw(t.r)
				if err != nil || typ != 0x40 {
					b.Fatalf("got %#x, %v, want a PUBACK", typ, err)
				}
				acked++
			}
		}
		return time.Since(start)
	}
	const chunk = 2000
	var tParked, tBlocked time.Duration
	var nParked, nBlocked int
	b.ResetTimer()
	for left := b.N; left > 0; {
		n := min(left, chunk)
		tParked += run(parked, n)
		nParked += n
		tBlocked += run(blocked, n)
		nBlocked += n
		left -= n
	}
	b.StopTimer()
	pr, br := float64(nParked)/tParked.Seconds(), float64(nBlocked)/tBlocked.Seconds()
	b.ReportMetric(pr, "parked-msg/s")
	b.ReportMetric(br, "blocked-msg/s")
	b.ReportMetric(pr/br, "ratio")
}
