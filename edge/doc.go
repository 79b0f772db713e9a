// Package edge is fluxo's MQTT front door: an embedded MQTT server
// (mochi-mqtt v2) that authenticates devices, checks their topic ACLs,
// maps each accepted publish to a core topic with routing rules and hands
// it to a Sink (the spool) before acknowledging it. What happens after
// the Sink is not this package's business.
//
// # Data path
//
//	device ──MQTT 3.1.1/5 (TCP, TLS, WebSocket)──▶ mochi ──▶ hook: auth, ACL, route ──▶ Sink (Append, or Submit) ──▶ PUBACK/PUBREC
//
// Every device publish that passes the ACL is routed by package
// bridge/route (first matching route.Route wins, see route.DefaultRoutes),
// as at the bridge, and becomes one spool.Message:
//
//	Lane     the route's lane (alarm or telemetry)
//	Topic    the route's core topic
//	Key      the device id ({fleet}/{device}/{stream}...: second level), else the client id
//	Value    the MQTT payload
//	Time     receive time
//	Headers  mqtt.topic, mqtt.qos ("0"/"1"/"2"), mqtt.client (only when it
//	         differs from the key), edge.id, edge.received_ms (unix ms),
//	         mqtt.will ("1", wills only), then the MQTT 5 properties the
//	         publish has: mqtt.content_type, mqtt.payload_format ("0"/"1"),
//	         mqtt.response_topic, mqtt.correlation_data (the bytes),
//	         mqtt.expiry_ms (receive time + Message Expiry Interval, unix
//	         ms), then the MQTT 5 user properties in the order sent,
//	         repeated names kept (keys starting with "mqtt." or "edge."
//	         are dropped: reserved for the edge)
//
// A telemetry record still in the spool past its mqtt.expiry_ms is not
// sent to the core: the uplink drops it and the spool counts it as
// expired. A publish whose record would have more than Config.MaxHeaders
// headers (the edge's own included) or more than Config.MaxHeaderBytes of
// header keys and values is refused (see below).
//
// Duplicates are passed on: a QoS 1 publish resent with DUP reaches the
// Sink again (the core deduplicates by producer sequence). Messages the
// edge itself publishes (Edge.Publish: commands to devices) never reach
// the Sink.
//
// Topics starting with "$" are the server's (MQTT 5 §4.7.2): a device's
// publish to one ($SYS/..., $foo/bar) is refused before routing, so no
// route ever sees one, and Edge.Publish refuses them too. mochi never
// matches them with a # or + at the first level: only a subscription to
// a filter starting with the same $ word receives them ($SYS from mochi).
//
// # Acknowledged means spooled
//
// mochi calls the publish hook on the client's read goroutine before it
// writes the acknowledgement. With a plain Sink the hook returns once
// Sink.Append has. With an AsyncSink (the spool, in an edge Node) the hook
// submits a QoS 0 or QoS 1 message and returns at once, and the connection
// under mochi (ackConn) holds the PUBACK until the Sink reports the
// message stored, so that mochi reads the device's next publishes
// meanwhile and one fsync covers every connection's messages in flight;
// a QoS 2 publish still waits in the hook (mochi keeps its PUBREC as
// session state and resends it by itself after a reconnect). Either way:
//
//   - QoS 1: the PUBACK leaves once the message is stored (written, or
//     fsynced under --spool-sync always).
//   - QoS 2: the PUBREC leaves once the message is stored (the message is
//     spooled once; PUBREL/PUBCOMP only finish the exchange).
//   - QoS 0: nothing to acknowledge; a refused message is dropped and
//     counted.
//   - Acknowledgements leave in the order of the publishes, per
//     connection, whatever order the Sink answers in; packets mochi
//     writes after a held PUBACK (PUBRECs, deliveries, PINGRESP) wait
//     behind it.
//
// A refusal is never a silent acknowledgement:
//
//   - MQTT 5, QoS 1/2: a PUBACK (QoS 1) or PUBREC (QoS 2) with a failure
//     reason code (a held PUBACK is replaced in its place in the stream);
//     the client stays connected and may retry.
//   - MQTT 3.1.1, QoS 1/2: the protocol has no negative acknowledgement, so
//     the connection is closed without one (nor any acknowledgement after
//     it); the message stays the device's to resend (clients resend
//     unacknowledged messages on reconnecting with their session kept).
//
// With an AsyncSink, mochi retains a QoS 0/1 message and delivers it to
// local subscribers when the hook returns, before the message is stored:
// a subscriber on the edge can see a message the spool then fails (a
// write or fsync error; what the spool can refuse without I/O, such as a
// full budget, is refused before mochi sees it).
//
// A slow spool still slows its devices down instead of filling memory:
// Submit waits while 4 MiB are queued per lane, and a connection's writes
// wait while 1 MiB is queued behind its held acknowledgements.
//
// # Refusals and reason codes
//
//	cause                          counted as                          MQTT 5                      MQTT 3.1.1
//	unknown user / wrong password  denials_total{reason=credentials}   CONNACK 0x86                CONNACK 0x04
//	no username, anonymous off     denials_total{reason=anonymous}     CONNACK 0x87                CONNACK 0x05
//	will topic not allowed         denials_total{reason=will}          CONNACK 0x87                CONNACK 0x05
//	publish not allowed (ACL)      denials_total{reason=publish}       PUBACK/PUBREC 0x87          QoS 1/2: disconnect; QoS 0: drop
//	subscribe not allowed (ACL)    denials_total{reason=subscribe}     SUBACK 0x87                 SUBACK 0x80
//	no route for the topic         unrouted_total                      PUBACK/PUBREC 0x90          QoS 1/2: disconnect; QoS 0: drop
//	topic starting with $          unrouted_total                      PUBACK/PUBREC 0x90          QoS 1/2: disconnect; QoS 0: drop
//	past MaxHeaders/MaxHeaderBytes header_refusals_total               PUBACK/PUBREC 0x83          QoS 1/2: disconnect; QoS 0: drop
//	spool.ErrFull                  spool_failures_total{qos}           PUBACK/PUBREC 0x97          QoS 1/2: disconnect; QoS 0: drop
//	spool.ErrTooLarge              spool_failures_total{qos}           PUBACK/PUBREC 0x83          QoS 1/2: disconnect; QoS 0: drop
//	any other Sink error           spool_failures_total{qos}           PUBACK/PUBREC 0x80          QoS 1/2: disconnect; QoS 0: drop
//	packet over MaxPacketSize      -                                   connection closed           connection closed
//	malformed packet, AUTH packet  -                                   connection closed           connection closed
//
// 0x97 Quota exceeded says what happened (the edge's disk budget is used
// up) and that retrying later may work. 0x83 Implementation specific
// error carries the reason string "message too large for the spool":
// PUBACK has no "too large" code (0x95 is for whole packets). 0x90 Topic
// Name invalid is MQTT's "not malformed, but not accepted by this
// server". Too many headers is 0x83 with a reason string naming the
// limit: a PUBACK has no code for it (0x95 Packet too large is for
// CONNACK and DISCONNECT, 0x99 Payload format invalid is about the
// payload). Wills are spooled after mochi publishes them; a will the spool
// refuses has nobody to be refused to and is only counted and logged.
// Wills of the clients that Edge.Close disconnects are not spooled.
//
// Metrics (with Config.Registerer): fluxo_edge_clients_connected,
// fluxo_edge_publishes_total{qos}, fluxo_edge_denials_total{reason},
// fluxo_edge_spool_failures_total{qos}, fluxo_edge_unrouted_total,
// fluxo_edge_header_refusals_total,
// fluxo_edge_bytes_received_total (bytes of MQTT packets read).
//
// # MQTT 5 behaviours
//
// Every packet the edge writes to an MQTT 5 client (CONNACK, PUBACK,
// PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT) is checked
// against the specification's reason code and property tables
// (TestPacketAudit). The edge mends in its OnPacketEncode hook what mochi
// gets wrong: acknowledgements of publishes carry only a reason code
// (mochi echoes the publish's user properties and answers QoS 1 with
// 0x01; mochi issue #474), SUBACK and UNSUBACK only a reason string
// (mochi echoes the client's user properties back), a successful CONNACK
// announces the Maximum Packet Size. A client silent past 1.5 times its
// keep alive has its connection closed without a DISCONNECT, "as if the
// network had failed" (§3.1.2.10).
//
// Checked against bare mochi in the same tests, and kept as mochi does
// them: Retain Handling 0/1/2 and Retain As Published, No Local, user
// properties forwarded to subscribers unchanged and in order, shared
// subscriptions ($share/{group}/{filter}: each message to one member,
// picked at random). The edge adds a Server Keep Alive
// (Config.MaxKeepAlive) for MQTT 5 clients asking for none or a longer
// one; mochi alone keeps a silent client without keep alive for ever.
//
// Flow control towards a client (MQTT 5 §4.9) is mochi's, patched in
// third_party/mochi-mqtt-server (v2.7.9 stalled a client after Receive
// Maximum messages, mochi issue #340): a client never has more QoS 1/2
// messages unacknowledged than its Receive Maximum; its PUBACK, its
// PUBCOMP (QoS 2: a PUBREC does not count) or a PUBREC with a failure
// code gives one back, and the messages waiting in its session are then
// sent in order. Messages waiting for quota stay in the session
// (Config.MaxInflight per client, Config.MaxMessageExpiry), a persistent
// session keeps them across a reconnect, where the unacknowledged ones
// are resent first (DUP set) under the new connection's Receive Maximum.
// QoS 0 messages are not counted. TestReceiveMaximumToClient and
// TestReceiveMaximumAcrossReconnect check it on the edge and bare mochi.
//
// # Devices and ACLs
//
// Devices authenticate against Config.Users, read from a YAML users file
// (ParseUsers; see users.go) holding bcrypt hashes and, per user, the
// topic filters it may publish on and subscribe to, with %u (username)
// and %c (client id) placeholders. SetPassword adds users and changes
// passwords in a users file's contents; reading and writing the file is
// the caller's (fluxo edge passwd). With AllowAnonymous,
// clients without a username connect with full access. One of the two is
// required. The edge is the only authenticating mochi hook: mochi ORs auth
// hooks, so adding mochi's allow-all hook next to it would open every
// door.
//
// # Safety
//
// A panic while serving one connection (mochi's MQTT 5 SUBSCRIBE decoder
// indexes past the end of a truncated packet) closes that connection and
// is logged; the edge goes on. Topic aliases from clients are refused
// (Topic Alias Maximum 0): mochi checks ACLs before resolving them.
//
// # Defaults
//
//	MQTTAddr           127.0.0.1:1883
//	EdgeID             host name
//	Routes             +/+/alarm/# → alarms (alarm lane), +/+/cmd/reply → command-acks (alarm lane), # → telemetry
//	MaxPacketSize      256 KiB
//	MaxSessionExpiry   7 days (also the expiry of 3.1.1 persistent sessions)
//	MaxMessageExpiry   24 hours (retained messages, messages queued for a client)
//	MaxClients         10000 (refused past it: server unavailable / server busy)
//	MaxConnectRate     none (refused past it: server unavailable / quota exceeded)
//	MaxInflight        1024 QoS 1/2 messages queued per client (unacknowledged and waiting for its Receive Maximum)
//	MaxWritesPending   128 packets waiting to be written, per connected client
//	ReceiveMaximum     128 unacknowledged QoS 1/2 publishes per client
//	MaxHeaders         64 record headers per publish (--max-headers)
//	MaxHeaderBytes     16 KiB of header keys and values per publish (--max-header-bytes)
//	MaxKeepAlive       10 minutes: Server Keep Alive of MQTT 5 clients asking for none or longer
//	StateDir           none: sessions and retained messages in memory only
//
// With StateDir, persistent sessions (3.1.1 clean session off, MQTT 5
// session expiry), their subscriptions and queued QoS 1/2 messages, and
// retained messages survive a restart (mochi's bolt hook,
// StateDir/mqtt.db); clean sessions are not written there.
//
// # Idle connections
//
// A connected, silent device on the plain TCP listener holds no
// goroutine and a few small structs: its socket waits in the edge's one
// epoll instance (poller.go), which resumes mochi's read loop on a new
// goroutine when bytes come, the peer hangs up, the keep-alive (1.5×)
// passes or the connection is closed; mochi's writer runs only while
// packets are queued for it (the vendored mochi's park.go); no read
// buffer, no write queue, no flusher (idleconn.go, ackconn.go). TLS and
// WebSocket connections keep a reader goroutine blocked in Read each
// (their own buffers sit between the socket and mochi); so do all
// connections on systems without epoll.
package edge
