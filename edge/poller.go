package edge

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Parked readers.
//
// mochi gives every connection a reader goroutine that waits for the
// next packet in Read; its stack has grown to 16 KiB in the CONNECT
// handshake and cannot shrink while it waits (Go halves a stack at GC
// only when less than a quarter of it is in use). For 10,000 silent
// devices that is 160 MiB of stacks doing nothing. So a plain TCP
// connection's reader does not wait: when mochi has nothing buffered
// (mqtt.Options.ParkFn, offered before each packet) and neither has the
// bufConn under it, the edge registers the socket with the poller, one
// epoll instance per edge (EPOLLIN|EPOLLRDHUP|EPOLLONESHOT), and the
// reader's goroutine ends. When the socket becomes readable, or the peer
// hangs up, the poller starts a new goroutine that continues the same
// connection's read loop (mqtt.Server.ResumeClient). The socket stays in
// Go's own netpoller too; reads still go through net.Conn.
//
// A reader parks at once after the CONNACK (the goroutine that served
// the handshake has the largest stack), then each time parkAfter passes
// without bytes: a busy connection (a publisher waiting for its
// acknowledgement) keeps its reader waiting in Go's netpoller, whose
// wake-up is cheaper than the poller's. That wait costs nothing extra:
// mochi sets the connection's deadline before every packet, and bufConn
// sets the read side to parkAfter from then (or mochi's deadline if it
// comes first); a read that hits that short deadline while mochi's is
// still ahead gets mochi's and goes on waiting.
//
// Keep-alive: mochi sets the read deadline (keep-alive × 1.5) before it
// offers the reader to park; a parked connection has a timer to that
// deadline that resumes the reader, whose read then fails with the
// deadline passed, and mochi ends the connection as it would have (will
// message, disconnect hooks). Closing a parked connection (mochi stopping the
// client, a session taken over, the edge closing) resumes its reader
// too, which finds the connection closed and ends it.
//
// TLS and WebSocket connections keep a blocked reader: their own buffers
// sit between the socket and mochi.

// poller watches the sockets of parked connections: one epoll instance
// (pollFD) and one goroutine (run) per edge, stopped by close once no
// connection is parked.
type poller struct {
	fd     pollFD
	resume func(*mqtt.Client) // starts a goroutine that resumes the client's reader
	parked atomic.Int64       // connections parked now

	mu    sync.Mutex // guards conns
	conns []*bufConn // by file descriptor: the connection registered with it
	done  chan struct{}
}

// lookup returns the connection registered with file descriptor fd.
func (p *poller) lookup(fd int32) *bufConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fd < 0 || int(fd) >= len(p.conns) {
		return nil
	}
	return p.conns[fd]
}

// add records c as the connection of its file descriptor.
func (p *poller) add(c *bufConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(c.fd) >= len(p.conns) {
		p.conns = append(p.conns, make([]*bufConn, int(c.fd)+1-len(p.conns))...)
	}
	p.conns[c.fd] = c
}

// remove forgets c (unless its file descriptor is another's already).
func (p *poller) remove(c *bufConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(c.fd) < len(p.conns) && p.conns[c.fd] == c {
		p.conns[c.fd] = nil
	}
}

// parkAfter is how long a reader waits for bytes before it parks.
const parkAfter = 200 * time.Millisecond

// parking is a bufConn's state towards the poller.
type parking struct {
	mu       sync.Mutex   // guards the fields below; taken by the reader, the poller, the timer, Close and deadline setters
	cl       *mqtt.Client // the client whose reader is parked; nil while it runs
	armed    bool         // the socket is registered with the poller's epoll instance
	closed   bool
	once     bool        // parked before: the handshake is over
	deadline time.Time   // the read deadline last set on the connection (mochi's keep-alive)
	short    bool        // the read deadline applied is parkAfter from the last SetDeadline, not deadline
	rd, wd   time.Time   // the read and write deadlines applied to the socket
	timer    *time.Timer // keep-alive of a parked connection; created at the first park with one
}

// SetDeadline sets the connection's deadlines, and remembers the read
// deadline for the keep-alive of a parked connection. mochi calls it
// before every packet; with a poller the read side gets parkAfter from
// now (the wait before parking) or t if it comes first, and mochi's is
// put back by the read that hits it (extend).
//
// A deadline that moves later by less than an eighth of its distance from
// now is left as applied (see stale): mochi moves both before every
// packet, and re-arming the socket's two timers for each was a few
// percent of a busy edge's CPU. An applied deadline is never later than
// the one asked for, and at most an eighth of its span earlier.
func (c *bufConn) SetDeadline(t time.Time) error {
	if c.p == nil {
		return c.Conn.SetDeadline(t)
	}
	now := time.Now()
	c.pk.mu.Lock()
	defer c.pk.mu.Unlock()
	c.pk.deadline = t
	short := now.Add(parkAfter)
	if !t.IsZero() && t.Before(short) {
		short = t
	}
	c.pk.short = true
	if stale(c.pk.wd, t, now) {
		if err := c.Conn.SetWriteDeadline(t); err != nil {
			return err
		}
		c.pk.wd = t
	}
	if stale(c.pk.rd, short, now) {
		if err := c.Conn.SetReadDeadline(short); err != nil {
			return err
		}
		c.pk.rd = short
	}
	return nil
}

