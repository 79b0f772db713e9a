package cluster

import (
	"context"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// Network carries a member's traffic to the other members in place of the
// operating system's network, when Config.Network is set: tests use it to
// cut a member off from its peers without stopping it (the cut is at the
// connection level: its dials fail, its connections break, its gossip
// datagrams are lost). Production leaves it nil.
type Network interface {
	// DialContext opens a stream connection to addr (Raft, forwarding
	// RPCs, gossip's TCP exchanges).
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	// Drops reports whether a gossip datagram sent now to addr is lost.
	Drops(addr string) bool
}

// netTransport is memberlist's network transport with its dials and sends
// going through a Network.
type netTransport struct {
	*memberlist.NetTransport
	nw Network
}

func (t *netTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.nw.Drops(addr) {
		return time.Now(), nil
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *netTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *netTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return t.nw.DialContext(ctx, "tcp", addr)
}

func (t *netTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}
