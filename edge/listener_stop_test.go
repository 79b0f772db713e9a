package edge

import (
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// mochi's accept loops return on any accept error without a word; the
// guard reports a listener that stops while the edge runs, and stays
// quiet when the edge closes it.
func TestGuardedReportsStoppedListener(t *testing.T) {
	for _, tc := range []struct {
		name    string
		closing bool
		want    bool
	}{{"dies while running", false, true}, {"closed by the edge", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var gate connGate
			stopped := make(chan string, 1)
			g := &guarded{Listener: listeners.NewNet("mqtt", ln), gate: &gate, onStop: func(id string) { stopped <- id }}
			done := make(chan struct{})
			go func() {
				g.Serve(func(string, net.Conn) error { return nil })
				close(done)
			}()
			if tc.closing {
				gate.close()
			}
			ln.Close() // the port dies under mochi
			select {
			case <-done:
			case <-time.After(wait):
				t.Fatal("Serve still running after its listener closed")
			}
			select {
			case id := <-stopped:
				if !tc.want || id != "mqtt" {
					t.Fatalf("got a stop report for %q, want none: %v", id, tc.want)
				}
			default:
				if tc.want {
					t.Fatal("got no stop report, want one for mqtt")
				}
			}
		})
	}
}
