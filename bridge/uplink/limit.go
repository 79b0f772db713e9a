package uplink

import (
	"context"
	"sync"
	"time"
)

// limiter is a token bucket over bytes sent, shared by the lanes. Alarms
// take their bytes at once (the bucket may go into debt); telemetry waits
// until the bucket is back in credit, so alarms go first under the cap.
type limiter struct {
	rate float64 // bytes per second

	mu     sync.Mutex // guards the fields below
	tokens float64
	last   time.Time
}

func newLimiter(bytesPerSec int64) *limiter {
	return &limiter{rate: float64(bytesPerSec), tokens: float64(bytesPerSec), last: time.Now()}
}

func (l *limiter) refill(now time.Time) {
	l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*l.rate, l.rate)
	l.last = now
}

// wait takes n bytes from the bucket, waiting for credit unless urgent.
func (l *limiter) wait(ctx context.Context, n int64, urgent bool) error {
	for {
		l.mu.Lock()
		l.refill(time.Now())
		if urgent || l.tokens >= float64(n) || (l.tokens >= l.rate && float64(n) > l.rate) {
			l.tokens -= float64(n)
			l.mu.Unlock()
			return nil
		}
		need := (float64(n) - l.tokens) / l.rate
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(min(need, 1) * float64(time.Second))):
		}
	}
}
