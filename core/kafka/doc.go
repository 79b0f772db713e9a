// Package kafka is the core broker's Kafka wire protocol server. Unmodified
// Kafka clients (franz-go, sarama, librdkafka/kcat, kafka-python) connect
// to it to produce, fetch, run consumer groups and transactions, edges
// forward to it, and followers replicate through it. Requests and responses are encoded and
// decoded with franz-go's kmsg, so the server speaks every version kmsg
// knows; this package frames them, dispatches them and enforces limits.
//
// # Wire format
//
// Every request and response is a frame with a 4-byte big-endian length
// prefix that counts the bytes after it:
//
//	request:  length int32 | request header (v0-v2, see RequestHeader) | body
//	response: length int32 | correlation id int32 | [tagged fields] | body
//
// The response header carries tagged fields (v1) for flexible versions
// (KIP-482), except ApiVersions, whose response header is always v0 so that
// a client can read it before the versions are agreed.
//
// # Connections
//
// Each accepted connection has one goroutine that reads a frame, decodes
// it, runs its handler, writes the response and only then handles the
// next frame. Requests of one connection are therefore handled one at a
// time and answered in the order they were sent, as Kafka does; a client
// may still pipeline, its requests wait in the socket. While a Produce
// request is handled, a second goroutine reads the next frame (only
// reads it, within the in-flight byte budget), so that a producer with
// several requests in flight finds the next one in memory: the copy from
// the socket overlaps the writes to the logs. Connections are independent
// of each other.
//
// Shutdown closes the listeners and the idle connections, lets requests in
// flight be answered, then closes their connections; if its context ends
// first it cancels the handlers' context and closes everything. It returns
// when every goroutine the server started has exited.
//
// # Dispatch
//
// Each API is served by a handler registered in New with the versions it
// implements, one file per API key named after it (18_api_versions.go);
// ApiVersions advertises exactly those. A request is answered as follows:
//
//   - a key kmsg does not know: the connection is closed;
//   - ApiVersions at a version we do not serve: a v0 response with
//     UNSUPPORTED_VERSION and our ApiVersions range (KIP-511), so the
//     client retries at a version we serve;
//   - another key we do not serve, or a version outside the registered
//     range: the key's own response at that version with
//     UNSUPPORTED_VERSION in its top-level error code, if that version has
//     one; otherwise the connection is closed, as Kafka does;
//   - an undecodable header or body: the connection is closed (bytes after
//     a complete body are ignored, as Kafka ignores them);
//   - otherwise the handler's response, or a closed connection if the
//     handler returns an error. Kafka error codes travel in responses.
//
// On a SASL listener a connection may send only ApiVersions,
// SaslHandshake and SaslAuthenticate until SASL succeeds; anything else
// closes it, as Kafka does during the SASL exchange (see Security).
//
// Every closed connection is logged with the client address and, when a
// header was read, the api key, version and correlation id. The broker
// itself never stops for a client's bytes.
//
// # Security
//
// The server serves any number of listeners (ServeListener, StartListener),
// each with a name and one of Kafka's security protocols; Start and Serve
// serve one PLAINTEXT listener named PLAINTEXT. ParseListeners reads
// Kafka's listeners syntax.
//
//   - PLAINTEXT: every connection is User:ANONYMOUS.
//   - SSL: TLS (ServerTLS, with ssl.client.auth none, requested or
//     required); a verified client certificate makes the connection
//     User:<subject in RFC 2253 form> ("User:CN=edge-1,OU=fleet,O=acme"),
//     as Kafka's default ssl.principal.mapping.rules, otherwise
//     User:ANONYMOUS. CertReloader.Reload swaps the certificate and CA for
//     new connections without a restart.
//   - SASL_PLAINTEXT, SASL_SSL: SaslHandshake v1 then SaslAuthenticate
//     (or, after SaslHandshake v0, bare length-prefixed tokens, Kafka's
//     legacy flow) with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, as
//     Config.SASLMechanisms enables; the connection becomes User:<name>.
//     SCRAM credentials come from Config.Credentials, and PLAIN checks its
//     password against them. A failed authentication is answered
//     SASL_AUTHENTICATION_FAILED and the connection closed. There is no
//     re-authentication (KIP-368): SessionLifetimeMillis is 0.
//
// The TLS handshake runs on the connection's goroutine, bounded by
// Config.HandshakeTimeout, never in the accept loop. Metadata and
// FindCoordinator give each client the addresses on its own listener.
//
// # Limits
//
//   - MaxRequestBytes (Kafka's socket.request.max.bytes, 100 MiB): a larger
//     length prefix closes the connection before anything is allocated.
//   - MaxInFlightBytes (Kafka's queued.max.request.bytes): request bytes
//     held across all connections; a frame that does not fit waits unread.
//   - MaxConnections: connections beyond it are accepted and closed at once.
//   - IdleTimeout (Kafka's connections.max.idle.ms, 10 minutes): a
//     connection that starts no request for that long is closed; it also
//     bounds a stalled frame read or response write.
//
// # Metrics
//
// With Config.Registerer set: fluxo_kafka_requests_total{api},
// fluxo_kafka_request_duration_seconds{api}, fluxo_kafka_connections,
// fluxo_kafka_connections_rejected_total,
// fluxo_kafka_request_errors_total{reason},
// fluxo_kafka_auth_successes_total{listener,mechanism},
// fluxo_kafka_auth_failures_total{listener,mechanism} (mechanism SSL for
// client certificates, "unsupported" for a handshake naming a disabled
// mechanism) and fluxo_kafka_tls_handshake_failures_total{listener}.
package kafka
