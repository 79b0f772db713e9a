package edge

import (
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fluxo-io/fluxo/bridge/spool"
)

// slowSink stores each message after a pause, so that a Close lands while
// publishes are being stored.
type slowSink struct {
	recSink
	pause time.Duration
}

func (s *slowSink) Append(msgs ...spool.Message) error {
	time.Sleep(s.pause)
	return s.recSink.Append(msgs...)
}

// TestCloseAcknowledgesWhatItStored: devices publish QoS 1 while the edge
// closes. Every message the edge stored must have been acknowledged to its
// device: one stored but never acknowledged is sent again by the device to
// the next edge, and stored twice. (The reverse, acknowledged but not
// stored, is what the sink's durability guards.)
func TestCloseAcknowledgesWhatItStored(t *testing.T) {
	for round := range 3 {
		sink := &slowSink{pause: 2 * time.Millisecond}
		e := startEdge(t, testConfig(t), sink)
		const devices = 8
		var mu sync.Mutex
		acked := map[string]bool{}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for d := range devices {
			c, err := connect3(t, "tcp://"+e.Addr(), fmt.Sprintf("r%d-d%d", round, d), func(o *paho.ClientOptions) {
				o.SetAutoReconnect(false)
			})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					payload := fmt.Sprintf("d%d-%d", d, i)
					tok := c.Publish(fmt.Sprintf("fleet/d%d/telemetry", d), 1, false, payload)
					if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
						return // the edge closed
					}
					mu.Lock()
					acked[payload] = true
					mu.Unlock()
				}
			}()
		}
		// Let the devices publish for a while, then close under them.
		deadline := time.Now().Add(10 * time.Second)
		for len(sink.all()) < 50*devices && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		mu.Lock()
		for _, m := range sink.all() {
			if !acked[string(m.Value)] {
				t.Errorf("round %d: got %q stored, never acknowledged to its device (it would be sent again)", round, m.Value)
			}
		}
		mu.Unlock()
	}
}
