package kafka

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handlerFunc serves one request. req is decoded at the version the client
// sent, within the range the handler was registered for; build the answer
// with req.ResponseKind(), which has the same version set:
//
//	r := req.(*kmsg.ProduceRequest)
//	resp := r.ResponseKind().(*kmsg.ProduceResponse)
//
// Kafka errors are data: put the kerr code in the response and return a
// nil error. A non-nil error means the connection cannot go on; it is
// logged and the connection closed without an answer. A nil response with
// a nil error sends nothing and is allowed only for Produce (acks=0).
//
// Handlers of one connection run one at a time on its goroutine; handlers
// of different connections run concurrently, so a handler guards the
// state it shares. ctx is cancelled when Shutdown stops waiting for
// requests in flight; a handler that waits (a long-polling Fetch, a
// JoinGroup) must return promptly once it is done, since Shutdown waits
// for it. A client that disconnects is noticed only when its response is
// written, as in Kafka. A panic in a handler is a broken invariant and is
// not recovered.
type handlerFunc func(ctx context.Context, cc *Conn, req kmsg.Request) (kmsg.Response, error)

// handler is a registered handlerFunc with the versions it serves.
type handler struct {
	minVersion, maxVersion int16
	fn                     handlerFunc
}

// registerHandlers registers every API the server serves. ApiVersions
// advertises exactly these keys and version ranges.
func (s *Server) registerHandlers() {
	s.handle(kmsg.ApiVersions, 0, kmsg.NewPtrApiVersionsRequest().MaxVersion(), s.handleApiVersions)
	if len(s.cfg.SASLMechanisms) > 0 {
		s.handle(kmsg.SASLHandshake, 0, 1, s.handleSASLHandshake)
		s.handle(kmsg.SASLAuthenticate, 0, 2, s.handleSASLAuthenticate)
	}
	s.registerSecurityHandlers()
	if s.cfg.Broker == nil {
		return
	}
	// Versions: from the first that carries RecordBatch v2 (or is needed
	// by today's clients) to the last that names topics rather than
	// topic ids.
	s.handle(kmsg.Produce, 3, 12, s.handleProduce)
	s.handle(kmsg.Fetch, 4, 12, s.handleFetch)
	s.handle(kmsg.ListOffsets, 1, 8, s.handleListOffsets)
	s.handle(kmsg.Metadata, 0, 12, s.handleMetadata)
	s.handle(kmsg.CreateTopics, 2, 7, s.handleCreateTopics)
	s.handle(kmsg.DeleteTopics, 1, 5, s.handleDeleteTopics)
	s.handle(kmsg.InitProducerID, 0, 4, s.handleInitProducerID)
	s.handle(kmsg.DeleteRecords, 0, 2, s.handleDeleteRecords)
	s.handle(kmsg.OffsetForLeaderEpoch, 0, 4, s.handleOffsetForLeaderEpoch)
	s.handle(kmsg.DescribeConfigs, 0, 4, s.handleDescribeConfigs)
	s.handle(kmsg.CreatePartitions, 0, 3, s.handleCreatePartitions)
	s.handle(kmsg.IncrementalAlterConfigs, 0, 1, s.handleIncrementalAlterConfigs)
	s.handle(kmsg.AlterPartitionAssignments, 0, 1, s.handleAlterPartitionReassignments)
	s.handle(kmsg.ListPartitionReassignments, 0, 0, s.handleListPartitionReassignments)
	if s.cfg.UnregisterBroker != nil {
		s.handle(kmsg.UnregisterBroker, 0, kmsg.NewPtrUnregisterBrokerRequest().MaxVersion(), s.handleUnregisterBroker)
	}
	if s.cfg.Groups == nil {
		return
	}
	s.handle(kmsg.FindCoordinator, 0, 6, s.handleFindCoordinator)
	s.handle(kmsg.JoinGroup, 0, 9, s.handleJoinGroup)
	s.handle(kmsg.SyncGroup, 0, 5, s.handleSyncGroup)
	s.handle(kmsg.Heartbeat, 0, 4, s.handleHeartbeat)
	s.handle(kmsg.LeaveGroup, 0, 5, s.handleLeaveGroup)
	s.handle(kmsg.OffsetCommit, 0, 9, s.handleOffsetCommit)
	s.handle(kmsg.OffsetFetch, 0, 9, s.handleOffsetFetch)
	s.handle(kmsg.DescribeGroups, 0, 5, s.handleDescribeGroups)
	s.handle(kmsg.ListGroups, 0, 5, s.handleListGroups)
	s.handle(kmsg.DeleteGroups, 0, 2, s.handleDeleteGroups)
	if s.cfg.Txns == nil {
		return
	}
	s.handle(kmsg.AddPartitionsToTxn, 0, 3, s.handleAddPartitionsToTxn)
	s.handle(kmsg.AddOffsetsToTxn, 0, 4, s.handleAddOffsetsToTxn)
	s.handle(kmsg.EndTxn, 0, 4, s.handleEndTxn)
	s.handle(kmsg.WriteTxnMarkers, 0, 1, s.handleWriteTxnMarkers)
	s.handle(kmsg.TxnOffsetCommit, 0, 4, s.handleTxnOffsetCommit)
	s.handle(kmsg.DescribeTransactions, 0, 0, s.handleDescribeTransactions)
	s.handle(kmsg.ListTransactions, 0, 1, s.handleListTransactions)
}

