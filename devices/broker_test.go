package devices

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

// testBroker is a bare mochi MQTT server that lets every client in.
type testBroker struct {
	srv  *mochi.Server
	addr string // host:port
	once sync.Once
}

// startBroker starts a broker listening on addr ("127.0.0.1:0" for any
// port) and closes it at the end of the test.
func startBroker(t *testing.T, addr string) *testBroker {
	t.Helper()
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	b := &testBroker{srv: srv, addr: l.Address()}
	t.Cleanup(b.close)
	return b
}

func (b *testBroker) url() string { return "tcp://" + b.addr }

func (b *testBroker) close() { b.once.Do(func() { b.srv.Close() }) }

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// received is a message seen by a watcher.
type received struct {
	topic   string
	payload []byte
}

// watcher is a paho client subscribed to a topic filter that keeps what it
// receives, in order.
type watcher struct {
	client mqtt.Client
	mu     sync.Mutex
	msgs   []received // guarded by mu
}

// watchers numbers the watchers, for unique client ids.
var watchers atomic.Int64

// watch connects a clean-session client to broker and subscribes it to
// filter at QoS 1.
func watch(t *testing.T, broker, filter string) *watcher {
	t.Helper()
	w := &watcher{}
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("watcher-%d", watchers.Add(1))).SetCleanSession(true)
	w.client = mqtt.NewClient(o)
	if tok := w.client.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher: cannot connect to %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { w.client.Disconnect(100) })
	tok := w.client.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		w.mu.Lock()
		w.msgs = append(w.msgs, received{m.Topic(), append([]byte(nil), m.Payload()...)})
		w.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher: cannot subscribe to %s: %v", filter, tok.Error())
	}
	return w
}

func (w *watcher) messages() []received {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]received(nil), w.msgs...)
}

// waitFor waits until at least n messages arrived, or fails the test after
// a generous deadline.
func (w *watcher) waitFor(t *testing.T, n int64) []received {
	t.Helper()
	testutil.Eventually(t, fmt.Sprintf("watcher to see %d messages", n), func() bool { return int64(len(w.messages())) >= n })
	return w.messages()
}

// publish publishes payload on topic at QoS 1 and waits for the PUBACK.
func (w *watcher) publish(t *testing.T, topic, payload string) {
	t.Helper()
	tok := w.client.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("cannot publish to %s: %v", topic, tok.Error())
	}
}

// liveStats is an Observer that keeps the latest snapshot.
type liveStats struct{ last atomic.Pointer[Stats] }

func (l *liveStats) observe(st Stats) { l.last.Store(&st) }

func (l *liveStats) get() Stats {
	if st := l.last.Load(); st != nil {
		return *st
	}
	return Stats{}
}

// testConfig returns a small, fast fleet publishing to broker.
func testConfig(broker string) Config {
	cfg := DefaultConfig()
	cfg.Broker = broker
	cfg.Sensors, cfg.Cars, cfg.Panels = 2, 2, 1
	cfg.Rate, cfg.PanelRate = 20, 10
	cfg.AlarmRate = 0
	cfg.Seed = 1
	cfg.Duration = time.Second
	cfg.ConnectTimeout = 5 * time.Second
	cfg.MaxReconnectInterval = 100 * time.Millisecond
	cfg.ReportInterval = 10 * time.Millisecond
	return cfg
}

// header decodes the fields every message carries.
func header(t *testing.T, m received) Header {
	t.Helper()
	var h Header
	if err := json.Unmarshal(m.payload, &h); err != nil {
		t.Fatalf("%s: invalid JSON %q: %v", m.topic, m.payload, err)
	}
	return h
}

// seqsByDevice returns the seqs of each device in arrival order.
func seqsByDevice(t *testing.T, msgs []received) map[string][]uint64 {
	t.Helper()
	seqs := make(map[string][]uint64)
	for _, m := range msgs {
		h := header(t, m)
		seqs[h.Device] = append(seqs[h.Device], h.Seq)
	}
	return seqs
}

// checkSeqs checks that each device's seqs arrived in increasing order and,
// if complete, are exactly 1…n.
func checkSeqs(t *testing.T, seqs map[string][]uint64, complete bool) {
	t.Helper()
	for dev, s := range seqs {
		if !sort.SliceIsSorted(s, func(i, j int) bool { return s[i] < s[j] }) {
			t.Errorf("%s: got seqs %v, want them increasing", dev, s)
			continue
		}
		for i := 1; i < len(s); i++ {
			if s[i] == s[i-1] {
				t.Errorf("%s: got seq %d twice", dev, s[i])
			}
		}
		if complete && (s[0] != 1 || s[len(s)-1] != uint64(len(s))) {
			t.Errorf("%s: got seqs %d…%d for %d messages, want 1…%d", dev, s[0], s[len(s)-1], len(s), len(s))
		}
	}
}
