package edge

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/fluxo-io/fluxo/bridge/registry"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// The registry counts every accepted publish under the record key and on
// the lane its route gave the stored message, whether the publish handler
// passed them on (publishNote, over an ackConn) or they were found again:
// one client alternating between two devices' topics and both lanes, at
// QoS 0 and 1. The counts must equal those of the messages stored.
func TestRegistryCountsByRoute(t *testing.T) {
	eachSink(t, func(t *testing.T, rec *recSink, sink Sink) {
		rc := registry.DefaultConfig()
		rc.Path = filepath.Join(t.TempDir(), "devices.db")
		reg, err := registry.Open(rc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		cfg := testConfig(t)
		cfg.Registry = reg
		e := startEdge(t, cfg, sink)
		c := mustConnect3(t, tcpURL(e.Addr()), "c-1", nil)
		topics := []string{"cars/d-7/telemetry", "cars/d-7/alarm/door", "cars/d-8/telemetry", "cars/d-7/telemetry", "cars/d-8/alarm/tilt"}
		for i := range 20 {
			topic := topics[i%len(topics)]
			if err := publish3(t, c, topic, byte(i%2), false, fmt.Sprint(i)); err != nil {
				t.Fatalf("publish %d to %s: %v", i, topic, err)
			}
		}
		want := map[string]registry.Counts{}
		testutil.Eventually(t, "20 messages stored", func() bool { return len(rec.all()) == 20 })
		for _, m := range rec.all() {
			cnt := want[string(m.Key)]
			if m.Lane == spool.Alarm {
				cnt.Alarm++
			} else {
				cnt.Telemetry++
			}
			want[string(m.Key)] = cnt
		}
		if got := len(want); got != 2 {
			t.Fatalf("stored messages under %d keys, want 2 (d-7, d-8): %v", got, want)
		}
		for dev, w := range want {
			testutil.Eventually(t, dev+"'s counts", func() bool {
				d, ok := reg.Get(dev)
				return ok && d.Messages == w
			})
		}
	})
}
