// Package source feeds fluxo from an MQTT broker it does not run: it
// subscribes (paho, MQTT 3.1.1) to a third-party broker such as Mosquitto,
// EMQX or HiveMQ and hands what it receives to the same Sink as the edge
// (the spool), for sites that already have a broker. `fluxo bridge` is
// this package, a spool and an uplink.
//
// # Data path
//
//	devices ──MQTT──▶ site broker ──MQTT, QoS 1, persistent session──▶ Subscriber ──route──▶ Sink.Append ──▶ PUBACK to the broker
//
// Each message is routed like a device publish at the edge (route.Route,
// first match wins; default route.DefaultRoutes) and becomes one
// spool.Message built by route.Router.Message, as at the edge, so records
// from a bridge and from an edge look the same:
//
//	Lane     the route's lane (alarm or telemetry)
//	Topic    the route's core topic
//	Key      the device id ({fleet}/{device}/{stream}...: second level), else
//	         Config.ClientID (the bridge's: the publisher's is not known)
//	Value    the MQTT payload
//	Time     receive time at the bridge
//	Headers  mqtt.topic, mqtt.qos, edge.id (Config.BridgeID),
//	         edge.received_ms (unix ms)
//
// mqtt.client is left out: a subscriber never learns the publisher's
// client id, and the bridge's own would read as the device's. mqtt.qos is
// the QoS of the delivery, the lower of the publish's and the
// subscription's. A message no route matches is acknowledged, counted
// (Stats.Unrouted) and dropped with a (sampled) log line.
//
// # Acknowledged means spooled
//
// The subscription is QoS 1 (Config.QoS) on a persistent session (clean
// session off, a stable Config.ClientID), with paho's automatic
// acknowledgement off (SetAutoAckDisabled): a message's PUBACK (PUBREC at
// QoS 2) goes out only after Sink.Append returned nil for it. paho hands
// messages over one at a time in arrival order; the Subscriber appends
// what has arrived in one call (up to Config.MaxBatch messages, sharing
// the spool's fsync) and then acknowledges them in arrival order, as MQTT
// requires.
//
// When the Sink refuses a batch (spool.ErrFull: the disk budget is used
// up by alarms), nothing of it is acknowledged, it is counted
// (Stats.Failed) and logged, and the connection is closed: a broker
// delivers an unacknowledged message again only when the session's client
// reconnects (MQTT 5 section 4.4 allows no other time; Mosquitto 2 does
// the same for MQTT 3.1.1 clients).
// Mosquitto 2 keeps up to max_inflight_messages (20) unacknowledged
// messages per client, sends nothing more to it until one is
// acknowledged, queues the rest in the session, and after the reconnect
// sends the unacknowledged ones again, in order, with DUP set, then the
// queued ones. Messages that arrived after the refused batch are not
// appended before it: they are dropped unacknowledged too (counted as
// Stats.Discarded) and come again after it. The Subscriber reconnects
// after RetryBackoff, doubling up to MaxRetryBackoff while appends keep
// failing. While the bridge is refused or away, the broker holds the
// messages in the session up to its own limits (Mosquitto:
// max_queued_messages, 1000 by default, beyond which it drops them; raise
// it for bridged clients).
//
// QoS 0 messages are neither acknowledged nor delivered again: one the
// Sink refuses is lost (counted as failed).
//
// The guarantee is at least once: a message spooled whose PUBACK is lost
// with the connection is delivered again and spooled twice (the core
// deduplicates the uplink's retries, not these). On a clean stop the
// acknowledgements of everything spooled go out before DISCONNECT, so a
// restart brings no duplicates.
//
// # Sessions and subscriptions
//
// The broker keeps the session (subscriptions, messages published while
// the bridge is away) under Config.ClientID. The Subscriber subscribes on
// its first connection of a Run (the filters may have changed) and again
// whenever the broker reports no session (a broker restarted without
// persistence). A filter dropped from the configuration stays in the
// session until it expires; use a new client id to start afresh. Each
// SUBSCRIBE makes the broker send its retained messages on the filters,
// flagged retained: they are bridged like any message, once per start.
//
// With Config.SharedGroup, each filter is subscribed as
// $share/<group>/<filter>: bridges with distinct client ids and one group
// share the messages, each delivered to one of them (load sharing or
// hot standby). MQTT 5 lets a broker keep a member's unacknowledged
// messages for that member until it reconnects (section 4.8.2), so a
// member that is refused or away may hold some messages back.
//
// # Reconnecting
//
// paho's own reconnect is off: every connection is a fresh paho client,
// so messages of an ended connection can be told apart and are never
// acknowledged on the next one (paho drops such acknowledgements). Run
// reconnects after any failure (connection refused or lost, keep-alive
// timeout, refused subscription, refused append) with the backoff above.
//
// Metrics (Subscriber.Collector): fluxo_bridge_received_total,
// fluxo_bridge_redelivered_total, fluxo_bridge_spooled_total,
// fluxo_bridge_unrouted_total, fluxo_bridge_spool_failures_total,
// fluxo_bridge_discarded_total, fluxo_bridge_reconnects_total,
// fluxo_bridge_source_connected.
package source
