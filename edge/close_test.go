package edge

import (
	"testing"
)

// Closing the edge disconnects its MQTT 5 clients with "server shutting
// down" (0x8B), through the edge's own listing of a listener's clients
// (mochi's takes the clients' read lock twice and can deadlock Close
// against a connection ending at the same moment).
func TestCloseDisconnectsClients(t *testing.T) {
	e := startEdge(t, testConfig(t), &recSink{})
	c := dialRaw(t, e.Addr())
	c.connect(5, "dev-close", "", "")
	if err := e.Close(); err != nil {
		t.Fatalf("close: got %v, want nil", err)
	}
	first, body, err := c.readPacket()
	if err != nil {
		t.Fatalf("got %v, want a DISCONNECT", err)
	}
	if first != 0xE0 || len(body) < 1 || body[0] != 0x8B {
		t.Fatalf("got packet %#x %v, want DISCONNECT with reason 0x8b", first, body)
	}
}
