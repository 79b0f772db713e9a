package edge

import (
	"net"
	"testing"
	"time"
)

// TestConnGate: once the edge closes the gate, a new connection is closed
// without reaching mochi; close waits for a connection already admitted
// until mochi first reads from it (mochi registers a client before its
// first read, and its Close must not wait on that registration
// concurrently).
func TestConnGate(t *testing.T) {
	var g connGate
	if !g.enter() {
		t.Fatal("an open gate refused a connection")
	}
	server, client := net.Pipe()
	defer client.Close()
	fr := &firstRead{Conn: server, started: g.starting.Done}
	closed := make(chan struct{})
	go func() {
		g.close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("close returned while an admitted connection was not read yet")
	case <-time.After(50 * time.Millisecond):
	}
	if g.enter() {
		t.Fatal("a closing gate admitted a connection")
	}
	go client.Write([]byte{0x10})
	b := make([]byte, 1)
	if _, err := fr.Read(b); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close still waiting after the connection's first read")
	}
}
