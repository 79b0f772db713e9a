// Package forward is the one forwarder under fluxo's two MQTT inputs: the
// spool on disk, the uplink that drains it to the core, the optional
// downlink of commands back to devices, and their accounting, metrics and
// readiness. `fluxo edge` (edge.Node, fed by devices) and `fluxo bridge`
// (bridge.Node, fed by a site's broker) both run one, so a message takes
// the same way to the core whichever door it came in by.
//
// # Data path
//
//	input ──Append/Submit──▶ Forwarder ──▶ spool ──▶ uplink ──Kafka──▶ core
//	                                          core ──Kafka──▶ downlink ──Publisher──▶ devices
//
// A Forwarder is the inputs' Sink: Append and Submit store a message in
// the spool (see spool.Spool). With a downlink it also learns each
// device's fleet from the topics the devices publish on
// ({fleet}/{device}/..., the mqtt.topic header), for the downlink to find
// the topic of a command.
//
// # Life
//
// New opens (and recovers) the spool and builds the uplink; Start runs the
// uplink and the downlink; Stop stops them, logs the spool's accounting
// and closes the spool. What the core has not acknowledged stays spooled
// for the next start.
package forward
