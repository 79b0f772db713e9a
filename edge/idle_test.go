package edge

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

// flushers counts the goroutines running an ackConn flusher.
func flushers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "edge.(*ackConn).flush(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// clientConn returns the connection mochi serves client id through.
func clientConn(t *testing.T, e *Edge, id string) (*ackConn, *bufConn) {
	t.Helper()
	cl, ok := e.srv.Clients.Get(id)
	if !ok {
		t.Fatalf("client %s: got none, want it connected", id)
	}
	ac, ok := cl.Net.Conn.(*ackConn)
	if !ok {
		t.Fatalf("client %s: got connection %T, want *ackConn", id, cl.Net.Conn)
	}
	var bc *bufConn
	for c := ac.Conn; c != nil; {
		if b, ok := c.(*bufConn); ok {
			bc = b
			break
		}
		u, ok := c.(unwrapper)
		if !ok {
			break
		}
		c = u.Unwrap()
	}
	if bc == nil {
		t.Fatalf("client %s: no bufConn under its ackConn, want mochi's reads pooled", id)
	}
	return ac, bc
}

// An idle connection holds no flusher goroutine, no queue, no wake-up
// channel and no read buffer; a held acknowledgement takes them, and
// they are gone again once it is written.
func TestIdleConnectionHoldsNothing(t *testing.T) {
	sink := &asyncSink{recSink: &recSink{}, manual: true}
	e := startEdge(t, testConfig(t), sink)
	c := dialRaw(t, e.Addr())
	c.connect(4, "dev-idle", "", "")
	ac, bc := clientConn(t, e, "dev-idle")
	testutil.Eventually(t, "a connected device idle", func() bool { return ac.idle() && bc.idle() && flushers() == 0 })

	c.send(publishPacket(1, 1, "fleet/dev-idle/t", "x", false))
	sink.waitHeld(t, 1)
	testutil.Eventually(t, "the PUBACK queued behind its spool append", func() bool {
		ac.mu.Lock()
		defer ac.mu.Unlock()
		return len(ac.queue) == 1 && ac.flushing
	})
	if ac.idle() {
		t.Fatal("with a PUBACK held: got an idle connection, want its queue and flusher")
	}
	if n := flushers(); n != 1 {
		t.Fatalf("with a PUBACK held: got %d flusher goroutines, want 1", n)
	}
	sink.release(0, nil)
	c.expectAck(0x40, 1, -1)
	testutil.Eventually(t, "the connection idle again, without a flusher", func() bool {
		return ac.idle() && bc.idle() && flushers() == 0
	})
}

// mochi's per-connection sizes are the edge's, not mochi's defaults.
func TestConnectionSizes(t *testing.T) {
	e := startEdge(t, testConfig(t), &recSink{})
	o := e.srv.Options
	if got := o.Capabilities.MaximumClientWritesPending; got != DefaultMaxWritesPending {
		t.Errorf("writes pending: got %d, want %d", got, DefaultMaxWritesPending)
	}
	if got := o.ClientNetReadBufferSize; got != mochiReadBufferSize {
		t.Errorf("mochi read buffer: got %d, want %d", got, mochiReadBufferSize)
	}
}

// Large publishes (bigger than a pooled buffer) and many small ones in
// one segment cross bufConn intact.
func TestBufConnLargeAndSmall(t *testing.T) {
	sink := &recSink{}
	e := startEdge(t, testConfig(t), sink)
	c := dialRaw(t, e.Addr())
	c.connect(4, "dev-big", "", "")
	big := strings.Repeat("b", 3*readBufSize+17)
	var batch []byte
	for i := range 50 {
		batch = append(batch, publishPacket(1, uint16(i+1), "fleet/dev-big/t", fmt.Sprint(i), false)...)
	}
	batch = append(batch, publishPacket(1, 51, "fleet/dev-big/t", big, false)...)
	c.send(batch)
	for id := uint16(1); id <= 51; id++ {
		c.expectAck(0x40, id, -1)
	}
	msgs := sink.all()
	if len(msgs) != 51 || string(msgs[50].Value) != big || string(msgs[7].Value) != "7" {
		t.Fatalf("got %d messages, want 51 in order with the large one last", len(msgs))
	}
}

// Connections beyond Config.MaxConnectRate's burst are refused, with
// server unavailable (MQTT 3.1.1) or quota exceeded (MQTT 5), and
// counted.
func TestMaxConnectRate(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	cfg.Registerer = reg
	cfg.MaxConnectRate = 1e-6 // no new token within the test
	cfg.MaxConnectBurst = 2
	e := startEdge(t, cfg, &recSink{})
	mustConnect3(t, tcpURL(e.Addr()), "first", nil)
	mustConnect3(t, tcpURL(e.Addr()), "second", nil)

	c, err := connect3(t, tcpURL(e.Addr()), "third", nil)
	if err == nil {
		c.Disconnect(0)
		t.Fatal("third client connected, want refused (burst 2)")
	}
	if err.Error() != packets.ErrorRefusedServerUnavailable.Error() {
		t.Fatalf("third client: got %v, want %v", err, packets.ErrorRefusedServerUnavailable)
	}
	_, ca, err := connect5(t, e.Addr(), &paho5.Connect{ClientID: "fourth", CleanStart: true})
	if err == nil || ca == nil || ca.ReasonCode != 0x97 {
		t.Fatalf("MQTT 5 client over the rate: got %+v, %v, want reason code 0x97 (quota exceeded)", ca, err)
	}
	if got := metricValue(t, reg, "fluxo_edge_connections_refused_total", map[string]string{"reason": refuseRate}); got != 2 {
		t.Fatalf("refused for the rate: got %v, want 2", got)
	}
	if got := metricValue(t, reg, "fluxo_edge_connections_refused_total", map[string]string{"reason": refuseMaxClients}); got != 0 {
		t.Fatalf("refused for max clients: got %v, want 0", got)
	}
}