// handle registers fn for key at versions [minVersion, maxVersion]. It must
// be called before the server starts serving; registering a key twice, a
// key kmsg does not know, or versions kmsg cannot decode is a programming
// error and panics.
func (s *Server) handle(key kmsg.Key, minVersion, maxVersion int16, fn handlerFunc) {
	req := kmsg.RequestForKey(int16(key))
	switch {
	case req == nil:
		panic(fmt.Sprintf("kafka: handle: unknown api key %d", key))
	case minVersion < 0 || minVersion > maxVersion || maxVersion > req.MaxVersion():
		panic(fmt.Sprintf("kafka: handle: %s versions %d-%d outside 0-%d", key.Name(), minVersion, maxVersion, req.MaxVersion()))
	case fn == nil:
		panic(fmt.Sprintf("kafka: handle: nil handler for %s", key.Name()))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen {
		panic(fmt.Sprintf("kafka: handle: %s registered after the server started", key.Name()))
	}
	if _, dup := s.handlers[int16(key)]; dup {
		panic(fmt.Sprintf("kafka: handle: %s registered twice", key.Name()))
	}
	s.handlers[int16(key)] = handler{minVersion: minVersion, maxVersion: maxVersion, fn: fn}
}

// freeze ends registration and builds the ApiVersions key list. s.mu must
// be held.
func (s *Server) freeze() {
	s.frozen = true
	s.apiKeys = s.apiKeys[:0]
	for key, h := range s.handlers {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey = key
		k.MinVersion = h.minVersion
		k.MaxVersion = h.maxVersion
		if kmsg.Key(key) == kmsg.Produce {
			// librdkafka before 2.11.1 decides whether a broker takes
			// compressed batches by asking if it supports Produce v0, and
			// silently stops compressing when not (librdkafka #4956).
			// Kafka 4.0 advertises Produce from v0 for that reason while
			// refusing v0-v2 (KAFKA-18659); so do we: the handler's range
			// is still enforced by the dispatcher.
			k.MinVersion = 0
		}
		s.apiKeys = append(s.apiKeys, k)
	}
	slices.SortFunc(s.apiKeys, func(a, b kmsg.ApiVersionsResponseApiKey) int {
		return int(a.ApiKey) - int(b.ApiKey)
	})
}

// allowedBeforeAuth reports whether key may be sent before the connection
// is authenticated: what a client needs to authenticate.
func allowedBeforeAuth(key int16) bool {
	switch kmsg.Key(key) {
	case kmsg.ApiVersions, kmsg.SASLHandshake, kmsg.SASLAuthenticate:
		return true
	}
	return false
}

// Reasons for fluxo_kafka_request_errors_total.
const (
	reasonMalformed       = "malformed"       // undecodable frame, or a size below a header's
	reasonOversized       = "oversized"       // length prefix above MaxRequestBytes
	reasonUnsupported     = "unsupported"     // unknown key, or a key or version we do not serve
	reasonUnauthenticated = "unauthenticated" // request before authentication
	reasonHandler         = "handler"         // handler failed or broke its contract
)

// handleFrame dispatches one request frame and writes its response. It
// returns false when the connection must be closed.
func (c *Conn) handleFrame(frame []byte) bool {
	s := c.s
	if c.saslRaw {
		return c.handleRawSASL(frame)
	}
	hdr, req, body, err := readHeader(frame)
	c.hdr = hdr
	if err != nil {
		if errors.Is(err, errUnknownKey) {
			s.metrics.requestErrors.WithLabelValues(reasonUnsupported).Inc()
			c.logRequest(c.log.Warn(), hdr).Msg("unknown api key, closing connection")
			return false
		}
		s.metrics.requestErrors.WithLabelValues(reasonMalformed).Inc()
		c.logRequest(c.log.Warn(), hdr).Err(err).Msg("malformed request, closing connection")
		return false
	}
	api := kmsg.NameForKey(hdr.Key)
	s.metrics.requests.WithLabelValues(api).Inc()

	// Only SASL listeners' connections start unauthenticated.
	if !c.authenticated && !allowedBeforeAuth(hdr.Key) {
		s.metrics.requestErrors.WithLabelValues(reasonUnauthenticated).Inc()
		c.logRequest(c.log.Warn(), hdr).Msg("request before authentication, closing connection")
		return false
	}

	h, ok := s.handlers[hdr.Key]
	if !ok || hdr.Version < h.minVersion || hdr.Version > h.maxVersion {
		s.metrics.requestErrors.WithLabelValues(reasonUnsupported).Inc()
		return c.unsupported(hdr, req, h, ok)
	}

	if err := decodeBodySafe(req, body); err != nil {
		s.metrics.requestErrors.WithLabelValues(reasonMalformed).Inc()
		c.logRequest(c.log.Warn(), hdr).Err(err).Msg("malformed request, closing connection")
		return false
	}

	defer c.runAfter()
	start := time.Now()
	resp, err := h.fn(c.ctx, c, req)
	s.metrics.duration.WithLabelValues(api).Observe(time.Since(start).Seconds())
	switch {
	case err != nil:
		s.metrics.requestErrors.WithLabelValues(reasonHandler).Inc()
		c.logRequest(c.log.Warn(), hdr).Err(err).Msg("request failed, closing connection")
		return false
	case resp == nil && hdr.Key == int16(kmsg.Produce):
		return true
	case resp == nil || resp.Key() != hdr.Key || resp.GetVersion() != hdr.Version:
		s.metrics.requestErrors.WithLabelValues(reasonHandler).Inc()
		c.logRequest(c.log.Error(), hdr).Msg("handler returned no response or one of another key or version, closing connection")
		return false
	}
	return c.reply(hdr, resp) && !c.closeAfter
}

// reply writes resp to the client; false means the connection is broken.
func (c *Conn) reply(hdr RequestHeader, resp kmsg.Response) bool {
	if err := c.writeResponse(hdr.CorrelationID, resp); err != nil {
		c.logRequest(c.log.Debug(), hdr).Err(err).Msg("cannot write response, closing connection")
		return false
	}
	return true
}

// unsupported answers a request for a key we do not serve (registered is
// false) or a version outside the registered range:
//
//   - ApiVersions gets KIP-511's answer: a v0 response with
//     UNSUPPORTED_VERSION listing only our ApiVersions range, so the
//     client retries at a version we serve.
//   - Any other key gets its own response type at the requested version
//     with UNSUPPORTED_VERSION in its top-level error code, when that
//     version has one on the wire.
//   - Otherwise the connection is closed, as Kafka does for every
//     unsupported request but ApiVersions: an empty response without an
//     error code would read as a valid, empty answer.
func (c *Conn) unsupported(hdr RequestHeader, req kmsg.Request, h handler, registered bool) bool {
	ev := func(e *zerolog.Event) *zerolog.Event {
		e = c.logRequest(e, hdr)
		if registered {
			e = e.Int16("min_version", h.minVersion).Int16("max_version", h.maxVersion)
		}
		return e
	}
	if hdr.Key == int16(kmsg.ApiVersions) {
		ev(c.log.Debug()).Msg("unsupported ApiVersions version, answering with v0")
		return c.reply(hdr, c.s.apiVersionsUnsupported())
	}
	resp := errorResponse(req, kerr.UnsupportedVersion.Code, "api version not supported by this broker")
	if resp == nil {
		ev(c.log.Warn()).Msg("unsupported api or version, closing connection")
		return false
	}
	ev(c.log.Info()).Msg("unsupported api or version, answering UNSUPPORTED_VERSION")
	return c.reply(hdr, resp)
}

// errorResponse returns req's response type at req's version with its
// top-level ErrorCode set to code (and ErrorMessage to msg where the type
// has one), or nil if that version has no top-level error code on the
// wire. kmsg response structs hold the fields of every version, so the
// field's presence alone proves nothing: the response is encoded and
// decoded again to see whether the code survives.
func errorResponse(req kmsg.Request, code int16, msg string) kmsg.Response {
	if v := req.GetVersion(); v < 0 || v > req.MaxVersion() {
		return nil
	}
	resp := req.ResponseKind()
	if !setErrorCode(resp, code) {
		return nil
	}
	setErrorMessage(resp, msg)
	check := req.ResponseKind()
	if err := check.ReadFrom(resp.AppendTo(nil)); err != nil {
		return nil
	}
	if got, ok := errorCode(check); !ok || got != code {
		return nil
	}
	return resp
}

func errorCodeField(resp kmsg.Response) (reflect.Value, bool) {
	v := reflect.ValueOf(resp)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	f := v.Elem().FieldByName("ErrorCode")
	if !f.IsValid() || f.Kind() != reflect.Int16 || !f.CanSet() {
		return reflect.Value{}, false
	}
	return f, true
}

func setErrorCode(resp kmsg.Response, code int16) bool {
	f, ok := errorCodeField(resp)
	if ok {
		f.SetInt(int64(code))
	}
	return ok
}

// setErrorMessage sets a top-level ErrorMessage *string field, if resp has
// one; versions without it on the wire simply do not send it.
func setErrorMessage(resp kmsg.Response, msg string) {
	v := reflect.ValueOf(resp)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return
	}
	f := v.Elem().FieldByName("ErrorMessage")
	if f.IsValid() && f.CanSet() && f.Type() == reflect.TypeFor[*string]() {
		f.Set(reflect.ValueOf(&msg))
	}
}

func errorCode(resp kmsg.Response) (int16, bool) {
	f, ok := errorCodeField(resp)
	if !ok {
		return 0, false
	}
	return int16(f.Int()), true
}

// logRequest adds the request's header to a log event.
func (c *Conn) logRequest(e *zerolog.Event, hdr RequestHeader) *zerolog.Event {
	return e.Str("api", kmsg.NameForKey(hdr.Key)).
		Int16("api_key", hdr.Key).
		Int16("version", hdr.Version).
		Int32("correlation_id", hdr.CorrelationID).
		Str("client_id", hdr.ClientID)
}
