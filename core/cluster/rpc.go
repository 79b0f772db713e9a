package cluster

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/core/acl"
)

// First byte of every connection to the Raft port.
const (
	connRaft byte = 0x01 // a raft NetworkTransport stream
	connRPC  byte = 0x02 // one forwarding RPC (see the package doc)
)

const (
	handshakeTimeout = 5 * time.Second
	dialTimeout      = 2 * time.Second
	// rpcTimeout bounds one forwarded RPC when the caller's context has
	// no earlier deadline.
	rpcTimeout = 10 * time.Second
	// maxFrame bounds an RPC frame.
	maxFrame = 4 << 20
)

// mux owns the listener on the Raft address: it reads the first byte of
// each connection and hands raft streams to raftLayer and RPC connections
// to rpc. Close closes the listener and every connection it accepted, and
// waits for its goroutines.
type mux struct {
	ln     net.Listener
	raftCh chan net.Conn // to raftLayer.Accept
	rpc    func(net.Conn)
	tls    *tlsState // nil: plaintext
	reject func(reason string)
	log    zerolog.Logger
	quit   chan struct{}
	wg     sync.WaitGroup // the accept loop and one goroutine per connection being routed or served

	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool
}

// newMux serves ln. With ts set, every connection must complete a mutual
// TLS handshake before its first byte is read; reject counts the
// connections refused, by reason.
func newMux(ln net.Listener, rpc func(net.Conn), ts *tlsState, reject func(reason string), log zerolog.Logger) *mux {
	m := &mux{ln: ln, raftCh: make(chan net.Conn), rpc: rpc, tls: ts, reject: reject, log: log, quit: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	m.wg.Add(1)
	go m.serve()
	return m
}

func (m *mux) serve() {
	defer m.wg.Done()
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.quit:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Warn().Err(err).Msg("cannot accept")
			select {
			case <-time.After(50 * time.Millisecond):
			case <-m.quit:
				return
			}
			continue
		}
		tc := &trackedConn{Conn: conn, m: m}
		if !m.track(tc) {
			conn.Close()
			return
		}
		m.wg.Add(1)
		go m.route(tc)
	}
}

func (m *mux) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *mux) untrack(c net.Conn) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
}

// route runs on the connection's own goroutine: the TLS handshake (with
// a deadline) and the first byte are read here, never in the accept loop.
func (m *mux) route(tc *trackedConn) {
	defer m.wg.Done()
	var c net.Conn = tc
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	if m.tls != nil {
		tlsConn := tls.Server(tc, m.tls.serverConfig())
		if err := tlsConn.Handshake(); err != nil {
			reason := rejectReason(err)
			m.log.Warn().Err(err).Str("client", tc.RemoteAddr().String()).Str("reason", reason).Msg("raft port connection refused")
			m.reject(reason)
			tc.Close()
			return
		}
		c = tlsConn
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	switch b[0] {
	case connRaft:
		select {
		case m.raftCh <- c: // raft owns it now
		case <-m.quit:
			c.Close()
		}
	case connRPC:
		m.rpc(c)
		c.Close()
	default:
		m.log.Warn().Str("client", c.RemoteAddr().String()).Uint8("type", b[0]).Msg("raft port connection refused: unknown connection type")
		m.reject(rejectUnknownType)
		c.Close()
	}
}

func (m *mux) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	close(m.quit)
	conns := make([]net.Conn, 0, len(m.conns))
	for c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()
	m.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	m.wg.Wait()
}

// trackedConn leaves the mux's set when closed.
type trackedConn struct {
	net.Conn
	m    *mux
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.m.untrack(c) })
	return c.Conn.Close()
}

// raftLayer is the raft.StreamLayer over the mux: Accept returns the
// connections that started with connRaft, Dial writes that byte.
type raftLayer struct {
	m        *mux
	nw       Network  // nil: the operating system's
	addr     net.Addr // advertised
	closed   chan struct{}
	closeOne sync.Once
}