// stale reports whether deadline want must replace the applied one: it
// is earlier, or later by more than an eighth of the time from now to it.
// The zero time is no deadline.
func stale(applied, want, now time.Time) bool {
	switch {
	case want.IsZero() || applied.IsZero():
		return !want.Equal(applied)
	case want.Before(applied):
		return true
	}
	return want.Sub(applied) > want.Sub(now)/8
}

// SetWriteDeadline sets the write deadline alone.
func (c *bufConn) SetWriteDeadline(t time.Time) error {
	if c.p == nil {
		return c.Conn.SetWriteDeadline(t)
	}
	c.pk.mu.Lock()
	defer c.pk.mu.Unlock()
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	c.pk.wd = t
	return nil
}

// extend gives the connection mochi's read deadline back after a read
// hit the short one of SetDeadline, and reports whether that deadline is
// still ahead (the read should wait again).
func (c *bufConn) extend() bool {
	c.pk.mu.Lock()
	defer c.pk.mu.Unlock()
	if !c.pk.short {
		return false
	}
	c.pk.short = false
	rd := c.pk.deadline
	if !rd.IsZero() && !time.Now().Before(rd) {
		return false
	}
	if c.Conn.SetReadDeadline(rd) != nil {
		return false
	}
	c.pk.rd = rd
	return true
}

// SetReadDeadline is SetDeadline for reads alone.
func (c *bufConn) SetReadDeadline(t time.Time) error {
	c.pk.mu.Lock()
	defer c.pk.mu.Unlock()
	c.pk.deadline = t
	c.pk.short = false
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	c.pk.rd = t
	return nil
}

// quiet waits for bytes until the short read deadline of SetDeadline
// (parkAfter, or mochi's deadline if it comes first) and reports whether
// none came and nothing happened to the connection; bytes that came are
// buffered for the next Read.
func (c *bufConn) quiet() bool {
	return errors.Is(c.fill(), os.ErrDeadlineExceeded)
}

// park takes the reader of cl, whose connection c is, once nothing has
// come for parkAfter (at once the first time): it registers the socket
// with the poller and starts a timer to the read deadline. It reports
// whether it took the reader (not if bytes came, the connection ended or
// its deadline passed). Only the reader calls it.
func (c *bufConn) park(cl *mqtt.Client) bool {
	if c.p == nil || c.buf != nil {
		return false
	}
	c.pk.mu.Lock()
	once := c.pk.once
	c.pk.mu.Unlock()
	if once && !c.quiet() {
		return false
	}
	c.pk.mu.Lock()
	defer c.pk.mu.Unlock()
	if c.pk.closed {
		return false
	}
	var keepalive time.Duration // to mochi's read deadline; 0: none
	if rd := c.pk.deadline; !rd.IsZero() {
		if keepalive = time.Until(rd); keepalive <= 0 {
			return false // the reader's read times out at once
		}
		keepalive += time.Millisecond // resumed after it, surely
	}
	if !c.pk.armed {
		c.p.add(c)
	}
	c.pk.cl = cl // before arming: the poller may wake it at once
	if err := c.p.fd.arm(c.fd, c.pk.armed); err != nil {
		c.pk.cl = nil
		if !c.pk.armed {
			c.p.remove(c)
		}
		return false
	}
	c.pk.armed = true
	c.pk.once = true
	c.p.parked.Add(1)
	if keepalive > 0 {
		if c.pk.timer == nil {
			c.pk.timer = time.AfterFunc(keepalive, c.wake)
		} else {
			c.pk.timer.Reset(keepalive)
		}
	}
	return true
}

// wake resumes the parked reader, if any: the socket is readable or hung
// up, the keep-alive has passed, or the connection is closed.
func (c *bufConn) wake() {
	c.pk.mu.Lock()
	cl := c.pk.cl
	c.pk.cl = nil
	if cl != nil && c.pk.timer != nil {
		c.pk.timer.Stop()
	}
	c.pk.mu.Unlock()
	if cl != nil {
		c.p.parked.Add(-1)
		c.p.resume(cl)
	}
}

// Close closes the connection, taking its socket out of the poller
// first, and resumes a parked reader, which finds it closed.
func (c *bufConn) Close() error {
	if c.p == nil {
		return c.Conn.Close()
	}
	c.pk.mu.Lock()
	c.pk.closed = true
	if c.pk.armed {
		c.p.fd.disarm(c.fd)
		c.p.remove(c)
		c.pk.armed = false
	}
	c.pk.mu.Unlock()
	err := c.Conn.Close()
	c.wake()
	return err
}