// Connections beyond Config.MaxClients are refused, server unavailable
// (MQTT 3.1.1) or server busy (MQTT 5), and counted; once a client
// leaves, a new one gets in.
func TestMaxClientsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	cfg.Registerer = reg
	cfg.MaxClients = 2
	e := startEdge(t, cfg, &recSink{})
	mustConnect3(t, tcpURL(e.Addr()), "first", nil)
	second := mustConnect3(t, tcpURL(e.Addr()), "second", nil)
	if _, err := connect3(t, tcpURL(e.Addr()), "third", nil); err == nil || err.Error() != packets.ErrorRefusedServerUnavailable.Error() {
		t.Fatalf("third client: got %v, want %v", err, packets.ErrorRefusedServerUnavailable)
	}
	_, ca, err := connect5(t, e.Addr(), &paho5.Connect{ClientID: "fourth", CleanStart: true})
	if err == nil || ca == nil || ca.ReasonCode != 0x89 {
		t.Fatalf("MQTT 5 client over the limit: got %+v, %v, want reason code 0x89 (server busy)", ca, err)
	}
	if got := metricValue(t, reg, "fluxo_edge_connections_refused_total", map[string]string{"reason": refuseMaxClients}); got != 2 {
		t.Fatalf("refused for max clients: got %v, want 2", got)
	}
	second.Disconnect(100)
	testutil.Eventually(t, "a place free", func() bool {
		return metricValue(t, reg, "fluxo_edge_clients_connected", nil) == 1
	})
	mustConnect3(t, tcpURL(e.Addr()), "fifth", nil)
}

// storedIDs returns the ids of the client records in the state file.
func storedIDs(t *testing.T, e *Edge) []string {
	t.Helper()
	cs, err := e.store.StoredClients()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	return ids
}

// Clean sessions leave no record in the state file; persistent ones do,
// and a record is still replaced and deleted when its client comes back
// with a clean session, before and after a restart.
func TestCleanSessionsNotStored(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.StateDir = dir
	e := startEdge(t, cfg, &recSink{})
	clean := func(on bool) func(*paho.ClientOptions) {
		return func(o *paho.ClientOptions) { o.SetCleanSession(on) }
	}
	c := mustConnect3(t, tcpURL(e.Addr()), "clean-1", clean(true))
	// mochi writes a record after the CONNACK, on the goroutine that
	// then reads the SUBSCRIBE: after the SUBACK, it is written.
	if tok := c.Subscribe("fleet/clean-1/cmd", 1, nil); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if got := storedIDs(t, e); len(got) != 0 {
		t.Fatalf("a clean session connected: got records %v, want none", got)
	}
	c.Disconnect(100)
	p := mustConnect3(t, tcpURL(e.Addr()), "kept-1", clean(false))
	mustConnect3(t, tcpURL(e.Addr()), "kept-2", clean(false)).Disconnect(100)
	// mochi writes the record after the CONNACK.
	testutil.Eventually(t, "records of kept-1 and kept-2", func() bool {
		return slices.Equal(storedIDs(t, e), []string{"kept-1", "kept-2"})
	})
	if got := storedIDs(t, e); !slices.Equal(got, []string{"kept-1", "kept-2"}) {
		t.Fatalf("persistent sessions: got records %v, want [kept-1 kept-2] (clean-1 left none)", got)
	}
	p.Disconnect(100)
	mustConnect3(t, tcpURL(e.Addr()), "kept-1", clean(true)).Disconnect(100)
	testutil.Eventually(t, "kept-1's record deleted after its clean session", func() bool {
		return slices.Equal(storedIDs(t, e), []string{"kept-2"})
	})
	e.Close()

	e = startEdge(t, cfg, &recSink{})
	if got := storedIDs(t, e); !slices.Equal(got, []string{"kept-2"}) {
		t.Fatalf("after a restart: got records %v, want [kept-2]", got)
	}
	mustConnect3(t, tcpURL(e.Addr()), "kept-2", clean(true)).Disconnect(100)
	testutil.Eventually(t, "kept-2's record deleted after its clean session", func() bool {
		return len(storedIDs(t, e)) == 0
	})
}

// A client that does not read has its write queue fill up: messages to
// it are then dropped, and counted.
func TestWritesDroppedCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	cfg.Registerer = reg
	cfg.MaxWritesPending = 1
	e := startEdge(t, cfg, &recSink{})
	c := dialRaw(t, e.Addr())
	c.connect(4, "slow", "", "")
	c.send(packet(0x82, []byte{0, 1}, str("slow/in"), []byte{0}))
	c.expectAck(0x90, 1, -1)
	// The client reads nothing more: once the socket's buffers are full,
	// mochi's writer blocks and its queue of one fills.
	payload := bytes.Repeat([]byte("x"), 64<<10)
	for i := 0; i < 1000 && metricValue(t, reg, "fluxo_edge_writes_dropped_total", nil) == 0; i++ {
		if err := e.Publish("slow/in", payload, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	if got := metricValue(t, reg, "fluxo_edge_writes_dropped_total", nil); got == 0 {
		t.Fatalf("after 64 MiB to a client that reads nothing: got %v messages dropped, want some", got)
	}
}