func (l *raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.raftCh:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-l.m.quit:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; the listener itself belongs to the mux.
func (l *raftLayer) Close() error {
	l.closeOne.Do(func() { close(l.closed) })
	return nil
}

func (l *raftLayer) Addr() net.Addr { return l.addr }

func (l *raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := dialConn(context.Background(), l.nw, string(addr), l.m.tls, time.Now().Add(timeout))
	if err != nil {
		return nil, err
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{connRaft}); err != nil {
		c.Close()
		return nil, err
	}
	c.SetWriteDeadline(time.Time{})
	return c, nil
}

// advertisedAddr is a net.Addr for a host:port string.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// RPC operations.
const (
	opApply        = "apply"
	opStatus       = "status"
	opRemoveServer = "remove-server"
	opKeys         = "keys"
)

// rpcRequest is one forwarded request.
type rpcRequest struct {
	Op string `json:"op"`
	// Type and Body are an encoded command (opApply): its kind byte and
	// its JSON.
	Type uint8           `json:"type,omitempty"`
	Body json.RawMessage `json:"body,omitempty"`
	// ID is the server to remove (opRemoveServer).
	ID int32 `json:"id,omitempty"`
	// KeyOp (list, install, use, remove) and Key (raw, base64 in the
	// JSON) are a keyring operation (opKeys).
	KeyOp string `json:"key_op,omitempty"`
	Key   []byte `json:"key,omitempty"`
	// TimeoutMs is how long the caller waits.
	TimeoutMs int64 `json:"timeout_ms,omitempty"`
}

type rpcResponse struct {
	Result Result `json:"result"`
	// Code is empty on success, else one of errorCodes' keys, or
	// codeNotController, or codeOther with the text in Error.
	Code   string     `json:"code,omitempty"`
	Error  string     `json:"error,omitempty"`
	Status *rpcStatus `json:"status,omitempty"`
	// Keyring answers opKeys.
	Keyring *KeyringStatus `json:"keyring,omitempty"`
}

type rpcStatus struct {
	// HasState: this node's raft log is not empty (it bootstrapped or was
	// replicated to).
	HasState     bool   `json:"has_state"`
	AppliedIndex uint64 `json:"applied_index"`
	Leader       bool   `json:"leader"`
}

const (
	codeNotController = "not_controller" // retry with the new controller
	codeOther         = "other"
)

// errorCodes are the errors that cross a forward as themselves.
var errorCodes = map[string]error{
	"topic_exists":          ErrTopicExists,
	"unknown_topic":         ErrUnknownTopic,
	"replication_factor":    ErrReplicationFactor,
	"invalid_partitions":    ErrInvalidPartitions,
	"fenced_leader_epoch":   ErrFencedLeaderEpoch,
	"invalid_update":        ErrInvalidUpdate,
	"not_leader":            ErrNotLeader,
	"unknown_broker":        ErrUnknownBroker,
	"no_controller":         ErrNoController,
	"unknown_outcome":       ErrUnknownOutcome,
	"invalid_command":       ErrInvalidCommand,
	"unknown_credential":    ErrUnknownCredential,
	"unsupported_mechanism": ErrUnsupportedMechanism,
	"invalid_credential":    ErrInvalidCredential,
	"invalid_acl":           acl.ErrInvalid,
	"closed":                ErrClosed,
	"cannot_remove_self":    errRemoveSelf,
	"unknown_raft_server":   errUnknownServer,
	"leadership_transfer":   raft.ErrLeadershipTransferInProgress,
	"raft_enqueue_timeout":  raft.ErrEnqueueTimeout,
}

func codeOf(err error) (string, string) {
	if err == nil {
		return "", ""
	}
	if errors.Is(err, errRetry) {
		return codeNotController, err.Error()
	}
	for code, e := range errorCodes {
		if errors.Is(err, e) {
			return code, err.Error()
		}
	}
	return codeOther, err.Error()
}

func errorOf(code, text string) error {
	switch code {
	case "":
		return nil
	case codeNotController:
		return errRetry
	}
	if e, ok := errorCodes[code]; ok {
		return e
	}
	return fmt.Errorf("cluster: controller: %s", text)
}

// errNotSent marks a call that failed before the whole request was
// written: the server cannot have acted on it, so it is safe to retry.
var errNotSent = errors.New("cluster: request not sent")

func writeFrame(w io.Writer, prefix []byte, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, len(prefix)+4+len(body))
	buf = append(buf, prefix...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(body)))
	buf = append(buf, body...)
	_, err = w.Write(buf)
	return err
}

func readFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return fmt.Errorf("cluster: rpc frame of %d bytes, limit %d", n, maxFrame)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

// call sends one request to the Raft address addr and returns the
// response. An error wrapping errNotSent means nothing reached the server.
func (c *Cluster) call(ctx context.Context, addr string, req rpcRequest) (rpcResponse, error) {
	return call(ctx, c.cfg.Network, addr, c.tls, req)
}

// call sends one request to the Raft address addr, over TLS when ts is
// set, through nw when it is not nil.
func call(ctx context.Context, nw Network, addr string, ts *tlsState, req rpcRequest) (rpcResponse, error) {
	var resp rpcResponse
	deadline := time.Now().Add(rpcTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	req.TimeoutMs = max(1, time.Until(deadline).Milliseconds())
	conn, err := dialConn(ctx, nw, addr, ts, deadline)
	if err != nil {
		return resp, fmt.Errorf("%w: %w", errNotSent, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	// The reply may take the whole timeout (a command waiting for its
	// commit); give it a little more than the server's own bound.
	conn.SetWriteDeadline(deadline)
	if err := writeFrame(conn, []byte{connRPC}, req); err != nil {
		return resp, fmt.Errorf("%w: %w", errNotSent, err)
	}
	conn.SetReadDeadline(deadline.Add(time.Second))
	if err := readFrame(conn, &resp); err != nil {
		return resp, fmt.Errorf("cluster: rpc to %s: %w", addr, err)
	}
	return resp, nil
}

// serveRPC serves one request on a connection from the mux.
func (c *Cluster) serveRPC(conn net.Conn) {
	conn.SetReadDeadline(time.Now().Add(handshakeTimeout))
	var req rpcRequest
	if err := readFrame(conn, &req); err != nil {
		c.log.Debug().Err(err).Str("client", conn.RemoteAddr().String()).Msg("bad rpc request")
		return
	}
	timeout := min(max(time.Duration(req.TimeoutMs)*time.Millisecond, time.Millisecond), 30*time.Second)
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	var resp rpcResponse
	switch req.Op {
	case opApply:
		data := append([]byte{req.Type}, req.Body...)
		if _, err := decodeCommand(data); err != nil {
			resp.Code, resp.Error = codeOf(fmt.Errorf("%w: %w", ErrInvalidCommand, err))
			break
		}
		res, err := c.applyLocal(ctx, data)
		resp.Result = res
		resp.Code, resp.Error = codeOf(err)
	case opStatus:
		resp.Status = &rpcStatus{
			HasState:     c.raft.LastIndex() > 0,
			AppliedIndex: c.raft.AppliedIndex(),
			Leader:       c.raft.State() == raft.Leader,
		}
	case opRemoveServer:
		resp.Code, resp.Error = codeOf(c.removeServerLocal(ctx, req.ID))
	case opKeys:
		var err error
		if req.KeyOp != keyList {
			err = checkKey(req.Key)
		}
		if err == nil {
			var st KeyringStatus
			st, err = c.keyOp(req.KeyOp, req.Key)
			resp.Keyring = &st
		}
		resp.Code, resp.Error = codeOf(err)
	default:
		resp.Code, resp.Error = codeOther, "unknown op "+req.Op
	}
	conn.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	if err := writeFrame(conn, nil, resp); err != nil {
		c.log.Debug().Err(err).Str("client", conn.RemoteAddr().String()).Msg("cannot answer rpc")
	}
}
