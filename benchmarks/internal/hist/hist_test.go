package hist

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistIndexRoundTrip(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 123456789, 1 << 40, 1<<62 + 12345} {
		i := histIndex(v)
		low, width := histLow(i)
		if v < low || v >= low+width {
			t.Errorf("value %d: got bucket [%d, %d), want one holding it", v, low, low+width)
		}
		if width > 1 && float64(width)/float64(low) > 1.0/(1<<histSubBits) {
			t.Errorf("value %d: got bucket width %d at %d, want at most 1/%d of it", v, width, low, 1<<histSubBits)
		}
	}
}

func TestHistQuantile(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Hist
	samples := make([]time.Duration, 100000)
	for i := range samples {
		samples[i] = time.Duration(r.ExpFloat64() * float64(time.Millisecond))
		h.Record(samples[i])
	}
	slices.Sort(samples)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		want := samples[int(q*float64(len(samples)))-1]
		got := h.Quantile(q)
		if d := float64(got-want) / float64(want); d > 0.01 || d < -0.01 {
			t.Errorf("q=%v: got %v, want %v within 1%%", q, got, want)
		}
	}
	var empty Hist
	if got := empty.Quantile(0.5); got != 0 {
		t.Errorf("empty: got %v, want 0", got)
	}
}
