package kafka

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxKeptReadBuffer is the largest Produce frame a connection keeps to read
// its next request into.
const maxKeptReadBuffer = 16 << 20

// maxKeptWriteBuffer is the largest response buffer a connection keeps for
// its next response; a larger one (a big Fetch) is left to the collector.
const maxKeptWriteBuffer = 64 << 10

// Conn is one client connection. Its requests are handled and answered
// one at a time, in the order they arrive, on the connection's own
// goroutine; handlers run on that goroutine, so the methods below need no
// locking and must only be called from a handler. While a Produce request
// is handled, a second goroutine reads the next frame (readAhead), so that
// a producer with several requests in flight does not wait for the socket
// between them; it is the only other goroutine that touches the
// connection, and only its reading side.
type Conn struct {
	s      *Server
	nc     net.Conn           // a *tls.Conn on SSL and SASL_SSL listeners
	l      *boundListener     // the listener the connection came on
	log    zerolog.Logger     // carries the client address
	ctx    context.Context    // handlers' context; cancelled on close
	cancel context.CancelFunc // cancels ctx

	busy bool // guarded by s.mu: a request was read and is not answered yet

	// Owned by the connection's goroutine.
	hdr           RequestHeader // the request being handled
	authenticated bool
	principal     string
	sasl          saslSession // the SASL exchange after a handshake, until it ends
	saslMechanism string      // the mechanism of the last SaslHandshake
	saslRaw       bool        // after SaslHandshake v0: frames are bare SASL tokens
	closeAfter    bool        // close the connection once the response is written
	wbuf          []byte
	rbufs         [][]byte // up to two earlier Produce frames, reused for the next reads
	after         []func() // run once the current response is written or dropped
}

// readAheadProduce turns on reading the frame after a Produce while it is
// handled; the benchmark turns it off for its baseline.
var readAheadProduce = true

// frameRead is the outcome of one readFrame.
type frameRead struct {
	frame   []byte
	release func()
	err     error
}

// AfterResponse registers fn to run once the response to the request being
// handled has been written (or the connection dropped it). A handler that
// puts borrowed memory in its response, such as mapped segment bytes,
// gives it back here.
func (c *Conn) AfterResponse(fn func()) { c.after = append(c.after, fn) }

func (c *Conn) runAfter() {
	for _, fn := range c.after {
		fn()
	}
	c.after = c.after[:0]
}

func newConn(s *Server, nc net.Conn, bl *boundListener) *Conn {
	if bl.TLS != nil {
		nc = tls.Server(nc, bl.TLS) // the handshake runs in serve
	}
	c := &Conn{
		s:   s,
		nc:  nc,
		l:   bl,
		log: s.log.With().Str("client", nc.RemoteAddr().String()).Str("listener", bl.Name).Logger(),
	}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	return c
}

// RemoteAddr is the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Header is the header of the request being handled.
func (c *Conn) Header() RequestHeader { return c.hdr }

// Logger is the connection's logger; it carries the client address.
func (c *Conn) Logger() zerolog.Logger { return c.log }

// Listener is the listener the connection came on.
func (c *Conn) Listener() Listener { return c.l.Listener }

// Authenticated reports whether the connection is authenticated: always
// on PLAINTEXT and SSL listeners, after a successful SASL exchange on
// SASL_PLAINTEXT and SASL_SSL ones.
func (c *Conn) Authenticated() bool { return c.authenticated }

// Principal is the Kafka principal of an authenticated connection, or "":
// User:ANONYMOUS on PLAINTEXT, and on SSL without a client certificate;
// User:<certificate subject in RFC 2253 form> on SSL with a verified
// client certificate; User:<name> after SASL.
func (c *Conn) Principal() string { return c.principal }

// SetAuthenticated marks the connection authenticated as principal, which
// on a SASL listener opens every API to it.
func (c *Conn) SetAuthenticated(principal string) {
	c.authenticated = true
	c.principal = principal
}

// close cancels the handlers' context and closes the socket, which ends
// any read or write in progress. It may be called from any goroutine and
// more than once.
func (c *Conn) close() {
	c.cancel()
	c.nc.Close()
}

// serve runs the connection until the client leaves, a request breaks the
// protocol, or the server shuts down.
func (c *Conn) serve() {
	defer c.s.wg.Done()
	defer c.s.forget(c)
	defer c.close()

	c.log.Debug().Msg("connection opened")
	if !c.secure() {
		return
	}
	// ahead receives the frame read while the previous (Produce) request
	// was handled; nil when no read is in flight. On the way out the
	// socket is closed first, which ends that read, and its result is
	// collected, so the reading goroutine never outlives serve.
	var ahead chan frameRead
	defer func() {
		if ahead != nil {
			c.close()
			if r := <-ahead; r.err == nil {
				r.release()
			}
		}
	}()
	for {
		if !c.setBusy(false) {
			return
		}
		var r frameRead
		if ahead != nil {
			r, ahead = <-ahead, nil
		} else {
			r.frame, r.release, r.err = c.readFrame(c.takeBuf())
		}
		if r.err != nil {
			c.logReadError(r.err)
			return
		}
		if !c.setBusy(true) {
			r.release()
			return
		}
		produce := len(r.frame) >= 2 && kmsg.Key(binary.BigEndian.Uint16(r.frame)) == kmsg.Produce && !c.saslRaw
		if produce && readAheadProduce {
			ahead = c.readAhead()
		}
		ok := c.handleFrame(r.frame)
		r.release()
		if produce && cap(r.frame) <= maxKeptReadBuffer {
			// Produce handlers copy records into the log and keep no
			// reference to the frame; other requests may (a group keeps
			// its members' metadata), so only a Produce frame is reused.
			c.rbufs = append(c.rbufs, r.frame)
		}
		if !ok {
			return
		}
	}
}

