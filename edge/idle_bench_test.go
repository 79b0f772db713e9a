package edge

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"github.com/rs/zerolog"

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
