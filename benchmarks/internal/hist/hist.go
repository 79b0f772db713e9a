// Package hist is the latency histogram the benchmark harnesses share.
package hist

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histSubBits sets the histogram's precision: every power of two is split
// into 1<<histSubBits linear buckets, so a recorded value is known to
// within 1/128 (0.8%) of itself.
const histSubBits = 7

// Hist is a log-linear latency histogram in the manner of HdrHistogram:
// fixed memory (about 58 KiB) whatever the number of samples, safe for
// concurrent Record calls.
//
// Values below 1<<histSubBits ns have a bucket each. Above, a value v with
// its highest bit at position e (e >= histSubBits) falls in bucket
// (e-histSubBits+1)<<histSubBits + (v>>(e-histSubBits) - 1<<histSubBits):
// the top histSubBits+1 bits of v select the bucket.
type Hist struct {
	counts [(64 - histSubBits + 1) << histSubBits]atomic.Int64
}

func histIndex(v int64) int {
	if v < 1<<histSubBits {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1
	return (shift+1)<<histSubBits + int(v>>shift) - 1<<histSubBits
}

// histLow returns the smallest value that falls in bucket i, and the
// bucket's width.
func histLow(i int) (low, width int64) {
	if i < 1<<histSubBits {
		return int64(i), 1
	}
	shift := i>>histSubBits - 1
	sub := int64(i&(1<<histSubBits-1)) + 1<<histSubBits
	return sub << shift, 1 << shift
}

// Record adds one sample.
func (h *Hist) Record(d time.Duration) { h.counts[histIndex(int64(d))].Add(1) }

// Count is the number of samples recorded.
func (h *Hist) Count() int64 {
	var n int64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Quantile returns the q-quantile (0 < q <= 1) of the samples: the middle
// of the bucket holding the sample of rank ceil(q*count). It is 0 when
// there are no samples.
func (h *Hist) Quantile(q float64) time.Duration {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := int64(q*float64(total) + 0.999999)
	rank = min(max(rank, 1), total)
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			low, width := histLow(i)
			return time.Duration(low + (width-1)/2)
		}
	}
	panic("hist: quantile rank beyond the sample count")
}
