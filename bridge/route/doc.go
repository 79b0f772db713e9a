// Package route is what fluxo's two MQTT inputs share: the routing rules
// (Route: an MQTT topic filter → a core topic, a spool lane and a key
// source), MQTT topic filters (MatchFilter, ValidFilter, Covers), and the
// mapping of an MQTT message to the record it becomes (Router.Message,
// the Header names). The edge (an MQTT server for devices) and
// bridge/source (an MQTT client of a site's broker) both build their
// records here, so that records look the same whichever door they came
// in by.
//
// # Data path
//
//	edge hook / source subscriber ──Publish──▶ Router.Message ──spool.Message──▶ Sink (the spool)
//
// Routes are tried in order and the first whose filter matches the topic
// wins (DefaultRoutes: alarms, command acknowledgements, device state, telemetry). The
// record key is the device id of a {fleet}/{device}/{stream} topic, or the
// client id (KeySource).
package route
