package edge

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// guarded wraps a mochi listener so that a panic while serving one
// connection ends that connection, not the process.
//
// mochi decodes each packet on the connection's goroutine, the one that
// runs the listener's establish callback (server.go attachClient → Client.Read
// → ReadPacket, clients.go lines 365-523), and nothing on that path
// recovers. A decoder bug reachable from the network (the MQTT 5 SUBSCRIBE
// without its options byte, packets.go SubscribeDecode line 959, indexes
// past the end of the packet) would otherwise kill the edge. OnPacketRead
// hooks run only after decoding, too late to help.
//
// wrap, when set, puts the edge's connection (ackConn) between the
// listener's connection and mochi.
type guarded struct {
	listeners.Listener
	onPanic func(listener string, c net.Conn, v any)
	wrap    func(net.Conn) net.Conn
	gate    *connGate
	// poller, if set, parks the readers of plain TCP connections.
	poller *poller
	// onStop is called when the listener stops accepting while the edge
	// is not closing: mochi's accept loops return on any accept error
	// (even EMFILE) without a word, so a dead port would go unnoticed.
	onStop func(listener string)
	// closeClients, if set, replaces mochi's when the listener closes.
	closeClients listeners.CloseFn
}

// Close closes the listener and its clients, with closeClients in place
// of mochi's if set.
func (g *guarded) Close(closeClients listeners.CloseFn) {
	if g.closeClients != nil {
		closeClients = g.closeClients
	}
	g.Listener.Close(closeClients)
}

// connGate stands between accepted connections and mochi while the edge
// closes. mochi registers a connection (ClientsWg.Add, in attachClient)
// on the connection's own goroutine, and its Close waits on that
// WaitGroup: an Add racing the Wait is a misuse of sync.WaitGroup (Wait
// may return with a client still starting, or panic). So the edge closes
// the gate before mochi's Close: connections accepted after it are closed
// without reaching mochi, and Close waits for those already on their way
// until mochi first reads from them, which it does after its Add.
type connGate struct {
	mu       sync.Mutex
	closed   bool
	starting sync.WaitGroup // Add only under mu while open

	// quiescing is set by Edge.Close once the gate is closed: every
	// connection's reader parks at its next read (firstRead) instead of
	// reading another packet; parked counts the readers parked.
	quiescing atomic.Bool
	parked    atomic.Int64
	// lingering counts the connections closing in order (firstRead.Close)
	// while the edge closes; Edge.Close waits for them.
	lingering sync.WaitGroup
}

// enter admits a connection, or reports false once the gate is closed.
func (g *connGate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.starting.Add(1)
	return true
}

// isClosed reports whether close was called.
func (g *connGate) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// close refuses new connections and waits for the admitted ones to be
// registered with mochi (or to have ended).
func (g *connGate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.starting.Wait()
}

// firstRead calls started before the first Read of its connection, and
// parks its reader while the edge quiesces (connGate.quiescing): the
// packet being handled finishes, acknowledgement written, and no other is
// read; the reader returns once the connection is closed.
type firstRead struct {
	net.Conn
	once    sync.Once
	started func()
	gate    *connGate
	closed  atomic.Bool
	lingers atomic.Bool // closing in order (Close)
}

// SetDeadline keeps the read deadline in the past while the edge
// quiesces: mochi refreshes it before every packet it reads.
func (c *firstRead) SetDeadline(t time.Time) error {
	if c.gate != nil && c.gate.quiescing.Load() {
		_ = c.Conn.SetReadDeadline(time.Now())
		return c.Conn.SetWriteDeadline(t)
	}
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline is SetDeadline's read half, under the same rule.
func (c *firstRead) SetReadDeadline(t time.Time) error {
	if c.gate != nil && c.gate.quiescing.Load() {
		t = time.Now()
	}
	return c.Conn.SetReadDeadline(t)
}

// lingerTimeout bounds how long a connection closed by a closing edge
// reads what its device still sends, after the edge's last bytes and its
// FIN, before it is closed.
const lingerTimeout = time.Second

// Close closes the connection and releases a parked reader.
//
// While the edge closes, the device is usually still sending (its next
// publish, a PINGREQ) and the edge no longer reads: closing a socket with
// unread bytes makes the kernel answer with a reset, and a device that
// meets the reset in a write tears its connection down without reading
// the acknowledgements already on their way, so it sends those publishes
// again to the next edge, which stores them twice. So the edge closes in
// order instead, as web servers do (lingering close): its side of the
// stream is shut after its last bytes (FIN), then what the device still
// sends is read and dropped (it was not acknowledged, so the device sends
// it again) until the device closes too, or for lingerTimeout; only then
// is the socket closed, on a goroutine of its own.
func (c *firstRead) Close() error {
	if c.lingers.Load() {
		return nil // closed by its lingering goroutine
	}
	if c.closed.Swap(true) {
		return c.Conn.Close()
	}
	if c.gate == nil || !c.gate.quiescing.Load() {
		return c.Conn.Close()
	}
	cw := closeWriter(c.Conn)
	if cw == nil || cw.CloseWrite() != nil {
		return c.Conn.Close()
	}
	c.lingers.Store(true)
	c.gate.lingering.Add(1)
	go func() {
		defer c.gate.lingering.Done()
		_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTimeout))
		_, _ = io.Copy(io.Discard, c.Conn)
		_ = c.Conn.Close()
	}()
	return nil
}