// readAhead reads the next frame on a goroutine of its own, while the
// current request is handled, and delivers it on the returned channel.
// Only the reading side of the connection is touched there: readFrame's
// state (the socket's read deadline, the in-flight budget, saslRaw, which
// only SASL handlers change) is not used by a Produce handler.
func (c *Conn) readAhead() chan frameRead {
	ch := make(chan frameRead, 1)
	buf := c.takeBuf()
	go func() {
		var r frameRead
		r.frame, r.release, r.err = c.readFrame(buf)
		ch <- r
	}()
	return ch
}

// takeBuf returns an earlier Produce frame's buffer to read into, or nil.
func (c *Conn) takeBuf() []byte {
	n := len(c.rbufs)
	if n == 0 {
		return nil
	}
	b := c.rbufs[n-1]
	c.rbufs[n-1] = nil
	c.rbufs = c.rbufs[:n-1]
	return b
}

// setBusy records whether a request is in flight. It returns false if the
// server is shutting down, in which case the connection must stop: an
// idle connection is closed by Shutdown, a request just read is dropped
// unanswered, and a busy one finishes its response first.
func (c *Conn) setBusy(busy bool) bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.closing {
		return false
	}
	c.busy = busy
	return true
}

// frameSizeError is a length prefix outside [minFrameBytes, MaxRequestBytes].
type frameSizeError struct {
	size uint32
	max  int
}

func (e *frameSizeError) Error() string {
	return fmt.Sprintf("kafka: request frame of %d bytes outside [%d, %d]", e.size, minFrameBytes, e.max)
}

// errIdle is returned by readFrame when no request began within the idle
// timeout.
var errIdle = errors.New("kafka: connection idle")

// readFrame reads one length-prefixed request frame, into buf if it is
// large enough (a buffer no one else holds). The length is checked before
// anything is allocated, and the in-flight byte budget is taken before the
// frame is read; release gives it back and must be called once the
// request is answered.
func (c *Conn) readFrame(buf []byte) (frame []byte, release func(), err error) {
	idle := c.s.cfg.IdleTimeout
	if err := c.nc.SetReadDeadline(time.Now().Add(idle)); err != nil {
		return nil, nil, err
	}
	var lenBuf [4]byte
	if n, err := io.ReadFull(c.nc, lenBuf[:]); err != nil {
		if n == 0 && isTimeout(err) {
			return nil, nil, errIdle
		}
		return nil, nil, err
	}
	size := binary.BigEndian.Uint32(lenBuf[:])
	if (size < minFrameBytes && !c.saslRaw) || uint64(size) > uint64(c.s.cfg.MaxRequestBytes) {
		// A bare SASL token (after SaslHandshake v0) may be short.
		return nil, nil, &frameSizeError{size: size, max: c.s.cfg.MaxRequestBytes}
	}

	release = func() {}
	if b := c.s.budget; b != nil {
		if err := b.Acquire(c.ctx, int64(size)); err != nil {
			return nil, nil, err
		}
		release = func() { b.Release(int64(size)) }
	}
	if cap(buf) >= int(size) {
		frame = buf[:size]
	} else {
		frame = make([]byte, size)
	}
	if err := c.nc.SetReadDeadline(time.Now().Add(idle)); err != nil {
		release()
		return nil, nil, err
	}
	if _, err := io.ReadFull(c.nc, frame); err != nil {
		release()
		return nil, nil, err
	}
	return frame, release, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *Conn) logReadError(err error) {
	var fse *frameSizeError
	switch {
	case errors.As(err, &fse):
		reason := reasonOversized
		if fse.size < minFrameBytes {
			reason = reasonMalformed
		}
		c.s.metrics.requestErrors.WithLabelValues(reason).Inc()
		c.log.Warn().Uint32("size", fse.size).Int("max", fse.max).Msg("request size out of bounds, closing connection")
	case errors.Is(err, errIdle):
		c.log.Debug().Dur("idle_timeout", c.s.cfg.IdleTimeout).Msg("connection idle, closing")
	case errors.Is(err, io.EOF):
		c.log.Debug().Msg("connection closed by client")
	case errors.Is(err, net.ErrClosed), errors.Is(err, context.Canceled):
		c.log.Debug().Msg("connection closed by server")
	default:
		c.log.Debug().Err(err).Msg("connection read failed")
	}
}

// writeResponse frames resp with the response header for its key and
// version and writes it. The header is v1 (with an empty tag section) for
// flexible versions, except for ApiVersions, whose response header is
// always v0 so that a client can read it before it knows our versions.
func (c *Conn) writeResponse(correlationID int32, resp kmsg.Response) error {
	buf := append(c.wbuf[:0], 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint32(buf, uint32(correlationID))
	if resp.IsFlexible() && resp.Key() != int16(kmsg.ApiVersions) {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	if cap(buf) <= maxKeptWriteBuffer {
		c.wbuf = buf[:0]
	} else {
		c.wbuf = nil
	}
	size := len(buf) - 4
	if size > math.MaxInt32 {
		return fmt.Errorf("kafka: response of %d bytes exceeds the protocol's limit", size)
	}
	binary.BigEndian.PutUint32(buf, uint32(size))

	if err := c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout)); err != nil {
		return err
	}
	_, err := c.nc.Write(buf)
	return err
}
