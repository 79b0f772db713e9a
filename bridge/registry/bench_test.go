package registry

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxo-io/fluxo/bridge/spool"
)

// BenchmarkListUnderLoad: 10,000 devices, four goroutines publishing as
// fast as they can, and List (the first page of /api/devices sorted by
// last seen) timed; it reports List's p99, the publish rate reached
// alongside, and the heap each device costs.
func BenchmarkListUnderLoad(b *testing.B) {
	const devices = 10000
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(b.TempDir(), "devices.db")
	r, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ids := make([]string, devices)
	now := time.Now()
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%05d", i)
		r.Connected(Conn{ClientID: ids[i], Protocol: 4, At: now})
		r.Subscribed(ids[i], []string{"fleet/" + ids[i] + "/cmd"}, now)
		r.Published(Publish{Device: ids[i], Fleet: "fleet", Topic: "fleet/" + ids[i] + "/t", Bytes: 256, At: now})
	}
	if err := r.Flush(); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc-before.HeapAlloc) / devices

	stop := make(chan struct{})
	var pubs atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				r.Published(Publish{Device: ids[i%devices], Fleet: "fleet", Topic: "fleet/x/t", Bytes: 256, At: time.Now()})
				pubs.Add(1)
			}
		}(g)
	}
	lat := make([]time.Duration, 0, b.N)
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		p := r.List(Query{Sort: "last_seen", Limit: DefaultLimit}, time.Now())
		lat = append(lat, time.Since(t0))
		if p.Total != devices {
			b.Fatalf("got %d devices, want %d", p.Total, devices)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(pubs.Load())/time.Since(start).Seconds(), "publishes/s")
	b.ReportMetric(heap, "heap-B/device")
	_ = spool.Telemetry
}

// BenchmarkList answers the console's first page (100 devices by last
// seen) out of 10,000: read off the LRU list (recent, what List does for
// it) and, as the baseline in the same run, by the scan of every device
// that List does for filtered queries (scan).
func BenchmarkList(b *testing.B) {
	r, err := Open(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	now := time.Now()
	for i := range 10000 {
		id := fmt.Sprintf("dev-%05d", i)
		r.Published(Publish{Device: id, Fleet: "fleet", Topic: "fleet/" + id + "/t", Bytes: 256, At: now.Add(time.Duration(i) * time.Millisecond)})
	}
	q := Query{Sort: "last_seen", Limit: DefaultLimit}
	b.Run("recent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if p := r.listRecent(q, false); len(p.Devices) != DefaultLimit || p.Devices[0].ID != "dev-09999" {
				b.Fatalf("got %d devices, first %v, want %d from dev-09999", len(p.Devices), p.Devices[0].ID, DefaultLimit)
			}
		}
	})
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if p := r.listScan(q, "last_seen", false, now); len(p.Devices) != DefaultLimit || p.Devices[0].ID != "dev-09999" {
				b.Fatalf("got %d devices, first %v, want %d from dev-09999", len(p.Devices), p.Devices[0].ID, DefaultLimit)
			}
		}
	})
}