// closeWriter finds the connection under the edge's wrappers that can
// shut its writing side (TCP, TLS).
func closeWriter(c net.Conn) interface{ CloseWrite() error } {
	for c != nil {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			return cw
		}
		u, ok := c.(unwrapper)
		if !ok {
			return nil
		}
		c = u.Unwrap()
	}
	return nil
}

// park holds the reader of a quiescing edge until the connection closes.
func (c *firstRead) park() (int, error) {
	c.gate.parked.Add(1)
	defer c.gate.parked.Add(-1)
	for !c.closed.Load() {
		time.Sleep(5 * time.Millisecond)
	}
	return 0, net.ErrClosed
}

// Unwrap returns the wrapped connection (see peerCertificate).
func (c *firstRead) Unwrap() net.Conn { return c.Conn }

func (c *firstRead) Read(b []byte) (int, error) {
	c.once.Do(c.started)
	if c.gate != nil && c.gate.quiescing.Load() {
		return c.park()
	}
	n, err := c.Conn.Read(b)
	if n == 0 && err != nil && c.gate != nil && c.gate.quiescing.Load() {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return c.park()
		}
	}
	return n, err
}

// errClosing refuses a connection accepted while the edge closes.
var errClosing = errors.New("edge: closing")

// Serve serves the wrapped listener with a recovering establish callback.
func (g *guarded) Serve(establish listeners.EstablishFn) {
	g.Listener.Serve(func(id string, c net.Conn) (err error) {
		if !g.gate.enter() {
			c.Close()
			return errClosing
		}
		if tc, ok := c.(*net.TCPConn); ok {
			c = newBufConn(tc, g.poller) // mochi's own read buffer is tiny (idleconn.go)
		}
		fr := &firstRead{Conn: c, started: g.gate.starting.Done, gate: g.gate}
		defer fr.once.Do(fr.started) // mochi never read it
		c = fr
		if g.wrap != nil {
			c = g.wrap(c) // outside firstRead: the hook finds its ackConn
		}
		defer func() {
			if v := recover(); v != nil {
				g.onPanic(id, c, v)
				err = fmt.Errorf("edge: connection closed after a panic: %v", v)
			}
		}()
		return establish(id, c)
	})
	if g.onStop != nil && !g.gate.isClosed() {
		g.onStop(g.ID())
	}
}

// wsListener is an MQTT-over-WebSocket listener (any path, subprotocol
// "mqtt"). It differs from mochi's in binding in Init, so Address gives
// the bound port, and in setting no read or write timeout on the
// connection: keepalive is the MQTT session's business.
type wsListener struct {
	id      string
	address string

	mu        sync.Mutex // guards ln
	ln        net.Listener
	srv       *http.Server
	establish listeners.EstablishFn // set by Serve before the first connection
	log       *slog.Logger
	upgrader  websocket.Upgrader
	end       atomic.Bool
}

func newWSListener(id, address string) *wsListener {
	return &wsListener{
		id:      id,
		address: address,
		upgrader: websocket.Upgrader{
			Subprotocols: []string{"mqtt"},
			CheckOrigin:  func(*http.Request) bool { return true },
		},
	}
}

func (l *wsListener) ID() string       { return l.id }
func (l *wsListener) Protocol() string { return "ws" }

func (l *wsListener) Address() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.ln = ln
	l.mu.Unlock()
	l.srv = &http.Server{
		Handler:           http.HandlerFunc(l.handle),
		ReadHeaderTimeout: 10 * time.Second,
	}
	return nil
}

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	err := l.srv.Serve(l.ln)
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !l.end.Load() {
		l.log.Error("websocket listener stopped", "error", err)
	}
}

func (l *wsListener) handle(w http.ResponseWriter, r *http.Request) {
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer c.Close()
	if err := l.establish(l.id, &wsConn{Conn: c.NetConn(), ws: c}); err != nil {
		l.log.Warn("", "error", err)
	}
}

// Close stops accepting connections, then closes the listener's clients.
// http.Server.Close leaves hijacked (upgraded) connections alone.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	if l.end.CompareAndSwap(false, true) && l.srv != nil {
		_ = l.srv.Close()
	}
	closeClients(l.id)
}

// wsConn is a net.Conn over a WebSocket: MQTT bytes travel in binary
// messages, a packet may span messages and a message may hold several
// packets.
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader // current message, nil between messages
}

var errWSText = errors.New("edge: websocket message is not binary")

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			op, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errWSText
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary message. mochi serialises writes per client.
func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error { return c.ws.Close() }
