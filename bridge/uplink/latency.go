package uplink

import (
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds, in seconds, of the acknowledgement
// latency histogram: from 1 ms (an alarm on a quiet link) to 1 min (a
// backlog drained after an outage).
var LatencyBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// latencyHist counts, per record, the time from the edge receiving it to
// the core acknowledging it. Lock-free: one counter per bucket.
type latencyHist struct {
	counts [16]atomic.Int64 // len(LatencyBuckets)+1, the last one is +Inf
	sumUS  atomic.Int64     // microseconds
	total  atomic.Int64
}

func (h *latencyHist) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(LatencyBuckets) && s > LatencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumUS.Add(d.Microseconds())
	h.total.Add(1)
}

// Latency is a snapshot of the histogram: cumulative counts per bucket
// of LatencyBuckets, as Prometheus histograms count them.
type Latency struct {
	Buckets map[float64]uint64
	Count   uint64
	Sum     float64 // seconds
}

func (h *latencyHist) snapshot() Latency {
	out := Latency{Buckets: make(map[float64]uint64, len(LatencyBuckets))}
	var cum uint64
	for i, ub := range LatencyBuckets {
		cum += uint64(h.counts[i].Load())
		out.Buckets[ub] = cum
	}
	out.Count = cum + uint64(h.counts[len(LatencyBuckets)].Load())
	out.Sum = float64(h.sumUS.Load()) / 1e6
	return out
}
