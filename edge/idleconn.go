package edge

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// What an idle device costs.
//
// An edge on a Pi serves thousands of devices that are connected and
// silent most of the time (a sensor publishing once a minute, a car
// parked for the night). Upstream mochi gives every connection a reader
// goroutine blocked in Read, a writer goroutine, a bufio.Reader of
// Options.ClientNetReadBufferSize and a queue (channel) of
// Capabilities.MaximumClientWritesPending packets; the edge adds its
// ackConn. Here a silent plain TCP connection holds none of the
// goroutines and only small structs:
//
//   - its reader parks in the edge's poller and its writer runs only
//     while packets are queued (poller.go, and the vendored mochi's
//     park.go);
//   - mochi's read buffer is tiny (mochiReadBufferSize): the plain TCP
//     connection under it is a bufConn, which borrows a buffer from a
//     pool only once bytes are waiting on the socket and gives it back
//     as soon as they are read, so a silent connection holds none;
//   - the write queue exists only while packets wait, at most
//     Config.MaxWritesPending of them, not mochi's 8192 (a device
//     receives commands, not floods);
//   - ackConn holds a flusher goroutine, a queue and a write buffer only
//     while an acknowledgement is held (see ackconn.go).

// mochiReadBufferSize is the size of mochi's per-connection bufio.Reader
// (its minimum is 16). Reads of a plain TCP connection are buffered by
// bufConn with a pooled buffer; TLS and WebSocket connections have their
// own buffers below mochi's.
const mochiReadBufferSize = 64

// readBufSize is the size of the pooled read buffers.
const readBufSize = 4 << 10

// readBufs are bufConn's read buffers, shared by all connections.
var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// bufConn is a TCP connection read through a buffer that it borrows from
// readBufs only while bytes are waiting: it waits for the socket to be
// readable without a buffer (syscall.RawConn.Read), reads what is there
// into a pooled buffer, and returns the buffer once mochi has taken every
// byte. Only mochi's reader goroutine calls Read.
//
// With a poller, its reader parks between packets (poller.go).
type bufConn struct {
	net.Conn
	rc   syscall.RawConn
	buf  *[]byte // borrowed from readBufs; nil while nothing is buffered
	r, w int     // (*buf)[r:w] is unread

	p  *poller // nil: the reader never parks
	fd int32   // the socket's, for the poller
	pk parking
}

// newBufConn returns c read through pooled buffers, or c itself if it
// gives no access to its file descriptor. With p, its reader parks
// between packets.
func newBufConn(c *net.TCPConn, p *poller) net.Conn {
	rc, err := c.SyscallConn()
	if err != nil {
		return c
	}
	bc := &bufConn{Conn: c, rc: rc, fd: -1}
	if p != nil {
		_ = rc.Control(func(fd uintptr) { bc.fd = int32(fd) })
		if bc.fd >= 0 {
			bc.p = p
		}
	}
	return bc
}

// Unwrap returns the wrapped connection (see peerCertificate).
func (c *bufConn) Unwrap() net.Conn { return c.Conn }

// idle reports whether the connection holds no read buffer.
func (c *bufConn) idle() bool { return c.buf == nil }

// Read copies buffered bytes into p, reading the socket first if none
// are buffered. A read as large as a buffer goes straight to the socket.
// A read that hits the short deadline of SetDeadline while mochi's is
// still ahead waits again, until mochi's.
func (c *bufConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for c.buf == nil {
		var err error
		if len(p) >= readBufSize {
			var n int
			if n, err = c.Conn.Read(p); n > 0 || err == nil {
				return n, err
			}
		} else if err = c.fill(); err == nil {
			break
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || c.p == nil || !c.extend() {
			return 0, err
		}
	}
	n := copy(p, (*c.buf)[c.r:c.w])
	c.r += n
	if c.r == c.w {
		readBufs.Put(c.buf)
		c.buf, c.r, c.w = nil, 0, 0
	}
	return n, nil
}

// fill waits until the socket is readable (or the read deadline passes,
// or the connection is closed), then reads into a pooled buffer. The
// buffer is taken only for the read system call and kept only if it
// returned bytes.
func (c *bufConn) fill() error {
	var n int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		b := readBufs.Get().(*[]byte)
		for {
			n, rerr = syscall.Read(int(fd), *b)
			if !errors.Is(rerr, syscall.EINTR) {
				break
			}
		}
		if errors.Is(rerr, syscall.EAGAIN) {
			readBufs.Put(b)
			return false // wait until readable, then call again
		}
		if n > 0 {
			c.buf = b
		} else {
			readBufs.Put(b)
		}
		return true
	})
	switch {
	case err != nil:
		return err
	case rerr != nil:
		return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case n <= 0:
		return io.EOF
	}
	c.r, c.w = 0, n
	return nil
}
